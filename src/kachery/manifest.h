// A kachery manifest: {"size":N,"sha1":"<file>","chunks":[{"start","end","sha1"},...]}, the
// per-chunk SHA-1s (20,000,000-byte chunks) that let parts of a large file be verified
// before the whole of it is fetched. Parsed and validated here; used by the block fetcher.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/result.h"

namespace kacheryfs {

struct ManifestChunk {
  std::uint64_t start = 0;
  std::uint64_t end = 0;
  std::string sha1;
};

struct Manifest {
  std::uint64_t size = 0;
  std::string sha1;
  std::vector<ManifestChunk> chunks;
};

// Parses manifest JSON: a kProtocolError failure, with the reason, unless the chunks are
// well-formed, contiguous, and cover [0, size) exactly.
Result<Manifest> parse_manifest(std::string_view json_text);

}  // namespace kacheryfs
