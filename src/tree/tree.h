// The shape of the mounted tree, independent of FUSE:
//   /sha1/<sha1>             content
//   /sha1/<sha1>?manifest=<m>  the same content, naming its manifest (see ContentName)
//   /sha1/ab/cd/ef/<sha1>    the same content (same inode) in the kachery storage layout
//   /kachery-node-id         the node's id
//   /client-auth             the daemon's current client auth code (restricted; see Filesystem)
// Resolving a name is purely syntactic: a malformed name has no node, so it is rejected
// without any I/O. Inode numbers are handed out on first use and stay stable for the
// life of the mount; they are keys, never pointers. Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

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
  static constexpr std::string_view kNodeIdName = "kachery-node-id";
  static constexpr std::string_view kClientAuthName = "client-auth";

  Tree();

  // The child of parent called name, or nullopt when no such name can exist.
  std::optional<std::uint64_t> child(std::uint64_t parent, std::string_view name);
  std::optional<Node> node(std::uint64_t ino) const;
  // The inode of a node, allocating it on first use.
  std::uint64_t ino_of(NodeKind kind, std::string_view key);

 private:
  mutable std::mutex mutex_;
  std::vector<Node> nodes_;                              // index = ino - 1
  std::unordered_map<std::string, std::uint64_t> inos_;  // "p:<prefix>" / "c:<sha1>"
};

}  // namespace kacheryfs
