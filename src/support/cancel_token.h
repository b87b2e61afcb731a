// Cancellation of slow work: the core polls a CancelToken between steps of a fetch.
// fuse/ implements it with fuse_req_interrupted so Ctrl-C on a reader abandons a fetch.
#pragma once

#include <chrono>

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

// Cancelled when the token it wraps is, or once a deadline has passed.
class DeadlineToken final : public CancelToken {
 public:
  DeadlineToken(const CancelToken& inner, std::chrono::steady_clock::time_point deadline)
      : inner_(inner), deadline_(deadline) {}
  bool cancelled() const override {
    return inner_.cancelled() || std::chrono::steady_clock::now() >= deadline_;
  }
  bool expired() const { return std::chrono::steady_clock::now() >= deadline_; }

 private:
  const CancelToken& inner_;
  std::chrono::steady_clock::time_point deadline_;
};

}  // namespace kacheryfs
