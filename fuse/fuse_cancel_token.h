// A CancelToken that fires when the kernel interrupts a FUSE request (the reader got a
// signal, e.g. Ctrl-C), so the core abandons a slow fetch and the reader sees EINTR. It
// registers libfuse's interrupt callback for the request and must be destroyed before the
// request is answered (the answer frees it): fuse_operations.cc scopes it so.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include "support/cancel_token.h"

namespace kacheryfs {

class FuseRequestCancelToken final : public CancelToken {
 public:
  explicit FuseRequestCancelToken(fuse_req_t request) : request_(request) {
    // Called at once if the request was interrupted already.
    fuse_req_interrupt_func(request_, &FuseRequestCancelToken::interrupted, this);
  }
  ~FuseRequestCancelToken() override {
    // Takes the request's lock, which libfuse holds while it calls interrupted(): once
    // this returns, no call is running or to come.
    fuse_req_interrupt_func(request_, nullptr, nullptr);
  }
  FuseRequestCancelToken(const FuseRequestCancelToken&) = delete;
  FuseRequestCancelToken& operator=(const FuseRequestCancelToken&) = delete;

  bool cancelled() const override { return signal_.fired(); }
  CancelSubscription on_cancel(std::function<void()> wake) const override {
    return signal_.subscribe(std::move(wake));
  }

 private:
  static void interrupted(fuse_req_t, void* token) {
    static_cast<FuseRequestCancelToken*>(token)->signal_.fire();
  }

  fuse_req_t request_;
  mutable CancelSignal signal_;
};

}  // namespace kacheryfs
