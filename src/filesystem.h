// What the mounted filesystem does, as plain functions that return 0 or -errno: look up a
// name, get attributes, list a directory, open a file. fuse/ turns each FUSE request
// into one call here and one reply. Content is served from the cache after the fetcher
// made it complete; the node id is fetched once and remembered in the cache.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "blob_source.h"
#include "cancel_token.h"
#include "content_cache.h"
#include "content_fetcher.h"
#include "tree.h"

namespace kacheryfs {

struct Attributes {
  std::uint64_t ino = 0;
  bool directory = false;
  bool content = false;  // immutable content: may be cached by the kernel for long
  std::uint64_t size = 0;
};

struct DirEntry {
  std::string name;
  std::uint64_t ino = 0;
  bool directory = false;
};

struct OpenedFile {
  int fd = -1;        // content: the complete cache file
  std::string bytes;  // small synthetic files (kachery-node-id)
};

// Fetches the node id from the daemon (main.cc binds it to the daemon client's /probe).
using NodeIdFetch = std::function<FetchResult(std::string* node_id, const CancelToken& cancel)>;

class Filesystem {
 public:
  Filesystem(Tree& tree, ContentCache& cache, ContentFetcher& fetcher, NodeIdFetch fetch_node_id);

  int lookup(std::uint64_t parent, std::string_view name, Attributes& out,
             const CancelToken& cancel);
  int getattr(std::uint64_t ino, Attributes& out, const CancelToken& cancel);
  int list(std::uint64_t ino, std::vector<DirEntry>& out);
  int open(std::uint64_t ino, OpenedFile& out, const CancelToken& cancel);

  // Remembers the node id (also in the cache, for offline mounts).
  void set_node_id(const std::string& node_id);

 private:
  int attributes_of(std::uint64_t ino, const Node& node, Attributes& out,
                    const CancelToken& cancel);
  int node_id(std::string& out, const CancelToken& cancel);

  Tree& tree_;
  ContentCache& cache_;
  ContentFetcher& fetcher_;
  NodeIdFetch fetch_node_id_;
  std::mutex node_id_mutex_;
  std::optional<std::string> node_id_;
};

}  // namespace kacheryfs
