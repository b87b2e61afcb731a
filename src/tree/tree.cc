#include "tree/tree.h"

#include <utility>

#include "kachery/hash_name.h"

namespace kacheryfs {

namespace {

bool is_fixed(std::uint64_t ino) { return ino <= Tree::kClientAuthIno; }

}  // namespace

Tree::Tree() {
  entries_[kRootIno] = {{NodeKind::kRoot, ""}, 0};
  entries_[kSha1DirIno] = {{NodeKind::kSha1Dir, ""}, 0};
  entries_[kNodeIdIno] = {{NodeKind::kNodeIdFile, ""}, 0};
  entries_[kClientAuthIno] = {{NodeKind::kClientAuthFile, ""}, 0};
}

std::string Tree::key_of(NodeKind kind, std::string_view key) {
  return (kind == NodeKind::kContent ? "c:" : "p:") + std::string(key);
}

std::uint64_t Tree::acquire(const Node& node) {
  switch (node.kind) {
    case NodeKind::kRoot:
      return kRootIno;
    case NodeKind::kSha1Dir:
      return kSha1DirIno;
    case NodeKind::kNodeIdFile:
      return kNodeIdIno;
    case NodeKind::kClientAuthFile:
      return kClientAuthIno;
    case NodeKind::kPrefixDir:
    case NodeKind::kContent:
      break;
  }
  std::lock_guard lock(mutex_);
  auto [it, inserted] = inos_.try_emplace(key_of(node.kind, node.key), next_ino_);
  if (inserted) entries_[next_ino_++] = {node, 0, false};
  ++entries_[it->second].lookups;
  return it->second;
}

void Tree::forget(std::uint64_t ino, std::uint64_t lookups) {
  if (is_fixed(ino)) return;
  std::lock_guard lock(mutex_);
  auto it = entries_.find(ino);
  if (it == entries_.end()) return;
  if (it->second.lookups > lookups) {
    it->second.lookups -= lookups;
    return;
  }
  inos_.erase(key_of(it->second.node.kind, it->second.node.key));
  entries_.erase(it);
}

std::optional<std::uint64_t> Tree::existing_ino(NodeKind kind, std::string_view key) const {
  std::lock_guard lock(mutex_);
  auto it = inos_.find(key_of(kind, key));
  if (it == inos_.end()) return std::nullopt;
  return it->second;
}

std::optional<Node> Tree::node(std::uint64_t ino) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(ino);
  if (it == entries_.end()) return std::nullopt;
  return it->second.node;
}

void Tree::mark_fetched(std::uint64_t ino) {
  std::lock_guard lock(mutex_);
  if (auto it = entries_.find(ino); it != entries_.end()) it->second.fetched = true;
}

bool Tree::take_fetched(std::uint64_t ino) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(ino);
  return it != entries_.end() && std::exchange(it->second.fetched, false);
}

std::size_t Tree::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

std::optional<Node> Tree::resolve(std::uint64_t parent, std::string_view name) const {
  std::optional<Node> dir = node(parent);
  if (!dir) return std::nullopt;
  switch (dir->kind) {
    case NodeKind::kRoot:
      if (name == "sha1") return Node{NodeKind::kSha1Dir, ""};
      if (name == kNodeIdName) return Node{NodeKind::kNodeIdFile, ""};
      if (name == kClientAuthName) return Node{NodeKind::kClientAuthFile, ""};
      return std::nullopt;
    case NodeKind::kSha1Dir:
      if (auto content = parse_content_name(name)) return Node{NodeKind::kContent, content->sha1};
      if (name.size() == 2 && is_lower_hex(name))
        return Node{NodeKind::kPrefixDir, std::string(name)};
      return std::nullopt;
    case NodeKind::kPrefixDir:
      if (dir->key.size() < 6) {
        if (name.size() == 2 && is_lower_hex(name))
          return Node{NodeKind::kPrefixDir, dir->key + std::string(name)};
        return std::nullopt;
      }
      if (is_sha1_name(name) && name.starts_with(dir->key))
        return Node{NodeKind::kContent, std::string(name)};
      return std::nullopt;
    case NodeKind::kContent:
    case NodeKind::kNodeIdFile:
    case NodeKind::kClientAuthFile:
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace kacheryfs
