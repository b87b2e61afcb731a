// The handles the kernel holds as fi->fh (open files and directories): each is registered
// before its open is answered and leaves at its release. A session can end with some still
// held: an unmount that comes while a RELEASE is on its way (the kernel then drops it), or an
// aborted connection. The session runner frees those once the loop has ended.
#pragma once

#include <cstddef>
#include <functional>
#include <mutex>
#include <unordered_map>

namespace kacheryfs {

class OpenHandles {
 public:
  // `let_go` frees the handle on the kernel's behalf (it runs at most once, from free_all).
  void add(const void* handle, std::function<void()> let_go);
  void remove(const void* handle);
  // After the session loop: no request is running, so no release can race this.
  // Returns how many the kernel had not released.
  std::size_t free_all();

 private:
  mutable std::mutex mutex_;  // a leaf
  std::unordered_map<const void*, std::function<void()>> handles_;
};

}  // namespace kacheryfs
