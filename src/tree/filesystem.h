// What the mounted filesystem does, as plain functions that return 0 or -errno: look up a
// name, get attributes, list a directory, open a file, read its extended attributes.
// fuse/ turns each FUSE request into one call here and one reply. Content is made present
// by ContentAccess (the same entry point the tool uses); the node id is fetched once and
// remembered in the cache. No FUSE types here.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/cache_accounting.h"
#include "cache/content_cache.h"
#include "fetch/blob_source.h"
#include "fetch/content_access.h"
#include "fetch/node_set.h"
#include "support/cancel_token.h"
#include "support/counters.h"
#include "tree/tree.h"

namespace kacheryfs {

struct Attributes {
  std::uint64_t ino = 0;
  bool directory = false;
  bool content = false;  // immutable content: may be cached by the kernel for long
  std::uint64_t size = 0;
  // A file whose bytes change (client-auth): never cached by the kernel, read directly.
  bool changing = false;
  std::uint32_t mode = 0;            // permission bits; 0 = the defaults (0555 dirs, 0444 files)
  std::optional<std::uint32_t> gid;  // the group, when not the mounting user's
};

// Who asks: the FUSE request's caller.
struct Caller {
  std::uint32_t uid = 0;
  std::vector<std::uint32_t> groups;  // primary and supplementary
};

// Who may read /client-auth: the mounting user (mode 0400), plus a group (0440) with
// -o auth_group; nobody else, whatever allow_other says. Hidden with -o hide_auth.
struct ClientAuthPolicy {
  bool hidden = false;
  std::uint32_t owner = 0;
  std::optional<std::uint32_t> group;
};

// Reads the daemon's current client auth code (fresh each time); nullopt when none is known.
using AuthCodeRead = std::function<std::optional<std::string>()>;

struct DirEntry {
  std::string name;
  std::uint64_t ino = 0;
  bool directory = false;
};

struct OpenedFile {
  OpenContent content;  // content files
  std::string bytes;    // small synthetic files (kachery-node-id, client-auth)
  bool direct = false;  // bypass the kernel's page cache (client-auth)
};

// Fetches the node id from the daemon (the assembly binds it to the daemon client's /probe).
using NodeIdFetch = std::function<Status(std::string* node_id, const CancelToken& cancel)>;

class Filesystem {
 public:
  Filesystem(Tree& tree, ContentCache& cache, ContentAccess& content, Counters& counters,
             CacheAccounting& accounting, const NodeSet& nodes, NodeIdFetch fetch_node_id,
             AuthCodeRead read_auth_code = {}, ClientAuthPolicy client_auth = {});

  int lookup(std::uint64_t parent, std::string_view name, Attributes& out,
             const CancelToken& cancel);
  int getattr(std::uint64_t ino, Attributes& out, const CancelToken& cancel);
  // The kernel dropped `lookups` references to ino (FUSE forget).
  void forget(std::uint64_t ino, std::uint64_t lookups);
  int list(std::uint64_t ino, std::vector<DirEntry>& out);
  int open(std::uint64_t ino, OpenedFile& out, const CancelToken& cancel,
           const Caller& caller = {});
  // Makes [offset, offset + size) of an open file readable and says where from: *fd (-1
  // for the synthetic files, whose bytes are in file.bytes).
  int prepare_read(OpenedFile& file, std::uint64_t offset, std::uint64_t size, int* fd,
                   const CancelToken& cancel);

  // Extended attributes (names in kRootXattrs and kContentXattrs of filesystem.cc).
  int get_xattr(std::uint64_t ino, std::string_view name, std::string& value,
                const CancelToken& cancel);
  int list_xattrs(std::uint64_t ino, std::vector<std::string>& names);

  // The mount's size as df shows it: the cache's limit, what it holds, and what is left.
  struct Space {
    std::uint64_t total = 0;
    std::uint64_t used = 0;
  };
  Space space() const { return {accounting_.capacity(), accounting_.cached_bytes()}; }

  // Remembers the node id (also in the cache, for offline mounts).
  void set_node_id(const std::string& node_id);
  const Tree& tree() const { return tree_; }

 private:
  std::uint64_t listed_ino(const Node& node) const;
  bool node_id_known() const;
  int attributes_of(std::uint64_t ino, const Node& node, Attributes& out,
                    const CancelToken& cancel);
  int node_id(std::string& out, const CancelToken& cancel);
  int root_xattr(std::string_view name, std::string& value);
  std::optional<std::string> auth_code() const;

  Tree& tree_;
  ContentCache& cache_;
  ContentAccess& content_;
  Counters& counters_;
  CacheAccounting& accounting_;
  const NodeSet& nodes_;
  NodeIdFetch fetch_node_id_;
  AuthCodeRead read_auth_code_;
  ClientAuthPolicy client_auth_;
  mutable std::mutex node_id_mutex_;  // a leaf
  std::optional<std::string> node_id_;
};

}  // namespace kacheryfs
