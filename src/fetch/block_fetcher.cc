#include "fetch/block_fetcher.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "fetch/fetch_errors.h"
#include "kachery/sha1_hasher.h"

namespace kacheryfs {

namespace {

constexpr std::size_t kMaxQueuedBlocks = 1024;

// Hashes [start, end) of fd into hasher; false on a read error.
bool hash_range(int fd, std::uint64_t start, std::uint64_t end, Sha1Hasher& hasher) {
  thread_local std::vector<char> buffer(1 << 20);  // the verifier thread's, reused
  while (start < end) {
    ssize_t n = pread(fd, buffer.data(), std::min<std::uint64_t>(buffer.size(), end - start),
                      static_cast<off_t>(start));
    if (n <= 0) return false;
    hasher.update(buffer.data(), static_cast<std::size_t>(n));
    start += static_cast<std::uint64_t>(n);
  }
  return true;
}

}  // namespace

BlockFetcher::BlockFetcher(BlobSource& source, ContentCache& cache, CacheAccounting& accounting,
                           Counters& counters, OpenObjects& in_use, BlockFetcherConfig config,
                           FailureCallback on_failure)
    : source_(source),
      cache_(cache),
      accounting_(accounting),
      counters_(counters),
      in_use_(in_use),
      config_(config),
      on_failure_(std::move(on_failure)) {}

BlockFetcher::~BlockFetcher() { stop(); }

void BlockFetcher::stop() {
  {
    std::lock_guard lock(queue_mutex_);
    stopping_ = true;
  }
  queue_changed_.notify_all();
  // Prefetches under way are abandoned, not finished: an unmount (and the cache lock it
  // releases for the next mount) never waits for bytes nobody will read.
  stop_prefetches_.cancel();
  for (auto& thread : threads_) thread.join();
  threads_.clear();
}

void BlockFetcher::start_threads() {
  std::call_once(started_, [this] {
    for (unsigned i = 0; i < config_.max_conns; ++i)
      threads_.emplace_back([this] { worker_loop(); });
    threads_.emplace_back([this] { verifier_loop(); });
  });
}

Result<std::shared_ptr<PartialFile>> BlockFetcher::partial(const std::string& sha1,
                                                           std::uint64_t size,
                                                           const std::optional<Manifest>& manifest,
                                                           const std::vector<KnownPiece>& known) {
  std::shared_ptr<PartialFile> file = usable(sha1);
  if (file) {
    for (const KnownPiece& piece : known) seed(file, piece.offset, piece.bytes);
  } else {
    // One reader makes the entry (opening its files and seeding it: disk I/O) with no lock
    // held; other readers of the same file wait for it, and the others go on.
    auto made = creations_.run(
        sha1, [&] { return create(sha1, size, manifest, known); }, NeverCancelled());
    if (!made) return fail(-EINTR, "interrupted");  // (a NeverCancelled follower waits)
    if (!made->ok()) return made->failure();
    file = **made;
  }
  // A later reader may bring the manifest of a file first opened without it.
  if (manifest) file->set_manifest_if_none(*manifest);
  schedule_verify(file);  // pages from an earlier mount are verified as they are found
  return file;
}

Result<std::shared_ptr<PartialFile>> BlockFetcher::create(const std::string& sha1,
                                                          std::uint64_t size,
                                                          const std::optional<Manifest>& manifest,
                                                          const std::vector<KnownPiece>& known) {
  if (auto file = usable(sha1)) return file;  // made by the flight before this one
  // Held before its files are opened: an eviction under way finishes first, and none
  // starts while someone streams it.
  OpenObjects::Hold hold = in_use_.hold(sha1);
  auto opened = PartialFile::open(cache_.layout(), sha1, size, config_.page_size);
  if (!opened.ok()) return opened.failure();
  std::shared_ptr<PartialFile> file = std::move(*opened);
  file->keep_in_use(std::move(hold));
  file->set_reported_bytes(file->cached_bytes());
  accounting_.partial(sha1, size, file->cached_bytes());
  if (manifest) file->set_manifest(*manifest);  // before anything can verify it
  for (const KnownPiece& piece : known)         // no other reader has it yet
    seed(file, piece.offset, piece.bytes);
  std::lock_guard lock(registry_mutex_);
  registry_[sha1] = file;
  return file;
}

std::shared_ptr<PartialFile> BlockFetcher::live(const std::string& sha1) {
  std::lock_guard lock(registry_mutex_);
  auto it = registry_.find(sha1);
  return it != registry_.end() ? it->second.lock() : nullptr;
}

std::shared_ptr<PartialFile> BlockFetcher::usable(const std::string& sha1) {
  std::shared_ptr<PartialFile> file = live(sha1);
  return file && !file->failed() ? file : nullptr;
}

std::uint64_t BlockFetcher::partial_bytes(const std::string& sha1, std::uint64_t size) {
  if (auto file = live(sha1)) return file->cached_bytes();
  std::string map = cache_.layout().read_file(cache_.layout().page_map(sha1)).value_or("");
  std::uint64_t bytes = 0;
  for (std::uint64_t page = 0; page < map.size(); ++page) {
    if (map[page] == 1)
      bytes +=
          std::min(size, (page + 1) * config_.page_size) - std::min(size, page * config_.page_size);
  }
  return bytes;
}

std::size_t BlockFetcher::verified_chunks(const std::string& sha1) {
  if (auto file = live(sha1)) return file->verified_chunk_count();
  std::string chunks =
      cache_.layout().read_file(cache_.layout().verified_chunks(sha1)).value_or("");
  return static_cast<std::size_t>(std::count(chunks.begin(), chunks.end(), 1));
}

namespace {
// What a reader of a file that failed verification, or a write, earlier gets (that
// failure was counted and logged when it happened).
Failure failed_earlier(const PartialFile& file) {
  return fail(Cause::kBadBytes, file.sha1() + " failed earlier in this mount (see the log)");
}
}  // namespace

Status BlockFetcher::fetch_block(PartialFile& file, std::uint64_t first, std::uint64_t limit,
                                 const CancelToken& cancel, Purpose purpose) {
  std::uint64_t pages_per_block = std::max<std::uint64_t>(1, config_.block_size / file.page_size());
  limit = std::min({limit, first + pages_per_block - 1, file.page_count() - 1});
  std::uint64_t last = first;
  while (last < limit && file.claim(last + 1)) ++last;
  std::uint64_t start = file.page_start(first);
  std::uint64_t end = file.page_end(last);
  std::uint64_t position = start;
  std::uint64_t next_page = first;  // the first page not yet recorded as present
  int write_error = 0;
  accounting_.make_room(end - start);
  Status result = source_.read_range(
      file.sha1(), start, end,
      [&](const char* data, std::size_t size) {
        while (size > 0) {
          ssize_t n = pwrite(file.data_fd(), data, size, static_cast<off_t>(position));
          if (n < 0) {
            if (errno == EINTR) continue;
            // A full disk: evicting beats failing the read (once per write).
            if (errno == ENOSPC && write_error != ENOSPC &&
                accounting_.make_room_after_enospc(end - position) > 0) {
              write_error = ENOSPC;
              continue;
            }
            write_error = errno;
            return false;
          }
          data += n;
          size -= static_cast<std::size_t>(n);
          position += static_cast<std::uint64_t>(n);
        }
        std::uint64_t done = next_page;  // pages [next_page, done) arrived whole
        while (done <= last && file.page_end(done) <= position) ++done;
        if (done > next_page) file.finish(next_page, done - 1, true);
        next_page = done;
        return true;
      },
      cancel);
  if (next_page <= last) file.finish(next_page, last, false);  // whatever did not arrive
  if (result.ok() && position != end) {
    result = {Cause::kProtocolError, "range [" + std::to_string(start) + ", " +
                                         std::to_string(end) + "): got " +
                                         std::to_string(position - start) + " bytes"};
  }
  if (result.cause() == Cause::kLocalError && write_error != 0) {
    result = fail(Cause::kLocalError, -write_error,
                  std::string("writing the block cache: ") + std::strerror(write_error));
  }
  counters_.add(Counter::kBytesFetched, position - start);
  if (!result.ok()) {
    if (purpose == Purpose::kPrefetch) {
      // Nobody waits for these bytes: no EIO is given or counted. A reader that needs them
      // fetches them itself and meets (and reports) whatever is wrong.
      if (result.cause() != Cause::kCancelled) {  // cancelled: the mount is stopping
        spdlog::info("prefetch of {} [{}, {}) stopped: {}: {}", file.sha1(), start, end,
                     to_string(result.cause()), result.detail());
      }
      return result;
    }
    EioSite site = write_error != 0 ? EioSite::kCacheWrite : EioSite::kBlockFetch;
    return read_failure(counters_, result, site, file.sha1());
  }
  // Tell the index about every block's worth of new bytes, not every page.
  std::uint64_t held = file.cached_bytes();
  if (file.report_held_bytes(held, config_.block_size))
    accounting_.partial(file.sha1(), file.size(), held);
  return {};
}

void BlockFetcher::seed(const std::shared_ptr<PartialFile>& file, std::uint64_t offset,
                        const std::string& bytes) {
  std::uint64_t end = std::min(file->size(), offset + bytes.size());
  if (file->failed() || offset >= end) return;
  std::uint64_t first = (offset + file->page_size() - 1) / file->page_size();
  accounting_.make_room(end - offset);
  bool seeded = false;
  for (std::uint64_t page = first; page < file->page_count() && file->page_end(page) <= end;
       ++page) {
    if (!file->claim(page)) continue;
    std::uint64_t start = file->page_start(page);
    std::uint64_t length = file->page_end(page) - start;
    const char* data = bytes.data() + (start - offset);
    bool written = true;
    for (std::uint64_t done = 0; done < length && written;) {
      ssize_t n =
          pwrite(file->data_fd(), data + done, length - done, static_cast<off_t>(start + done));
      if (n < 0 && errno == EINTR) continue;
      written = n > 0;
      if (written) done += static_cast<std::uint64_t>(n);
    }
    file->finish(page, page, written);  // a page not written is fetched later
    seeded = seeded || written;
  }
  if (!seeded) return;
  std::uint64_t held = file->cached_bytes();
  if (file->report_held_bytes(held, 0)) accounting_.partial(file->sha1(), file->size(), held);
  schedule_verify(file);
}

Status BlockFetcher::ensure(const std::shared_ptr<PartialFile>& shared, std::uint64_t offset,
                            std::uint64_t length, bool verified_only, const CancelToken& cancel) {
  PartialFile& file = *shared;
  if (file.failed()) return failed_earlier(file);
  if (offset >= file.size() || length == 0) return {};
  std::uint64_t last_byte = std::min(file.size(), offset + length) - 1;
  const std::shared_ptr<const Manifest> manifest = verified_only ? file.manifest() : nullptr;
  if (manifest) {
    // Only whole chunks can be verified: fetch every page of the chunks the range touches.
    for (const ManifestChunk& chunk : manifest->chunks) {
      if (chunk.start <= offset && offset < chunk.end) offset = chunk.start;
      if (chunk.start <= last_byte && last_byte < chunk.end) last_byte = chunk.end - 1;
    }
  }
  std::uint64_t last_page = last_byte / file.page_size();
  bool fetched_any = false;
  for (std::uint64_t page = offset / file.page_size(); page <= last_page; ++page) {
    for (;;) {
      if (file.present(page)) break;
      if (file.claim(page)) {
        if (Status fetched = fetch_block(file, page, last_page, cancel, Purpose::kDemand);
            !fetched.ok())
          return fetched;
        fetched_any = true;
        break;
      }
      auto waited = file.wait(page, cancel);
      if (waited == PartialFile::WaitResult::kPresent) break;
      if (waited == PartialFile::WaitResult::kCancelled)
        return fail(Cause::kCancelled, "cancelled");
      if (waited == PartialFile::WaitResult::kFailed) return failed_earlier(file);
      // kAbsent: the other fetch failed; try it here, so the reader sees the real error.
    }
  }
  if (fetched_any) schedule_verify(shared);
  if (manifest) {
    const auto& chunks = manifest->chunks;
    for (std::size_t c = 0; c < chunks.size(); ++c) {
      if (chunks[c].end <= offset || chunks[c].start > last_byte) continue;
      if (!file.wait_chunk_verified(c, cancel))
        return file.failed() ? failed_earlier(file) : fail(Cause::kCancelled, "cancelled");
    }
  }
  if (file.failed()) return failed_earlier(file);
  return {};
}

std::uint64_t BlockFetcher::first_window() const {
  const LinkEstimate link = source_.link();
  if (link.bytes_per_second <= 0 || link.round_trip <= 0) return config_.block_size;
  double fills_the_link = 2 * link.bytes_per_second * link.round_trip;
  double amortizes_a_request = 4 * link.bytes_per_second * link.per_request;
  auto window = static_cast<std::uint64_t>(std::max(fills_the_link, amortizes_a_request));
  std::uint64_t smallest = std::min<std::uint64_t>(256 << 10, config_.block_size);
  window = std::clamp(window, smallest, config_.block_size);
  return (window + config_.page_size - 1) / config_.page_size * config_.page_size;
}

void BlockFetcher::prefetch(const std::shared_ptr<PartialFile>& file, std::uint64_t offset,
                            std::uint64_t length) {
  if (file->failed() || offset >= file->size() || length == 0) return;
  start_threads();
  std::uint64_t pages_per_block =
      std::max<std::uint64_t>(1, config_.block_size / file->page_size());
  std::uint64_t first = offset / file->page_size();
  std::uint64_t last = (std::min(file->size(), offset + length) - 1) / file->page_size();
  {
    std::lock_guard lock(queue_mutex_);
    // Runs are aligned to block_size (so that readers of one file queue the same runs) and
    // cut to the range asked for; a page claimed by one run is skipped by any other.
    for (std::uint64_t block = first / pages_per_block * pages_per_block; block <= last;
         block += pages_per_block) {
      if (blocks_to_fetch_.size() >= kMaxQueuedBlocks) break;
      std::uint64_t run_first = std::max(block, first);
      std::uint64_t run_last =
          std::min({block + pages_per_block - 1, last, file->page_count() - 1});
      bool missing = false;
      for (std::uint64_t page = run_first; page <= run_last && !missing; ++page) {
        missing = !file->present(page);
      }
      if (missing) blocks_to_fetch_.push_back({file, run_first, run_last});
    }
  }
  queue_changed_.notify_all();
}

Status BlockFetcher::fetch_all(const std::shared_ptr<PartialFile>& file,
                               const CancelToken& cancel) {
  prefetch(file, 0, file->size());
  if (Status fetched = ensure(file, 0, file->size(), false, cancel); !fetched.ok()) return fetched;
  schedule_verify(file);
  return file->wait_complete(cancel);
}

void BlockFetcher::schedule_verify(const std::shared_ptr<PartialFile>& file) {
  if (!file->mark_verify_scheduled()) return;
  start_threads();
  {
    std::lock_guard lock(queue_mutex_);
    files_to_verify_.push_back(file);
  }
  queue_changed_.notify_all();
}

void BlockFetcher::worker_loop() {
  for (;;) {
    Block block;
    {
      std::unique_lock lock(queue_mutex_);
      queue_changed_.wait(lock, [this] { return stopping_ || !blocks_to_fetch_.empty(); });
      if (stopping_) return;
      block = std::move(blocks_to_fetch_.front());
      blocks_to_fetch_.pop_front();
    }
    bool fetched = false;
    for (std::uint64_t page = block.first_page; page <= block.last_page; ++page) {
      if (!block.file->claim(page)) continue;
      if (!fetch_block(*block.file, page, block.last_page, stop_prefetches_, Purpose::kPrefetch)
               .ok())
        break;
      fetched = true;
    }
    if (fetched) schedule_verify(block.file);
  }
}

void BlockFetcher::verifier_loop() {
  for (;;) {
    std::shared_ptr<PartialFile> file;
    {
      std::unique_lock lock(queue_mutex_);
      queue_changed_.wait(lock, [this] { return stopping_ || !files_to_verify_.empty(); });
      if (stopping_) return;
      file = std::move(files_to_verify_.front());
      files_to_verify_.pop_front();
    }
    file->clear_verify_scheduled();  // completions from now on schedule another pass
    verify(*file);
  }
}

void BlockFetcher::verify(PartialFile& file) {
  auto verifying = file.lock_for_verify();
  if (file.failed() || file.complete()) return;
  // [bad_start, bad_end): the bytes that failed, so that the source can tell who sent them.
  auto fail = [&](const std::string& what, std::uint64_t bad_start, std::uint64_t bad_end) {
    // Counted before the readers wake with EIO, so that the count already shows it. The
    // file fails (and the kernel's pages are dropped) before the source hears of the bad
    // bytes, so that no block still in flight lands after the source forgot who served
    // them; and before the line is logged, so that after it no reader gets them.
    std::uint64_t n = counters_.count_eio(EioSite::kBlockChecksum);
    counters_.add(Counter::kVerifyFailures);
    file.fail();
    if (on_failure_) on_failure_(file.sha1());
    accounting_.forget(file.sha1());
    std::string from = source_.report_bad_bytes(file.sha1(), bad_start, bad_end).served_by;
    log_checksum_eio(n, EioSite::kBlockChecksum, file.sha1(),
                     what + (from.empty() ? "" : " (bytes from " + from + ")") +
                         "; its cached pages are dropped and its readers get EIO until it is "
                         "fetched again");
  };

  if (const auto manifest = file.manifest()) {
    for (std::size_t c = 0; c < manifest->chunks.size(); ++c) {
      const ManifestChunk& chunk = manifest->chunks[c];
      if (file.chunk_verified(c)) continue;
      bool ready = true;
      for (std::uint64_t b = chunk.start / file.page_size();
           b <= (chunk.end - 1) / file.page_size() && ready; ++b) {
        ready = file.present(b);
      }
      if (!ready) continue;
      Sha1Hasher hasher;
      if (!hash_range(file.data_fd(), chunk.start, chunk.end, hasher))
        return fail("cannot read chunk back", 0, 0);
      std::string actual = hasher.final_hex();
      if (actual != chunk.sha1) {
        return fail("manifest chunk " + std::to_string(c) + " [" + std::to_string(chunk.start) +
                        ", " + std::to_string(chunk.end) + ") hashes to " + actual,
                    chunk.start, chunk.end);
      }
      file.set_chunk_verified(c);
    }
  }
  bool read_back =
      file.hash_present_pages([&](std::uint64_t start, std::uint64_t end, Sha1Hasher& hasher) {
        return hash_range(file.data_fd(), start, end, hasher);
      });
  if (!read_back) return fail("cannot read the file back", 0, 0);
  if (!file.all_pages_hashed()) return;
  std::string actual = file.whole_file_hash();
  if (actual != file.sha1()) return fail("the file hashes to " + actual, 0, file.size());
  if (int error = cache_.adopt(file.sha1(), file.data_path()); error != 0) {
    spdlog::warn("cannot move verified {} into the cache: {}", file.sha1(), std::strerror(-error));
    return;
  }
  accounting_.complete(file.sha1(), file.size());  // indexed before anyone sees it complete
  file.set_complete();
  spdlog::debug("verified and cached {} ({} bytes, streamed in blocks)", file.sha1(), file.size());
}

}  // namespace kacheryfs
