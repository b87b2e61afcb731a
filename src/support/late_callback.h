// LateCallback: a callback that the owner creates first and a later part attaches to. The
// one use: the core asks the kernel to drop cached pages of content that failed
// verification, but the FUSE session that can do so exists only after the filesystem was
// built, and ends before it. Calls before attach() or after detach() do nothing. A call
// runs under the lock, so detach() returns only once no call is running: the session can
// then be closed safely. Thread-safe; the target must not call back into this object.
#pragma once

#include <functional>
#include <mutex>
#include <utility>

namespace kacheryfs {

template <class... Args>
class LateCallback {
 public:
  void attach(std::function<void(Args...)> target) {
    std::lock_guard lock(mutex_);
    target_ = std::move(target);
  }
  void detach() { attach({}); }
  void operator()(Args... args) const {
    std::lock_guard lock(mutex_);
    if (target_) target_(args...);
  }

 private:
  mutable std::mutex mutex_;
  std::function<void(Args...)> target_;
};

}  // namespace kacheryfs
