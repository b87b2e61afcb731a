#include "kachery/hash_name.h"

#include <algorithm>

namespace kacheryfs {

bool is_lower_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool is_sha1_name(std::string_view s) { return s.size() == 40 && is_lower_hex(s); }

std::optional<ContentName> parse_content_name(std::string_view name) {
  constexpr std::string_view kQuery = "?manifest=";
  if (is_sha1_name(name)) return ContentName{std::string(name), ""};
  if (name.size() == 40 + kQuery.size() + 40 && is_sha1_name(name.substr(0, 40)) &&
      name.substr(40, kQuery.size()) == kQuery && is_sha1_name(name.substr(40 + kQuery.size()))) {
    return ContentName{std::string(name.substr(0, 40)),
                       std::string(name.substr(40 + kQuery.size()))};
  }
  return std::nullopt;
}

std::string storage_relpath(std::string_view sha1) {
  std::string p = "sha1/";
  p.append(sha1.substr(0, 2)).append("/");
  p.append(sha1.substr(2, 2)).append("/");
  p.append(sha1.substr(4, 2)).append("/");
  p.append(sha1);
  return p;
}

}  // namespace kacheryfs
