// The persistent local cache of complete, verified content, in the files CacheLayout names
// (complete objects at ROOT/objects/ab/<sha1>).
// Bytes arrive through a Transaction: a temp file under ROOT/tmp that becomes visible in the
// layout only by an atomic rename after it was verified and synced. Used by the fetcher.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/cache_layout.h"
#include "support/result.h"
#include "support/unique_fd.h"

namespace kacheryfs {

class ContentCache {
 public:
  // Creates ROOT, ROOT/sha1 and ROOT/tmp as needed and removes temp files left by
  // processes that are gone. Throws std::system_error when ROOT cannot be used (the one
  // place the core throws: a constructor has no result to return).
  // read_only: a cache on a file system that cannot be written, for reading its state; no
  // directory is made and no temp file removed.
  explicit ContentCache(std::filesystem::path root, bool read_only = false);

  const std::filesystem::path& root() const { return layout_.root(); }
  const CacheLayout& layout() const { return layout_; }

  // Who holds CACHE/mount.lock, as the lock file says ("" when it does not say).
  struct LockHolder {
    std::string pid;
    std::string mountpoint;
  };
  // Takes CACHE/mount.lock for this process (flock; released when the process ends, kept
  // across the fork of daemonizing) and records the pid and `mountpoint` in it. Only one
  // mount uses a cache dir at a time: returns false and sets *holder to what the mount that
  // has it recorded.
  bool lock_for_mount(const std::string& mountpoint, LockHolder* holder);
  // Rewrites the pid in the lock file (after daemonizing changed it).
  void record_mount_pid(const std::string& mountpoint) const;
  // Whether some process holds CACHE/mount.lock now (read from /proc/locks, so that asking
  // never takes the lock from a mount starting at the same moment).
  bool mount_holds_lock() const;
  std::filesystem::path complete_path(std::string_view sha1) const {
    return layout_.complete_path(sha1);
  }

  // Size of the complete entry, or nullopt when it is not cached.
  std::optional<std::uint64_t> complete_size(std::string_view sha1) const;

  // Opens the complete entry read-only (-ENOENT when not cached).
  Result<UniqueFd> open_complete(std::string_view sha1) const;

  // What the mount's sha1/ab/cd/ef/ tree lists for a hex prefix of length 0, 2, 4 or 6: the
  // next level's two-character names among the complete objects, or (for length 6) their
  // sha1 names.
  std::vector<std::string> list_level(std::string_view prefix) const;
  // Every complete sha1 in the cache.
  std::vector<std::string> list_all() const;

  // Size of a partially fetched large file (its data file has the full size), if any.
  std::optional<std::uint64_t> partial_size(std::string_view sha1) const;
  // Moves a verified file into the complete layout (atomic rename); 0 or -errno.
  int adopt(std::string_view sha1, const std::filesystem::path& verified_file) const;

  // Small persistent facts (e.g. the node id), stored as ROOT/meta/<key>.
  std::optional<std::string> read_meta(std::string_view key) const;
  void write_meta(std::string_view key, std::string_view value) const;

  class Transaction {
   public:
    ~Transaction();  // removes the temp file unless committed
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;

    // Appends bytes; returns 0 or -errno.
    int append(const char* data, std::size_t size);
    std::uint64_t size() const { return size_; }
    // fsyncs and renames the temp file into the layout; returns 0 or -errno.
    int commit();
    // commit() under a name learnt only at the end (begin_unnamed()); the caller has
    // verified that the bytes hash to sha1.
    int commit_as(std::string_view sha1, const CacheLayout& layout);

   private:
    friend class ContentCache;
    Transaction(const CacheLayout& layout, int fd, std::filesystem::path temp_path,
                std::filesystem::path final_path);
    const CacheLayout& layout_;  // the cache's, which outlives every transaction
    int fd_;
    std::filesystem::path temp_path_;
    std::filesystem::path final_path_;
    std::uint64_t size_ = 0;
    bool committed_ = false;
  };

  // Starts writing the entry for sha1.
  Result<std::unique_ptr<Transaction>> begin(std::string_view sha1) const;
  // Starts writing an entry whose sha1 is known only at the end (commit_as).
  Result<std::unique_ptr<Transaction>> begin_unnamed() const { return begin(kUnnamed); }

 private:
  static constexpr std::string_view kUnnamed = "unnamed";
  void remove_stale_temp_files() const;
  // Moves complete objects of the earlier sha1/ab/cd/ef/ layout to objects/ab/ (renames, so
  // a crash midway loses nothing: the next writable open moves the rest).
  void move_legacy_objects() const;
  CacheLayout layout_;
};

}  // namespace kacheryfs
