#include "kachery/manifest.h"

#include <nlohmann/json.hpp>

#include "kachery/hash_name.h"

namespace kacheryfs {

Result<Manifest> parse_manifest(std::string_view json_text) {
  auto json = nlohmann::json::parse(json_text, nullptr, false);
  auto bad = [](const char* why) { return fail(Cause::kProtocolError, why); };
  if (json.is_discarded() || !json.is_object()) return bad("not a JSON object");
  if (!json.contains("size") || !json["size"].is_number_unsigned()) return bad("no size");
  if (!json.contains("sha1") || !json["sha1"].is_string() ||
      !is_sha1_name(json["sha1"].get<std::string>())) {
    return bad("no sha1");
  }
  if (!json.contains("chunks") || !json["chunks"].is_array()) return bad("no chunks");
  Manifest manifest;
  manifest.size = json["size"].get<std::uint64_t>();
  manifest.sha1 = json["sha1"].get<std::string>();
  std::uint64_t expected_start = 0;
  for (const auto& chunk : json["chunks"]) {
    if (!chunk.is_object() || !chunk.contains("start") || !chunk.contains("end") ||
        !chunk.contains("sha1") || !chunk["start"].is_number_unsigned() ||
        !chunk["end"].is_number_unsigned() || !chunk["sha1"].is_string() ||
        !is_sha1_name(chunk["sha1"].get<std::string>())) {
      return bad("malformed chunk");
    }
    ManifestChunk c{chunk["start"].get<std::uint64_t>(), chunk["end"].get<std::uint64_t>(),
                    chunk["sha1"].get<std::string>()};
    if (c.start != expected_start || c.end <= c.start) return bad("chunks are not contiguous");
    expected_start = c.end;
    manifest.chunks.push_back(std::move(c));
  }
  if (expected_start != manifest.size) return bad("chunks do not cover the file");
  return manifest;
}

}  // namespace kacheryfs
