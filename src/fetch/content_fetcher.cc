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
      config_(config),
      discovery_(source, SizeDiscoveryConfig{std::min(config.page_size, config.probe_size),
                                             std::min(2 * config.page_size, config.probe_size),
                                             config.probe_size, config.range_size}) {}

namespace {

constexpr int kMaxDiscoveries = 4;  // a head that fails verification: one per distrusted node

}  // namespace

std::string ContentFetcher::fetch_head(const std::string& sha1, std::uint64_t length,
                                       const CancelToken& cancel) {
  std::string head;
  Status result = source_.read_range(sha1, 0, length, append_to(head), cancel);
  if (!result.ok()) return {};
  counters_.add(Counter::kBytesFetched, head.size());
  return head;
}

std::optional<std::uint64_t> ContentFetcher::known_size(const std::string& sha1) {
  if (sha1 == kEmptySha1) return std::uint64_t{0};
  if (auto size = cache_.complete_size(sha1)) return *size;
  {
    std::lock_guard lock(mutex_);
    if (auto it = sizes_.find(sha1); it != sizes_.end()) return it->second;
  }
  // No rediscovery after a remount: a partial file's page map, or the index, has it.
  if (auto size = cache_.partial_size(sha1); size || (size = accounting_.found_size(sha1))) {
    remember_size(sha1, *size);
    return *size;
  }
  return std::nullopt;
}

void ContentFetcher::fetched_complete(const std::string& sha1, std::uint64_t size) {
  counters_.add(Counter::kMisses);
  accounting_.complete(sha1, size);
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
  // A memo of what the index keeps (found_size): bounded, so that a mount that looks up
  // millions of objects over months does not keep them all.
  std::lock_guard lock(mutex_);
  if (sizes_.size() >= kMaxRememberedSizes) sizes_.clear();
  sizes_[sha1] = size;
}

Status ContentFetcher::read_with_load(const std::string& sha1, std::uint64_t start,
                                      std::uint64_t end, const ByteSink& sink,
                                      const CancelToken& cancel) {
  Status result = source_.read_range(sha1, start, end, sink, cancel);
  if (result.cause() != Cause::kNotFound || !config_.load_missing) return result;
  spdlog::info("{} is not on the node; asking it to load the file from its channel", sha1);
  Status loaded = source_.load_blob(sha1, cancel);
  if (!loaded.ok()) return loaded;
  return source_.read_range(sha1, start, end, sink, cancel);
}

Result<FoundSize> ContentFetcher::find_size(std::string_view sha1_view, const CancelToken& cancel) {
  std::string sha1(sha1_view);
  if (auto size = known_size(sha1)) return FoundSize{*size, false, {}};
  if (known_missing(sha1)) return fail(-ENOENT);
  for (;;) {
    auto answer = size_flights_.run(
        sha1, [&] { return discover_size(sha1, cancel, 1); }, cancel);
    if (!answer) return fail(-EINTR);
    // The leader was interrupted but this caller was not: take over.
    if (answer->error() == -EINTR && !cancel.cancelled()) continue;
    return std::move(*answer);
  }
}

Result<FoundSize> ContentFetcher::discover_size(const std::string& sha1, const CancelToken& cancel,
                                                int attempt) {
  DiscoveredSize found;
  Status result = discovery_.discover(sha1, found, cancel);
  if (result.cause() == Cause::kNotFound && config_.load_missing) {
    spdlog::info("{} is not on the node; asking it to load the file from its channel", sha1);
    result = source_.load_blob(sha1, cancel);
    if (result.ok()) result = discovery_.discover(sha1, found, cancel);
  }
  if (result.cause() == Cause::kNotFound && config_.negative_ttl.count() > 0) {
    std::lock_guard lock(mutex_);
    if (missing_until_.size() >= 100000) missing_until_.clear();  // a bound, not an LRU
    missing_until_[sha1] = std::chrono::steady_clock::now() + config_.negative_ttl;
  }
  if (!result.ok()) {
    EioSite site = found.rounds > 1 ? EioSite::kSizeProbe : EioSite::kSizeDiscovery;
    return read_failure(counters_, result, site, sha1);
  }
  std::uint64_t brought = 0;
  for (const KnownPiece& piece : found.pieces) brought += piece.bytes.size();
  counters_.add(Counter::kBytesFetched, brought);
  LinkEstimate link = source_.link();
  spdlog::debug(
      "{}: {} bytes, found in {} rounds of {} requests (round trip {:.2f} ms, {:.2f} ms a request)",
      sha1, found.size, found.rounds, found.requests, link.round_trip * 1e3,
      link.per_request * 1e3);

  // The head alone, or the head and the last window together, may be the whole file
  // (a file a little larger than the head): then it is verified and committed now, as
  // the lookup's miss.
  std::string whole = std::move(found.pieces.front().bytes);
  if (whole.size() < found.size && found.pieces.size() == 2 &&
      found.pieces[1].offset <= whole.size() &&
      found.pieces[1].offset + found.pieces[1].bytes.size() == found.size) {
    whole.append(found.pieces[1].bytes, whole.size() - found.pieces[1].offset);
  }
  if (whole.size() == found.size) {
    std::string actual = sha1_hex_of(whole);
    if (actual != sha1) {
      counters_.add(Counter::kVerifyFailures);
      BlobSource::BadBytesVerdict verdict = source_.report_bad_bytes(sha1, 0, whole.size());
      std::string from = verdict.served_by.empty() ? "the node" : verdict.served_by;
      if (verdict.worth_retrying && attempt < kMaxDiscoveries) {
        spdlog::warn(
            "sha1 mismatch for {}: the bytes from {} hash to {}; fetching it from "
            "another node",
            sha1, from, actual);
        return discover_size(sha1, cancel, attempt + 1);
      }
      return report_eio(counters_, EioSite::kDownloadChecksum, sha1,
                        "the bytes from " + from + " hash to " + actual + "; nothing cached");
    }
    bool cached = false;
    if (auto tx = cache_.begin(sha1); tx.ok()) {
      cached = (*tx)->append(whole.data(), whole.size()) == 0 && (*tx)->commit() == 0;
      if (cached) fetched_complete(sha1, whole.size());
    }  // not committed (a full disk): the read fetches it again
    remember_size(sha1, found.size);
    return FoundSize{found.size, cached, {}};
  }
  found.pieces.front().bytes = std::move(whole);
  accounting_.size_found(sha1, found.size);
  remember_size(sha1, found.size);
  return FoundSize{found.size, false, std::move(found.pieces)};
}

Status ContentFetcher::ensure_cached(std::string_view sha1_view, const CancelToken& cancel) {
  if (cache_.complete_size(sha1_view)) return {};
  std::string sha1(sha1_view);
  for (;;) {
    auto done = download_flights_.run(
        sha1,
        [&]() -> Status {
          if (cache_.complete_size(sha1)) return {};  // a previous leader just finished
          Result<FoundSize> found = find_size(sha1, cancel);
          if (!found.ok()) return found.failure();
          if (cache_.complete_size(sha1)) return {};  // small blobs arrive with their size
          return download(sha1, *found, cancel);
        },
        cancel);
    if (!done) return fail(Cause::kCancelled, "cancelled");
    // The leader was cancelled, not this caller: this one leads now.
    if (done->cause() == Cause::kCancelled && !cancel.cancelled()) continue;
    return std::move(*done);
  }
}

Status ContentFetcher::download(const std::string& sha1, const FoundSize& found,
                                const CancelToken& cancel) {
  constexpr int kMaxAttempts = 4;  // at most one per distrusted node, and a final one
  // The head that size discovery brought is the first download's first bytes (hashed and
  // verified with the rest like any other); a retry fetches everything.
  std::string head;
  if (!found.pieces.empty() && found.pieces.front().offset == 0 &&
      found.pieces.front().bytes.size() <= found.size)
    head = found.pieces.front().bytes;
  for (int attempt = 1;; ++attempt) {
    bool worth_retrying = false;
    Status result = download_once(sha1, found.size, head, cancel, &worth_retrying);
    head.clear();
    if (result.ok() || !worth_retrying || attempt == kMaxAttempts) return result;
    spdlog::info("fetching {} again, from another node", sha1);
  }
}

Status ContentFetcher::download_once(const std::string& sha1, std::uint64_t size,
                                     const std::string& head, const CancelToken& cancel,
                                     bool* worth_retrying) {
  accounting_.make_room(size);
  auto begun = cache_.begin(sha1);
  if (!begun.ok()) {
    return read_failure(
        counters_,
        {Cause::kLocalError, begun.detail() + ": " + std::string(std::strerror(-begun.error()))},
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
  if (!head.empty()) {
    if (!sink(head.data(), head.size())) {
      return read_failure(
          counters_,
          {Cause::kLocalError, std::string("writing the cache: ") + std::strerror(-write_error)},
          EioSite::kCacheWrite, sha1);
    }
    offset = head.size();
  }
  while (offset < size) {
    std::uint64_t end = std::min(size, offset + config_.range_size);
    Status result = read_with_load(sha1, offset, end, sink, cancel);
    if (result.cause() == Cause::kLocalError && write_error != 0) {
      result = fail(Cause::kLocalError, write_error,
                    std::string("writing the cache: ") + std::strerror(-write_error));
    }
    if (!result.ok()) {
      EioSite site = write_error != 0 ? EioSite::kCacheWrite : EioSite::kDownload;
      return read_failure(counters_, result, site, sha1);
    }
    if (tx->size() != end) {
      return read_failure(
          counters_,
          {Cause::kProtocolError, "expected " + std::to_string(size) + " bytes, the node sent " +
                                      std::to_string(tx->size())},
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
    counters_.add(Counter::kVerifyFailures);
    BlobSource::BadBytesVerdict verdict = source_.report_bad_bytes(sha1, 0, size);
    *worth_retrying = verdict.worth_retrying;
    std::string from = verdict.served_by.empty() ? "the node" : verdict.served_by;
    return report_eio(counters_, EioSite::kDownloadChecksum, sha1,
                      "the bytes from " + from + " hash to " + actual + "; nothing cached");
  }
  if (int commit_error = tx->commit(); commit_error != 0) {
    return read_failure(counters_,
                        {Cause::kLocalError,
                         std::string("committing to the cache: ") + std::strerror(-commit_error)},
                        EioSite::kCacheWrite, sha1);
  }
  fetched_complete(sha1, size);
  spdlog::debug("cached {} ({} bytes)", sha1, size);
  return {};
}

}  // namespace kacheryfs
