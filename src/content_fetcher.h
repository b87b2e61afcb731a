// The fetch policy: answers "how big is blob X" and "make blob X complete in the cache",
// talking to a BlobSource and hiding it behind the cache (as CVMFS's fetcher does).
// Sizes come from the cache, from memory, or from the protocol's size discovery (one range
// [0, probe_size) answers small files and already carries their bytes; larger ones bisect
// with 1-byte probes). Downloads go in bounded ranges, are SHA-1 verified while they stream,
// and become visible only by the cache's atomic commit. Concurrent calls for one blob
// share one transfer. Errors come back as a negative errno; each EIO cause is counted.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "blob_source.h"
#include "cache_keeper.h"
#include "content_cache.h"
#include "single_flight.h"

namespace kacheryfs {

struct FetcherConfig {
  std::uint64_t range_size = 4 << 20;     // bytes per download request
  std::uint64_t probe_size = 1 << 20;     // first size-discovery range
  std::chrono::seconds negative_ttl{10};  // how long "the node lacks X" is remembered
  bool load_missing = false;              // ask the source to load blobs it lacks (/loadFile)
};

struct SizeAnswer {
  int error = 0;  // 0 or -errno
  std::uint64_t size = 0;
};

class ContentFetcher {
 public:
  ContentFetcher(BlobSource& source, ContentCache& cache, FetcherConfig config);
  // Accounting and eviction for what this fetcher caches (none: unlimited, unaccounted).
  void set_keeper(CacheKeeper* keeper) { keeper_ = keeper; }

  SizeAnswer blob_size(std::string_view sha1, const CancelToken& cancel);
  // 0 once ROOT/sha1/ab/cd/ef/<sha1> holds verified content; else -ENOENT, -EIO or -EINTR.
  int ensure_cached(std::string_view sha1, const CancelToken& cancel);

  // Maps a failed fetch to the errno a reader sees and counts it (the one place for that).
  int to_errno(const FetchResult& result, std::string_view sha1, std::string_view what);

  // Counts an EIO reported elsewhere (e.g. by the block fetcher); returns its number.
  std::uint64_t count_io_error() { return io_errors_.fetch_add(1) + 1; }

  void count_bytes_fetched(std::uint64_t bytes) { bytes_fetched_ += bytes; }

  std::uint64_t io_errors() const { return io_errors_.load(); }
  std::uint64_t bytes_fetched() const { return bytes_fetched_.load(); }
  std::uint64_t downloads_completed() const { return downloads_.load(); }

 private:
  SizeAnswer discover_size(const std::string& sha1, const CancelToken& cancel);
  int download(const std::string& sha1, std::uint64_t size, const CancelToken& cancel);
  FetchResult read_with_load(const std::string& sha1, std::uint64_t start, std::uint64_t end,
                             const ByteSink& sink, const CancelToken& cancel);
  bool known_missing(const std::string& sha1);
  void remember_size(const std::string& sha1, std::uint64_t size);

  BlobSource& source_;
  ContentCache& cache_;
  FetcherConfig config_;
  CacheKeeper* keeper_ = nullptr;

  std::mutex mutex_;  // guards sizes_ and missing_until_
  std::unordered_map<std::string, std::uint64_t> sizes_;
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> missing_until_;

  SingleFlight<SizeAnswer> size_flights_;
  SingleFlight<int> download_flights_;

  std::atomic<std::uint64_t> io_errors_{0};
  std::atomic<std::uint64_t> bytes_fetched_{0};
  std::atomic<std::uint64_t> downloads_{0};
};

}  // namespace kacheryfs
