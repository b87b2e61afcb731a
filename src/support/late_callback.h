// LateCallback: a callback that the owner creates first and a later part attaches to. The
// one use: the core asks the kernel to drop cached pages of content that failed
// verification, but the FUSE session that can do so exists only after the filesystem was
// built. Calls before attach() do nothing. Thread-safe.
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
  void operator()(Args... args) const {
    std::function<void(Args...)> target;
    {
      std::lock_guard lock(mutex_);
      target = target_;
    }
    if (target) target(args...);
  }

 private:
  mutable std::mutex mutex_;  // a leaf
  std::function<void(Args...)> target_;
};

}  // namespace kacheryfs
