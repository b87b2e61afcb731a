// The Prometheus text exposition format (version 0.0.4) of a cache and its mount: the one
// renderer behind `kacheryfs-cache metrics` and -o metrics_file, so that both print the
// same names. Also writes such a text to a file atomically (a temp file in the same
// directory, renamed over it), as node_exporter's textfile collector requires.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "support/counters.h"

namespace kacheryfs {

struct NodeMetrics {
  std::string name;  // e.g. "http://10.0.0.5:20431"
  bool up = false;
  std::uint64_t served_bytes = 0;
};

struct MetricsSnapshot {
  bool mount_up = false;  // a mount is serving this cache
  std::string cache_dir;
  std::vector<NodeMetrics> nodes;
  std::uint64_t cache_bytes = 0;
  std::uint64_t cache_limit_bytes = 0;
  std::uint64_t cache_objects = 0;
  std::uint64_t partial_objects = 0;
  std::uint64_t pinned_bytes = 0;
  const Counters* totals = nullptr;  // hits, misses, bytes, EIOs, request durations
};

// The whole exposition: a # HELP and a # TYPE line for every metric family, then its
// samples; label values escaped as the format requires.
std::string prometheus_text(const MetricsSnapshot& snapshot);

// Replaces `path` with `text` so that a reader sees the old file or the new one, never a
// part: writes PATH.tmp.PID beside it, fsyncs it, renames it over PATH. Returns "" or a
// one-line error.
std::string write_file_atomically(const std::string& path, const std::string& text);

}  // namespace kacheryfs
