#include "filesystem.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "hash_name.h"

namespace kacheryfs {

namespace {
constexpr std::string_view kNodeIdMetaKey = "kachery-node-id";
}

Filesystem::Filesystem(Tree& tree, ContentCache& cache, ContentFetcher& fetcher,
                       BlockFetcher& blocks, StreamingConfig streaming, NodeIdFetch fetch_node_id)
    : tree_(tree),
      cache_(cache),
      fetcher_(fetcher),
      blocks_(blocks),
      streaming_(streaming),
      fetch_node_id_(std::move(fetch_node_id)) {
  node_id_ = cache_.read_meta(kNodeIdMetaKey);
}

void Filesystem::on_invalidate(std::function<void(std::uint64_t ino)> callback) {
  blocks_.on_failure([this, callback = std::move(callback)](const std::string& sha1) {
    callback(tree_.ino_of(NodeKind::kContent, sha1));
  });
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
  if (auto content = parse_content_name(name); content && !content->manifest_sha1.empty()) {
    std::lock_guard lock(manifests_mutex_);
    manifest_names_[content->sha1] = content->manifest_sha1;
  }
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
    case NodeKind::kContent:
      return open_content(node->key, out, cancel);
  }
  return -EIO;
}

void Filesystem::set_keeper(CacheKeeper* keeper) {
  keeper_ = keeper;
  if (keeper_) keeper_->set_in_use_check([this](const std::string& sha1) { return in_use(sha1); });
}

bool Filesystem::in_use(const std::string& sha1) {
  {
    std::lock_guard lock(open_mutex_);
    if (open_counts_.count(sha1)) return true;
  }
  return blocks_.streaming(sha1);
}

void Filesystem::release(OpenedFile& file) {
  if (file.sha1.empty()) return;
  std::lock_guard lock(open_mutex_);
  auto it = open_counts_.find(file.sha1);
  if (it != open_counts_.end() && --it->second == 0) {
    open_counts_.erase(it);
    if (keeper_) keeper_->index().set_open(file.sha1, false);
  }
}

int Filesystem::open_content(const std::string& sha1, OpenedFile& out, const CancelToken& cancel) {
  if (sha1 == kEmptySha1) return 0;  // no fd: reads return nothing
  int error = open_content_counted(sha1, out, cancel);
  if (error != 0) return error;
  out.sha1 = sha1;
  std::lock_guard lock(open_mutex_);
  if (++open_counts_[sha1] == 1 && keeper_) keeper_->index().set_open(sha1, true);
  return 0;
}

int Filesystem::open_content_counted(const std::string& sha1, OpenedFile& out,
                                     const CancelToken& cancel) {
  int fd = cache_.open_complete(sha1);
  if (keeper_) keeper_->index().add_counter(fd >= 0 ? "hits" : "misses", 1);
  if (fd >= 0) {
    if (keeper_) keeper_->accessed(sha1);
    out.fd = fd;
    return 0;
  }
  SizeAnswer size = fetcher_.blob_size(sha1, cancel);
  if (size.error != 0) return size.error;
  if (size.size <= streaming_.whole_max) {
    // Small enough to fetch whole and verify before any byte is served.
    if (int error = fetcher_.ensure_cached(sha1, cancel); error != 0) return error;
  } else {
    std::optional<Manifest> manifest = manifest_for(sha1, size.size, cancel);
    int error = 0;
    auto partial = blocks_.partial(sha1, size.size, manifest, &error);
    if (!partial) {
      return fetcher_.to_errno(
          {FetchStatus::kLocalError,
           std::string("cannot create the block cache entry: ") + std::strerror(-error)},
          sha1, "open of");
    }
    if (streaming_.strict && !manifest) {
      // Nothing can be verified before the whole file is: fetch it all (in parallel) first.
      if (int fetched = blocks_.fetch_all(partial, cancel); fetched != 0) return fetched;
    } else if (!partial->complete()) {
      out.partial = std::move(partial);
      return 0;
    }
  }
  fd = cache_.open_complete(sha1);
  if (fd < 0) return fd;
  out.fd = fd;
  return 0;
}

std::optional<Manifest> Filesystem::manifest_for(const std::string& sha1, std::uint64_t size,
                                                 const CancelToken& cancel) {
  std::string manifest_sha1;
  {
    std::lock_guard lock(manifests_mutex_);
    auto it = manifest_names_.find(sha1);
    if (it == manifest_names_.end()) return std::nullopt;
    manifest_sha1 = it->second;
  }
  if (fetcher_.ensure_cached(manifest_sha1, cancel) != 0) {
    spdlog::warn("cannot fetch manifest {} of {}; verifying the whole file only", manifest_sha1,
                 sha1);
    return std::nullopt;
  }
  std::ifstream in(cache_.complete_path(manifest_sha1), std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  std::string error;
  auto manifest = parse_manifest(text, &error);
  if (manifest && (manifest->sha1 != sha1 || manifest->size != size))
    error = "it describes another file";
  if (!manifest || !error.empty()) {
    spdlog::warn("ignoring manifest {} of {}: {}", manifest_sha1, sha1, error);
    return std::nullopt;
  }
  return manifest;
}

int Filesystem::prepare_read(OpenedFile& file, std::uint64_t offset, std::uint64_t size, int* fd,
                             const CancelToken& cancel) {
  if (!file.partial) {
    *fd = file.fd;
    return 0;
  }
  const std::shared_ptr<PartialFile>& partial = file.partial;
  std::uint64_t window = 0;
  {
    // A read that starts within 1 MiB of where the previous one ended is sequential (the
    // kernel's own readahead reorders reads a little): the readahead window doubles, from
    // one run up to max_readahead. Any other jump resets it: random reads fetch only their
    // pages.
    std::lock_guard lock(file.readahead_mutex);
    constexpr std::uint64_t kSlack = 1 << 20;
    bool sequential =
        offset == 0 || (offset + kSlack >= file.next_offset && offset <= file.next_offset + kSlack);
    std::uint64_t run = blocks_.config().run_size;
    file.window =
        sequential ? std::min(streaming_.max_readahead, std::max(run, 2 * file.window)) : 0;
    file.next_offset = offset + size;
    window = file.window;
  }
  if (window > 0) blocks_.prefetch(partial, offset + size, window);
  if (int error = blocks_.ensure(partial, offset, size, streaming_.strict, cancel); error != 0)
    return error;
  *fd = partial->data_fd();
  return 0;
}

int Filesystem::list_xattrs(std::uint64_t ino, std::vector<std::string>& names) {
  std::optional<Node> node = tree_.node(ino);
  if (!node) return -ENOENT;
  names.clear();
  if (node->kind == NodeKind::kRoot) {
    names = {"user.kachery.online", "user.kachery.hitrate", "user.kachery.bytes_fetched",
             "user.kachery.cache_bytes", "user.kachery.nioerr"};
  }
  if (node->kind == NodeKind::kContent) {
    names = {"user.kachery.sha1", "user.kachery.cached_bytes", "user.kachery.verified"};
  }
  return 0;
}

int Filesystem::get_xattr(std::uint64_t ino, std::string_view name, std::string& value,
                          const CancelToken& cancel) {
  std::optional<Node> node = tree_.node(ino);
  if (!node) return -ENOENT;
  if (node->kind == NodeKind::kRoot) return root_xattr(name, value);
  if (node->kind != NodeKind::kContent) return -ENODATA;
  const std::string& sha1 = node->key;
  if (name == "user.kachery.sha1") {
    value = sha1;
    return 0;
  }
  if (name != "user.kachery.cached_bytes" && name != "user.kachery.verified") return -ENODATA;
  bool complete = sha1 == kEmptySha1 || cache_.complete_size(sha1).has_value();
  if (name == "user.kachery.verified") {
    value = complete ? "yes" : (blocks_.verified_chunks(sha1) > 0 ? "partial" : "no");
    return 0;
  }
  SizeAnswer size = fetcher_.blob_size(sha1, cancel);
  if (size.error != 0) return size.error;
  value = std::to_string(complete ? size.size : blocks_.partial_bytes(sha1, size.size));
  return 0;
}

int Filesystem::root_xattr(std::string_view name, std::string& value) {
  if (name == "user.kachery.online") {
    value = daemon_state_ == nullptr || daemon_state_->online() ? "1" : "0";
  } else if (name == "user.kachery.hitrate") {
    char text[32];
    std::snprintf(text, sizeof(text), "%.3f", keeper_ ? keeper_->index().hit_rate() : 0.0);
    value = text;
  } else if (name == "user.kachery.bytes_fetched") {
    value = std::to_string(fetcher_.bytes_fetched());
  } else if (name == "user.kachery.cache_bytes") {
    value = std::to_string(keeper_ ? keeper_->cached_bytes() : 0);
  } else if (name == "user.kachery.nioerr") {
    value = std::to_string(fetcher_.io_errors());
  } else {
    return -ENODATA;
  }
  return 0;
}

}  // namespace kacheryfs
