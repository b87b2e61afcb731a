#include "cache/cache_keeper.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>

#include "kachery/hash_name.h"

namespace kacheryfs {

namespace fs = std::filesystem;

CacheKeeper::CacheKeeper(ContentCache& cache, CacheIndex& index, QuotaConfig quota,
                         const OpenObjects& in_use)
    : cache_(cache), index_(index), in_use_(in_use) {
  struct statvfs st {};
  std::uint64_t fs_size = 0;
  if (statvfs(cache_.root().c_str(), &st) == 0)
    fs_size = static_cast<std::uint64_t>(st.f_blocks) * st.f_frsize;
  max_bytes_ = quota.max_bytes != 0 ? quota.max_bytes : fs_size / 4;
  min_free_bytes_ = quota.min_free_bytes != 0
                        ? quota.min_free_bytes
                        : static_cast<std::uint64_t>(quota.min_free_fraction * fs_size);
  cached_bytes_ = index_.totals().bytes;
}

std::uint64_t CacheKeeper::free_bytes() {
  std::lock_guard lock(free_mutex_);
  auto now = std::chrono::steady_clock::now();
  if (now - free_checked_ >= std::chrono::milliseconds(250)) {
    struct statvfs st {};
    free_bytes_ = statvfs(cache_.root().c_str(), &st) == 0
                      ? static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize
                      : ~std::uint64_t{0};
    free_checked_ = now;
  }
  return free_bytes_;
}

void CacheKeeper::complete(const std::string& sha1, std::uint64_t size) {
  auto before = index_.get(sha1);
  index_.record(sha1, size, size, true);
  cached_bytes_ += size - std::min(size, before ? before->bytes : 0);
}

void CacheKeeper::partial(const std::string& sha1, std::uint64_t size, std::uint64_t bytes) {
  auto before = index_.get(sha1);
  // A block fetch that finishes after its file was verified (a prefetch worker behind the
  // verifier) never turns a complete object back into a partial one: eviction or a failed
  // verification removes the row first.
  if (before && before->complete) return;
  index_.record(sha1, size, bytes, false);
  std::uint64_t old = before ? before->bytes : 0;
  if (bytes >= old)
    cached_bytes_ += bytes - old;
  else
    cached_bytes_ -= std::min<std::uint64_t>(cached_bytes_.load(), old - bytes);
}

std::uint64_t CacheKeeper::evict(const IndexEntry& entry) {
  const CacheLayout& layout = cache_.layout();
  layout.remove_file(layout.partial_data(entry.sha1));
  layout.remove_file(layout.page_map(entry.sha1));
  layout.remove_file(layout.verified_chunks(entry.sha1));
  layout.remove_file(cache_.complete_path(entry.sha1));
  index_.remove(entry.sha1);
  cached_bytes_ -= std::min<std::uint64_t>(cached_bytes_.load(), entry.bytes);
  return entry.bytes;
}

void CacheKeeper::resync() { cached_bytes_ = index_.totals().bytes; }

void CacheKeeper::forget(const std::string& sha1) {
  if (auto entry = index_.get(sha1)) evict(*entry);
}

std::uint64_t CacheKeeper::make_room(std::uint64_t incoming) {
  auto fits = [&] {
    return cached_bytes_ + incoming <= max_bytes_ && free_bytes() >= incoming + min_free_bytes_;
  };
  if (fits()) return 0;
  std::lock_guard lock(evict_mutex_);
  cached_bytes_ = index_.totals().bytes;  // another process (the tool) may have changed it
  std::uint64_t freed = 0;
  for (const IndexEntry& entry : index_.eviction_candidates()) {
    if (fits()) break;
    if (!in_use_.unless_held(entry.sha1, [&] { freed += evict(entry); })) continue;
    {
      std::lock_guard free_lock(free_mutex_);
      free_checked_ = {};  // ask the file system again after deleting
    }
    spdlog::debug("evicted {} ({} bytes, last used {})", entry.sha1, entry.bytes,
                  entry.last_access);
  }
  if (!fits()) {
    spdlog::warn(
        "cache over its limits even after eviction: {} bytes held, limit {}, {} bytes free (floor "
        "{}); "
        "the rest is pinned or open",
        cached_bytes_.load(), max_bytes_, free_bytes(), min_free_bytes_);
  }
  return freed;
}

std::uint64_t CacheKeeper::make_room_after_enospc(std::uint64_t needed) {
  std::lock_guard lock(evict_mutex_);
  std::uint64_t freed = 0;
  for (const IndexEntry& entry : index_.eviction_candidates()) {
    if (freed >= needed) break;
    if (!in_use_.unless_held(entry.sha1, [&] { freed += evict(entry); }))
      spdlog::debug("not evicting {}: in use", entry.sha1);
  }
  {
    std::lock_guard free_lock(free_mutex_);
    free_checked_ = {};
  }
  spdlog::info("the cache's file system is full: evicted {} bytes to go on", freed);
  return freed;
}

void CacheKeeper::adopt_unindexed_files() {
  if (!index_.empty()) return;
  std::size_t adopted = 0;
  for (const std::string& sha1 : cache_.list_all()) {
    if (auto size = cache_.complete_size(sha1)) {
      complete(sha1, *size);
      ++adopted;
    }
  }
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(cache_.layout().partial_dir(), ec)) {
    std::string sha1 = CacheLayout::sha1_of_partial_data(item.path().filename().string());
    if (sha1.empty()) continue;
    struct stat st {};
    if (stat(item.path().c_str(), &st) != 0) continue;
    partial(sha1, static_cast<std::uint64_t>(st.st_size),
            static_cast<std::uint64_t>(st.st_blocks) * 512);
    ++adopted;
  }
  if (adopted > 0) spdlog::info("indexed {} objects found in the cache", adopted);
}

}  // namespace kacheryfs
