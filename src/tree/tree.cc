#include "tree/tree.h"

#include "kachery/hash_name.h"

namespace kacheryfs {

Tree::Tree() {
  nodes_.push_back({NodeKind::kRoot, ""});
  nodes_.push_back({NodeKind::kSha1Dir, ""});
  nodes_.push_back({NodeKind::kNodeIdFile, ""});
  nodes_.push_back({NodeKind::kClientAuthFile, ""});
}

std::uint64_t Tree::ino_of(NodeKind kind, std::string_view key) {
  std::string map_key = (kind == NodeKind::kContent ? "c:" : "p:") + std::string(key);
  std::lock_guard lock(mutex_);
  auto [it, inserted] = inos_.try_emplace(map_key, nodes_.size() + 1);
  if (inserted) nodes_.push_back({kind, std::string(key)});
  return it->second;
}

std::optional<Node> Tree::node(std::uint64_t ino) const {
  std::lock_guard lock(mutex_);
  if (ino == 0 || ino > nodes_.size()) return std::nullopt;
  return nodes_[ino - 1];
}

std::optional<std::uint64_t> Tree::child(std::uint64_t parent, std::string_view name) {
  std::optional<Node> dir = node(parent);
  if (!dir) return std::nullopt;
  switch (dir->kind) {
    case NodeKind::kRoot:
      if (name == "sha1") return kSha1DirIno;
      if (name == kNodeIdName) return kNodeIdIno;
      if (name == kClientAuthName) return kClientAuthIno;
      return std::nullopt;
    case NodeKind::kSha1Dir:
      if (auto content = parse_content_name(name)) return ino_of(NodeKind::kContent, content->sha1);
      if (name.size() == 2 && is_lower_hex(name)) return ino_of(NodeKind::kPrefixDir, name);
      return std::nullopt;
    case NodeKind::kPrefixDir:
      if (dir->key.size() < 6) {
        if (name.size() == 2 && is_lower_hex(name)) {
          return ino_of(NodeKind::kPrefixDir, dir->key + std::string(name));
        }
        return std::nullopt;
      }
      if (is_sha1_name(name) && name.starts_with(dir->key)) {
        return ino_of(NodeKind::kContent, name);
      }
      return std::nullopt;
    case NodeKind::kContent:
    case NodeKind::kNodeIdFile:
    case NodeKind::kClientAuthFile:
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace kacheryfs
