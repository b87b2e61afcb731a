// Several kachery nodes behind one BlobSource. Content is addressed by SHA-1 and verified,
// so any node may serve any byte:
// - Failover: nodes are asked in order. One that refuses connections, times out, answers
//   5xx or nonsense is marked down (and logged once); the background prober brings it
//   back after a growing backoff. A range that breaks mid-stream continues on the next
//   node at the byte it reached, so the reader sees no error.
// - "Not found" is per node: a node that said it lacks a hash is not asked for it again
//   while another node serves it (the memory lasts missing_ttl from its last use), but a
//   hash is ENOENT only when every node said so in this call: a node that got the file
//   since (a store, a load) is found at once.
// - Blame: the fetch layer reports bytes that failed verification; the node(s) that
//   served them are not asked for that hash again during this mount.
// - spread: each range goes to the healthy node expected to finish it first (bytes in
//   flight over its measured throughput), so blocks come from every node at once.
// It also replaces the single daemon's "online" state: online() is "some node is up".
// No HTTP here (the assembly binds each node to a DaemonClient). Thread-safe; the lock is
// a leaf and never held while bytes move.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "fetch/blob_source.h"

namespace kacheryfs {

struct NodeSetConfig {
  bool spread = false;
  std::chrono::milliseconds first_backoff{1000};  // a down node is probed after this...
  std::chrono::milliseconds max_backoff{8000};    // ...doubling up to this
  std::chrono::seconds missing_ttl{10};           // "node N lacks X" routes ranges, idle this long
  // Rounds over the nodes after every node failed with a 5xx or a broken connection. With
  // several nodes the assembly sets this, and the daemon clients do not retry themselves:
  // a node that fails is left at once for the next one instead of being waited for.
  unsigned retries = 0;
};

struct NodeEntry {
  std::string name;  // e.g. "http://10.0.0.5:20431"
  BlobSource* source = nullptr;
};

struct NodeReport {
  std::string name;
  bool up = true;
  std::string last_error;  // "" when none yet
  std::uint64_t bytes_served = 0;
  double throughput = 0;  // bytes/s of its recent ranges (0 = not measured yet)
};

class NodeSet final : public BlobSource {
 public:
  NodeSet(std::vector<NodeEntry> nodes, NodeSetConfig config);

  Status read_range(std::string_view sha1, std::uint64_t start, std::uint64_t end,
                    const ByteSink& sink, const CancelToken& cancel) override;
  // The round goes to one node (the first that read_range would ask), pipelined there;
  // if that node fails, the ranges are read one by one with read_range's failover.
  Status read_ranges(std::string_view sha1, const std::vector<ByteRange>& ranges,
                     std::vector<std::string>& answers, const StillWanted& wanted,
                     const CancelToken& cancel) override;
  // The link to the node that would serve the next request.
  LinkEstimate link() const override;
  Status load_blob(std::string_view sha1, const CancelToken& cancel) override;

  // Bytes [start, end) of sha1 failed verification: the nodes that served them are not
  // asked for sha1 again (when several did, sha1 is fetched from one node at a time, so
  // that the next failure names the culprit). With a single node nothing is excluded.
  BadBytesVerdict report_bad_bytes(const std::string& sha1, std::uint64_t start,
                                   std::uint64_t end) override;

  std::size_t size() const { return nodes_.size(); }
  const std::string& name(std::size_t node) const { return nodes_[node].name; }
  bool online() const;
  // Notes the outcome of a request made outside read_range (a /probe): up or down.
  void note(std::size_t node, const Status& result);
  // The down nodes whose backoff has passed; the caller probes each and calls note().
  std::vector<std::size_t> due_for_probe();

  std::vector<NodeReport> report() const;
  // One line per node: "NAME up|down served=BYTES rate=MB/s[ error=...]".
  std::string report_text() const;
  // The nodes that served bytes of sha1 during this mount, comma-separated ("" = none).
  std::string served_by(const std::string& sha1) const;

 private:
  struct Health {
    bool up = true;
    std::string last_error;
    std::chrono::steady_clock::time_point next_probe{};
    std::chrono::milliseconds backoff{};
    std::uint64_t bytes_served = 0;
    double throughput = 0;
    std::uint64_t bytes_in_flight = 0;
    std::unordered_map<std::string, std::chrono::steady_clock::time_point> missing;
    std::unordered_set<std::string> distrusted;
  };
  struct Segment {
    std::uint64_t start;
    std::uint64_t end;
    std::size_t node;
  };
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);

  // The node to ask next for `bytes` of sha1 among those not yet tried (kNone: no node
  // left); reserves the bytes in flight. Up nodes first; a down node only when no up node
  // is left to ask. A remembered "lacks sha1" that skips a node is renewed.
  // With trust_missing false, a node remembered to lack sha1 is asked too.
  std::size_t pick(const std::string& sha1, std::uint64_t bytes, const std::vector<bool>& tried,
                   bool trust_missing = true);
  // Records an attempt's bytes and time, and what its result says about the node.
  // Segments are recorded only if no bad bytes of sha1 were reported since the attempt
  // began (`reports` is reports_of(sha1) then): a transfer still in flight when its file
  // failed must not name its node as a server of the next copy.
  void finish_attempt(std::size_t node, const std::string& sha1, std::uint64_t reserved,
                      std::uint64_t start, std::uint64_t end,
                      std::chrono::steady_clock::duration took, const Status& result,
                      std::uint64_t reports);
  std::uint64_t reports_of(const std::string& sha1) const;
  // read_range, not asking the nodes already marked in `asked` (they answered "not found"
  // earlier in the same lookup).
  Status read_range_skipping(const std::string& sha1, std::uint64_t start, std::uint64_t end,
                             const ByteSink& sink, const CancelToken& cancel,
                             const std::vector<bool>& asked);
  void note_locked(std::size_t node, const Status& result);
  std::string labelled(std::size_t node, const std::string& detail) const;
  bool distrusted_by_any(const std::string& sha1) const;

  std::vector<NodeEntry> nodes_;
  NodeSetConfig config_;

  mutable std::mutex mutex_;  // a leaf; guards everything below
  std::vector<Health> health_;
  std::unordered_map<std::string, std::vector<Segment>> served_;
  std::deque<std::string> served_order_;  // oldest first, to bound served_
  std::unordered_set<std::string> one_node_at_a_time_;
  std::unordered_map<std::string, std::uint64_t> bad_reports_;  // report_bad_bytes per sha1
};

}  // namespace kacheryfs
