// Counters: the one registry of what a mount (or the tool) counted: opens served from the
// cache (hits) or fetched (misses), bytes fetched, bytes that failed verification, every
// EIO by the numbered site that raised it (as CVMFS's perf::Statistics does), and a
// histogram of the daemon's request durations. The root xattrs, `kacheryfs-cache status`
// and the log lines read from here, under the names written once below. Lock-free; used
// from every thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace kacheryfs {

enum class Counter : std::size_t {
  kHits,            // opens of content that was complete in the cache
  kMisses,          // content objects fetched from the daemon (counted where bytes arrive)
  kBytesFetched,    // body bytes received from the daemon
  kVerifyFailures,  // fetched bytes whose SHA-1 did not match (each is reported to a node)
  kCount
};

// Each place that turns a failure into EIO has its own number (user.kachery.eio shows a
// count per site), so that an operator can tell a checksum failure from a timeout.
enum class EioSite : std::size_t {
  kSizeDiscovery = 1,  // the first range of size discovery failed
  kSizeProbe,          // a 1-byte size probe failed
  kDownload,           // a whole-file download's transfer failed (timeout, 5xx, refused...)
  kDownloadLength,     // the daemon sent more or fewer bytes than the range asked
  kDownloadChecksum,   // a whole file's SHA-1 did not match
  kCacheWrite,         // the local cache could not be written
  kBlockFetch,         // a block's transfer failed
  kBlockChecksum,      // a streamed file or a manifest chunk failed verification
  kNodeIdProbe,        // /probe for kachery-node-id failed
  kCount
};

// Upper bounds, in seconds, of the buckets of request durations (a last bucket, +Inf,
// takes the rest). One request is one HTTP exchange with a node, or one pipelined round.
inline constexpr std::array<double, 13> kRequestSecondsBounds = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

const char* to_string(Counter counter);
const char* to_string(EioSite site);  // e.g. "download_checksum"

class Counters {
 public:
  void add(Counter counter, std::uint64_t delta = 1) {
    values_[index(counter)].fetch_add(delta, std::memory_order_relaxed);
  }
  std::uint64_t get(Counter counter) const {
    return values_[index(counter)].load(std::memory_order_relaxed);
  }
  // Counts an EIO at a site and returns the mount's running EIO number (for "EIO #n").
  std::uint64_t count_eio(EioSite site) {
    eio_[index(site)].fetch_add(1, std::memory_order_relaxed);
    return eio_total_.fetch_add(1, std::memory_order_relaxed) + 1;
  }
  std::uint64_t eio(EioSite site) const {
    return eio_[index(site)].load(std::memory_order_relaxed);
  }
  std::uint64_t eio_total() const { return eio_total_.load(std::memory_order_relaxed); }

  void observe_request(std::chrono::steady_clock::duration took);
  // Requests per bucket of kRequestSecondsBounds, not cumulative; the last is +Inf.
  std::array<std::uint64_t, kRequestSecondsBounds.size() + 1> request_buckets() const;
  std::uint64_t request_count() const;
  double request_seconds_sum() const;
  // hits / (hits + misses), 0 before the first open.
  double hit_rate() const;

  // Every counter by its persistent name ("hits", "misses", "bytes_fetched",
  // "eio.<site>", "request_seconds.<bucket>", "request_seconds.sum_us"), in a fixed order:
  // what the index stores and the tool prints.
  std::vector<std::pair<std::string, std::uint64_t>> named_values() const;
  // Sets the counters from such names (the tool reads the index's totals this way).
  void load(const std::vector<std::pair<std::string, std::uint64_t>>& named);
  // "name=count" per site with a nonzero count, one per line (user.kachery.eio).
  std::string eio_report() const;

 private:
  template <class Enum>
  static std::size_t index(Enum value) {
    return static_cast<std::size_t>(value);
  }
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(Counter::kCount)> values_{};
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(EioSite::kCount)> eio_{};
  std::atomic<std::uint64_t> eio_total_{0};
  std::array<std::atomic<std::uint64_t>, kRequestSecondsBounds.size() + 1> request_buckets_{};
  std::atomic<std::uint64_t> request_micros_{0};
};

}  // namespace kacheryfs
