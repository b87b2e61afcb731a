#include "fetch/verifier.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "fetch/fetch_errors.h"
#include "kachery/sha1_hasher.h"

namespace kacheryfs {

namespace {

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

Verifier::Verifier(BlobSource& source, ContentCache& cache, CacheAccounting& accounting,
                   Counters& counters, FailureCallback on_failure)
    : source_(source),
      cache_(cache),
      accounting_(accounting),
      counters_(counters),
      on_failure_(std::move(on_failure)) {}

Verifier::~Verifier() { stop(); }

void Verifier::start() {
  std::call_once(started_, [this] {
    std::lock_guard lock(queue_mutex_);
    if (!stopping_) thread_ = std::thread([this] { loop(); });
  });
}

void Verifier::stop() {
  {
    std::lock_guard lock(queue_mutex_);
    stopping_ = true;
  }
  queue_changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Verifier::schedule(const std::shared_ptr<PartialFile>& file) {
  if (!file->mark_verify_scheduled()) return;
  start();
  {
    std::lock_guard lock(queue_mutex_);
    queue_.push_back(file);
  }
  queue_changed_.notify_all();
}

void Verifier::loop() {
  for (;;) {
    std::shared_ptr<PartialFile> file;
    {
      std::unique_lock lock(queue_mutex_);
      queue_changed_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      file = std::move(queue_.front());
      queue_.pop_front();
    }
    file->clear_verify_scheduled();  // completions from now on schedule another pass
    verify(*file);
  }
}

void Verifier::verify(PartialFile& file) {
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
