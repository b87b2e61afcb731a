#include "fetch/node_set.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <thread>

#include "support/printable.h"

namespace kacheryfs {

namespace {

constexpr std::size_t kMaxServedFiles = 10000;     // files whose origins are remembered
constexpr std::size_t kMaxSegmentsPerFile = 4096;  // then segments of a node are merged
constexpr std::size_t kMaxMissingPerNode = 10000;
constexpr std::uint64_t kMinMeasuredBytes = 256 << 10;  // smaller ranges measure latency

// Whether a result says the node itself is unwell (rather than the file or this reader).
bool node_failed(Cause cause) {
  switch (cause) {
    case Cause::kUnreachable:
    case Cause::kTimeout:
    case Cause::kServerError:
    case Cause::kProtocolError:
    case Cause::kAuthRejected:
      return true;
    default:
      return false;
  }
}

}  // namespace

NodeSet::NodeSet(std::vector<NodeEntry> nodes, NodeSetConfig config)
    : nodes_(std::move(nodes)), config_(config), health_(nodes_.size()) {}

std::string NodeSet::labelled(std::size_t node, const std::string& detail) const {
  if (nodes_.size() == 1) return detail;
  return "node " + nodes_[node].name + ": " + detail;
}

bool NodeSet::online() const {
  std::lock_guard lock(mutex_);
  return std::any_of(health_.begin(), health_.end(), [](const Health& h) { return h.up; });
}

void NodeSet::note(std::size_t node, const Status& result) {
  std::lock_guard lock(mutex_);
  note_locked(node, result);
}

void NodeSet::note_locked(std::size_t node, const Status& result) {
  Health& h = health_[node];
  if (result.cause() == Cause::kCancelled || result.cause() == Cause::kLocalError) return;
  bool failed = node_failed(result.cause());
  if (failed) h.last_error = std::string(to_string(result.cause())) + ": " + result.detail();
  if (failed && h.up) {
    h.up = false;
    h.backoff = config_.first_backoff;
    h.next_probe = std::chrono::steady_clock::now() + h.backoff;
    bool others_up =
        std::any_of(health_.begin(), health_.end(), [](const Health& other) { return other.up; });
    spdlog::warn(
        "{} {} {} ({}); {}", nodes_.size() == 1 ? "daemon" : "node", nodes_[node].name,
        result.cause() == Cause::kAuthRejected ? "refuses this mount's requests" : "is offline",
        printable(result.detail()),
        others_up ? "the other nodes serve its requests"
                  : "cached files stay readable, others fail with EIO until it is back");
  } else if (failed) {
    h.backoff = std::min(config_.max_backoff, h.backoff * 2);
    h.next_probe = std::chrono::steady_clock::now() + h.backoff;
  } else if (!h.up) {
    h.up = true;
    spdlog::info("{} {} is back online", nodes_.size() == 1 ? "daemon" : "node", nodes_[node].name);
  }
}

std::vector<std::size_t> NodeSet::due_for_probe() {
  std::lock_guard lock(mutex_);
  std::vector<std::size_t> due;
  auto now = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < health_.size(); ++i) {
    if (!health_[i].up && now >= health_[i].next_probe) due.push_back(i);
  }
  return due;
}

std::size_t NodeSet::pick(const std::string& sha1, std::uint64_t bytes,
                          const std::vector<bool>& tried, bool trust_missing) {
  std::lock_guard lock(mutex_);
  auto now = std::chrono::steady_clock::now();
  auto lacks = [&](Health& h) {
    auto it = h.missing.find(sha1);
    if (it == h.missing.end()) return false;
    if (now >= it->second) {
      h.missing.erase(it);
      return false;
    }
    if (!trust_missing) return false;
    it->second = now + config_.missing_ttl;  // skipped while another node serves sha1
    return true;
  };
  std::size_t chosen = kNone;
  std::size_t fallback = kNone;  // a down node, when no up node is left
  bool spread = config_.spread && !one_node_at_a_time_.contains(sha1);
  double fastest = 0;
  for (const Health& h : health_) fastest = std::max(fastest, h.throughput);
  double best_finish = 0;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    Health& h = health_[i];
    if (tried[i] || h.distrusted.contains(sha1) || lacks(h)) continue;
    if (!h.up) {
      if (fallback == kNone) fallback = i;
      continue;
    }
    if (!spread) {
      chosen = i;
      break;
    }
    // The node expected to finish these bytes first; an unmeasured node is assumed as fast
    // as the fastest one, so that it gets measured.
    double rate = h.throughput > 0 ? h.throughput : (fastest > 0 ? fastest : 1.0);
    double finish = static_cast<double>(h.bytes_in_flight + bytes) / rate;
    if (chosen == kNone || finish < best_finish) {
      chosen = i;
      best_finish = finish;
    }
  }
  if (chosen == kNone) chosen = fallback;
  if (chosen != kNone) health_[chosen].bytes_in_flight += bytes;
  return chosen;
}

std::uint64_t NodeSet::reports_of(const std::string& sha1) const {
  std::lock_guard lock(mutex_);
  auto it = bad_reports_.find(sha1);
  return it == bad_reports_.end() ? 0 : it->second;
}

void NodeSet::finish_attempt(std::size_t node, const std::string& sha1, std::uint64_t reserved,
                             std::uint64_t start, std::uint64_t end,
                             std::chrono::steady_clock::duration took, const Status& result,
                             std::uint64_t reports) {
  std::lock_guard lock(mutex_);
  auto reported = bad_reports_.find(sha1);
  bool stale = (reported == bad_reports_.end() ? 0 : reported->second) != reports;
  Health& h = health_[node];
  h.bytes_in_flight -= reserved;
  std::uint64_t bytes = end - start;
  h.bytes_served += bytes;
  double seconds = std::chrono::duration<double>(took).count();
  if (bytes >= kMinMeasuredBytes && seconds > 0) {
    double rate = static_cast<double>(bytes) / seconds;
    h.throughput = h.throughput == 0 ? rate : 0.7 * h.throughput + 0.3 * rate;
  }
  if (bytes > 0 && !stale) {
    auto [it, inserted] = served_.try_emplace(sha1);
    if (inserted) {
      served_order_.push_back(sha1);
      if (served_order_.size() > kMaxServedFiles) {
        served_.erase(served_order_.front());
        served_order_.pop_front();
      }
    }
    std::vector<Segment>& segments = it->second;
    auto same_node = std::find_if(segments.rbegin(), segments.rend(),
                                  [&](const Segment& s) { return s.node == node; });
    if (same_node != segments.rend() &&
        (same_node->end == start || segments.size() >= kMaxSegmentsPerFile)) {
      same_node->start = std::min(same_node->start, start);
      same_node->end = std::max(same_node->end, end);
    } else {
      segments.push_back({start, end, node});
    }
  }
  if (result.cause() == Cause::kNotFound) {
    if (h.missing.size() >= kMaxMissingPerNode) h.missing.clear();
    h.missing[sha1] = std::chrono::steady_clock::now() + config_.missing_ttl;
  }
  note_locked(node, result);
}

Status NodeSet::read_range(std::string_view sha1, std::uint64_t start, std::uint64_t end,
                           const ByteSink& sink, const CancelToken& cancel) {
  return read_range_skipping(std::string(sha1), start, end, sink, cancel,
                             std::vector<bool>(nodes_.size(), false));
}

Status NodeSet::read_range_skipping(const std::string& sha1, std::uint64_t start, std::uint64_t end,
                                    const ByteSink& sink, const CancelToken& cancel,
                                    const std::vector<bool>& asked) {
  std::uint64_t position = start;
  for (unsigned round = 0;; ++round) {
    std::vector<bool> tried = asked;
    bool some_said_missing = false;
    Status failure;  // the last failure other than "not found"
    bool failed = false;
    bool trust_missing = true;
    for (;;) {
      std::size_t node = pick(sha1, end - position, tried, trust_missing);
      if (node == kNone && trust_missing) {
        // No node left but those remembered to lack it: "not found" is theirs to say now.
        trust_missing = false;
        node = pick(sha1, end - position, tried, trust_missing);
      }
      if (node == kNone) break;
      tried[node] = true;
      const std::uint64_t reports = reports_of(sha1);
      std::uint64_t attempt_start = position;
      auto began = std::chrono::steady_clock::now();
      Status result = nodes_[node].source->read_range(
          sha1, position, end,
          [&](const char* data, std::size_t size) {
            if (!sink(data, size)) return false;
            position += size;
            return true;
          },
          cancel);
      finish_attempt(node, sha1, end - attempt_start, attempt_start, position,
                     std::chrono::steady_clock::now() - began, result, reports);
      if (result.ok() || result.cause() == Cause::kCancelled ||
          result.cause() == Cause::kLocalError) {
        return result;
      }
      if (position >= end) return {};  // every byte arrived before the failure
      if (result.cause() == Cause::kNotFound) {
        some_said_missing = true;
      } else {
        failed = true;
        failure = {result.cause(), labelled(node, result.detail())};
        if (nodes_.size() > 1) {
          spdlog::info("{}: continuing {} at byte {} on the next node",
                       labelled(node, result.detail()), sha1, position);
        }
      }
    }
    if (!failed) {
      if (!some_said_missing && distrusted_by_any(sha1)) {
        return {Cause::kProtocolError,
                "every node that has it served bytes that failed verification during this mount"};
      }
      return {Cause::kNotFound, nodes_.size() == 1 ? "not on the node" : "not on any node"};
    }
    // Every node failed: another round only after a 5xx or a broken connection, after a pause.
    if (failure.cause() != Cause::kServerError || round >= config_.retries) return failure;
    if (!sleep_unless_cancelled(std::chrono::milliseconds(100 << (round + 1)), cancel))
      return {Cause::kCancelled, "cancelled"};
  }
}

Status NodeSet::read_ranges(std::string_view sha1_view, const std::vector<ByteRange>& ranges,
                            std::vector<std::string>& answers, const StillWanted& wanted,
                            const CancelToken& cancel) {
  std::string sha1(sha1_view);
  std::vector<bool> tried(nodes_.size(), false);
  std::size_t node = pick(sha1, 0, tried);
  if (node == kNone) return BlobSource::read_ranges(sha1, ranges, answers, wanted, cancel);
  const std::uint64_t reports = reports_of(sha1);
  auto began = std::chrono::steady_clock::now();
  Status result = nodes_[node].source->read_ranges(sha1, ranges, answers, wanted, cancel);
  auto took = std::chrono::steady_clock::now() - began;
  if (result.ok()) {
    // A round of one range is a transfer like any other (size discovery's head on a link
    // where it goes alone: a fresh mount's first measure of the throughput, which plans
    // the rest of the search); in a round of several, each answer waited for the others.
    const auto alone = ranges.size() == 1 ? took : std::chrono::steady_clock::duration{};
    for (std::size_t i = 0; i < ranges.size(); ++i) {
      std::uint64_t got = answers[i].size();
      finish_attempt(node, sha1, 0, ranges[i].start, ranges[i].start + got, alone, result, reports);
    }
    return result;
  }
  finish_attempt(node, sha1, 0, 0, 0, took, result, reports);
  if (result.cause() == Cause::kCancelled || result.cause() == Cause::kLocalError ||
      nodes_.size() == 1) {
    return result;
  }
  // One range after another, with read_range's failover; a node that just said "not
  // found" is not asked again in this lookup.
  std::vector<bool> asked(nodes_.size(), false);
  if (result.cause() == Cause::kNotFound) asked[node] = true;
  answers.assign(ranges.size(), {});
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    Status one = read_range_skipping(sha1, ranges[i].start, ranges[i].end, append_to(answers[i]),
                                     cancel, asked);
    if (!one.ok()) return one;
    if (wanted && !wanted(i)) break;
  }
  return {};
}

LinkEstimate NodeSet::link() const {
  std::size_t node = 0;
  double throughput = 0;
  {
    std::lock_guard lock(mutex_);
    for (std::size_t i = 0; i < health_.size(); ++i) {
      if (health_[i].up) {
        node = i;
        break;
      }
    }
    throughput = health_[node].throughput;
  }
  LinkEstimate estimate = nodes_[node].source->link();
  estimate.bytes_per_second = throughput;
  return estimate;
}

bool NodeSet::distrusted_by_any(const std::string& sha1) const {
  std::lock_guard lock(mutex_);
  return std::any_of(health_.begin(), health_.end(),
                     [&](const Health& h) { return h.distrusted.contains(sha1); });
}

Status NodeSet::load_blob(std::string_view sha1_view, const CancelToken& cancel) {
  std::string sha1(sha1_view);
  std::vector<bool> tried(nodes_.size(), false);
  Status failure;
  bool failed = false;
  for (;;) {
    std::size_t node = kNone;
    {
      std::lock_guard lock(mutex_);
      // Up nodes in order, then down ones; never one that served bad bytes of sha1.
      for (int pass = 0; pass < 2 && node == kNone; ++pass) {
        for (std::size_t i = 0; i < nodes_.size(); ++i) {
          const Health& h = health_[i];
          if (!tried[i] && !h.distrusted.contains(sha1) && h.up == (pass == 0)) {
            node = i;
            break;
          }
        }
      }
    }
    if (node == kNone) break;
    tried[node] = true;
    Status result = nodes_[node].source->load_blob(sha1, cancel);
    if (result.ok()) {
      std::lock_guard lock(mutex_);
      health_[node].missing.erase(sha1);
      return result;
    }
    if (result.cause() == Cause::kCancelled) return result;
    // A node that answers but cannot load is skipped, not marked down.
    if (result.cause() == Cause::kUnreachable) note(node, result);
    if (result.cause() != Cause::kNotFound) {
      failed = true;
      failure = {result.cause(), labelled(node, result.detail())};
    }
    if (nodes_.size() > 1)
      spdlog::info("{}: cannot load {}; asking the next node", labelled(node, result.detail()),
                   sha1);
  }
  if (failed) return failure;
  return {Cause::kNotFound, nodes_.size() == 1 ? "the node cannot load it" : "no node can load it"};
}

BlobSource::BadBytesVerdict NodeSet::report_bad_bytes(const std::string& sha1, std::uint64_t start,
                                                      std::uint64_t end) {
  std::lock_guard lock(mutex_);
  if (bad_reports_.size() >= kMaxServedFiles) bad_reports_.clear();
  ++bad_reports_[sha1];  // transfers begun before this are not recorded
  auto it = served_.find(sha1);
  if (it == served_.end()) return {};
  std::vector<bool> implicated(nodes_.size(), false);
  for (const Segment& s : it->second) {
    if (s.start < end && start < s.end) implicated[s.node] = true;
  }
  served_.erase(it);  // the bytes are dropped; the next fetch records anew
  auto count = std::count(implicated.begin(), implicated.end(), true);
  BadBytesVerdict verdict;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (!implicated[i]) continue;
    verdict.served_by += (verdict.served_by.empty() ? "" : ", ") + nodes_[i].name;
    if (count == 1 && nodes_.size() > 1) health_[i].distrusted.insert(sha1);
  }
  if (count > 1) one_node_at_a_time_.insert(sha1);
  verdict.worth_retrying =
      nodes_.size() > 1 && std::any_of(health_.begin(), health_.end(), [&](const Health& h) {
        return !h.distrusted.contains(sha1);
      });
  return verdict;
}

std::vector<NodeReport> NodeSet::report() const {
  std::lock_guard lock(mutex_);
  std::vector<NodeReport> out;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    const Health& h = health_[i];
    out.push_back({nodes_[i].name, h.up, h.last_error, h.bytes_served, h.throughput});
  }
  return out;
}

std::string NodeSet::report_text() const {
  std::ostringstream out;
  for (const NodeReport& node : report()) {
    char rate[32];
    std::snprintf(rate, sizeof(rate), "%.1f", node.throughput / 1e6);
    out << node.name << (node.up ? " up" : " down") << " served=" << node.bytes_served
        << " rate=" << rate << "MB/s";
    if (!node.last_error.empty()) out << " error=" << printable(node.last_error);
    out << "\n";
  }
  return out.str();
}

std::string NodeSet::served_by(const std::string& sha1) const {
  std::lock_guard lock(mutex_);
  auto it = served_.find(sha1);
  if (it == served_.end()) return "";
  std::vector<bool> served(nodes_.size(), false);
  for (const Segment& s : it->second) served[s.node] = true;
  std::string names;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (served[i]) names += (names.empty() ? "" : ",") + nodes_[i].name;
  }
  return names;
}

}  // namespace kacheryfs
