#include "open_handles.h"

#include <utility>

namespace kacheryfs {

void OpenHandles::add(const void* handle, std::function<void()> let_go) {
  std::lock_guard lock(mutex_);
  handles_[handle] = std::move(let_go);
}

void OpenHandles::remove(const void* handle) {
  std::lock_guard lock(mutex_);
  handles_.erase(handle);
}

std::size_t OpenHandles::free_all() {
  std::unordered_map<const void*, std::function<void()>> left;
  {
    std::lock_guard lock(mutex_);
    left.swap(handles_);
  }
  for (auto& [handle, let_go] : left) let_go();  // without the lock: a handle may remove()
  return left.size();
}

}  // namespace kacheryfs
