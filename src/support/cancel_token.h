// Cancellation of slow work: the core polls a CancelToken between steps of a fetch.
// fuse/ implements it with fuse_req_interrupted so Ctrl-C on a reader abandons a fetch.
#pragma once

namespace kacheryfs {

class CancelToken {
 public:
  virtual ~CancelToken() = default;
  virtual bool cancelled() const = 0;
};

class NeverCancelled final : public CancelToken {
 public:
  bool cancelled() const override { return false; }
};

}  // namespace kacheryfs
