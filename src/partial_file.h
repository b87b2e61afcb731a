// A large file being fetched page by page: a sparse data file CACHE/partial/<sha1>.data
// and a page map CACHE/partial/<sha1>.blocks (one byte per page, 1 = present) that
// survives remounts and kill -9. A page is marked present only after its bytes were
// written to the data file. Tracks which pages are being fetched (so each is fetched
// once), which manifest chunks were verified, and whether verification failed.
// Shared by every open handle of the file; thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "cancel_token.h"
#include "manifest.h"
#include "sha1_hasher.h"

namespace kacheryfs {

class PartialFile {
 public:
  // Opens (or creates) the partial entry; restores the pages already present. On
  // failure returns nullptr and sets *error (-errno).
  static std::shared_ptr<PartialFile> open(const std::filesystem::path& directory,
                                           const std::string& sha1, std::uint64_t size,
                                           std::uint64_t page_size, int* error);
  ~PartialFile();
  PartialFile(const PartialFile&) = delete;
  PartialFile& operator=(const PartialFile&) = delete;

  const std::string& sha1() const { return sha1_; }
  std::uint64_t size() const { return size_; }
  std::uint64_t page_size() const { return page_size_; }
  std::uint64_t page_count() const { return present_.size(); }
  std::uint64_t page_start(std::uint64_t page) const { return page * page_size_; }
  std::uint64_t page_end(std::uint64_t page) const {
    return std::min(size_, (page + 1) * page_size_);
  }
  int data_fd() const { return data_fd_; }
  const std::filesystem::path& data_path() const { return data_path_; }

  bool present(std::uint64_t page) const;
  bool all_present() const;
  std::uint64_t cached_bytes() const;

  // True when the caller should fetch the page: not present and not being fetched.
  bool claim(std::uint64_t page);
  // Ends a claim: on success records the page as present (data first, then the map).
  void finish(std::uint64_t block, bool fetched);

  enum class WaitResult { kPresent, kAbsent, kCancelled, kFailed };
  // Waits while someone else fetches the page.
  WaitResult wait(std::uint64_t block, const CancelToken& cancel);

  // Verification state. Verified chunks are recorded in CACHE/partial/<sha1>.chunks, so
  // they stay verified after the file is closed or the mount restarts.
  void set_manifest(Manifest manifest);
  const std::optional<Manifest>& manifest() const { return manifest_; }
  bool chunk_verified(std::size_t chunk) const;
  void set_chunk_verified(std::size_t chunk);
  std::size_t verified_chunk_count() const;
  // Waits until chunk is verified (true) or the file failed / cancel (false).
  bool wait_chunk_verified(std::size_t chunk, const CancelToken& cancel);
  bool complete() const { return complete_.load(); }
  void set_complete();
  bool failed() const { return failed_.load(); }
  // Marks the file bad: drops its pages and files; every reader gets EIO from now on.
  void fail();

  // The verifier's whole-file hash cursor (pages [0, hashed) are hashed).
  std::uint64_t hashed_pages = 0;
  Sha1Hasher whole_file_hasher;
  std::mutex hash_mutex;
  std::atomic<bool> verify_scheduled{false};
  // Bytes held when the cache index was last told (it is told every block, not every page).
  std::atomic<std::uint64_t> indexed_bytes{0};

 private:
  PartialFile(std::string sha1, std::uint64_t size, std::uint64_t page_size);

  std::string sha1_;
  std::uint64_t size_;
  std::uint64_t page_size_;
  std::filesystem::path data_path_;
  std::filesystem::path map_path_;
  std::filesystem::path chunks_path_;  // verified manifest chunks, one byte each
  int data_fd_ = -1;
  int map_fd_ = -1;
  int chunks_fd_ = -1;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::uint8_t> present_;
  std::vector<std::uint8_t> in_flight_;
  std::uint64_t present_count_ = 0;
  std::uint64_t present_bytes_ = 0;
  std::optional<Manifest> manifest_;
  std::vector<std::uint8_t> chunk_verified_;
  std::atomic<bool> complete_{false};
  std::atomic<bool> failed_{false};
};

}  // namespace kacheryfs
