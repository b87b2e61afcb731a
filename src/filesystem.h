// What the mounted filesystem does, as plain functions that return 0 or -errno: look up a
// name, get attributes, list a directory, open a file. fuse/ turns each FUSE request
// into one call here and one reply. Content is served from the cache after the fetcher
// made it complete; the node id is fetched once and remembered in the cache.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "blob_source.h"
#include "block_fetcher.h"
#include "cancel_token.h"
#include "content_cache.h"
#include "content_fetcher.h"
#include "daemon_state.h"
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
  std::string sha1;                      // content files: counted as open until released
  int fd = -1;                           // content: the complete cache file
  std::string bytes;                     // small synthetic files (kachery-node-id)
  std::shared_ptr<PartialFile> partial;  // a large file streamed through the block cache
  // Sequential-read detection for readahead, per open handle.
  std::mutex readahead_mutex;
  std::uint64_t next_offset = 0;
  std::uint64_t window = 0;
};

struct StreamingConfig {
  std::uint64_t whole_max = 64 << 20;      // files up to this size are fetched whole at open
  std::uint64_t max_readahead = 64 << 20;  // largest readahead window of a sequential reader
  bool strict = false;                     // serve no byte before it is verified
};

// Fetches the node id from the daemon (main.cc binds it to the daemon client's /probe).
using NodeIdFetch = std::function<FetchResult(std::string* node_id, const CancelToken& cancel)>;

class Filesystem {
 public:
  Filesystem(Tree& tree, ContentCache& cache, ContentFetcher& fetcher, BlockFetcher& blocks,
             StreamingConfig streaming, NodeIdFetch fetch_node_id);

  int lookup(std::uint64_t parent, std::string_view name, Attributes& out,
             const CancelToken& cancel);
  int getattr(std::uint64_t ino, Attributes& out, const CancelToken& cancel);
  int list(std::uint64_t ino, std::vector<DirEntry>& out);
  int open(std::uint64_t ino, OpenedFile& out, const CancelToken& cancel);
  // Makes [offset, offset + size) of an open file readable and says where from: *fd (-1
  // for the synthetic files, whose bytes are in file.bytes).
  int prepare_read(OpenedFile& file, std::uint64_t offset, std::uint64_t size, int* fd,
                   const CancelToken& cancel);

  // Extended attributes of content files: user.kachery.sha1, user.kachery.cached_bytes,
  // user.kachery.verified (yes / partial / no); of the root: user.kachery.online (1/0),
  // user.kachery.hitrate, user.kachery.bytes_fetched, user.kachery.cache_bytes,
  // user.kachery.nioerr.
  int get_xattr(std::uint64_t ino, std::string_view name, std::string& value,
                const CancelToken& cancel);
  int list_xattrs(std::uint64_t ino, std::vector<std::string>& names);

  // Ends an open of a content file (its cache entry may be evicted again).
  void release(OpenedFile& file);
  // Accounting: objects in use (open) may not be evicted; hits and misses are counted.
  void set_keeper(CacheKeeper* keeper);
  // The daemon's reachability, shown on the root as user.kachery.online.
  void set_daemon_state(const DaemonState* state) { daemon_state_ = state; }
  bool in_use(const std::string& sha1);

  // Called with the inode of a file whose cached pages must be dropped (fuse/ sets it).
  void on_invalidate(std::function<void(std::uint64_t ino)> callback);

  // Remembers the node id (also in the cache, for offline mounts).
  void set_node_id(const std::string& node_id);

 private:
  int attributes_of(std::uint64_t ino, const Node& node, Attributes& out,
                    const CancelToken& cancel);
  int node_id(std::string& out, const CancelToken& cancel);
  int open_content(const std::string& sha1, OpenedFile& out, const CancelToken& cancel);
  int root_xattr(std::string_view name, std::string& value);
  int open_content_counted(const std::string& sha1, OpenedFile& out, const CancelToken& cancel);
  std::optional<Manifest> manifest_for(const std::string& sha1, std::uint64_t size,
                                       const CancelToken& cancel);

  Tree& tree_;
  ContentCache& cache_;
  ContentFetcher& fetcher_;
  BlockFetcher& blocks_;
  StreamingConfig streaming_;
  NodeIdFetch fetch_node_id_;
  std::mutex node_id_mutex_;
  std::optional<std::string> node_id_;
  CacheKeeper* keeper_ = nullptr;
  const DaemonState* daemon_state_ = nullptr;
  std::mutex open_mutex_;
  std::unordered_map<std::string, int> open_counts_;
  std::mutex manifests_mutex_;
  std::unordered_map<std::string, std::string> manifest_names_;  // sha1 -> manifest sha1
};

}  // namespace kacheryfs
