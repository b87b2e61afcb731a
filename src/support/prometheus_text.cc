#include "support/prometheus_text.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <system_error>

namespace kacheryfs {

namespace {

std::string escaped_label(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// The shortest text that reads back as the same double ("0.005", not 0.0050000000000000001).
std::string number(double value) {
  char text[40];
  auto [end, error] = std::to_chars(text, text + sizeof(text), value);
  return error == std::errc() ? std::string(text, end) : "NaN";
}

class Exposition {
 public:
  void family(const char* name, const char* type, const char* help) {
    name_ = name;
    text_ += std::string("# HELP ") + name + " " + help + "\n";
    text_ += std::string("# TYPE ") + name + " " + type + "\n";
  }
  void sample(std::uint64_t value, const std::string& labels = "", const char* suffix = "") {
    sample_text(std::to_string(value), labels, suffix);
  }
  void sample_text(const std::string& value, const std::string& labels, const char* suffix) {
    text_ += name_ + suffix + (labels.empty() ? "" : "{" + labels + "}") + " " + value + "\n";
  }
  std::string take() { return std::move(text_); }

 private:
  std::string text_;
  std::string name_;
};

}  // namespace

std::string prometheus_text(const MetricsSnapshot& snapshot) {
  static const Counters kNone;
  const Counters& totals = snapshot.totals ? *snapshot.totals : kNone;
  Exposition out;
  out.family("kacheryfs_up", "gauge", "1 if a kacheryfs mount is serving this cache");
  out.sample(snapshot.mount_up ? 1 : 0, "cache_dir=\"" + escaped_label(snapshot.cache_dir) + "\"");

  out.family("kacheryfs_node_up", "gauge", "1 if the kachery node answers");
  for (const auto& node : snapshot.nodes)
    out.sample(node.up ? 1 : 0, "node=\"" + escaped_label(node.name) + "\"");
  out.family("kacheryfs_node_served_bytes_total", "counter",
             "content bytes this node served to the mount");
  for (const auto& node : snapshot.nodes)
    out.sample(node.served_bytes, "node=\"" + escaped_label(node.name) + "\"");

  out.family("kacheryfs_cache_size_bytes", "gauge", "bytes of content in the cache");
  out.sample(snapshot.cache_bytes);
  out.family("kacheryfs_cache_limit_bytes", "gauge",
             "the cache's size limit (cache_max); eviction keeps it below this");
  out.sample(snapshot.cache_limit_bytes);
  out.family("kacheryfs_cache_objects", "gauge", "objects in the cache, complete or partial");
  out.sample(snapshot.cache_objects);
  out.family("kacheryfs_cache_partial_objects", "gauge", "objects only partly in the cache");
  out.sample(snapshot.partial_objects);
  out.family("kacheryfs_pinned_bytes", "gauge", "bytes of pinned objects, never evicted");
  out.sample(snapshot.pinned_bytes);

  out.family("kacheryfs_cache_hits_total", "counter", "opens served from complete cached content");
  out.sample(totals.get(Counter::kHits));
  out.family("kacheryfs_cache_misses_total", "counter", "content objects fetched from a node");
  out.sample(totals.get(Counter::kMisses));
  out.family("kacheryfs_downloaded_bytes_total", "counter", "body bytes received from the nodes");
  out.sample(totals.get(Counter::kBytesFetched));
  out.family("kacheryfs_verify_failures_total", "counter",
             "fetched bytes whose SHA-1 did not match");
  out.sample(totals.get(Counter::kVerifyFailures));
  out.family("kacheryfs_eio_total", "counter", "reads and opens failed with EIO, by cause");
  for (std::size_t i = 1; i < static_cast<std::size_t>(EioSite::kCount); ++i) {
    auto site = static_cast<EioSite>(i);
    out.sample(totals.eio(site), std::string("site=\"") + to_string(site) + "\"");
  }

  out.family("kacheryfs_request_duration_seconds", "histogram",
             "duration of each HTTP request to a node (a pipelined round counts once)");
  auto buckets = totals.request_buckets();
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    cumulative += buckets[i];
    std::string bound =
        i < kRequestSecondsBounds.size() ? number(kRequestSecondsBounds[i]) : "+Inf";
    out.sample(cumulative, "le=\"" + bound + "\"", "_bucket");
  }
  out.sample_text(number(totals.request_seconds_sum()), "", "_sum");
  out.sample(cumulative, "", "_count");
  return out.take();
}

std::string write_file_atomically(const std::string& path, const std::string& text) {
  std::string temp = path + ".tmp." + std::to_string(getpid());
  int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return "cannot create " + temp + ": " + std::strerror(errno);
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string error = "cannot write " + temp + ": " + std::strerror(n < 0 ? errno : ENOSPC);
      close(fd);
      unlink(temp.c_str());
      return error;
    }
    done += static_cast<std::size_t>(n);
  }
  int synced = fsync(fd) == 0 ? 0 : errno;
  if (close(fd) != 0 && synced == 0) synced = errno;
  if (synced != 0) {
    unlink(temp.c_str());
    return "cannot write " + temp + ": " + std::strerror(synced);
  }
  if (rename(temp.c_str(), path.c_str()) != 0) {
    std::string error = "cannot rename " + temp + " to " + path + ": " + std::strerror(errno);
    unlink(temp.c_str());
    return error;
  }
  return "";
}

}  // namespace kacheryfs
