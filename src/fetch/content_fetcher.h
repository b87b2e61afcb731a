// The fetch policy: answers "how big is blob X" and "make blob X complete in the cache",
// talking to a BlobSource and hiding it behind the cache (as CVMFS's fetcher does).
// Sizes come from the cache, from memory, or from size discovery (SizeDiscovery: rounds of
// ranges sent at once; a small file's head already carries its bytes, and is committed at
// once). Finding a size reports what it fetched: a file no larger than its head is
// cached whole (that lookup is the miss), and a larger file's head and last window come
// back to the caller, which keeps them in the block cache; nothing is stashed here.
// Downloads go in bounded ranges, are SHA-1 verified while they stream,
// and become visible only by the cache's atomic commit. Concurrent calls for one blob
// share one transfer. Failures come back as a Status with errno and cause; each EIO is
// counted at its site.
// Lock order: a SingleFlight's own lock is never held while mutex_ is taken.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cache/cache_accounting.h"
#include "cache/content_cache.h"
#include "fetch/blob_source.h"
#include "fetch/single_flight.h"
#include "fetch/size_discovery.h"
#include "support/counters.h"
#include "support/result.h"

namespace kacheryfs {

struct FetcherConfig {
  std::uint64_t range_size = 4 << 20;   // bytes per download request
  std::uint64_t probe_size = 1 << 20;   // size discovery's head on a fast link
  std::uint64_t page_size = 64 << 10;   // ... and on a link with latency
  std::chrono::seconds negative_ttl{};  // how long "no node has X" is remembered (0: not)
  bool load_missing = false;            // ask the source to load blobs it lacks (/loadFile)
};

// What finding a blob's size found, and fetched on the way.
struct FoundSize {
  std::uint64_t size = 0;
  bool fetched_whole = false;      // this call cached the whole blob (a miss counted)
  std::vector<KnownPiece> pieces;  // bytes it brought of a blob larger than its head
};

class ContentFetcher {
 public:
  ContentFetcher(BlobSource& source, ContentCache& cache, CacheAccounting& accounting,
                 Counters& counters, FetcherConfig config);

  // The blob's size: from the cache, from memory, or by size discovery (which reports
  // what it fetched). Concurrent callers share one discovery and each get its pieces.
  Result<FoundSize> find_size(std::string_view sha1, const CancelToken& cancel);
  // Ok once the cache holds verified content; else the failure a reader gets (-ENOENT,
  // -EIO or -EINTR, with its cause).
  Status ensure_cached(std::string_view sha1, const CancelToken& cancel);
  // The size find_size gives without asking the source (the cache, memory, a partial
  // file's page map), or nullopt.
  std::optional<std::uint64_t> known_size(const std::string& sha1);
  // A size learnt elsewhere (a verified manifest states it): no discovery is needed.
  void set_known_size(const std::string& sha1, std::uint64_t size) { remember_size(sha1, size); }

  // The blob's first `length` bytes (counted as fetched), for a blob whose size comes
  // from elsewhere (a manifest); "" when they cannot be had: the read that needs them
  // meets and reports the failure.
  std::string fetch_head(const std::string& sha1, std::uint64_t length, const CancelToken& cancel);

 private:
  // A head that is the whole file but fails verification is asked for again while the
  // source says another node may serve it (attempt counts the tries).
  Result<FoundSize> discover_size(const std::string& sha1, const CancelToken& cancel, int attempt);
  // Downloads and verifies, starting with the head that size discovery brought (if any);
  // bytes that fail verification are fetched again while the source says another node may
  // serve them.
  Status download(const std::string& sha1, const FoundSize& found, const CancelToken& cancel);
  Status download_once(const std::string& sha1, std::uint64_t size, const std::string& head,
                       const CancelToken& cancel, bool* worth_retrying);
  Status read_with_load(const std::string& sha1, std::uint64_t start, std::uint64_t end,
                        const ByteSink& sink, const CancelToken& cancel);
  bool known_missing(const std::string& sha1);
  void remember_size(const std::string& sha1, std::uint64_t size);
  void fetched_complete(const std::string& sha1, std::uint64_t size);

  BlobSource& source_;
  ContentCache& cache_;
  CacheAccounting& accounting_;
  Counters& counters_;
  FetcherConfig config_;
  SizeDiscovery discovery_;

  std::mutex mutex_;  // a leaf; guards sizes_ and missing_until_
  static constexpr std::size_t kMaxRememberedSizes = 4096;  // bounds sizes_
  std::unordered_map<std::string, std::uint64_t> sizes_;
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> missing_until_;

  SingleFlight<Result<FoundSize>> size_flights_;
  SingleFlight<Status> download_flights_;
};

}  // namespace kacheryfs
