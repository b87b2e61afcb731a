#include "filesystem.h"

#include <unistd.h>

#include <cerrno>

#include "hash_name.h"

namespace kacheryfs {

namespace {
constexpr std::string_view kNodeIdMetaKey = "kachery-node-id";
}

Filesystem::Filesystem(Tree& tree, ContentCache& cache, ContentFetcher& fetcher,
                       NodeIdFetch fetch_node_id)
    : tree_(tree), cache_(cache), fetcher_(fetcher), fetch_node_id_(std::move(fetch_node_id)) {
  node_id_ = cache_.read_meta(kNodeIdMetaKey);
}

void Filesystem::set_node_id(const std::string& node_id) {
  std::lock_guard lock(node_id_mutex_);
  if (node_id_ != node_id) cache_.write_meta(kNodeIdMetaKey, node_id);
  node_id_ = node_id;
}

int Filesystem::node_id(std::string& out, const CancelToken& cancel) {
  {
    std::lock_guard lock(node_id_mutex_);
    if (node_id_) {
      out = *node_id_;
      return 0;
    }
  }
  std::string fetched;
  FetchResult result = fetch_node_id_(&fetched, cancel);
  if (!result.ok()) return fetcher_.to_errno(result, "kachery-node-id", "probe for");
  set_node_id(fetched);
  out = fetched;
  return 0;
}

int Filesystem::attributes_of(std::uint64_t ino, const Node& node, Attributes& out,
                              const CancelToken& cancel) {
  out = Attributes{};
  out.ino = ino;
  switch (node.kind) {
    case NodeKind::kRoot:
    case NodeKind::kSha1Dir:
    case NodeKind::kPrefixDir:
      out.directory = true;
      return 0;
    case NodeKind::kNodeIdFile: {
      std::string id;
      if (int error = node_id(id, cancel); error != 0) return error;
      out.size = id.size();
      return 0;
    }
    case NodeKind::kContent: {
      SizeAnswer size = fetcher_.blob_size(node.key, cancel);
      if (size.error != 0) return size.error;
      out.content = true;
      out.size = size.size;
      return 0;
    }
  }
  return -EIO;
}

int Filesystem::lookup(std::uint64_t parent, std::string_view name, Attributes& out,
                       const CancelToken& cancel) {
  std::optional<std::uint64_t> ino = tree_.child(parent, name);
  if (!ino) return -ENOENT;  // malformed: no request
  return getattr(*ino, out, cancel);
}

int Filesystem::getattr(std::uint64_t ino, Attributes& out, const CancelToken& cancel) {
  std::optional<Node> node = tree_.node(ino);
  if (!node) return -ENOENT;
  return attributes_of(ino, *node, out, cancel);
}

int Filesystem::list(std::uint64_t ino, std::vector<DirEntry>& out) {
  std::optional<Node> node = tree_.node(ino);
  if (!node) return -ENOENT;
  out.clear();
  out.push_back({".", ino, true});
  switch (node->kind) {
    case NodeKind::kRoot:
      out.push_back({"..", ino, true});
      out.push_back({"sha1", Tree::kSha1DirIno, true});
      out.push_back({std::string(Tree::kNodeIdName), Tree::kNodeIdIno, false});
      return 0;
    case NodeKind::kSha1Dir:
    case NodeKind::kPrefixDir: {
      out.push_back({"..", Tree::kRootIno, true});
      std::string prefix = node->kind == NodeKind::kSha1Dir ? "" : node->key;
      for (std::string& name : cache_.list_level(prefix)) {
        bool directory = prefix.size() < 6;
        std::uint64_t child = tree_.child(ino, name).value_or(0);
        if (child != 0) out.push_back({std::move(name), child, directory});
      }
      if (node->kind == NodeKind::kSha1Dir) {  // sha1/ also lists every cached hash
        for (std::string& sha1 : cache_.list_all()) {
          std::uint64_t child = tree_.child(ino, sha1).value_or(0);
          if (child != 0) out.push_back({std::move(sha1), child, false});
        }
      }
      return 0;
    }
    case NodeKind::kContent:
    case NodeKind::kNodeIdFile:
      return -ENOTDIR;
  }
  return -EIO;
}

int Filesystem::open(std::uint64_t ino, OpenedFile& out, const CancelToken& cancel) {
  std::optional<Node> node = tree_.node(ino);
  if (!node) return -ENOENT;
  switch (node->kind) {
    case NodeKind::kRoot:
    case NodeKind::kSha1Dir:
    case NodeKind::kPrefixDir:
      return -EISDIR;
    case NodeKind::kNodeIdFile:
      return node_id(out.bytes, cancel);
    case NodeKind::kContent: {
      if (node->key == kEmptySha1) return 0;  // no fd: reads return nothing
      int fd = cache_.open_complete(node->key);
      if (fd == -ENOENT) {
        if (int error = fetcher_.ensure_cached(node->key, cancel); error != 0) return error;
        fd = cache_.open_complete(node->key);
      }
      if (fd < 0) return fd;
      out.fd = fd;
      return 0;
    }
  }
  return -EIO;
}

}  // namespace kacheryfs
