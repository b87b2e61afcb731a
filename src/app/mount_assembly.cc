#include "app/mount_assembly.h"

#include <grp.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <optional>
#include <thread>

#include "app/client_config.h"
#include "kachery/sha1_hasher.h"
#include "support/mount_table.h"

namespace kacheryfs {

namespace {

std::vector<std::unique_ptr<DaemonClient>> clients_for(const MountOptions& options,
                                                       Counters& counters) {
  std::vector<std::unique_ptr<DaemonClient>> clients;
  std::size_t count = std::max<std::size_t>(1, options.nodes.size());
  for (std::size_t node = 0; node < count; ++node) {
    DaemonClientConfig config = client_config_from(options, node);
    if (count > 1) config.retries = 0;  // the node set retries, over every node
    config.on_request = [&counters](auto took) { counters.observe_request(took); };
    clients.push_back(std::make_unique<DaemonClient>(config));
  }
  return clients;
}

std::vector<NodeEntry> entries_for(const std::vector<std::unique_ptr<DaemonClient>>& clients) {
  std::vector<NodeEntry> entries;
  for (const auto& client : clients)
    entries.push_back({client->config().address.to_string(), client.get()});
  return entries;
}

}  // namespace

MountAssembly::MountAssembly(const MountOptions& options)
    : options_(options),
      clients_(clients_for(options, counters_)),
      nodes_(
          entries_for(clients_),
          NodeSetConfig{options.spread, NodeSetConfig{}.first_backoff, NodeSetConfig{}.max_backoff,
                        NodeSetConfig{}.missing_ttl, clients_.size() > 1 ? options.retries : 0}) {}

MountAssembly::~MountAssembly() { stop_background(); }

namespace {

// The daemon's auth file as it is now, byte for byte. The daemon rotates it by unlinking
// and renaming, so a missing file is retried for a moment before it counts as absent.
std::optional<std::string> read_auth_file(const std::string& path) {
  if (path.empty()) return std::nullopt;
  for (int attempt = 0; attempt < 5; ++attempt) {
    std::ifstream in(path, std::ios::binary);
    if (in) {
      std::string code((std::istreambuf_iterator<char>(in)), {});
      if (!code.empty()) return code;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return std::nullopt;
}

// How long a new mount waits for the previous mount of its cache dir to exit once that
// one's mount point is gone.
constexpr std::chrono::seconds kExitingHolderWait{10};

}  // namespace

Result<std::unique_ptr<MountAssembly>> MountAssembly::build(const MountOptions& options,
                                                            AssemblyRole role) {
  std::unique_ptr<MountAssembly> a(new MountAssembly(options));
  const std::string& dir = options.cache_dir;
  ClientAuthPolicy client_auth{options.hide_auth, static_cast<std::uint32_t>(getuid()), {}};
  if (!options.auth_group.empty()) {
    group entry{};
    group* found = nullptr;
    std::vector<char> buffer(16384);
    getgrnam_r(options.auth_group.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (found == nullptr)
      return fail(-EINVAL, "auth_group '" + options.auth_group + "': no such group");
    client_auth.group = static_cast<std::uint32_t>(found->gr_gid);
  }
  const bool read_only = role == AssemblyRole::kReader;
  try {
    a->cache_ = std::make_unique<ContentCache>(dir, read_only);
  } catch (const std::filesystem::filesystem_error& e) {
    return fail(-EIO, "cannot use cache dir '" + dir +
                          "': " + (e.path1().empty() ? "" : e.path1().string() + ": ") +
                          e.code().message());
  } catch (const std::system_error& e) {
    return fail(-EIO, "cannot use cache dir '" + dir + "': " + e.code().message());
  }
  // The cache holds the node's content: refuse one that another user owns (its files could
  // be swapped under this mount), and keep it private, or readable by auth_group only.
  struct stat root_stat {};
  if (!read_only && (stat(dir.c_str(), &root_stat) != 0 || root_stat.st_uid != geteuid())) {
    return fail(-EPERM, "cache dir '" + dir + "' belongs to uid " +
                            std::to_string(root_stat.st_uid) +
                            ", not to this user; give this mount its own -o cache_dir");
  }
  if (read_only) {
    // Nothing is changed in a cache that cannot be written.
  } else if (client_auth.group) {
    if (chown(dir.c_str(), static_cast<uid_t>(-1), *client_auth.group) != 0 ||
        chmod(dir.c_str(), 02750) != 0)
      return fail(-errno, "cannot give cache dir '" + dir + "' to group " + options.auth_group);
  } else if ((root_stat.st_mode & 077) != 0 && chmod(dir.c_str(), 0700) != 0) {
    return fail(-errno, "cannot make cache dir '" + dir + "' private");
  }
  if (role == AssemblyRole::kMount) {
    // A mount that was just unmounted still holds the lock while it flushes and exits (a
    // remount, an automount's next access): its mount point is gone, so it is waited for,
    // a bounded time. A mount that is still mounted is refused at once.
    const std::string mountpoint = canonical_mountpoint(options.mountpoint);
    const auto deadline = std::chrono::steady_clock::now() + kExitingHolderWait;
    ContentCache::LockHolder holder;
    while (!a->cache_->lock_for_mount(mountpoint, &holder)) {
      bool exiting = !holder.mountpoint.empty() && !mounted_device(holder.mountpoint);
      if (!exiting) {
        return fail(-EBUSY,
                    "cache dir '" + dir + "' is in use by another kacheryfs (pid " + holder.pid +
                        (holder.mountpoint.empty() ? "" : ", mounted on " + holder.mountpoint) +
                        "); unmount it or give this mount its own -o cache_dir");
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return fail(-EBUSY, "cache dir '" + dir + "' is still held by kacheryfs pid " + holder.pid +
                                ", unmounted from " + holder.mountpoint + " but not exited after " +
                                std::to_string(kExitingHolderWait.count()) + " s");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  auto index = CacheIndex::open(a->cache_->layout(), read_only);
  if (!index.ok())
    return fail(-EIO, "cannot open the cache index in '" + dir + "': " + index.detail());
  a->index_ = std::move(*index);
  if (role == AssemblyRole::kMount) a->index_->clear_open();  // this mount holds the cache now
  CacheIndex& index_ref = *a->index_;
  a->open_objects_ = std::make_unique<OpenObjects>(
      [&index_ref](const std::string& sha1, bool open) { index_ref.set_open(sha1, open); });
  a->keeper_ = std::make_unique<CacheKeeper>(
      *a->cache_, *a->index_,
      QuotaConfig{options.cache_max, options.cache_min_free, options.cache_min_free_fraction},
      *a->open_objects_);
  if (!read_only) a->keeper_->adopt_unindexed_files();

  FetcherConfig fetcher_config;
  fetcher_config.range_size = options.range_size;
  fetcher_config.negative_ttl = options.negative_timeout;
  fetcher_config.load_missing = !options.channel.empty();
  a->fetcher_ = std::make_unique<ContentFetcher>(a->nodes_, *a->cache_, *a->keeper_, a->counters_,
                                                 fetcher_config);
  MountAssembly* self = a.get();
  a->blocks_ = std::make_unique<BlockFetcher>(
      a->nodes_, *a->cache_, *a->keeper_, a->counters_, *a->open_objects_,
      BlockFetcherConfig{BlockFetcherConfig{}.page_size, options.block_size, options.max_conns},
      [self](const std::string& sha1) {
        if (auto ino = self->tree_.existing_ino(NodeKind::kContent, sha1))
          self->invalidate_inode_(*ino);
      });
  a->content_ = std::make_unique<ContentAccess>(
      *a->cache_, *a->fetcher_, *a->blocks_, *a->keeper_, a->counters_, *a->open_objects_,
      StreamingConfig{options.whole_max, options.max_readahead, options.verify_strict});
  a->filesystem_ = std::make_unique<Filesystem>(
      a->tree_, *a->cache_, *a->content_, a->counters_, *a->keeper_, a->nodes_,
      [self](std::string* id, const CancelToken& cancel) {
        ProbeInfo info;
        Status result = self->clients_.front()->probe(&info, cancel);
        self->nodes_.note(0, result);
        if (result.ok()) *id = info.node_id;
        return result;
      },
      [auth_file = options.auth_file] { return read_auth_file(auth_file); }, client_auth);
  return a;
}

Status MountAssembly::probe_node(std::size_t node) {
  DaemonClient probe_client(client_config_from(options_, node));
  const std::string name = probe_client.config().address.to_string();
  ProbeInfo info;
  Status probed = probe_client.probe(&info, NeverCancelled());
  // The second request, on the connection the first opened, checks the auth code (or that
  // the node needs none, when none was given) and measures the round trip that size
  // discovery plans its rounds by.
  if (probed.ok()) probed = probe_client.check_auth(NeverCancelled());
  bool unreachable = probed.cause() == Cause::kUnreachable || probed.cause() == Cause::kTimeout;
  if (!probed.ok()) {
    std::string why =
        probed.cause() != Cause::kAuthRejected
            ? "is unreachable (" + std::string(to_string(probed.cause())) + ": " + probed.detail() +
                  ")"
        : probe_client.config().auth_file.empty()
            ? "requires a client auth code and none was given: add -o auth_file=FILE, a copy "
              "of the node's client-auth (see 'Authentication' in the README)"
            : "rejects the auth code (" + probed.detail() + ")";
    // An unreachable node is noted (and logged once) as offline; the prober notices when
    // it is back.
    if (unreachable && !options_.require_daemon)
      nodes_.note(node, {probed.cause(), std::string(to_string(probed.cause())) + ": " +
                                             probed.detail() + " at mount time"});
    if (probed.cause() == Cause::kProtocolError) why = "answers wrongly (" + probed.detail() + ")";
    return fail(probed.cause() == Cause::kAuthRejected ? -EACCES
                : unreachable                          ? -EHOSTUNREACH
                                                       : -EPROTO,
                (clients_.size() == 1 ? "daemon " : "node ") + name + " " + why);
  }
  const LinkEstimate measured = probe_client.link();
  clients_[node]->adopt_link(measured);
  spdlog::debug("{}: round trip {:.2f} ms", name, measured.round_trip * 1e3);
  if (node == 0) filesystem_->set_node_id(info.node_id);
  spdlog::info("{} {} ({}), node {}", clients_.size() == 1 ? "daemon" : "node", name,
               info.daemon_version, info.node_id);
  return ok_status();
}

Status MountAssembly::probe_daemon() {
  std::optional<Status> first_unreachable;
  std::optional<Status> misconfigured;
  bool any_answered = false;
  // The nodes are probed together, so that nodes that do not answer delay the mount by
  // one timeout, not by one each.
  std::vector<std::future<Status>> probes;
  for (std::size_t node = 0; node < clients_.size(); ++node)
    probes.push_back(std::async(std::launch::async, [this, node] { return probe_node(node); }));
  for (std::size_t node = 0; node < clients_.size(); ++node) {
    Status status = probes[node].get();
    if (status.ok()) {
      any_answered = true;
    } else if (status.error() == -EHOSTUNREACH) {
      if (!first_unreachable) first_unreachable = status;
      if (clients_.size() > 1 && !options_.require_daemon) spdlog::warn("{}", status.detail());
    } else if (!misconfigured) {
      misconfigured = status;
    }
  }
  // The tool finds a mount's nodes here (the codes themselves are never written anywhere).
  cache_->write_meta("mount-daemon",
                     options_.source.empty() ? options_.daemon.to_string() : options_.source);
  cache_->write_meta("mount-auth-file", options_.auth_file);
  if (misconfigured) return *misconfigured;
  if (!any_answered && first_unreachable) return *first_unreachable;
  return ok_status();
}

void MountAssembly::persist_counters() {
  auto now = counters_.named_values();
  auto before = persisted_.named_values();
  for (std::size_t i = 0; i < now.size(); ++i) {
    std::uint64_t delta = now[i].second - before[i].second;
    if (delta > 0) index_->add_counter(now[i].first, static_cast<std::int64_t>(delta));
  }
  persisted_.load(now);
}

void MountAssembly::start_background() {
  // What the first large read would otherwise wait for: OpenSSL's setup and the threads.
  warm_up_sha1();
  blocks_->start();
  background_ = std::thread([this] {
    // A node that is down is probed after its backoff, so that the mount notices it is back
    // (and says so once) without waiting for a reader. Counters reach the index every
    // 200 ms; each second the byte count is taken from the index again and the nodes'
    // state reaches the cache's meta (for kacheryfs-cache status) if it changed;
    // metrics_file is written at once and then every metrics_interval. Each node that is
    // up keeps a connection ready (keep_warm).
    std::string nodes_written;
    auto next_metrics = std::chrono::steady_clock::now();
    for (unsigned tick = 1; !stop_background_.cancelled(); ++tick) {
      std::vector<NodeReport> health = nodes_.report();
      for (std::size_t node = 0; node < clients_.size(); ++node)
        if (node < health.size() && health[node].up)
          clients_[node]->keep_warm(options_.keep_warm, stop_background_);
      if (!options_.metrics_file.empty() && std::chrono::steady_clock::now() >= next_metrics) {
        refresh_metrics_file();
        next_metrics = std::chrono::steady_clock::now() + options_.metrics_interval;
      }
      if (!sleep_unless_cancelled(std::chrono::milliseconds(50), stop_background_)) break;
      if (tick % 4 == 0) {
        persist_counters();
        index_->flush();
      }
      for (std::size_t node : nodes_.due_for_probe()) {
        ProbeInfo info;
        Status probed = clients_[node]->probe(&info, stop_background_);
        if (stop_background_.cancelled()) break;
        nodes_.note(node, probed);
      }
      if (tick % 20 == 0) {
        keeper_->resync();  // the tool may have stored, pinned or evicted beside the mount
        for (auto& client : clients_) client->prune_idle();
        std::string report = nodes_.report_text();
        if (report != nodes_written) cache_->write_meta("mount-nodes", report);
        nodes_written = report;
      }
    }
  });
}

void MountAssembly::refresh_metrics_file() {
  std::vector<std::future<void>> probes;
  std::vector<NodeReport> before = nodes_.report();
  for (std::size_t node = 0; node < clients_.size(); ++node) {
    if (!before[node].up) continue;
    probes.push_back(std::async(std::launch::async, [this, node] {
      ProbeInfo info;
      Status probed = clients_[node]->probe(&info, stop_background_);
      if (!stop_background_.cancelled()) nodes_.note(node, probed);
    }));
  }
  for (auto& probe : probes) probe.get();
  if (stop_background_.cancelled()) return;
  persist_counters();
  std::string error =
      write_file_atomically(options_.metrics_file, metrics_text(true, node_metrics()));
  if (!error.empty() && error != metrics_error_) spdlog::warn("metrics_file: {}", error);
  metrics_error_ = error;
}

void MountAssembly::stop_background() {
  stop_background_.cancel();
  const bool background_started = background_.joinable();
  if (background_started) {
    background_.join();
    // Transfers under way end first, so that the counters written below count every byte
    // that arrived (and the metrics agree with the index).
    blocks_->stop();
    cache_->write_meta("mount-nodes", nodes_.report_text());
  }
  if (index_) persist_counters();
  if (background_started && !options_.metrics_file.empty())
    write_file_atomically(options_.metrics_file, metrics_text(false, node_metrics()));
}

std::vector<NodeMetrics> MountAssembly::node_metrics() const {
  std::vector<NodeMetrics> out;
  for (const NodeReport& node : nodes_.report())
    out.push_back({node.name, node.up, node.bytes_served});
  return out;
}

std::string MountAssembly::metrics_text(bool mount_up, std::vector<NodeMetrics> nodes) {
  IndexTotals totals = index_->totals();
  Counters all_mounts;
  all_mounts.load(index_->counters());
  MetricsSnapshot snapshot{mount_up,       options_.cache_dir,   std::move(nodes),
                           totals.bytes,   keeper_->max_bytes(), totals.objects,
                           totals.partial, totals.pinned_bytes,  &all_mounts};
  return prometheus_text(snapshot);
}

}  // namespace kacheryfs
