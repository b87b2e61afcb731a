#include "support/counters.h"

#include <algorithm>
#include <cstdio>

namespace kacheryfs {

namespace {

// "request_seconds.0.005", ..., "request_seconds.inf": one persistent name per bucket.
std::string bucket_name(std::size_t bucket) {
  if (bucket == kRequestSecondsBounds.size()) return "request_seconds.inf";
  char text[48];
  std::snprintf(text, sizeof(text), "request_seconds.%g", kRequestSecondsBounds[bucket]);
  return text;
}

constexpr const char* kRequestMicrosName = "request_seconds.sum_us";

}  // namespace

const char* to_string(Counter counter) {
  switch (counter) {
    case Counter::kHits:
      return "hits";
    case Counter::kMisses:
      return "misses";
    case Counter::kBytesFetched:
      return "bytes_fetched";
    case Counter::kVerifyFailures:
      return "verify_failures";
    case Counter::kCount:
      break;
  }
  return "?";
}

const char* to_string(EioSite site) {
  switch (site) {
    case EioSite::kSizeDiscovery:
      return "size_discovery";
    case EioSite::kSizeProbe:
      return "size_probe";
    case EioSite::kDownload:
      return "download";
    case EioSite::kDownloadLength:
      return "download_length";
    case EioSite::kDownloadChecksum:
      return "download_checksum";
    case EioSite::kCacheWrite:
      return "cache_write";
    case EioSite::kBlockFetch:
      return "block_fetch";
    case EioSite::kBlockChecksum:
      return "block_checksum";
    case EioSite::kNodeIdProbe:
      return "node_id_probe";
    case EioSite::kCount:
      break;
  }
  return "?";
}

double Counters::hit_rate() const {
  double hits = static_cast<double>(get(Counter::kHits));
  double misses = static_cast<double>(get(Counter::kMisses));
  return hits + misses > 0 ? hits / (hits + misses) : 0.0;
}

void Counters::observe_request(std::chrono::steady_clock::duration took) {
  double seconds = std::chrono::duration<double>(took).count();
  auto bucket = static_cast<std::size_t>(
      std::lower_bound(kRequestSecondsBounds.begin(), kRequestSecondsBounds.end(), seconds) -
      kRequestSecondsBounds.begin());
  request_buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(took).count();
  request_micros_.fetch_add(static_cast<std::uint64_t>(std::max<std::int64_t>(0, micros)),
                            std::memory_order_relaxed);
}

std::array<std::uint64_t, kRequestSecondsBounds.size() + 1> Counters::request_buckets() const {
  std::array<std::uint64_t, kRequestSecondsBounds.size() + 1> out{};
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = request_buckets_[i].load(std::memory_order_relaxed);
  return out;
}

std::uint64_t Counters::request_count() const {
  std::uint64_t total = 0;
  for (auto count : request_buckets()) total += count;
  return total;
}

double Counters::request_seconds_sum() const {
  return static_cast<double>(request_micros_.load(std::memory_order_relaxed)) / 1e6;
}

std::vector<std::pair<std::string, std::uint64_t>> Counters::named_values() const {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  for (std::size_t i = 0; i < index(Counter::kCount); ++i)
    out.emplace_back(to_string(static_cast<Counter>(i)), values_[i].load());
  for (std::size_t i = 1; i < index(EioSite::kCount); ++i)
    out.emplace_back(std::string("eio.") + to_string(static_cast<EioSite>(i)), eio_[i].load());
  for (std::size_t i = 0; i < request_buckets_.size(); ++i)
    out.emplace_back(bucket_name(i), request_buckets_[i].load());
  out.emplace_back(kRequestMicrosName, request_micros_.load());
  return out;
}

void Counters::load(const std::vector<std::pair<std::string, std::uint64_t>>& named) {
  for (const auto& [name, value] : named) {
    for (std::size_t i = 0; i < index(Counter::kCount); ++i) {
      if (name == to_string(static_cast<Counter>(i))) values_[i] = value;
    }
    for (std::size_t i = 1; i < index(EioSite::kCount); ++i) {
      if (name == std::string("eio.") + to_string(static_cast<EioSite>(i))) eio_[i] = value;
    }
    for (std::size_t i = 0; i < request_buckets_.size(); ++i) {
      if (name == bucket_name(i)) request_buckets_[i] = value;
    }
    if (name == kRequestMicrosName) request_micros_ = value;
  }
  std::uint64_t total = 0;
  for (const auto& count : eio_) total += count.load();
  eio_total_ = total;
}

std::string Counters::eio_report() const {
  std::string out;
  for (std::size_t i = 1; i < index(EioSite::kCount); ++i) {
    if (std::uint64_t n = eio_[i].load(); n > 0) {
      char line[96];
      std::snprintf(line, sizeof(line), "%zu %s=%llu\n", i, to_string(static_cast<EioSite>(i)),
                    static_cast<unsigned long long>(n));
      out += line;
    }
  }
  return out;
}

}  // namespace kacheryfs
