#include "fetch/content_fetcher.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>

#include "fetch/fetch_errors.h"
#include "kachery/hash_name.h"
#include "kachery/sha1_hasher.h"

namespace kacheryfs {

ContentFetcher::ContentFetcher(BlobSource& source, ContentCache& cache, CacheAccounting& accounting,
                               Counters& counters, FetcherConfig config)
    : source_(source),
      cache_(cache),
      accounting_(accounting),
      counters_(counters),
      config_(config) {}

namespace {

constexpr std::size_t kKeptDiscoveries = 4;

// A sink that keeps the bytes of a range in `out`.
ByteSink append_to(std::string& out) {
  return [&out](const char* data, std::size_t size) {
    out.append(data, size);
    return true;
  };
}

}  // namespace

void ContentFetcher::keep_discovered_locked(const std::string& sha1, DiscoveredBytes bytes) {
  if (discovered_.size() >= kKeptDiscoveries) discovered_.pop_front();
  discovered_.emplace_back(sha1, std::move(bytes));
}

std::optional<ContentFetcher::DiscoveredBytes> ContentFetcher::take_discovered(
    const std::string& sha1) {
  std::lock_guard lock(mutex_);
  for (auto it = discovered_.begin(); it != discovered_.end(); ++it) {
    if (it->first != sha1) continue;
    DiscoveredBytes bytes = std::move(it->second);
    discovered_.erase(it);
    return bytes;
  }
  return std::nullopt;
}

void ContentFetcher::fetch_head(const std::string& sha1, std::uint64_t length,
                                const CancelToken& cancel) {
  std::string head;
  FetchResult result = source_.read_range(sha1, 0, length, append_to(head), cancel);
  if (!result.ok()) return;
  counters_.add(Counter::kBytesFetched, head.size());
  std::lock_guard lock(mutex_);
  keep_discovered_locked(sha1, {std::move(head), 0, {}});
}

std::optional<std::uint64_t> ContentFetcher::known_size(const std::string& sha1) {
  if (sha1 == kEmptySha1) return std::uint64_t{0};
  if (auto size = cache_.complete_size(sha1)) return *size;
  {
    std::lock_guard lock(mutex_);
    if (auto it = sizes_.find(sha1); it != sizes_.end()) return it->second;
  }
  if (auto size = cache_.partial_size(sha1)) {  // no rediscovery after a remount
    remember_size(sha1, *size);
    return *size;
  }
  return std::nullopt;
}

bool ContentFetcher::take_freshly_fetched(const std::string& sha1) {
  std::lock_guard lock(mutex_);
  return fresh_.erase(sha1) > 0;
}

void ContentFetcher::fetched_complete(const std::string& sha1, std::uint64_t size) {
  counters_.add(Counter::kMisses);
  accounting_.complete(sha1, size);
  std::lock_guard lock(mutex_);
  fresh_.insert(sha1);
}

bool ContentFetcher::known_missing(const std::string& sha1) {
  std::lock_guard lock(mutex_);
  auto it = missing_until_.find(sha1);
  if (it == missing_until_.end()) return false;
  if (std::chrono::steady_clock::now() < it->second) return true;
  missing_until_.erase(it);
  return false;
}

void ContentFetcher::remember_size(const std::string& sha1, std::uint64_t size) {
  std::lock_guard lock(mutex_);
  sizes_[sha1] = size;
}

FetchResult ContentFetcher::read_with_load(const std::string& sha1, std::uint64_t start,
                                           std::uint64_t end, const ByteSink& sink,
                                           const CancelToken& cancel) {
  FetchResult result = source_.read_range(sha1, start, end, sink, cancel);
  if (result.status != FetchStatus::kNotFound || !config_.load_missing) return result;
  spdlog::info("{} is not on the node; asking it to load the file from its channel", sha1);
  FetchResult loaded = source_.load_blob(sha1, cancel);
  if (!loaded.ok()) return loaded;
  return source_.read_range(sha1, start, end, sink, cancel);
}

Result<std::uint64_t> ContentFetcher::blob_size(std::string_view sha1_view,
                                                const CancelToken& cancel) {
  std::string sha1(sha1_view);
  if (auto size = known_size(sha1)) return *size;
  if (known_missing(sha1)) return fail(-ENOENT);
  for (;;) {
    auto answer = size_flights_.run(
        sha1, [&] { return discover_size(sha1, cancel); }, cancel);
    if (!answer) return fail(-EINTR);
    // The leader was interrupted but this caller was not: take over.
    if (answer->error() == -EINTR && !cancel.cancelled()) continue;
    return *answer;
  }
}

Result<std::uint64_t> ContentFetcher::discover_size(const std::string& sha1,
                                                    const CancelToken& cancel) {
  // One range answers every blob smaller than probe_size, and brings its bytes along.
  std::string head;
  FetchResult result = read_with_load(sha1, 0, config_.probe_size, append_to(head), cancel);
  if (result.status == FetchStatus::kNotFound) {
    std::lock_guard lock(mutex_);
    missing_until_[sha1] = std::chrono::steady_clock::now() + config_.negative_ttl;
  }
  if (!result.ok()) return fail(fetch_errno(counters_, result, EioSite::kSizeDiscovery, sha1));
  counters_.add(Counter::kBytesFetched, head.size());

  if (head.size() < config_.probe_size) {
    if (sha1_hex_of(head) == sha1) {
      if (auto tx = cache_.begin(sha1); tx.ok()) {
        if ((*tx)->append(head.data(), head.size()) == 0 && (*tx)->commit() == 0)
          fetched_complete(sha1, head.size());
      }
    }  // a mismatch is reported by the download that a read triggers
    remember_size(sha1, head.size());
    return std::uint64_t{head.size()};
  }

  // size >= lo and size < hi; probe 1-byte ranges [k, k+1): one byte back iff k < size.
  std::uint64_t lo = config_.probe_size;
  std::uint64_t hi = 2 * lo;
  auto has_byte = [&](std::uint64_t index, bool& present) {
    std::size_t got = 0;
    FetchResult probe = source_.read_range(
        sha1, index, index + 1,
        [&](const char*, std::size_t size) {
          got += size;
          return true;
        },
        cancel);
    present = got > 0;
    return probe;
  };
  // At most 64 doublings, and never past the largest byte index the daemon accepts
  // (2^53): a node that claims every byte exists cannot keep a reader probing forever.
  constexpr std::uint64_t kLargestSize = std::uint64_t{1} << 53;
  for (int doublings = 0;; ++doublings) {
    if (doublings >= 64 || hi > kLargestSize) {
      return fail(fetch_errno(counters_,
                              {FetchStatus::kProtocolError,
                               "size discovery found no end: the node has a byte at every "
                               "index probed, up to " +
                                   std::to_string(lo)},
                              EioSite::kSizeProbe, sha1));
    }
    bool present = false;
    FetchResult probe = has_byte(hi - 1, present);
    if (!probe.ok()) return fail(fetch_errno(counters_, probe, EioSite::kSizeProbe, sha1));
    if (!present) break;
    lo = hi;
    hi *= 2;
  }
  // Bisect until the window is narrower than one probe; then a short read of the window
  // itself tells the exact size: about 2*log2(size/probe_size) + 1 requests in all.
  while (hi - lo > config_.probe_size) {
    std::uint64_t mid = lo + (hi - lo) / 2;
    bool present = false;
    FetchResult probe = has_byte(mid - 1, present);
    if (!probe.ok()) return fail(fetch_errno(counters_, probe, EioSite::kSizeProbe, sha1));
    (present ? lo : hi) = mid;
  }
  std::string tail;
  FetchResult last = source_.read_range(sha1, lo, hi, append_to(tail), cancel);
  if (!last.ok()) return fail(fetch_errno(counters_, last, EioSite::kSizeProbe, sha1));
  counters_.add(Counter::kBytesFetched, tail.size());
  std::uint64_t size = lo + tail.size();
  {
    std::lock_guard lock(mutex_);
    sizes_[sha1] = size;
    keep_discovered_locked(sha1, {std::move(head), lo, std::move(tail)});
  }
  return size;
}

int ContentFetcher::ensure_cached(std::string_view sha1_view, const CancelToken& cancel) {
  if (cache_.complete_size(sha1_view)) return 0;
  std::string sha1(sha1_view);
  for (;;) {
    auto error = download_flights_.run(
        sha1,
        [&] {
          if (cache_.complete_size(sha1)) return 0;  // a previous leader just finished
          Result<std::uint64_t> size = blob_size(sha1, cancel);
          if (!size.ok()) return size.error();
          if (cache_.complete_size(sha1)) return 0;  // small blobs arrive with their size
          return download(sha1, *size, cancel);
        },
        cancel);
    if (!error) return -EINTR;
    if (*error == -EINTR && !cancel.cancelled()) continue;
    return *error;
  }
}

int ContentFetcher::download(const std::string& sha1, std::uint64_t size,
                             const CancelToken& cancel) {
  constexpr int kMaxAttempts = 4;  // at most one per distrusted node, and a final one
  for (int attempt = 1;; ++attempt) {
    bool worth_retrying = false;
    int error = download_once(sha1, size, cancel, &worth_retrying);
    if (error == 0 || !worth_retrying || attempt == kMaxAttempts) return error;
    spdlog::info("fetching {} again, from another node", sha1);
  }
}

int ContentFetcher::download_once(const std::string& sha1, std::uint64_t size,
                                  const CancelToken& cancel, bool* worth_retrying) {
  accounting_.make_room(size);
  auto begun = cache_.begin(sha1);
  if (!begun.ok()) {
    return fetch_errno(counters_,
                       {FetchStatus::kLocalError,
                        begun.detail() + ": " + std::string(std::strerror(-begun.error()))},
                       EioSite::kCacheWrite, sha1);
  }
  std::unique_ptr<ContentCache::Transaction> tx = std::move(*begun);
  Sha1Hasher hasher;
  int write_error = 0;
  ByteSink sink = [&](const char* data, std::size_t n) {
    hasher.update(data, n);
    std::uint64_t before = tx->size();
    write_error = tx->append(data, n);
    if (write_error == -ENOSPC && accounting_.make_room_after_enospc(size - before) > 0) {
      std::size_t written =
          static_cast<std::size_t>(tx->size() - before);  // evicting beats failing the read
      write_error = tx->append(data + written, n - written);
    }
    return write_error == 0;
  };
  std::uint64_t offset = 0;
  // The head that size discovery brought is the download's first bytes (and is hashed and
  // verified with the rest like any other).
  if (auto known = take_discovered(sha1); known && known->head.size() <= size) {
    if (!sink(known->head.data(), known->head.size())) {
      return fetch_errno(counters_,
                         {FetchStatus::kLocalError,
                          std::string("writing the cache: ") + std::strerror(-write_error)},
                         EioSite::kCacheWrite, sha1);
    }
    offset = known->head.size();
  }
  while (offset < size) {
    std::uint64_t end = std::min(size, offset + config_.range_size);
    FetchResult result = read_with_load(sha1, offset, end, sink, cancel);
    if (result.status == FetchStatus::kLocalError && write_error != 0) {
      result.detail = std::string("writing the cache: ") + std::strerror(-write_error);
    }
    if (!result.ok()) {
      EioSite site = write_error != 0 ? EioSite::kCacheWrite : EioSite::kDownload;
      return fetch_errno(counters_, result, site, sha1);
    }
    if (tx->size() != end) {
      return fetch_errno(
          counters_,
          {FetchStatus::kProtocolError, "expected " + std::to_string(size) +
                                            " bytes, the node sent " + std::to_string(tx->size())},
          EioSite::kDownloadLength, sha1);
    }
    counters_.add(Counter::kBytesFetched, end - offset);
    offset = end;
  }
  std::string actual = hasher.final_hex();
  if (actual != sha1) {
    {
      std::lock_guard lock(mutex_);
      sizes_.erase(sha1);
    }
    BlobSource::BadBytesVerdict verdict = source_.report_bad_bytes(sha1, 0, size);
    *worth_retrying = verdict.worth_retrying;
    std::string from = verdict.served_by.empty() ? "the node" : verdict.served_by;
    return report_eio(counters_, EioSite::kDownloadChecksum, sha1,
                      "the bytes from " + from + " hash to " + actual + "; nothing cached");
  }
  if (int commit_error = tx->commit(); commit_error != 0) {
    return fetch_errno(counters_,
                       {FetchStatus::kLocalError,
                        std::string("committing to the cache: ") + std::strerror(-commit_error)},
                       EioSite::kCacheWrite, sha1);
  }
  fetched_complete(sha1, size);
  spdlog::debug("cached {} ({} bytes)", sha1, size);
  return 0;
}

}  // namespace kacheryfs
