// Names of kachery content: validating SHA-1 hex names and mapping them onto the
// kachery storage layout (sha1/ab/cd/ef/<sha1>). Used by the tree, the cache and the fetcher.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kacheryfs {

// SHA-1 of the empty byte string: its content is known without asking anyone.
inline constexpr std::string_view kEmptySha1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709";

// True when every character is 0-9 or a-f (lower case only, as kachery names are).
bool is_lower_hex(std::string_view s);

// True for exactly 40 lower-case hex characters.
bool is_sha1_name(std::string_view s);

// A content file name under sha1/: "<sha1>", or "<sha1>?manifest=<manifest sha1>", the
// query part of a kachery URI (sha1://<sha1>/name?manifest=<sha1>) that names the file's
// manifest so that its chunks can be verified while it streams.
struct ContentName {
  std::string sha1;
  std::string manifest_sha1;  // "" when not given
};
std::optional<ContentName> parse_content_name(std::string_view name);

// "sha1/ab/cd/ef/<sha1>" for a well-formed sha1.
std::string storage_relpath(std::string_view sha1);

}  // namespace kacheryfs
