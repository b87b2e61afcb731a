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

#include "cache/cache_accounting.h"
#include "cache/cache_index.h"
#include "cache/content_cache.h"
#include "cache/open_objects.h"

namespace kacheryfs {

struct QuotaConfig {
  std::uint64_t max_bytes = 0;       // 0: a quarter of the cache's file system
  std::uint64_t min_free_bytes = 0;  // absolute floor of free space, or...
  double min_free_fraction = 0.10;   // ...this fraction of the file system (used when bytes is 0)
};

class CacheKeeper final : public CacheAccounting {
 public:
  // in_use: what this process holds open (never evicted); the index's open objects cover
  // other processes.
  CacheKeeper(ContentCache& cache, CacheIndex& index, QuotaConfig quota, const OpenObjects& in_use);

  std::uint64_t max_bytes() const { return max_bytes_; }
  std::uint64_t min_free_bytes() const { return min_free_bytes_; }
  std::uint64_t cached_bytes() const override { return cached_bytes_.load(); }
  std::uint64_t capacity() const override { return max_bytes_; }

  void complete(const std::string& sha1, std::uint64_t size) override;
  void partial(const std::string& sha1, std::uint64_t size, std::uint64_t bytes) override;
  void accessed(const std::string& sha1) override { index_.touch(sha1); }
  void size_found(const std::string& sha1, std::uint64_t size) override {
    index_.remember_size(sha1, size);
  }
  std::optional<std::uint64_t> found_size(const std::string& sha1) override {
    return index_.remembered_size(sha1);
  }
  std::uint64_t make_room(std::uint64_t incoming) override;
  std::uint64_t make_room_after_enospc(std::uint64_t needed) override;
  // Deletes one object's files and forgets it (the tool's verify and gc use it too).
  std::uint64_t evict(const IndexEntry& entry);
  // evict() for an object known by its hash only.
  void forget(const std::string& sha1) override;
  CacheIndex& index() { return index_; }

  // Records objects found on disk when the index is new (a cache from before the index).
  void adopt_unindexed_files();
  // Takes the byte count from the index again, so that what another process (the tool's
  // store, pin or gc) changed in this cache shows; a change racing it is put right by the
  // next call.
  void resync();

 private:
  std::uint64_t free_bytes();
  ContentCache& cache_;
  CacheIndex& index_;
  std::uint64_t max_bytes_;
  std::uint64_t min_free_bytes_;
  const OpenObjects& in_use_;
  std::atomic<std::uint64_t> cached_bytes_{0};
  // Lock order: evict_mutex_ before free_mutex_ (and both before the index's own mutex).
  std::mutex evict_mutex_;
  std::mutex free_mutex_;  // free space is asked of the file system at most every 250 ms
  std::chrono::steady_clock::time_point free_checked_{};
  std::uint64_t free_bytes_ = 0;
};

}  // namespace kacheryfs
