#include "block_fetcher.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>

#include "sha1_hasher.h"

namespace kacheryfs {

namespace {

constexpr std::size_t kMaxQueuedRuns = 1024;

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

BlockFetcher::BlockFetcher(BlobSource& source, ContentCache& cache, ContentFetcher& errors,
                           BlockFetcherConfig config)
    : source_(source), cache_(cache), errors_(errors), config_(config) {}

BlockFetcher::~BlockFetcher() {
  {
    std::lock_guard lock(queue_mutex_);
    stopping_ = true;
  }
  queue_changed_.notify_all();
  for (auto& thread : threads_) thread.join();
}

void BlockFetcher::start_threads() {
  std::call_once(started_, [this] {
    for (unsigned i = 0; i < config_.max_conns; ++i)
      threads_.emplace_back([this] { worker_loop(); });
    threads_.emplace_back([this] { verifier_loop(); });
  });
}

std::shared_ptr<PartialFile> BlockFetcher::partial(const std::string& sha1, std::uint64_t size,
                                                   const std::optional<Manifest>& manifest,
                                                   int* error) {
  std::shared_ptr<PartialFile> file;
  {
    std::lock_guard lock(registry_mutex_);
    auto it = registry_.find(sha1);
    if (it != registry_.end()) file = it->second.lock();
    if (file && file->failed()) file.reset();
    if (!file) {
      file = PartialFile::open(cache_.partial_dir(), sha1, size, config_.page_size, error);
      if (!file) return nullptr;
      registry_[sha1] = file;
      file->indexed_bytes = file->cached_bytes();
      if (keeper_) keeper_->partial(sha1, size, file->indexed_bytes);
    }
  }
  if (manifest && !file->manifest()) file->set_manifest(*manifest);
  schedule_verify(file);  // pages from an earlier mount are verified as they are found
  return file;
}

std::uint64_t BlockFetcher::partial_bytes(const std::string& sha1, std::uint64_t size) {
  {
    std::lock_guard lock(registry_mutex_);
    auto it = registry_.find(sha1);
    if (it != registry_.end()) {
      if (auto file = it->second.lock()) return file->cached_bytes();
    }
  }
  std::ifstream map(cache_.partial_dir() / (sha1 + ".blocks"), std::ios::binary);
  std::uint64_t bytes = 0;
  std::uint64_t page = 0;
  for (char c; map.get(c); ++page) {
    if (c == 1)
      bytes +=
          std::min(size, (page + 1) * config_.page_size) - std::min(size, page * config_.page_size);
  }
  return bytes;
}

bool BlockFetcher::streaming(const std::string& sha1) {
  std::lock_guard lock(registry_mutex_);
  auto it = registry_.find(sha1);
  return it != registry_.end() && !it->second.expired();
}

std::size_t BlockFetcher::verified_chunks(const std::string& sha1) {
  {
    std::lock_guard lock(registry_mutex_);
    auto it = registry_.find(sha1);
    if (it != registry_.end()) {
      if (auto file = it->second.lock()) return file->verified_chunk_count();
    }
  }
  std::ifstream chunks(cache_.partial_dir() / (sha1 + ".chunks"), std::ios::binary);
  std::size_t verified = 0;
  for (char c; chunks.get(c);) verified += c == 1;
  return verified;
}

int BlockFetcher::fetch_run(PartialFile& file, std::uint64_t first, std::uint64_t limit,
                            const CancelToken& cancel) {
  std::uint64_t pages_per_run = std::max<std::uint64_t>(1, config_.run_size / file.page_size());
  limit = std::min({limit, first + pages_per_run - 1, file.page_count() - 1});
  std::uint64_t last = first;
  while (last < limit && file.claim(last + 1)) ++last;
  std::uint64_t start = file.page_start(first);
  std::uint64_t end = file.page_end(last);
  std::uint64_t position = start;
  std::uint64_t next_page = first;  // the first page not yet recorded as present
  int write_error = 0;
  if (keeper_) keeper_->make_room(end - start);
  FetchResult result = source_.read_range(
      file.sha1(), start, end,
      [&](const char* data, std::size_t size) {
        while (size > 0) {
          ssize_t n = pwrite(file.data_fd(), data, size, static_cast<off_t>(position));
          if (n < 0) {
            if (errno == EINTR) continue;
            // A full disk: evicting beats failing the read (once per write).
            if (errno == ENOSPC && write_error != ENOSPC && keeper_ &&
                keeper_->make_room_after_enospc(end - position) > 0) {
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
        while (next_page <= last && file.page_end(next_page) <= position)
          file.finish(next_page++, true);
        return true;
      },
      cancel);
  while (next_page <= last) file.finish(next_page++, false);  // whatever did not arrive
  if (result.ok() && position != end) {
    result = {FetchStatus::kProtocolError, "range [" + std::to_string(start) + ", " +
                                               std::to_string(end) + "): got " +
                                               std::to_string(position - start) + " bytes"};
  }
  if (result.status == FetchStatus::kLocalError && write_error != 0) {
    result.detail = std::string("writing the block cache: ") + std::strerror(write_error);
  }
  errors_.count_bytes_fetched(position - start);
  if (!result.ok()) return errors_.to_errno(result, file.sha1(), "block fetch of");
  // Tell the index about every block's worth of new bytes, not every page.
  std::uint64_t held = file.cached_bytes();
  if (keeper_ && held >= file.indexed_bytes + config_.run_size) {
    file.indexed_bytes = held;
    keeper_->partial(file.sha1(), file.size(), held);
  }
  return 0;
}

int BlockFetcher::ensure(const std::shared_ptr<PartialFile>& shared, std::uint64_t offset,
                         std::uint64_t length, bool verified_only, const CancelToken& cancel) {
  PartialFile& file = *shared;
  if (file.failed()) return -EIO;
  if (offset >= file.size() || length == 0) return 0;
  std::uint64_t last_byte = std::min(file.size(), offset + length) - 1;
  if (verified_only && file.manifest()) {
    // Only whole chunks can be verified: fetch every page of the chunks the range touches.
    for (const ManifestChunk& chunk : file.manifest()->chunks) {
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
        if (int error = fetch_run(file, page, last_page, cancel); error != 0) return error;
        fetched_any = true;
        break;
      }
      auto waited = file.wait(page, cancel);
      if (waited == PartialFile::WaitResult::kPresent) break;
      if (waited == PartialFile::WaitResult::kCancelled) return -EINTR;
      if (waited == PartialFile::WaitResult::kFailed) return -EIO;
      // kAbsent: the other fetch failed; try it here, so the reader sees the real error.
    }
  }
  if (fetched_any) schedule_verify(shared);
  if (verified_only && file.manifest()) {
    const auto& chunks = file.manifest()->chunks;
    for (std::size_t c = 0; c < chunks.size(); ++c) {
      if (chunks[c].end <= offset || chunks[c].start > last_byte) continue;
      if (!file.wait_chunk_verified(c, cancel)) return file.failed() ? -EIO : -EINTR;
    }
  }
  return file.failed() ? -EIO : 0;
}

void BlockFetcher::prefetch(const std::shared_ptr<PartialFile>& file, std::uint64_t offset,
                            std::uint64_t length) {
  if (file->failed() || offset >= file->size() || length == 0) return;
  start_threads();
  std::uint64_t pages_per_run = std::max<std::uint64_t>(1, config_.run_size / file->page_size());
  std::uint64_t first = offset / file->page_size();
  std::uint64_t last = (std::min(file->size(), offset + length) - 1) / file->page_size();
  {
    std::lock_guard lock(queue_mutex_);
    // Runs are aligned to run_size, so that readers of one file queue the same runs.
    for (std::uint64_t run = first / pages_per_run * pages_per_run; run <= last;
         run += pages_per_run) {
      if (runs_to_fetch_.size() >= kMaxQueuedRuns) break;
      std::uint64_t run_last = std::min(run + pages_per_run - 1, file->page_count() - 1);
      bool missing = false;
      for (std::uint64_t page = std::max(run, first); page <= run_last && !missing; ++page) {
        missing = !file->present(page);
      }
      if (missing) runs_to_fetch_.push_back({file, run, run_last});
    }
  }
  queue_changed_.notify_all();
}

int BlockFetcher::fetch_all(const std::shared_ptr<PartialFile>& file, const CancelToken& cancel) {
  prefetch(file, 0, file->size());
  if (int error = ensure(file, 0, file->size(), false, cancel); error != 0) return error;
  schedule_verify(file);
  while (!file->complete()) {
    if (file->failed()) return -EIO;
    if (cancel.cancelled()) return -EINTR;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return 0;
}

void BlockFetcher::schedule_verify(const std::shared_ptr<PartialFile>& file) {
  if (file->verify_scheduled.exchange(true)) return;
  start_threads();
  {
    std::lock_guard lock(queue_mutex_);
    files_to_verify_.push_back(file);
  }
  queue_changed_.notify_all();
}

void BlockFetcher::worker_loop() {
  NeverCancelled never;
  for (;;) {
    Run run;
    {
      std::unique_lock lock(queue_mutex_);
      queue_changed_.wait(lock, [this] { return stopping_ || !runs_to_fetch_.empty(); });
      if (stopping_) return;
      run = std::move(runs_to_fetch_.front());
      runs_to_fetch_.pop_front();
    }
    bool fetched = false;
    for (std::uint64_t page = run.first_page; page <= run.last_page; ++page) {
      if (!run.file->claim(page)) continue;
      if (fetch_run(*run.file, page, run.last_page, never) != 0) break;
      fetched = true;
    }
    if (fetched) schedule_verify(run.file);
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
    file->verify_scheduled = false;  // completions from now on schedule another pass
    verify(*file);
  }
}

void BlockFetcher::verify(PartialFile& file) {
  std::lock_guard lock(file.hash_mutex);
  if (file.failed() || file.complete()) return;
  auto fail = [&](const std::string& what) {
    // Fail and drop the kernel's pages first, so that once the line is logged no reader
    // can get the bad bytes any more.
    file.fail();
    if (on_failure_) on_failure_(file.sha1());
    if (keeper_) keeper_->forget(file.sha1());
    std::uint64_t n = errors_.count_io_error();
    spdlog::error(
        "EIO #{} sha1 mismatch for {}: {}; its cached pages are dropped and its readers get EIO "
        "until "
        "it is fetched again",
        n, file.sha1(), what);
  };

  if (const auto& manifest = file.manifest()) {
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
        return fail("cannot read chunk back");
      std::string actual = hasher.final_hex();
      if (actual != chunk.sha1) {
        return fail("manifest chunk " + std::to_string(c) + " [" + std::to_string(chunk.start) +
                    ", " + std::to_string(chunk.end) + ") hashes to " + actual);
      }
      file.set_chunk_verified(c);
    }
  }
  while (file.hashed_pages < file.page_count() && file.present(file.hashed_pages)) {
    // Hash the run of present pages from the cursor in one pass.
    std::uint64_t first = file.hashed_pages;
    std::uint64_t last = first;
    while (last + 1 < file.page_count() && last - first < 255 && file.present(last + 1)) ++last;
    if (!hash_range(file.data_fd(), file.page_start(first), file.page_end(last),
                    file.whole_file_hasher)) {
      return fail("cannot read the file back");
    }
    file.hashed_pages = last + 1;
  }
  if (file.hashed_pages < file.page_count()) return;
  std::string actual = file.whole_file_hasher.final_hex();
  if (actual != file.sha1()) return fail("the file hashes to " + actual);
  if (int error = cache_.adopt(file.sha1(), file.data_path()); error != 0) {
    spdlog::warn("cannot move verified {} into the cache: {}", file.sha1(), std::strerror(-error));
    return;
  }
  if (keeper_)
    keeper_->complete(file.sha1(), file.size());  // indexed before anyone sees it complete
  file.set_complete();
  spdlog::debug("verified and cached {} ({} bytes, streamed in blocks)", file.sha1(), file.size());
}

}  // namespace kacheryfs
