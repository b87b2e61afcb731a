// kacheryfs-cache: looks after a kacheryfs cache dir, whether or not a mount uses it
// (the SQLite index and temp-file-and-rename writes make that safe):
//   status | ls | gc | verify | pin URI|HASH... | unpin URI|HASH... | store FILE... |
//   metrics [FILE]   [--json]
// The cache dir, daemon address and auth come from the same options and environment as
// the mount (-o cache_dir=...,auth_file=..., KACHERY_DAEMON_HOST/PORT, KACHERY_STORAGE_DIR).
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

#include "app/client_config.h"
#include "app/mount_assembly.h"
#include "app/tool_flags.h"
#include "kachery/hash_name.h"
#include "kachery/sha1_hasher.h"
#include "support/logging.h"
#include "support/options.h"
#include "support/printable.h"

namespace {

using namespace kacheryfs;
using json = nlohmann::ordered_json;

const char* kUsage =
    R"(usage: kacheryfs-cache [-o opt,...] [--daemon NODE[,NODE...]] [--json] [--create] COMMAND [ARGS]

commands:
  status                 cache size against its limit, objects, pinned, partial, hit rate, daemon
  ls                     cached objects with size, state and last access
  gc                     evict least recently used objects down to the limits
  verify                 re-hash every complete object; move bad ones to CACHE/bad/; exit 1 if any
  pin [-j N] [--from FILE] URI|HASH|-...
                         fetch completely, verify, and never evict (sha1://<hash>[/name]
                         [?manifest=<sha1>]); -j N fetches N at once; --from FILE and - read
                         one per line (- is stdin); --json gives a result per URI
  unpin [--from FILE] URI|HASH|-...  allow eviction again
  store FILE...          store files on the node (POST /store), print their sha1:// URIs as the
                         kachery client does, and put their bytes straight into this cache
  metrics [FILE]         the Prometheus text format of the cache, its nodes and counters;
                         with FILE, written to it atomically (node_exporter's textfile dir)
)";
const char* kUsageEnd =
    R"(Without --daemon and auth_file=, the daemon and auth file that the cache dir's mount last
used are used. Usage errors exit 2, failures 1.
)";

// What every command works on: the same assembly as a mount's, without the FUSE session.
struct Tool {
  MountAssembly* parts = nullptr;
  MountOptions options;
  bool as_json = false;
  ContentCache* cache = nullptr;
  CacheIndex* index = nullptr;
  CacheKeeper* keeper = nullptr;
};

std::string iso_time(std::int64_t seconds) {
  std::time_t t = static_cast<std::time_t>(seconds);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return text;
}

std::string human(std::uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof(text), unit == 0 ? "%.0f %s" : "%.1f %s", value, units[unit]);
  return text;
}

// sha1://<hash>[/name][?manifest=<sha1>] or a bare hash.
bool parse_target(const std::string& text, std::string* sha1, std::string* manifest) {
  std::string rest = text;
  if (rest.starts_with("sha1://")) rest = rest.substr(7);
  std::string query;
  if (auto q = rest.find('?'); q != std::string::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  if (auto slash = rest.find('/'); slash != std::string::npos) rest = rest.substr(0, slash);
  if (!is_sha1_name(rest)) return false;
  *sha1 = rest;
  manifest->clear();
  if (query.starts_with("manifest=") && is_sha1_name(query.substr(9, 40)))
    *manifest = query.substr(9, 40);
  return true;
}

// Each node as this tool reaches it now, in the order of the options.
std::vector<std::pair<std::string, Status>> probe_nodes(const Tool& tool) {
  std::vector<std::pair<std::string, Status>> probes;
  for (std::size_t node = 0; node < std::max<std::size_t>(1, tool.options.nodes.size()); ++node) {
    DaemonClientConfig config = client_config_from(tool.options, node);
    config.timeouts.connect = std::chrono::milliseconds(2000);
    DaemonClient client(config);
    ProbeInfo info;
    probes.emplace_back(config.address.to_string(), client.probe(&info, NeverCancelled()));
  }
  return probes;
}

int status(Tool& tool) {
  IndexTotals totals = tool.index->totals();
  Counters counters;  // the totals of every mount of this cache, as the index keeps them
  counters.load(tool.index->counters());
  std::uint64_t hits = counters.get(Counter::kHits);
  std::uint64_t misses = counters.get(Counter::kMisses);
  // Each node as this tool reaches it, and each node as the running mount sees it.
  std::vector<std::pair<std::string, Status>> probes = probe_nodes(tool);
  const Status& probed = probes.front().second;
  std::string mount_nodes = tool.cache->read_meta("mount-nodes").value_or("");
  double hit_rate = counters.hit_rate();
  json named = json::object();
  for (const auto& [name, value] : counters.named_values()) named[name] = value;
  if (tool.as_json) {
    json out = {{"cache_dir", tool.options.cache_dir},
                {"bytes", totals.bytes},
                {"max_bytes", tool.keeper->max_bytes()},
                {"min_free_bytes", tool.keeper->min_free_bytes()},
                {"objects", totals.objects},
                {"pinned", totals.pinned},
                {"partial", totals.partial},
                {"hits", hits},
                {"misses", misses},
                {"hit_rate", hit_rate},
                {"counters", named},
                {"daemon", tool.options.daemon.to_string()},
                {"daemon_reachable", probed.ok()}};
    out["nodes"] = json::array();
    for (const auto& [name, result] : probes)
      out["nodes"].push_back(
          {{"node", name}, {"reachable", result.ok()}, {"detail", result.detail()}});
    out["mount_nodes"] = mount_nodes;
    std::cout << out.dump(2) << "\n";
  } else {
    std::cout << "cache dir:  " << tool.options.cache_dir << "\n"
              << "size:       " << human(totals.bytes) << " of " << human(tool.keeper->max_bytes())
              << " (" << totals.bytes << " bytes)\n"
              << "objects:    " << totals.objects << " (" << totals.pinned << " pinned, "
              << totals.partial << " partial)\n"
              << "hit rate:   " << static_cast<int>(hit_rate * 100 + 0.5) << "% (" << hits
              << " hits, " << misses << " misses)\n";
    for (const auto& [name, result] : probes) {
      std::cout << (probes.size() == 1 ? "daemon:     " : "node:       ") << name << " "
                << (result.ok() ? "reachable" : "unreachable (" + result.detail() + ")") << "\n";
    }
    if (!mount_nodes.empty()) {
      std::cout << "the mount's nodes (bytes served, throughput, last error):\n";
      std::istringstream lines(mount_nodes);
      for (std::string line; std::getline(lines, line);) std::cout << "  " << line << "\n";
    }
  }
  return 0;
}

// The Prometheus text of the cache: its figures from the index, each node as this tool
// reaches it now with the bytes the last mount recorded it served; written atomically to
// `file` when one is given (for node_exporter's textfile collector), else printed.
int metrics(Tool& tool, const std::string& file) {
  std::vector<NodeMetrics> nodes;
  std::istringstream recorded(tool.cache->read_meta("mount-nodes").value_or(""));
  std::vector<std::pair<std::string, std::uint64_t>> served;  // "NAME up served=N ..."
  for (std::string line; std::getline(recorded, line);) {
    std::istringstream words(line);
    std::string name, state, field;
    words >> name >> state >> field;
    if (field.starts_with("served="))
      served.emplace_back(name, std::strtoull(field.c_str() + 7, nullptr, 10));
  }
  for (const auto& [name, probed] : probe_nodes(tool)) {
    NodeMetrics node{name, probed.ok(), 0};
    for (const auto& [known, bytes] : served)
      if (known == name) node.served_bytes = bytes;
    nodes.push_back(node);
  }
  std::string text = tool.parts->metrics_text(tool.cache->mount_holds_lock(), std::move(nodes));
  if (file.empty()) {
    std::cout << text;
    return std::cout.flush() ? 0 : 1;
  }
  if (std::string error = write_file_atomically(file, text); !error.empty()) {
    std::cerr << "kacheryfs-cache: " << error << "\n";
    return 1;
  }
  return 0;
}

int list(Tool& tool) {
  auto entries = tool.index->entries();
  if (tool.as_json) {
    json out = json::array();
    for (const auto& e : entries) {
      out.push_back({{"sha1", e.sha1},
                     {"size", e.size},
                     {"bytes", e.bytes},
                     {"state", e.complete ? "complete" : "partial"},
                     {"pinned", e.pinned},
                     {"last_access", iso_time(e.last_access)}});
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  // Columns as wide as their widest value, sizes right-aligned.
  std::size_t size_width = 4, held_width = 4;
  for (const auto& e : entries) {
    size_width = std::max(size_width, std::to_string(e.size).size());
    held_width = std::max(held_width, std::to_string(e.bytes).size());
  }
  char line[256];
  auto row = [&](const char* sha1, const std::string& size, const char* state, const char* pinned,
                 const std::string& held, const std::string& access) {
    std::snprintf(line, sizeof(line), "%-40s  %*s  %-8s  %-6s  %*s  %s\n", sha1,
                  static_cast<int>(size_width), size.c_str(), state, pinned,
                  static_cast<int>(held_width), held.c_str(), access.c_str());
    std::cout << line;
  };
  row("SHA1", "SIZE", "STATE", "PINNED", "HELD", "LAST ACCESS");
  for (const auto& e : entries) {
    row(e.sha1.c_str(), std::to_string(e.size), e.complete ? "complete" : "partial",
        e.pinned ? "yes" : "no", std::to_string(e.bytes), iso_time(e.last_access));
  }
  return 0;
}

int gc(Tool& tool) {
  std::uint64_t freed = tool.keeper->make_room(0);
  IndexTotals totals = tool.index->totals();
  if (tool.as_json) {
    std::cout << json({{"freed_bytes", freed},
                       {"bytes", totals.bytes},
                       {"max_bytes", tool.keeper->max_bytes()}})
                     .dump(2)
              << "\n";
  } else {
    std::cout << "freed " << human(freed) << "; the cache holds " << human(totals.bytes) << " of "
              << human(tool.keeper->max_bytes()) << "\n";
  }
  return 0;
}

int verify(Tool& tool) {
  std::filesystem::path bad_dir = tool.cache->layout().bad_dir();
  std::vector<std::string> bad;
  std::size_t checked = 0;
  for (const std::string& sha1 : tool.cache->list_all()) {
    auto opened = tool.cache->open_complete(sha1);
    if (!opened.ok()) continue;
    int fd = opened->get();
    Sha1Hasher hasher;
    std::vector<char> buffer(1 << 20);
    ssize_t n;
    while ((n = read(fd, buffer.data(), buffer.size())) > 0)
      hasher.update(buffer.data(), static_cast<std::size_t>(n));
    ++checked;
    if (n == 0 && hasher.final_hex() == sha1) continue;
    bad.push_back(sha1);
    std::filesystem::create_directories(bad_dir);
    std::error_code ec;
    std::filesystem::rename(tool.cache->complete_path(sha1), bad_dir / sha1, ec);
    tool.keeper->forget(sha1);
  }
  // The index must describe the disk: drop entries whose files are gone, add complete
  // files it does not know (e.g. after a crash between a rename and its index update).
  std::size_t repaired = 0;
  for (const IndexEntry& entry : tool.index->entries()) {
    bool present = entry.complete ? tool.cache->complete_size(entry.sha1).has_value()
                                  : tool.cache->partial_size(entry.sha1).has_value();
    if (!present) {
      tool.index->remove(entry.sha1);
      ++repaired;
      if (!tool.as_json)
        std::cout << "repaired: " << entry.sha1 << ": the index had it "
                  << (entry.complete ? "complete" : "partial") << ", the cache has no such files\n";
    }
  }
  for (const std::string& sha1 : tool.cache->list_all()) {
    auto entry = tool.index->get(sha1);
    if (!entry || !entry->complete) {
      tool.keeper->complete(sha1, *tool.cache->complete_size(sha1));
      ++repaired;
      if (!tool.as_json)
        std::cout << "repaired: " << sha1 << ": complete in the cache, "
                  << (entry ? "partial" : "absent") << " in the index\n";
    }
  }
  if (tool.as_json) {
    std::cout << json({{"checked", checked},
                       {"bad", bad},
                       {"moved_to", bad_dir.string()},
                       {"index_entries_repaired", repaired}})
                     .dump(2)
              << "\n";
  } else {
    for (const auto& sha1 : bad)
      std::cout << "BAD " << sha1 << " (moved to " << (bad_dir / sha1).string() << ")\n";
    std::cout << checked << " objects checked, " << bad.size() << " bad, " << repaired
              << " index entries repaired\n";
  }
  return bad.empty() ? 0 : 1;
}

// Shows how much of a streamed file is cached until stopped: a bar redrawn in place on a
// terminal, a line per 10% otherwise, nothing with --json.
class PinProgress {
 public:
  PinProgress(std::shared_ptr<const PartialFile> file, bool tty, bool quiet)
      : file_(std::move(file)), thread_([this, tty, quiet] { run(*file_, tty, quiet); }) {}
  ~PinProgress() {
    finished_ = true;
    thread_.join();
  }

 private:
  void run(const PartialFile& file, bool tty, bool quiet) {
    int last_percent = -1;
    for (;;) {
      bool last = finished_.load();
      int percent = static_cast<int>(100.0 * static_cast<double>(file.cached_bytes()) /
                                     static_cast<double>(file.size()));
      if (tty) {
        int bars = percent / 4;
        std::printf("\r%s [%s%s] %3d%% of %s", file.sha1().substr(0, 12).c_str(),
                    std::string(bars, '#').c_str(), std::string(25 - bars, '.').c_str(), percent,
                    human(file.size()).c_str());
        std::fflush(stdout);
      } else if (!quiet && percent / 10 != last_percent / 10) {
        std::printf("%s %d%% of %llu bytes\n", file.sha1().c_str(), percent,
                    static_cast<unsigned long long>(file.size()));
        std::fflush(stdout);
      }
      last_percent = percent;
      if (last) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    if (tty) std::printf("\n");
  }

  std::shared_ptr<const PartialFile> file_;
  std::atomic<bool> finished_{false};
  std::thread thread_;
};

// One line for a batch on a terminal, redrawn in place: files done of all, bytes, failures.
class BatchProgress {
 public:
  BatchProgress(std::size_t total, bool tty)
      : total_(total), tty_(tty), thread_([this] { run(); }) {}
  ~BatchProgress() {
    {
      std::lock_guard lock(mutex_);
      finished_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  void done(std::uint64_t bytes, bool ok) {
    std::lock_guard lock(mutex_);
    ++files_;
    bytes_ += bytes;
    failures_ += ok ? 0 : 1;
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      bool last = finished_;
      if (tty_) {
        std::printf("\rpinned %zu of %zu files, %s%s", files_ - failures_, total_,
                    human(bytes_).c_str(),
                    failures_ ? (", " + std::to_string(failures_) + " failed").c_str() : "");
        std::fflush(stdout);
      }
      if (last) break;
      wake_.wait_for(lock, std::chrono::milliseconds(200));
    }
    if (tty_) std::printf("\n");
  }

  std::size_t total_;
  bool tty_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::size_t files_ = 0;
  std::size_t failures_ = 0;
  std::uint64_t bytes_ = 0;
  bool finished_ = false;
  std::thread thread_;
};

// Why a pin failed, in words: a missing hash is the node's, not a local file's.
std::string pin_failure(int error) {
  if (error == -ENOENT) return "the node does not have it";
  if (error == -EIO) return "the node could not be read, or sent bytes that failed verification";
  return std::strerror(-error);
}

int unpin(Tool& tool, const std::vector<std::string>& targets) {
  json results = json::array();
  int failures = 0;
  for (const std::string& target : targets) {
    std::string sha1, manifest;
    if (!parse_target(target, &sha1, &manifest)) {
      std::cerr << "kacheryfs-cache: '" << target << "' is not a sha1 or sha1:// URI\n";
      ++failures;
      continue;
    }
    bool known = tool.index->set_pinned(sha1, false);
    if (!known) std::cerr << "kacheryfs-cache: " << sha1 << " is not in the cache\n";
    failures += known ? 0 : 1;
    results.push_back({{"sha1", sha1}, {"pinned", false}, {"ok", known}});
    if (known && !tool.as_json) std::cout << "unpinned " << sha1 << "\n";
  }
  if (tool.as_json) std::cout << results.dump(2) << "\n";
  return failures == 0 ? 0 : 1;
}

// Pins every target, `jobs` at a time: a batch of N small files takes about N/jobs round
// trips instead of N. Results come in the order of the targets.
int pin(Tool& tool, const std::vector<std::string>& targets, unsigned jobs) {
  struct Outcome {
    std::string sha1;
    std::uint64_t size = 0;
    bool ok = false;
    std::string why;
  };
  std::vector<Outcome> outcomes(targets.size());
  bool tty = isatty(STDOUT_FILENO) && !tool.as_json;
  // One at a time, each file shows its own progress; a parallel batch shows one bar.
  const bool single = targets.size() == 1 || jobs == 1;
  std::optional<BatchProgress> batch;
  if (!single) batch.emplace(targets.size(), tty);
  std::mutex output_mutex;  // lines printed by the workers
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i; (i = next.fetch_add(1)) < targets.size();) {
      Outcome& out = outcomes[i];
      std::string manifest;
      if (!parse_target(targets[i], &out.sha1, &manifest)) {
        out.why = "not a sha1 or sha1:// URI";
        out.sha1 = targets[i];
      } else {
        // The mount's own entry point, so that manifests, channels and verification work
        // the same as for a read through the mount.
        std::unique_ptr<PinProgress> progress;
        ContentRequest request{
            out.sha1, manifest, Intent::kPin, [&](std::shared_ptr<const PartialFile> file) {
              if (single)
                progress = std::make_unique<PinProgress>(std::move(file), tty, tool.as_json);
            }};
        OpenContent content;
        int error = tool.parts->content().open(request, content, NeverCancelled()).error();
        progress.reset();
        out.size = content.size;
        out.ok = error == 0 && tool.index->set_pinned(out.sha1, true);
        if (!out.ok) out.why = error ? pin_failure(error) : "not indexed";
      }
      if (batch) batch->done(out.size, out.ok);
      std::lock_guard lock(output_mutex);
      if (!out.ok) {
        std::cerr << (tty && !single ? "\n" : "") << "kacheryfs-cache: cannot pin " << targets[i]
                  << ": " << out.why << "\n";
      } else if (!tool.as_json && (single || !tty)) {
        std::cout << "pinned " << out.sha1 << " (" << out.size << " bytes, verified)\n";
      }
    }
  };
  std::vector<std::thread> workers;
  for (unsigned j = 1; j < std::min<std::size_t>(jobs, targets.size()); ++j)
    workers.emplace_back(work);
  work();
  for (auto& worker : workers) worker.join();
  batch.reset();
  int failures = 0;
  json results = json::array();
  for (const Outcome& out : outcomes) {
    failures += out.ok ? 0 : 1;
    json result = {{"sha1", out.sha1}, {"size", out.size}, {"pinned", out.ok}, {"ok", out.ok}};
    if (!out.ok) result["error"] = out.why;
    results.push_back(result);
  }
  if (tool.as_json) std::cout << results.dump(2) << "\n";
  if (tty && !single)
    std::cout << "pinned " << targets.size() - failures << " of " << targets.size() << " files\n";
  return failures == 0 ? 0 : 1;
}

// The targets of pin and unpin: the arguments, where "-" reads stdin, and the lines of
// --from FILE ("-": stdin), blank lines and '#' comments left out.
bool read_targets(const std::string& from, std::vector<std::string>& targets) {
  std::vector<std::string> read;
  auto take = [&](std::istream& in) {
    for (std::string line; std::getline(in, line);) {
      auto first = line.find_first_not_of(" \t\r");
      if (first == std::string::npos || line[first] == '#') continue;
      auto last = line.find_last_not_of(" \t\r");
      read.push_back(line.substr(first, last - first + 1));
    }
  };
  std::vector<std::string> expanded;
  for (const std::string& target : targets) {
    if (target != "-") {
      expanded.push_back(target);
      continue;
    }
    read.clear();
    take(std::cin);
    expanded.insert(expanded.end(), read.begin(), read.end());
  }
  if (!from.empty()) {
    read.clear();
    if (from == "-") {
      take(std::cin);
    } else {
      std::ifstream in(from);
      if (!in) {
        std::cerr << "kacheryfs-cache: cannot read " << from << ": " << std::strerror(errno)
                  << "\n";
        return false;
      }
      take(in);
    }
    expanded.insert(expanded.end(), read.begin(), read.end());
  }
  targets = std::move(expanded);
  return true;
}

// Streams one file to the daemon's /store while hashing it and writing it into the cache,
// in one pass over the file. The daemon answers with the sha1 it computed; the cache entry
// is committed only when that is the sha1 this side computed. Returns 0 or -errno.
int store_one(Tool& tool, const std::string& path, bool tty, json& results) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    std::cerr << "kacheryfs-cache: cannot read " << path << ": " << std::strerror(errno) << "\n";
    return -errno;
  }
  UniqueFd file(fd);
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    std::cerr << "kacheryfs-cache: " << path << " is not a regular file\n";
    return -EINVAL;
  }
  auto size = static_cast<std::uint64_t>(st.st_size);
  std::string name = std::filesystem::path(path).filename().string();
  Status result;
  StoreAnswer answer;
  std::string local_sha1;
  // The real daemon sometimes answers a store with "Unexpected problem renaming file" (a
  // race of its own); a rotated auth code is a 403. Both go away when the store is repeated.
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (lseek(fd, 0, SEEK_SET) != 0) return -errno;
    auto begun = tool.cache->begin_unnamed();
    if (!begun.ok()) {
      std::cerr << "kacheryfs-cache: " << begun.detail() << "\n";
      return begun.error();
    }
    std::unique_ptr<ContentCache::Transaction> tx = std::move(*begun);
    tool.keeper->make_room(size);
    Sha1Hasher hasher;
    std::uint64_t sent = 0;
    int last_percent = -1;
    bool cache_ok = true;
    result = tool.parts->client().store(
        size,
        [&](char* buffer, std::size_t capacity) -> long {
          ssize_t n = read(fd, buffer, capacity);
          if (n <= 0) return -1;
          hasher.update(buffer, static_cast<std::size_t>(n));
          cache_ok = cache_ok && tx->append(buffer, static_cast<std::size_t>(n)) == 0;
          sent += static_cast<std::uint64_t>(n);
          int percent = size > 0 ? static_cast<int>(100 * sent / size) : 100;
          if (tty && percent != last_percent) {
            std::fprintf(stderr, "\r%s [%-25s] %3d%% of %s", name.c_str(),
                         std::string(static_cast<std::size_t>(percent / 4), '#').c_str(), percent,
                         human(size).c_str());
            last_percent = percent;
          }
          return n;
        },
        &answer, NeverCancelled());
    if (tty) std::fprintf(stderr, "\n");
    local_sha1 = hasher.final_hex();
    if (result.ok()) {
      if (answer.sha1 != local_sha1) {
        std::cerr << "kacheryfs-cache: the node says " << path << " is " << answer.sha1
                  << " but its bytes hash to " << local_sha1 << "; not cached\n";
        return -EIO;
      }
      if (cache_ok && tx->commit_as(local_sha1, tool.cache->layout()) == 0)
        tool.keeper->complete(local_sha1, size);
      else
        std::cerr << "kacheryfs-cache: stored, but could not keep a copy in the cache\n";
      break;
    }
    bool again = result.cause() == Cause::kAuthRejected ||
                 (result.cause() == Cause::kServerError &&
                  result.detail().find("renaming") != std::string::npos);
    if (!again) break;
  }
  if (!result.ok()) {
    std::cerr << "kacheryfs-cache: cannot store " << path << ": " << to_string(result.cause())
              << ": " << result.detail() << "\n";
    return -EIO;
  }
  std::string uri = "sha1://" + answer.sha1 + "/" + name;
  if (!answer.manifest_sha1.empty()) uri += "?manifest=" + answer.manifest_sha1;
  if (tool.as_json) {
    results.push_back({{"file", path},
                       {"uri", uri},
                       {"sha1", answer.sha1},
                       {"manifest_sha1", answer.manifest_sha1},
                       {"size", size}});
  } else {
    std::cout << uri << "\n";
  }
  return 0;
}

int store(Tool& tool, const std::vector<std::string>& files) {
  bool tty = isatty(STDERR_FILENO) && !tool.as_json;
  json results = json::array();
  int failures = 0;
  for (const std::string& path : files) failures += store_one(tool, path, tty, results) != 0;
  if (tool.as_json) std::cout << results.dump(2) << "\n";
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  ToolArgs args = parse_tool_args({argv + 1, argv + argc});
  if (args.help) {
    std::cout << kUsage << "\nflags:\n" << tool_flags_help() << kUsageEnd;
    return 0;
  }
  if (args.version) {
    std::cout << "kacheryfs-cache " KACHERYFS_VERSION "\n";
    return 0;
  }
  if (!args.errors.empty()) {
    for (const auto& error : args.errors) std::cerr << "kacheryfs-cache: " << error << "\n";
    return 2;
  }
  if (args.command.empty()) {
    std::cerr << kUsage << "\nflags:\n" << tool_flags_help() << kUsageEnd;
    return 2;
  }
  Tool tool;
  tool.as_json = args.json;
  std::string source = args.daemon;
  const std::vector<std::string>& rest = args.command;
  // A cache dir that a mount uses records that mount's daemon and auth file: use them
  // unless told otherwise, so that status and pin need no repeated options.
  auto parse = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> lists = args.option_lists;
    lists.insert(lists.end(), extra.begin(), extra.end());
    return parse_tool_options(lists, source, process_env);
  };
  ParsedCommandLine parsed = parse({});
  if (!parsed.errors.empty()) {
    for (const auto& error : parsed.errors) std::cerr << "kacheryfs-cache: " << error << "\n";
    return 2;
  }
  const std::string& cache_dir = parsed.options.cache_dir;
  if (!std::filesystem::is_directory(cache_dir) && !args.create) {
    std::cerr << "kacheryfs-cache: cache dir '" << cache_dir
              << "' does not exist (give --create to make an empty one)\n";
    return 1;
  }
  CacheLayout layout(cache_dir);
  auto meta = [&](const char* key) {
    std::ifstream in(layout.meta_dir() / key);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  std::vector<std::string> from_mount;
  if (parsed.options.auth_file.empty() && !meta("mount-auth-file").empty())
    from_mount = {"auth_file=" + meta("mount-auth-file")};
  if (source.empty() && process_env("KACHERY_DAEMON_HOST").value_or("").empty() &&
      !meta("mount-daemon").empty())
    source = meta("mount-daemon");
  parsed = parse(from_mount);
  if (!parsed.errors.empty()) {
    for (const auto& error : parsed.errors) std::cerr << "kacheryfs-cache: " << error << "\n";
    return 2;
  }
  tool.options = parsed.options;
  log_to_stderr("warn");
  umask(tool.options.auth_group.empty() ? 077 : 027);  // as private as the mount's
  // What only reads a cache works on one it cannot write (a read-only file system, a
  // snapshot): status, ls and metrics.
  const std::string& command = rest[0];
  bool reads_only = command == "status" || command == "ls" || command == "metrics";
  bool writable = access(cache_dir.c_str(), W_OK) == 0 || !std::filesystem::exists(cache_dir);
  auto built = MountAssembly::build(
      tool.options, reads_only && !writable ? AssemblyRole::kReader : AssemblyRole::kTool);
  if (!built.ok()) {
    std::cerr << "kacheryfs-cache: " << built.detail() << "\n";
    return 1;
  }
  tool.parts = built->get();
  tool.cache = &tool.parts->cache();
  tool.index = &tool.parts->index();
  tool.keeper = &tool.parts->keeper();
  std::vector<std::string> targets(rest.begin() + 1, rest.end());
  if (command == "status" && targets.empty()) return status(tool);
  if (command == "ls" && targets.empty()) return list(tool);
  if (command == "metrics" && targets.size() <= 1)
    return metrics(tool, targets.empty() ? "" : targets[0]);
  if (command == "gc" && targets.empty()) return gc(tool);
  if (command == "verify" && targets.empty()) return verify(tool);
  if (command == "store" && !targets.empty()) return store(tool, targets);
  if (command == "pin" || command == "unpin") {
    if (!read_targets(args.targets_from, targets)) return 1;
    if (targets.empty()) {
      std::cerr << "kacheryfs-cache: " << command
                << " needs URIs or hashes (arguments, - or --from FILE)\n";
      return 2;
    }
    for (const std::string& target : targets) {
      std::string sha1, manifest;
      if (!parse_target(target, &sha1, &manifest)) {
        std::cerr << "kacheryfs-cache: " << command << ": '" << printable(target)
                  << "' is not a sha1 or sha1:// URI\n";
        return 2;
      }
    }
    return command == "pin" ? pin(tool, targets, args.jobs) : unpin(tool, targets);
  }
  std::cerr << "kacheryfs-cache: unknown command or wrong arguments: " << command
            << " (see --help)\n";
  return 2;
}
