#include "kachery/manifest.h"

#include <nlohmann/json.hpp>

#include "kachery/hash_name.h"

namespace kacheryfs {

std::optional<Manifest> parse_manifest(std::string_view json_text, std::string* error) {
  auto json = nlohmann::json::parse(json_text, nullptr, false);
  auto fail = [&](const char* why) -> std::optional<Manifest> {
    *error = why;
    return std::nullopt;
  };
  if (json.is_discarded() || !json.is_object()) return fail("not a JSON object");
  if (!json.contains("size") || !json["size"].is_number_unsigned()) return fail("no size");
  if (!json.contains("sha1") || !json["sha1"].is_string() ||
      !is_sha1_name(json["sha1"].get<std::string>())) {
    return fail("no sha1");
  }
  if (!json.contains("chunks") || !json["chunks"].is_array()) return fail("no chunks");
  Manifest manifest;
  manifest.size = json["size"].get<std::uint64_t>();
  manifest.sha1 = json["sha1"].get<std::string>();
  std::uint64_t expected_start = 0;
  for (const auto& chunk : json["chunks"]) {
    if (!chunk.is_object() || !chunk.contains("start") || !chunk.contains("end") ||
        !chunk.contains("sha1") || !chunk["start"].is_number_unsigned() ||
        !chunk["end"].is_number_unsigned() || !chunk["sha1"].is_string() ||
        !is_sha1_name(chunk["sha1"].get<std::string>())) {
      return fail("malformed chunk");
    }
    ManifestChunk c{chunk["start"].get<std::uint64_t>(), chunk["end"].get<std::uint64_t>(),
                    chunk["sha1"].get<std::string>()};
    if (c.start != expected_start || c.end <= c.start) return fail("chunks are not contiguous");
    expected_start = c.end;
    manifest.chunks.push_back(std::move(c));
  }
  if (expected_start != manifest.size) return fail("chunks do not cover the file");
  return manifest;
}

}  // namespace kacheryfs
