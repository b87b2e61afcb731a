// libFuzzer target: a manifest as the node sends it (any bytes).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "kachery/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto manifest =
      kacheryfs::parse_manifest(std::string_view(reinterpret_cast<const char*>(data), size));
  if (manifest) {
    // An accepted manifest covers [0, size) with ordered, non-empty chunks.
    std::uint64_t at = 0;
    for (const auto& chunk : manifest->chunks) {
      if (chunk.start != at || chunk.end <= chunk.start) __builtin_trap();
      at = chunk.end;
    }
    if (at != manifest->size) __builtin_trap();
  }
  return 0;
}
