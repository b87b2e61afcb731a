#include "support/counters.h"

#include <cstdio>

namespace kacheryfs {

const char* to_string(Counter counter) {
  switch (counter) {
    case Counter::kHits:
      return "hits";
    case Counter::kMisses:
      return "misses";
    case Counter::kBytesFetched:
      return "bytes_fetched";
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

std::vector<std::pair<std::string, std::uint64_t>> Counters::named_values() const {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  for (std::size_t i = 0; i < index(Counter::kCount); ++i)
    out.emplace_back(to_string(static_cast<Counter>(i)), values_[i].load());
  for (std::size_t i = 1; i < index(EioSite::kCount); ++i)
    out.emplace_back(std::string("eio.") + to_string(static_cast<EioSite>(i)), eio_[i].load());
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
