// The shape of the mounted tree, independent of FUSE:
//   /sha1/<sha1>             content
//   /sha1/<sha1>?manifest=<m>  the same content, naming its manifest (see ContentName)
//   /sha1/ab/cd/ef/<sha1>    the same content (same inode) in the kachery storage layout
//   /kachery-node-id         the node's id
//   /client-auth             the daemon's current client auth code (restricted; see Filesystem)
// Resolving a name is purely syntactic: a malformed name has no node, so it is rejected
// without any I/O. The inode table holds only what the kernel holds: a content or prefix
// inode is made by a lookup, counts the kernel's lookups of it, and is dropped when the
// kernel forgets them all (FUSE forget), as libfuse's passthrough_hp does; its number is
// never reused during the mount. The root, sha1/ and the two files are fixed. Numbers are
// keys, never pointers. Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace kacheryfs {

enum class NodeKind { kRoot, kSha1Dir, kPrefixDir, kContent, kNodeIdFile, kClientAuthFile };

struct Node {
  NodeKind kind = NodeKind::kRoot;
  // kPrefixDir: the hex prefix so far ("ab", "abcd" or "abcdef"); kContent: the sha1.
  std::string key;
};

class Tree {
 public:
  static constexpr std::uint64_t kRootIno = 1;
  static constexpr std::uint64_t kSha1DirIno = 2;
  static constexpr std::uint64_t kNodeIdIno = 3;
  static constexpr std::uint64_t kClientAuthIno = 4;
  // The d_ino of a listed name the kernel has not looked up (it ignores it for FUSE).
  static constexpr std::uint64_t kUnknownIno = 0xffffffff;
  static constexpr std::string_view kNodeIdName = "kachery-node-id";
  static constexpr std::string_view kClientAuthName = "client-auth";

  Tree();

  // The node that parent's child `name` would be, or nullopt when no such name can exist.
  std::optional<Node> resolve(std::uint64_t parent, std::string_view name) const;
  // The inode of a resolved node, made if needed, with one more lookup counted (fixed
  // inodes are not counted). Each call is matched by a forget of 1, or a reply that the
  // lookup failed.
  std::uint64_t acquire(const Node& node);
  // The kernel dropped `lookups` of its references to ino: at 0 the inode is forgotten.
  void forget(std::uint64_t ino, std::uint64_t lookups);
  // The inode a node has now, without making one.
  std::optional<std::uint64_t> existing_ino(NodeKind kind, std::string_view key) const;
  std::optional<Node> node(std::uint64_t ino) const;
  // A content inode whose lookup fetched the whole file (that lookup was the miss), until
  // its next open takes the mark: that open is then not counted as a hit.
  void mark_fetched(std::uint64_t ino);
  bool take_fetched(std::uint64_t ino);
  // Inodes held now, fixed ones included.
  std::size_t size() const;

 private:
  struct Entry {
    Node node;
    std::uint64_t lookups = 0;
    bool fetched = false;  // see mark_fetched
  };
  static std::string key_of(NodeKind kind, std::string_view key);

  mutable std::mutex mutex_;
  std::unordered_map<std::uint64_t, Entry> entries_;
  std::unordered_map<std::string, std::uint64_t> inos_;  // "p:<prefix>" / "c:<sha1>"
  std::uint64_t next_ino_ = kClientAuthIno + 1;
};

}  // namespace kacheryfs
