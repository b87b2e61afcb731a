// libFuzzer target: names looked up in the tree (any bytes, split into path components at
// '/'), as the kernel hands them to the mount.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "kachery/hash_name.h"
#include "tree/tree.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view path(reinterpret_cast<const char*>(data), size);
  kacheryfs::Tree tree;
  std::uint64_t ino = kacheryfs::Tree::kRootIno;
  while (!path.empty()) {
    std::size_t slash = path.find('/');
    std::string_view name = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
    if (auto content = kacheryfs::parse_content_name(name)) {
      if (!kacheryfs::is_sha1_name(content->sha1)) __builtin_trap();
      (void)kacheryfs::storage_relpath(content->sha1);
    }
    auto child = tree.child(ino, name);
    if (!child) break;
    if (!tree.node(*child)) __builtin_trap();
    ino = *child;
  }
  return 0;
}
