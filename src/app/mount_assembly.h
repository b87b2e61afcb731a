// MountAssembly: the one place that builds the object graph of a mount from parsed
// options, for `kacheryfs` and `kacheryfs-cache` alike:
//   daemon clients (one per node) -> node set (failover, spread, health) -> cache (layout,
//   index, keeper, open objects) -> fetchers (whole files, blocks) -> content access ->
//   filesystem.
// The mount adds only the FUSE session on top; the tool uses content() and the cache parts.
// Members are declared in dependency order, so they are destroyed in reverse.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cache/cache_index.h"
#include "cache/cache_keeper.h"
#include "cache/content_cache.h"
#include "cache/open_objects.h"
#include "daemon_client.h"
#include "fetch/block_fetcher.h"
#include "fetch/content_access.h"
#include "fetch/content_fetcher.h"
#include "fetch/node_set.h"
#include "support/counters.h"
#include "support/late_callback.h"
#include "support/options.h"
#include "support/prometheus_text.h"
#include "support/result.h"
#include "tree/filesystem.h"
#include "tree/tree.h"

namespace kacheryfs {

enum class AssemblyRole {
  kMount,   // takes the cache dir's mount lock; counters persist to the index
  kTool,    // shares the cache dir with a running mount, if any
  kReader,  // as kTool, for a cache it cannot write (a read-only file system): reads only
};

class MountAssembly {
 public:
  // Builds everything; a failure carries a one-line message (the cache dir cannot be
  // used, another mount holds it, the index cannot be opened).
  static Result<std::unique_ptr<MountAssembly>> build(const MountOptions& options,
                                                      AssemblyRole role);
  ~MountAssembly();
  MountAssembly(const MountAssembly&) = delete;
  MountAssembly& operator=(const MountAssembly&) = delete;

  const MountOptions& options() const { return options_; }
  ContentCache& cache() { return *cache_; }
  CacheIndex& index() { return *index_; }
  CacheKeeper& keeper() { return *keeper_; }
  // The first node's client (the tool stores through it).
  DaemonClient& client() { return *clients_.front(); }
  NodeSet& nodes() { return nodes_; }
  Counters& counters() { return counters_; }
  ContentAccess& content() { return *content_; }
  Filesystem& filesystem() { return *filesystem_; }
  // Attached by the FUSE session: drops the kernel's cached pages of an inode.
  LateCallback<std::uint64_t>& invalidate_inode() { return invalidate_inode_; }

  // Asks each node for its id and checks the auth code (with its own connections, so that
  // none is left open across the fork of daemonizing); the first node's id is the mount's.
  // Fails, with one line saying why, when no node answers or a node refuses the code or
  // answers wrongly; a node that is merely down is logged and probed later.
  Status probe_daemon();
  // Starts the background work of a running mount (after daemonizing): probing nodes that
  // are down, writing the counters to the index and the nodes' state to the cache's meta.
  void start_background();
  // Stops it and writes the counters one last time (and metrics_file, saying the mount is
  // down).
  void stop_background();

  // The Prometheus text of this cache: its figures and counters as the index totals them
  // over every mount, and `nodes` as given.
  std::string metrics_text(bool mount_up, std::vector<NodeMetrics> nodes);
  // Each node as the mount sees it: up or down, and the bytes it served.
  std::vector<NodeMetrics> node_metrics() const;

 private:
  explicit MountAssembly(const MountOptions& options);
  void persist_counters();
  // Probes the nodes that look up (those that look down are probed on their backoff), so
  // that an idle node that went away shows as down, then writes metrics_file.
  void refresh_metrics_file();
  Status probe_node(std::size_t node);

  MountOptions options_;
  Counters counters_;
  Counters persisted_;  // what the index was told so far
  std::vector<std::unique_ptr<DaemonClient>> clients_;
  NodeSet nodes_;
  std::unique_ptr<ContentCache> cache_;
  std::unique_ptr<CacheIndex> index_;
  std::unique_ptr<OpenObjects> open_objects_;
  std::unique_ptr<CacheKeeper> keeper_;
  LateCallback<std::uint64_t> invalidate_inode_;
  Tree tree_;
  std::unique_ptr<ContentFetcher> fetcher_;
  std::unique_ptr<BlockFetcher> blocks_;
  std::unique_ptr<ContentAccess> content_;
  std::unique_ptr<Filesystem> filesystem_;

  CancelSource stop_background_;
  std::thread background_;
  std::string metrics_error_;  // the last failure to write metrics_file, logged once
};

}  // namespace kacheryfs
