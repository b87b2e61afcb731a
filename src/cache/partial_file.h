// A large file being fetched page by page: a sparse data file CACHE/partial/<sha1>.data
// and a page map CACHE/partial/<sha1>.blocks (one byte per page, 1 = present) that
// survives remounts and kill -9. A page is marked present only after its bytes were
// written to the data file. Tracks which pages are being fetched (so each is fetched
// once), which manifest chunks were verified, and whether verification failed.
// Shared by every open handle of the file; thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "cache/cache_layout.h"
#include "cache/open_objects.h"
#include "kachery/manifest.h"
#include "kachery/sha1_hasher.h"
#include "support/cancel_token.h"
#include "support/result.h"
#include "support/unique_fd.h"

namespace kacheryfs {

class PartialFile {
 public:
  // The most pages an entry has (4 TiB at 64 KiB pages): its page maps are in memory.
  static constexpr std::uint64_t kMaxPages = std::uint64_t{1} << 26;

  // Opens (or creates) the partial entry named by the layout; restores the pages already
  // present. Every file of the entry is opened through the layout (openat2, no symlinks),
  // which must outlive the entry. More than kMaxPages pages: EFBIG.
  static Result<std::shared_ptr<PartialFile>> open(const CacheLayout& layout,
                                                   const std::string& sha1, std::uint64_t size,
                                                   std::uint64_t page_size);
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
  int data_fd() const { return data_fd_.get(); }
  const std::filesystem::path& data_path() const { return data_path_; }

  bool present(std::uint64_t page) const;
  bool all_present() const;
  std::uint64_t cached_bytes() const;

  // The number of present pages in a row from `first`, at most `limit`.
  std::uint64_t present_run(std::uint64_t first, std::uint64_t limit) const;

  // True when the caller should fetch the page: not present and not being fetched.
  bool claim(std::uint64_t page);
  // Ends the claims of pages [first, last]: on success records them as present (data
  // first, then the map, in one write) and wakes only the readers waiting on them.
  void finish(std::uint64_t first, std::uint64_t last, bool fetched);

  enum class WaitResult { kPresent, kAbsent, kCancelled, kFailed };
  // Waits while someone else fetches the page.
  WaitResult wait(std::uint64_t page, const CancelToken& cancel);

  // Verification state. Verified chunks are recorded in CACHE/partial/<sha1>.chunks, so
  // they stay verified after the file is closed or the mount restarts.
  void set_manifest(Manifest manifest);
  // The same, unless the file has a manifest already (one check-and-set, under the lock).
  void set_manifest_if_none(const Manifest& manifest);
  // The manifest, or null; it may be set while readers and the verifier use the file.
  std::shared_ptr<const Manifest> manifest() const {
    std::lock_guard lock(mutex_);
    return manifest_;
  }
  bool chunk_verified(std::size_t chunk) const;
  void set_chunk_verified(std::size_t chunk);
  std::size_t verified_chunk_count() const;
  // Waits until chunk is verified (true) or the file failed / cancel (false).
  bool wait_chunk_verified(std::size_t chunk, const CancelToken& cancel);
  // Waits until the file is complete (ok), failed (-EIO, kBadBytes) or the token cancelled
  // (-EINTR).
  Status wait_complete(const CancelToken& cancel);
  bool complete() const { return complete_.load(); }
  void set_complete();
  bool failed() const { return failed_.load(); }
  // Marks the file bad: drops its pages and files; every reader gets EIO from now on.
  void fail();

  // --- The verifier's state, used by the Verifier's thread only.
  // Holds off a second verification pass of this file while one runs.
  std::unique_lock<std::mutex> lock_for_verify() { return std::unique_lock(verify_mutex_); }
  // True when the file was not queued for verification yet (and now is).
  bool mark_verify_scheduled() { return !verify_scheduled_.exchange(true); }
  // Called when a pass starts: completions from now on schedule another pass.
  void clear_verify_scheduled() { verify_scheduled_ = false; }
  // Feeds the present pages from the whole-file cursor on, in order, to hash_range (called
  // with [start, end) and the hasher); stops at the first missing page. False when
  // hash_range failed. Requires lock_for_verify().
  using PageHasher =
      std::function<bool(std::uint64_t start, std::uint64_t end, Sha1Hasher& hasher)>;
  bool hash_present_pages(const PageHasher& hash_range);
  bool all_pages_hashed() const { return hashed_pages_ == page_count(); }
  std::string whole_file_hash() { return whole_file_hasher_.final_hex(); }

  // The cache index is told the bytes held once per `step` (a block), not once per page:
  // true when `held` is a step past what it was last told (and records it as told).
  bool report_held_bytes(std::uint64_t held, std::uint64_t step);
  // Keeps the object marked in use for as long as this entry lives.
  void keep_in_use(OpenObjects::Hold hold) { in_use_ = std::move(hold); }
  void set_reported_bytes(std::uint64_t held) { indexed_bytes_ = held; }

 private:
  void set_manifest_locked(Manifest manifest);  // mutex_ held
  PartialFile(std::string sha1, std::uint64_t size, std::uint64_t page_size);

  std::string sha1_;
  std::uint64_t size_;
  std::uint64_t page_size_;
  std::filesystem::path data_path_;
  std::filesystem::path map_path_;
  std::filesystem::path chunks_path_;    // verified manifest chunks, one byte each
  const CacheLayout* layout_ = nullptr;  // opens them all (it outlives every entry)
  UniqueFd data_fd_;
  UniqueFd map_fd_;
  UniqueFd chunks_fd_;

  // Lock order: verify_mutex_ before mutex_ (a verification pass reads the page map).
  std::mutex verify_mutex_;
  std::uint64_t hashed_pages_ = 0;  // the whole-file cursor: pages [0, hashed_pages_) hashed
  Sha1Hasher whole_file_hasher_;
  std::atomic<bool> verify_scheduled_{false};
  std::atomic<std::uint64_t> indexed_bytes_{0};
  OpenObjects::Hold in_use_;

  mutable std::mutex mutex_;         // guards the page and chunk state below
  std::condition_variable changed_;  // chunk verified, complete, failed
  // Readers waiting on page p wait on page_changed_[p % size]: a finished run wakes the
  // readers of its own pages, not every reader of the file.
  std::array<std::condition_variable, 16> page_changed_;
  std::condition_variable& page_changed(std::uint64_t page) {
    return page_changed_[page % page_changed_.size()];
  }
  std::vector<std::uint8_t> present_;
  std::vector<std::uint8_t> in_flight_;
  std::uint64_t present_count_ = 0;
  std::uint64_t present_bytes_ = 0;
  std::shared_ptr<const Manifest> manifest_;
  std::vector<std::uint8_t> chunk_verified_;
  std::atomic<bool> complete_{false};
  std::atomic<bool> failed_{false};
};

}  // namespace kacheryfs
