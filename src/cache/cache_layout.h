// CacheLayout: the one place that names the files of a cache dir. Everything else asks it.
//   ROOT/objects/ab/<sha1>        complete, verified content, one directory level deep (256
//                                 directories in all), so that a small object costs one
//                                 file system block and not one per directory level
//   ROOT/sha1/ab/cd/ef/<sha1>     the same in the layout of earlier versions; a writable
//                                 open moves such objects to objects/ (a read-only one
//                                 reads them where they are)
//   ROOT/partial/<sha1>.data      a large file being streamed: sparse, full size
//   ROOT/partial/<sha1>.blocks    its page map, one byte per 64 KiB page (1 = present)
//   ROOT/partial/<sha1>.chunks    its verified manifest chunks, one byte each
//   ROOT/tmp/                     temp files of transactions (and of meta values)
//   ROOT/bad/<sha1>               objects that failed `kacheryfs-cache verify`
//   ROOT/meta/<key>               small persistent facts (the node id)
//   ROOT/index.sqlite             the cache index;  ROOT/mount.lock  one mount per cache
// (The page map keeps its historical ".blocks" name, so caches from earlier versions work.)
// Immutable after construction; thread-safe.
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "support/unique_fd.h"

namespace kacheryfs {

class CacheLayout {
 public:
  // Keeps the root directory open (when it exists) for the openat2 calls of open_file.
  explicit CacheLayout(std::filesystem::path root);

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path complete_dir() const { return root_ / "objects"; }
  // Where complete objects were kept before objects/ existed.
  std::filesystem::path legacy_complete_dir() const { return root_ / "sha1"; }
  // True when the root holds only the earlier layout (a cache not yet opened for writing).
  bool legacy() const { return legacy_; }
  std::filesystem::path complete_path(std::string_view sha1) const;
  std::filesystem::path legacy_complete_path(std::string_view sha1) const;
  std::filesystem::path partial_dir() const { return root_ / "partial"; }
  std::filesystem::path partial_data(std::string_view sha1) const {
    return partial_dir() / (std::string(sha1) + std::string(kDataSuffix));
  }
  std::filesystem::path page_map(std::string_view sha1) const {
    return partial_dir() / (std::string(sha1) + std::string(kPageMapSuffix));
  }
  std::filesystem::path verified_chunks(std::string_view sha1) const {
    return partial_dir() / (std::string(sha1) + std::string(kChunksSuffix));
  }
  // The sha1 whose partial data file this name is ("<sha1>.data"), or "".
  static std::string sha1_of_partial_data(std::string_view file_name);

  std::filesystem::path tmp_dir() const { return root_ / "tmp"; }
  std::filesystem::path bad_dir() const { return root_ / "bad"; }
  std::filesystem::path meta_dir() const { return root_ / "meta"; }
  std::filesystem::path index_path() const { return root_ / "index.sqlite"; }
  std::filesystem::path lock_path() const { return root_ / "mount.lock"; }

  // Opens a file of the cache (a path under root()) without following any symlink and
  // without leaving root (openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS): a link
  // planted in the cache dir never makes the mount serve or overwrite another file.
  // Returns an fd or -errno (-ELOOP/-EXDEV for a symlink).
  int open_file(const std::filesystem::path& path, int flags, unsigned mode = 0600) const;
  // stat of such a file, with the same rules; false if it cannot be reached so.
  bool stat_file(const std::filesystem::path& path, struct stat* st) const;
  // The whole content of a small file of the cache (a page map, a manifest, a meta value),
  // read with the same rules; nullopt if it cannot be read so.
  std::optional<std::string> read_file(const std::filesystem::path& path) const;
  // Removes a file of the cache: its directory is reached with the same rules and the name
  // itself is unlinked, never followed, so a planted link never removes another file.
  // 0 or -errno (-ENOENT when there is none).
  int remove_file(const std::filesystem::path& path) const;
  // Renames one file of the cache to another path of it, both directories reached so.
  int rename_file(const std::filesystem::path& from, const std::filesystem::path& to) const;

 private:
  static constexpr std::string_view kDataSuffix = ".data";
  static constexpr std::string_view kPageMapSuffix = ".blocks";
  static constexpr std::string_view kChunksSuffix = ".chunks";
  std::filesystem::path root_;
  bool legacy_ = false;
  std::shared_ptr<const UniqueFd> root_fd_;  // O_PATH of root_; invalid if it did not exist
};

}  // namespace kacheryfs
