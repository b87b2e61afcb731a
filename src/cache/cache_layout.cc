#include "cache/cache_layout.h"

#include "kachery/hash_name.h"

namespace kacheryfs {

std::filesystem::path CacheLayout::complete_path(std::string_view sha1) const {
  return root_ / storage_relpath(sha1);
}

std::string CacheLayout::sha1_of_partial_data(std::string_view file_name) {
  if (file_name.size() != 40 + kDataSuffix.size() || !file_name.ends_with(kDataSuffix)) return "";
  std::string_view sha1 = file_name.substr(0, 40);
  return is_sha1_name(sha1) ? std::string(sha1) : "";
}

}  // namespace kacheryfs
