#include "tree/filesystem.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "fetch/fetch_errors.h"
#include "kachery/hash_name.h"

namespace kacheryfs {

namespace {

constexpr std::string_view kNodeIdMetaKey = "kachery-node-id";

// The root's extended attributes, each read from the one owner of its value.
struct RootXattr {
  std::string_view name;
  std::string (*value)(const Counters& counters, const CacheAccounting& accounting,
                       const NodeSet& nodes);
};
constexpr RootXattr kRootXattrs[] = {
    {"user.kachery.online",
     [](const Counters&, const CacheAccounting&, const NodeSet& nodes) -> std::string {
       return nodes.online() ? "1" : "0";
     }},
    {"user.kachery.nodes", [](const Counters&, const CacheAccounting&,
                              const NodeSet& nodes) { return nodes.report_text(); }},
    {"user.kachery.hitrate",
     [](const Counters& counters, const CacheAccounting&, const NodeSet&) -> std::string {
       char text[32];
       std::snprintf(text, sizeof(text), "%.3f", counters.hit_rate());
       return text;
     }},
    {"user.kachery.bytes_fetched",
     [](const Counters& counters, const CacheAccounting&, const NodeSet&) {
       return std::to_string(counters.get(Counter::kBytesFetched));
     }},
    {"user.kachery.cache_bytes",
     [](const Counters&, const CacheAccounting& accounting, const NodeSet&) {
       return std::to_string(accounting.cached_bytes());
     }},
    {"user.kachery.nioerr", [](const Counters& counters, const CacheAccounting&,
                               const NodeSet&) { return std::to_string(counters.eio_total()); }},
    {"user.kachery.eio", [](const Counters& counters, const CacheAccounting&,
                            const NodeSet&) { return counters.eio_report(); }},
};
// The inode table's size: what the kernel holds (a root xattr, read from the tree).
constexpr std::string_view kInodesXattr = "user.kachery.inodes";
constexpr std::string_view kSha1Xattr = "user.kachery.sha1";
constexpr std::string_view kCachedBytesXattr = "user.kachery.cached_bytes";
constexpr std::string_view kVerifiedXattr = "user.kachery.verified";
constexpr std::string_view kServedByXattr = "user.kachery.served_by";
constexpr std::string_view kContentXattrs[] = {kSha1Xattr, kCachedBytesXattr, kVerifiedXattr,
                                               kServedByXattr};

}  // namespace

Filesystem::Filesystem(Tree& tree, ContentCache& cache, ContentAccess& content, Counters& counters,
                       CacheAccounting& accounting, const NodeSet& nodes, NodeIdFetch fetch_node_id,
                       AuthCodeRead read_auth_code, ClientAuthPolicy client_auth)
    : tree_(tree),
      cache_(cache),
      content_(content),
      counters_(counters),
      accounting_(accounting),
      nodes_(nodes),
      fetch_node_id_(std::move(fetch_node_id)),
      read_auth_code_(std::move(read_auth_code)),
      client_auth_(client_auth) {
  node_id_ = cache_.read_meta(kNodeIdMetaKey);
}

void Filesystem::set_node_id(const std::string& node_id) {
  std::lock_guard lock(node_id_mutex_);
  if (node_id_ != node_id) cache_.write_meta(kNodeIdMetaKey, node_id);
  node_id_ = node_id;
}

bool Filesystem::node_id_known() const {
  std::lock_guard lock(node_id_mutex_);
  return node_id_.has_value();
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
  Status result = fetch_node_id_(&fetched, cancel);
  if (!result.ok()) return fetch_errno(counters_, result, EioSite::kNodeIdProbe, "kachery-node-id");
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
      // An id not known yet (a mount that has not reached its node, with no id recorded)
      // is asked of the node now; until the node is reached the file does not exist (ENOENT,
      // not a '?????????' entry), and the root does not list it while every node is down.
      std::string id;
      {
        std::lock_guard lock(node_id_mutex_);
        if (node_id_) id = *node_id_;
      }
      if (id.empty()) {
        Status fetched = fetch_node_id_(&id, cancel);
        bool not_reached =
            fetched.cause() == Cause::kUnreachable || fetched.cause() == Cause::kTimeout;
        if (not_reached) return -ENOENT;
        // A node that answers, but not with an id (a hostile or broken /probe), is an error.
        if (!fetched.ok())
          return fetch_errno(counters_, fetched, EioSite::kNodeIdProbe, "kachery-node-id");
        if (id.empty()) return -EIO;
        set_node_id(id);
      }
      out.size = id.size();
      return 0;
    }
    case NodeKind::kClientAuthFile: {
      std::optional<std::string> code = auth_code();
      if (!code) return -ENOENT;
      out.size = code->size();
      out.changing = true;
      out.mode = client_auth_.group ? 0440 : 0400;
      out.gid = client_auth_.group;
      return 0;
    }
    case NodeKind::kContent: {
      Result<ContentSize> size = content_.size(node.key, cancel);
      if (!size.ok()) return size.error();
      if (size->fetched) tree_.mark_fetched(ino);
      out.content = true;
      out.size = size->size;
      return 0;
    }
  }
  return -EIO;
}

int Filesystem::lookup(std::uint64_t parent, std::string_view name, Attributes& out,
                       const CancelToken& cancel) {
  std::optional<Node> child = tree_.resolve(parent, name);
  if (!child) {  // malformed: no request
    std::string lower(name);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower != name && is_sha1_name(lower))
      spdlog::warn("{} is not a kachery name: sha1 names are lower-case ({})", name, lower);
    return -ENOENT;
  }
  if (auto content = parse_content_name(name))
    content_.note_manifest(content->sha1, content->manifest_sha1);
  // The kernel holds the inode from a successful reply until it forgets it.
  std::uint64_t ino = tree_.acquire(*child);
  int error = attributes_of(ino, *child, out, cancel);
  if (error != 0) tree_.forget(ino, 1);
  return error;
}

void Filesystem::forget(std::uint64_t ino, std::uint64_t lookups) { tree_.forget(ino, lookups); }

int Filesystem::getattr(std::uint64_t ino, Attributes& out, const CancelToken& cancel) {
  std::optional<Node> node = tree_.node(ino);
  if (!node) return -ENOENT;
  return attributes_of(ino, *node, out, cancel);
}

// A listing makes no inode (nothing forgets it): a name shows the inode the kernel holds
// for it, if any.
std::uint64_t Filesystem::listed_ino(const Node& node) const {
  return tree_.existing_ino(node.kind, node.key).value_or(Tree::kUnknownIno);
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
      if (node_id_known() || nodes_.online())
        out.push_back({std::string(Tree::kNodeIdName), Tree::kNodeIdIno, false});
      if (auth_code())
        out.push_back({std::string(Tree::kClientAuthName), Tree::kClientAuthIno, false});
      return 0;
    case NodeKind::kSha1Dir:
    case NodeKind::kPrefixDir: {
      out.push_back({"..", Tree::kRootIno, true});
      std::string prefix = node->kind == NodeKind::kSha1Dir ? "" : node->key;
      for (std::string& name : cache_.list_level(prefix)) {
        bool directory = prefix.size() < 6;
        if (std::optional<Node> child = tree_.resolve(ino, name))
          out.push_back({std::move(name), listed_ino(*child), directory});
      }
      if (node->kind == NodeKind::kSha1Dir) {  // sha1/ also lists every cached hash
        for (std::string& sha1 : cache_.list_all()) {
          if (std::optional<Node> child = tree_.resolve(ino, sha1))
            out.push_back({std::move(sha1), listed_ino(*child), false});
        }
      }
      return 0;
    }
    case NodeKind::kContent:
    case NodeKind::kNodeIdFile:
    case NodeKind::kClientAuthFile:
      return -ENOTDIR;
  }
  return -EIO;
}

std::optional<std::string> Filesystem::auth_code() const {
  if (client_auth_.hidden || !read_auth_code_) return std::nullopt;
  return read_auth_code_();
}

int Filesystem::open(std::uint64_t ino, OpenedFile& out, const CancelToken& cancel,
                     const Caller& caller) {
  std::optional<Node> node = tree_.node(ino);
  if (!node) return -ENOENT;
  switch (node->kind) {
    case NodeKind::kRoot:
    case NodeKind::kSha1Dir:
    case NodeKind::kPrefixDir:
      return -EISDIR;
    case NodeKind::kNodeIdFile:
      return node_id(out.bytes, cancel);
    case NodeKind::kClientAuthFile: {
      bool allowed = caller.uid == client_auth_.owner;
      for (std::uint32_t gid : caller.groups) allowed = allowed || gid == client_auth_.group;
      if (!allowed) return -EACCES;
      std::optional<std::string> code = auth_code();
      if (!code) return -ENOENT;
      out.bytes = std::move(*code);
      out.direct = true;  // a rotated code shows at the next open
      return 0;
    }
    case NodeKind::kContent: {
      ContentRequest request;
      request.sha1 = node->key;
      request.fetched_by_lookup = tree_.take_fetched(ino);
      return content_.open(request, out.content, cancel).error();
    }
  }
  return -EIO;
}

int Filesystem::prepare_read(OpenedFile& file, std::uint64_t offset, std::uint64_t size, int* fd,
                             const CancelToken& cancel) {
  if (!file.content.fd.valid() && !file.content.partial) {
    *fd = -1;  // synthetic bytes, or the empty file
    return 0;
  }
  Result<int> readable = content_.prepare_read(file.content, offset, size, cancel);
  if (!readable.ok()) return readable.error();
  *fd = *readable;
  return 0;
}

int Filesystem::list_xattrs(std::uint64_t ino, std::vector<std::string>& names) {
  std::optional<Node> node = tree_.node(ino);
  if (!node) return -ENOENT;
  names.clear();
  if (node->kind == NodeKind::kRoot) {
    for (const RootXattr& xattr : kRootXattrs) names.emplace_back(xattr.name);
    names.emplace_back(kInodesXattr);
  }
  if (node->kind == NodeKind::kContent) {
    for (std::string_view name : kContentXattrs) names.emplace_back(name);
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
  if (name == kSha1Xattr) {
    value = sha1;
  } else if (name == kVerifiedXattr) {
    value = content_.verified(sha1);
  } else if (name == kServedByXattr) {
    value = nodes_.served_by(sha1);  // the nodes this mount fetched its bytes from
    if (value.empty()) return -ENODATA;
  } else if (name == kCachedBytesXattr) {
    Result<std::uint64_t> bytes = content_.cached_bytes(sha1, cancel);
    if (!bytes.ok()) return bytes.error();
    value = std::to_string(*bytes);
  } else {
    return -ENODATA;
  }
  return 0;
}

int Filesystem::root_xattr(std::string_view name, std::string& value) {
  if (name == kInodesXattr) {
    value = std::to_string(tree_.size());
    return 0;
  }
  for (const RootXattr& xattr : kRootXattrs) {
    if (xattr.name == name) {
      value = xattr.value(counters_, accounting_, nodes_);
      return 0;
    }
  }
  return -ENODATA;
}

}  // namespace kacheryfs
