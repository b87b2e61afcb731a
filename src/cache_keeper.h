// Keeps the cache within its limits: accounts every object (complete, or partial by the
// bytes it holds) in the CacheIndex, and evicts least-recently-used objects that are
// neither pinned nor open when a new write would pass cache_max or leave less than
// cache_min_free on the file system (also when a write already failed with ENOSPC).
// Used by the fetchers, the mount and the kacheryfs-cache tool. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "cache_index.h"
#include "content_cache.h"

namespace kacheryfs {

struct QuotaConfig {
  std::uint64_t max_bytes = 0;       // 0: a quarter of the cache's file system
  std::uint64_t min_free_bytes = 0;  // absolute floor of free space, or...
  double min_free_fraction = 0.10;   // ...this fraction of the file system (used when bytes is 0)
};

class CacheKeeper {
 public:
  CacheKeeper(ContentCache& cache, CacheIndex& index, QuotaConfig quota);

  std::uint64_t max_bytes() const { return max_bytes_; }
  std::uint64_t min_free_bytes() const { return min_free_bytes_; }
  std::uint64_t cached_bytes() const { return cached_bytes_.load(); }

  void complete(const std::string& sha1, std::uint64_t size);
  void partial(const std::string& sha1, std::uint64_t size, std::uint64_t bytes);
  void accessed(const std::string& sha1) { index_.touch(sha1); }

  // Evicts until `incoming` more bytes fit; returns the bytes freed.
  std::uint64_t make_room(std::uint64_t incoming);
  // After a write failed with ENOSPC: evicts at least `needed` bytes whatever the limits say.
  std::uint64_t make_room_after_enospc(std::uint64_t needed);
  // Deletes one object's files and forgets it (the tool's verify and gc use it too).
  std::uint64_t evict(const IndexEntry& entry);
  // evict() for an object known by its hash only.
  void forget(const std::string& sha1);
  CacheIndex& index() { return index_; }

  // In-process "is this object in use" check (open handles, streams); the index's
  // open_objects covers other processes.
  void set_in_use_check(std::function<bool(const std::string&)> in_use) {
    in_use_ = std::move(in_use);
  }

  // Records objects found on disk when the index is new (a cache from before the index).
  void adopt_unindexed_files();

 private:
  std::uint64_t free_bytes();
  ContentCache& cache_;
  CacheIndex& index_;
  std::uint64_t max_bytes_;
  std::uint64_t min_free_bytes_;
  std::atomic<std::uint64_t> cached_bytes_{0};
  std::mutex evict_mutex_;
  std::mutex free_mutex_;  // free space is asked of the file system at most every 250 ms
  std::chrono::steady_clock::time_point free_checked_{};
  std::uint64_t free_bytes_ = 0;
  std::function<bool(const std::string&)> in_use_;
};

}  // namespace kacheryfs
