// A CancelToken that fires when the kernel interrupts a FUSE request (the reader got a
// signal, e.g. Ctrl-C), so the core abandons a slow fetch and the reader sees EINTR.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include "support/cancel_token.h"

namespace kacheryfs {

class FuseRequestCancelToken final : public CancelToken {
 public:
  explicit FuseRequestCancelToken(fuse_req_t request) : request_(request) {}
  bool cancelled() const override { return fuse_req_interrupted(request_) != 0; }

 private:
  fuse_req_t request_;
};

}  // namespace kacheryfs
