// libFuzzer target: names looked up in the tree (any bytes, split into path components at
// '/'), as the kernel hands them to the mount; then every inode forgotten.
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
    auto node = tree.resolve(ino, name);
    if (!node) break;
    std::uint64_t child = tree.acquire(*node);
    if (!tree.node(child) || tree.node(child)->key != node->key) __builtin_trap();
    ino = child;
  }
  // Every lookup forgotten: only the fixed inodes are left.
  for (std::uint64_t i = 1; i <= ino + 8; ++i) tree.forget(i, ~std::uint64_t{0});
  if (tree.size() != 4) __builtin_trap();
  return 0;
}
