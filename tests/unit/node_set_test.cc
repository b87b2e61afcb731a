// NodeSet: failover mid-range, per-node "not found", blame for bad bytes, loads through the
// node that can, spread by bytes in flight, and the health a down node returns from.
#include "fetch/node_set.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "test_support.h"

namespace kacheryfs {
namespace {

using testing::MemorySource;
using testing::pattern;

// A node that serves `limit` bytes of each range and then fails with `failure`.
class BreakingSource final : public BlobSource {
 public:
  BreakingSource(MemorySource& inner, std::uint64_t limit, Cause failure)
      : inner_(inner), limit_(limit), failure_(failure) {}
  Status read_range(std::string_view sha1, std::uint64_t start, std::uint64_t end,
                    const ByteSink& sink, const CancelToken& cancel) override {
    ++requests;
    std::uint64_t cut = std::min(end, start + limit_);
    if (cut > start) {
      Status result = inner_.read_range(sha1, start, cut, sink, cancel);
      if (!result.ok()) return result;
    }
    return {failure_, "connection reset after " + std::to_string(cut - start) + " bytes"};
  }
  Status load_blob(std::string_view, const CancelToken&) override {
    return {Cause::kUnreachable, "refused"};
  }
  std::atomic<int> requests{0};

 private:
  MemorySource& inner_;
  std::uint64_t limit_;
  Cause failure_;
};

Status read_into(NodeSet& nodes, const std::string& sha1, std::uint64_t start, std::uint64_t end,
                 std::string& out) {
  NeverCancelled never;
  return nodes.read_range(
      sha1, start, end,
      [&](const char* data, std::size_t size) {
        out.append(data, size);
        return true;
      },
      never);
}

NodeSetConfig quick_backoff() {
  NodeSetConfig config;
  config.first_backoff = std::chrono::milliseconds(0);
  return config;
}

TEST(NodeSetTest, ARangeBrokenMidStreamContinuesOnTheNextNodeAtTheByteItReached) {
  MemorySource first_store, second;
  std::string bytes = pattern(1 << 20, 3);
  std::string sha1 = first_store.add(bytes);
  second.add(bytes);
  BreakingSource first(first_store, 300000, Cause::kUnreachable);
  NodeSet nodes({{"http://a", &first}, {"http://b", &second}}, quick_backoff());

  std::string got;
  ASSERT_TRUE(read_into(nodes, sha1, 1000, bytes.size(), got).ok());
  EXPECT_EQ(got, bytes.substr(1000));
  ASSERT_EQ(second.ranges.size(), 1u);
  EXPECT_EQ(second.ranges[0].first, 301000u) << "resumed where the first node stopped";
  EXPECT_EQ(nodes.served_by(sha1), "http://a,http://b");
  auto report = nodes.report();
  EXPECT_FALSE(report[0].up);
  EXPECT_NE(report[0].last_error.find("connection reset"), std::string::npos);
  EXPECT_TRUE(report[1].up);
  EXPECT_EQ(report[0].bytes_served + report[1].bytes_served, bytes.size() - 1000);
  EXPECT_TRUE(nodes.online());

  // While it is down, the first node is not asked; once a probe succeeds it is first again.
  got.clear();
  ASSERT_TRUE(read_into(nodes, sha1, 0, 10, got).ok());
  EXPECT_EQ(first.requests.load(), 1);
  EXPECT_EQ(nodes.due_for_probe(), std::vector<std::size_t>{0});
  nodes.note(0, {});
  EXPECT_TRUE(nodes.report()[0].up);
  got.clear();
  EXPECT_TRUE(read_into(nodes, sha1, 0, 10, got).ok());
  EXPECT_EQ(first.requests.load(), 2);
}

TEST(NodeSetTest, NotFoundIsPerNodeAndRemembered) {
  MemorySource first, second;
  std::string bytes = pattern(5000, 1);
  std::string sha1 = second.add(bytes);
  NodeSet nodes({{"http://a", &first}, {"http://b", &second}}, quick_backoff());
  std::string got;
  ASSERT_TRUE(read_into(nodes, sha1, 0, 5000, got).ok());
  EXPECT_EQ(got, bytes);
  EXPECT_EQ(first.requests.load(), 1);
  got.clear();
  ASSERT_TRUE(read_into(nodes, sha1, 0, 5000, got).ok());
  EXPECT_EQ(first.requests.load(), 1) << "the first node's answer is remembered";
  EXPECT_TRUE(nodes.report()[0].up) << "lacking a file is not being down";

  std::string nowhere = sha1_hex_of("nowhere");
  got.clear();
  EXPECT_EQ(read_into(nodes, nowhere, 0, 10, got).cause(), Cause::kNotFound);
}

TEST(NodeSetTest, ANodeRememberedToLackAFileIsAskedAgainBeforeENOENT) {
  MemorySource first, second;
  std::string bytes = pattern(3000, 4);
  std::string sha1 = sha1_hex_of(bytes);
  NodeSet nodes({{"http://a", &first}, {"http://b", &second}}, quick_backoff());
  std::string got;
  EXPECT_EQ(read_into(nodes, sha1, 0, 3000, got).cause(), Cause::kNotFound);
  EXPECT_EQ(first.requests.load(), 1);
  EXPECT_EQ(second.requests.load(), 1);
  EXPECT_EQ(read_into(nodes, sha1, 0, 3000, got).cause(), Cause::kNotFound);
  EXPECT_EQ(first.requests.load() + second.requests.load(), 4) << "one request a node a miss";
  first.add(bytes);  // stored on the first node since (a store, a load)
  ASSERT_TRUE(read_into(nodes, sha1, 0, 3000, got).ok());
  EXPECT_EQ(got, bytes);
  EXPECT_EQ(nodes.served_by(sha1), "http://a");
}

TEST(NodeSetTest, MissingOnOneNodeAndTheOtherDownIsAnErrorNotENOENT) {
  MemorySource first, empty;
  std::string sha1 = first.add(pattern(100, 2));
  BreakingSource down(first, 0, Cause::kUnreachable);
  NodeSet nodes({{"http://a", &down}, {"http://b", &empty}}, quick_backoff());
  std::string got;
  Status result = read_into(nodes, sha1, 0, 100, got);
  EXPECT_EQ(result.cause(), Cause::kUnreachable);
  EXPECT_NE(result.detail().find("http://a"), std::string::npos) << result.detail();
  EXPECT_TRUE(nodes.online());
}

TEST(NodeSetTest, BadBytesExcludeTheirNodeForThatHashOnly) {
  MemorySource first, second;
  std::string bytes = pattern(4096, 5);
  std::string sha1 = first.add(bytes);
  second.add(bytes);
  std::string other = first.add(pattern(10, 6));
  first.corrupt = true;
  NodeSet nodes({{"http://a", &first}, {"http://b", &second}}, quick_backoff());
  std::string got;
  ASSERT_TRUE(read_into(nodes, sha1, 0, 4096, got).ok());
  BlobSource::BadBytesVerdict verdict = nodes.report_bad_bytes(sha1, 0, 4096);
  EXPECT_EQ(verdict.served_by, "http://a");
  EXPECT_TRUE(verdict.worth_retrying);
  got.clear();
  ASSERT_TRUE(read_into(nodes, sha1, 0, 4096, got).ok());
  EXPECT_EQ(got, bytes);
  EXPECT_EQ(nodes.served_by(sha1), "http://b");
  EXPECT_EQ(first.requests.load(), 1);
  got.clear();
  EXPECT_TRUE(read_into(nodes, other, 0, 10, got).ok());
  EXPECT_EQ(first.requests.load(), 2) << "the node is still asked for other files";

  // Once every node has served bad bytes of it, the hash is an error, not "not found".
  second.corrupt = true;
  EXPECT_FALSE(nodes.report_bad_bytes(sha1, 0, 4096).worth_retrying);
  got.clear();
  EXPECT_EQ(read_into(nodes, sha1, 0, 4096, got).cause(), Cause::kProtocolError);
}

TEST(NodeSetTest, ASingleNodeIsNeverExcluded) {
  MemorySource only;
  std::string sha1 = only.add(pattern(100, 7));
  NodeSet nodes({{"http://a", &only}}, quick_backoff());
  std::string got;
  EXPECT_TRUE(read_into(nodes, sha1, 0, 100, got).ok());
  EXPECT_FALSE(nodes.report_bad_bytes(sha1, 0, 100).worth_retrying);
  got.clear();
  EXPECT_TRUE(read_into(nodes, sha1, 0, 100, got).ok());
}

TEST(NodeSetTest, LoadsGoToTheFirstNodeThatCanAndReadsFollow) {
  MemorySource first, second;
  std::string bytes = pattern(3000, 8);
  std::string sha1 = sha1_hex_of(bytes);
  second.network[sha1] = bytes;  // only the second node's channel has it
  NodeSet nodes({{"http://a", &first}, {"http://b", &second}}, quick_backoff());
  std::string got;
  EXPECT_EQ(read_into(nodes, sha1, 0, 3000, got).cause(), Cause::kNotFound);
  NeverCancelled never;
  ASSERT_TRUE(nodes.load_blob(sha1, never).ok());
  EXPECT_EQ(first.loads.load(), 1);
  EXPECT_EQ(second.loads.load(), 1);
  int first_requests = first.requests.load();
  ASSERT_TRUE(read_into(nodes, sha1, 0, 3000, got).ok());
  EXPECT_EQ(got, bytes);
  EXPECT_EQ(first.requests.load(), first_requests) << "the first node lacks it: not asked";
}

// Two ranges in flight at once: with spread they go to different nodes, without it both
// go to the first.
int nodes_used_by_two_concurrent_ranges(bool spread) {
  MemorySource first, second;
  std::string bytes = pattern(2 << 20, 9);
  std::string sha1 = first.add(bytes);
  second.add(bytes);
  first.delay = second.delay = std::chrono::milliseconds(200);
  NodeSetConfig config = quick_backoff();
  config.spread = spread;
  NodeSet nodes({{"http://a", &first}, {"http://b", &second}}, config);
  std::string one, two;
  std::thread t1([&] { EXPECT_TRUE(read_into(nodes, sha1, 0, 1 << 20, one).ok()); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::thread t2([&] { EXPECT_TRUE(read_into(nodes, sha1, 1 << 20, 2 << 20, two).ok()); });
  t1.join();
  t2.join();
  EXPECT_EQ(one + two, bytes);
  return (first.requests.load() > 0) + (second.requests.load() > 0);
}

TEST(NodeSetTest, SpreadSendsConcurrentRangesToDifferentNodes) {
  EXPECT_EQ(nodes_used_by_two_concurrent_ranges(true), 2);
  EXPECT_EQ(nodes_used_by_two_concurrent_ranges(false), 1);
}

TEST(NodeSetTest, AllNodesDownFailsWithoutWaitingAndComesBackOnAProbe) {
  MemorySource store;
  std::string sha1 = store.add(pattern(100, 4));
  BreakingSource a(store, 0, Cause::kTimeout), b(store, 0, Cause::kUnreachable);
  NodeSet nodes({{"http://a", &a}, {"http://b", &b}}, quick_backoff());
  std::string got;
  EXPECT_FALSE(read_into(nodes, sha1, 0, 100, got).ok());
  EXPECT_FALSE(nodes.online());
  EXPECT_EQ(nodes.due_for_probe().size(), 2u);
  nodes.note(1, {});
  EXPECT_TRUE(nodes.online());
  EXPECT_NE(nodes.report_text().find("http://a down"), std::string::npos) << nodes.report_text();
  EXPECT_NE(nodes.report_text().find("http://b up"), std::string::npos) << nodes.report_text();
}

// Fails its first `failures` ranges with a 5xx, then serves.
class FlakySource final : public BlobSource {
 public:
  FlakySource(MemorySource& inner, int failures) : inner_(inner), failures_(failures) {}
  Status read_range(std::string_view sha1, std::uint64_t start, std::uint64_t end,
                    const ByteSink& sink, const CancelToken& cancel) override {
    if (failures_-- > 0) return {Cause::kServerError, "500 busy"};
    return inner_.read_range(sha1, start, end, sink, cancel);
  }
  Status load_blob(std::string_view, const CancelToken&) override { return {}; }

 private:
  MemorySource& inner_;
  std::atomic<int> failures_;
};

TEST(NodeSetTest, WhenEveryNodeFailsWith5xxTheSetRetriesInRounds) {
  MemorySource store;
  std::string bytes = pattern(1000, 11);
  std::string sha1 = store.add(bytes);
  FlakySource a(store, 1), b(store, 1);
  NodeSetConfig config = quick_backoff();
  config.retries = 1;
  NodeSet nodes({{"http://a", &a}, {"http://b", &b}}, config);
  std::string got;
  ASSERT_TRUE(read_into(nodes, sha1, 0, 1000, got).ok());
  EXPECT_EQ(got, bytes);

  FlakySource c(store, 5), d(store, 5);
  NodeSet no_retries({{"http://c", &c}, {"http://d", &d}}, quick_backoff());
  got.clear();
  EXPECT_EQ(read_into(no_retries, sha1, 0, 1000, got).cause(), Cause::kServerError);
}

TEST(NodeSetTest, ALoneRangeMeasuresTheThroughputAndARoundOfSeveralDoesNot) {
  MemorySource node;
  node.delay = std::chrono::milliseconds(20);  // each range takes at least this long
  const std::string sha1 = node.add(pattern(2 << 20));
  NeverCancelled never;
  std::vector<std::string> answers;
  {
    NodeSet nodes({{"http://a", &node}}, quick_backoff());
    ASSERT_TRUE(
        nodes.read_ranges(sha1, {{0, 1 << 20}, {1 << 20, (1 << 20) + 1}}, answers, {}, never).ok());
    EXPECT_EQ(nodes.link().bytes_per_second, 0) << "each answer waited for the others";
  }
  NodeSet nodes({{"http://a", &node}}, quick_backoff());
  ASSERT_TRUE(nodes.read_ranges(sha1, {{0, 1 << 20}}, answers, {}, never).ok());
  ASSERT_EQ(answers[0].size(), std::size_t{1} << 20);
  const double rate = nodes.link().bytes_per_second;
  EXPECT_GT(rate, 0);
  EXPECT_LE(rate, (1 << 20) / 0.020) << "no faster than 1 MiB in 20 ms";
}

}  // namespace
}  // namespace kacheryfs
