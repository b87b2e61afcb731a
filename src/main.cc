// kacheryfs: mounts a kachery node's content read-only, addressed by SHA-1.
// Parses the command line, wires the core (cache, fetcher, tree), the daemon client and
// the FUSE glue together, and runs the mount. The only file that sees all three layers.
#include <malloc.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <iostream>
#include <system_error>
#include <thread>

#include "block_fetcher.h"
#include "cache_index.h"
#include "cache_keeper.h"
#include "content_cache.h"
#include "content_fetcher.h"
#include "daemon_client.h"
#include "daemon_state.h"
#include "filesystem.h"
#include "fuse_session_runner.h"
#include "logging.h"
#include "options.h"
#include "tree.h"

namespace {

using namespace kacheryfs;

bool check_mountpoint(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    std::cerr << "kacheryfs: bad mount point '" << path << "': " << std::strerror(errno) << "\n";
    return false;
  }
  if (!S_ISDIR(st.st_mode)) {
    std::cerr << "kacheryfs: bad mount point '" << path << "': not a directory\n";
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  // Bounded memory while streaming: few malloc arenas, and large buffers always mmapped
  // (and so returned to the system when freed) instead of kept in per-thread heaps.
  mallopt(M_ARENA_MAX, 2);
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  std::vector<std::string> args(argv, argv + argc);
  ParsedCommandLine parsed = parse_command_line(args, process_env);
  const MountOptions& options = parsed.options;
  if (options.show_help) {
    std::cout << usage_text("kacheryfs");
    return 0;
  }
  if (options.show_version) {
    std::cout << "kacheryfs " KACHERYFS_VERSION "\n";
    return 0;
  }
  if (!parsed.errors.empty()) {
    for (const std::string& error : parsed.errors) std::cerr << "kacheryfs: " << error << "\n";
    return 1;
  }
  if (!check_mountpoint(options.mountpoint)) return 1;
  log_to_stderr(options.debug ? "debug" : options.log_level);

  std::unique_ptr<ContentCache> cache;
  try {
    cache = std::make_unique<ContentCache>(options.cache_dir);
  } catch (const std::exception& e) {
    std::cerr << "kacheryfs: cannot use cache dir '" << options.cache_dir << "': " << e.what()
              << "\n";
    return 1;
  }
  std::string holder;
  if (!cache->lock_for_mount(&holder)) {
    std::cerr << "kacheryfs: cache dir '" << options.cache_dir
              << "' is in use by another kacheryfs (pid " << holder
              << "); unmount it or give this mount its own -o cache_dir\n";
    return 1;
  }
  spdlog::info("{}", describe(options));
  std::string index_error;
  std::unique_ptr<CacheIndex> index = CacheIndex::open(options.cache_dir, &index_error);
  if (!index) {
    std::cerr << "kacheryfs: cannot open the cache index in '" << options.cache_dir
              << "': " << index_error << "\n";
    return 1;
  }
  index->clear_open();  // this mount holds the cache now
  CacheKeeper keeper(*cache, *index,
                     {options.cache_max, options.cache_min_free, options.cache_min_free_fraction});
  keeper.adopt_unindexed_files();
  keeper.make_room(0);
  spdlog::info("cache: {} bytes in {} objects, limit {} bytes, keeping {} bytes free",
               keeper.cached_bytes(), index->totals().objects, keeper.max_bytes(),
               keeper.min_free_bytes());

  Tree tree;
  // The daemon being down is not fatal: cached content stays readable. A probe with its
  // own client (no connection may survive the fork of daemonizing) says so up front.
  std::string node_id;
  {
    DaemonClient probe_client(client_config_from(options));
    ProbeInfo info;
    FetchResult probed = probe_client.probe(&info, NeverCancelled());
    if (probed.ok()) {
      node_id = info.node_id;
      spdlog::info("daemon {} ({}), node {}", options.daemon.to_string(), info.daemon_version,
                   info.node_id);
    } else {
      spdlog::warn("daemon {} unreachable ({}: {}); serving cached files only until it answers",
                   options.daemon.to_string(), to_string(probed.status), probed.detail);
    }
  }

  DaemonClient client(client_config_from(options));
  DaemonState daemon_state(options.daemon.to_string());
  if (node_id.empty())
    daemon_state.note({FetchStatus::kUnreachable, "no answer to /probe at mount time"});
  ObservedSource observed(client, daemon_state);
  FetcherConfig fetcher_config;
  fetcher_config.range_size = options.range_size;
  fetcher_config.negative_ttl = options.negative_timeout;
  fetcher_config.load_missing = !options.channel.empty();
  ContentFetcher fetcher(observed, *cache, fetcher_config);
  BlockFetcher blocks(observed, *cache, fetcher,
                      {BlockFetcherConfig{}.page_size, options.block_size, options.max_conns});
  StreamingConfig streaming{options.whole_max, options.max_readahead, options.verify_strict};
  Filesystem filesystem(tree, *cache, fetcher, blocks, streaming,
                        [&client, &daemon_state](std::string* id, const CancelToken& cancel) {
                          ProbeInfo info;
                          FetchResult result = client.probe(&info, cancel);
                          daemon_state.note(result);
                          if (result.ok()) *id = info.node_id;
                          return result;
                        });
  if (!node_id.empty()) filesystem.set_node_id(node_id);
  fetcher.set_keeper(&keeper);
  blocks.set_keeper(&keeper);
  filesystem.set_keeper(&keeper);
  filesystem.set_daemon_state(&daemon_state);

  FuseContext context;
  context.filesystem = &filesystem;
  context.timeouts.negative = static_cast<double>(options.negative_timeout.count());
  context.max_read = options.max_read;
  FuseMountConfig mount{options.mountpoint, options.fuse_options, options.foreground, options.debug,
                        options.single_threaded};
  std::string level = options.debug ? "debug" : options.log_level;
  // While the daemon is offline, probe it every few seconds, so that the mount notices it
  // is back (and says so once) without waiting for a reader.
  std::atomic<bool> stopping{false};
  std::thread prober;
  int result = run_fuse_session(mount, context, [&](bool daemonized) {
    if (daemonized) {
      log_to_syslog(level);
      cache->record_mount_pid();
    }
    prober = std::thread([&] {
      while (!stopping) {
        for (int i = 0; i < 40 && !stopping; ++i)
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (stopping || daemon_state.online()) continue;
        ProbeInfo info;
        daemon_state.note(client.probe(&info, NeverCancelled()));
      }
    });
  });
  stopping = true;
  if (prober.joinable()) prober.join();
  return result;
}
