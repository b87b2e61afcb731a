// OpenObjects: which cached objects this process is using right now (an open file handle,
// a stream being fetched), so that the keeper never evicts them. A Hold is an RAII claim;
// the first and last claim of an object are reported to a callback (the mount records
// them in the cache index, so that `kacheryfs-cache gc` in another process sees them too).
// Take a hold before making or opening an object's files. Thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace kacheryfs {

class OpenObjects {
 public:
  using OnChange = std::function<void(const std::string& sha1, bool open)>;
  explicit OpenObjects(OnChange on_change = {}) : on_change_(std::move(on_change)) {}

  class Hold {
   public:
    Hold() = default;
    ~Hold() { reset(); }
    Hold(Hold&& other) noexcept : owner_(other.owner_), sha1_(std::move(other.sha1_)) {
      other.owner_ = nullptr;
    }
    Hold& operator=(Hold&& other) noexcept {
      if (this != &other) {
        reset();
        owner_ = other.owner_;
        sha1_ = std::move(other.sha1_);
        other.owner_ = nullptr;
      }
      return *this;
    }
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;
    void reset() {
      if (owner_ != nullptr) owner_->release(sha1_);
      owner_ = nullptr;
    }

   private:
    friend class OpenObjects;
    Hold(OpenObjects* owner, std::string sha1) : owner_(owner), sha1_(std::move(sha1)) {}
    OpenObjects* owner_ = nullptr;
    std::string sha1_;
  };

  Hold hold(const std::string& sha1) {
    bool first = false;
    {
      std::lock_guard lock(mutex_);
      first = ++counts_[sha1] == 1;
    }
    if (first && on_change_) on_change_(sha1, true);
    return Hold(this, sha1);
  }

  bool held(const std::string& sha1) const {
    std::lock_guard lock(mutex_);
    return counts_.count(sha1) > 0;
  }

  // Runs `remove` unless sha1 is held, with no hold beginning until it returns (an
  // eviction: a reader that makes the object's files anew never sees them half removed).
  // True when it ran. `remove` must not take a hold.
  template <class Remove>
  bool unless_held(const std::string& sha1, Remove&& remove) const {
    std::lock_guard lock(mutex_);
    if (counts_.count(sha1) > 0) return false;
    remove();
    return true;
  }

 private:
  void release(const std::string& sha1) {
    bool last = false;
    {
      std::lock_guard lock(mutex_);
      auto it = counts_.find(sha1);
      if (it == counts_.end()) return;
      last = --it->second == 0;
      if (last) counts_.erase(it);
    }
    if (last && on_change_) on_change_(sha1, false);
  }

  OnChange on_change_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, int> counts_;
};

}  // namespace kacheryfs
