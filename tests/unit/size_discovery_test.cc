#include "fetch/size_discovery.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "support/cancel_token.h"

namespace kacheryfs {
namespace {

// A blob of a given size whose byte at offset i is i % 251, on a link described by
// `estimate`. Counts rounds (calls of read_ranges) and requests.
class SizedSource final : public BlobSource {
 public:
  std::uint64_t size = 0;
  LinkEstimate estimate;
  int rounds = 0;
  int requests = 0;
  bool missing = false;            // the node lacks the blob
  bool claims_every_byte = false;  // a hostile node: every probe finds a byte
  int full_from_round = 0;         // a hostile node: from this round on, every range is full
  std::function<void(const std::vector<ByteRange>&)> on_round;
  std::vector<std::size_t> round_sizes;
  std::vector<std::size_t> answers_read;  // per round: the answers read before it stopped

  Status read_range(std::string_view, std::uint64_t start, std::uint64_t end, const ByteSink& sink,
                    const CancelToken&) override {
    ++requests;
    if (missing) return {Cause::kNotFound, "no such blob"};
    bool full = claims_every_byte || (full_from_round > 0 && rounds >= full_from_round);
    std::uint64_t stop = full ? end : std::min(end, size);
    std::string bytes;
    for (std::uint64_t i = start; i < stop; ++i) bytes.push_back(static_cast<char>(i % 251));
    if (!bytes.empty()) sink(bytes.data(), bytes.size());
    return {};
  }
  Status read_ranges(std::string_view sha1, const std::vector<ByteRange>& ranges,
                     std::vector<std::string>& answers, const StillWanted& wanted,
                     const CancelToken& cancel) override {
    ++rounds;
    round_sizes.push_back(ranges.size());
    if (on_round) on_round(ranges);
    int before = requests;
    Status result = BlobSource::read_ranges(sha1, ranges, answers, wanted, cancel);
    answers_read.push_back(static_cast<std::size_t>(requests - before));
    return result;
  }
  Status load_blob(std::string_view, const CancelToken&) override { return {Cause::kNotFound, ""}; }
  LinkEstimate link() const override { return estimate; }
};

constexpr std::uint64_t kPage = 64 << 10;
const LinkEstimate kLoopback{0.0011, 0.001, 400e6};
const LinkEstimate kVpn{0.021, 0.0012, 25e6};
const SizeDiscoveryConfig kConfig{kPage, 2 * kPage, 1 << 20, 4 << 20};

class SizeDiscoveryTest : public ::testing::Test {
 protected:
  // One discovery by a new SizeDiscovery across `link`, the source's counts started afresh.
  Status attempt(const LinkEstimate& link, DiscoveredSize& found) {
    source_.estimate = link;
    source_.rounds = source_.requests = 0;
    source_.round_sizes.clear();
    source_.answers_read.clear();
    SizeDiscovery discovery(source_, kConfig);
    return discovery.discover("x", found, never_);
  }
  DiscoveredSize discover(std::uint64_t size, const LinkEstimate& link) {
    source_.size = size;
    DiscoveredSize found;
    Status result = attempt(link, found);
    EXPECT_TRUE(result.ok()) << result.detail();
    EXPECT_EQ(found.rounds, static_cast<unsigned>(source_.rounds));
    return found;
  }
  SizedSource source_;
  NeverCancelled never_;
};

TEST_F(SizeDiscoveryTest, EverySizeIsExactAndItsPiecesAreItsBytes) {
  for (const LinkEstimate& link : {kLoopback, kVpn}) {
    for (std::uint64_t size :
         {std::uint64_t{0}, std::uint64_t{1}, kPage - 1, kPage, kPage + 1, std::uint64_t{1} << 20,
          (std::uint64_t{1} << 20) + 1, std::uint64_t{45000000}, std::uint64_t{1} << 30,
          (std::uint64_t{1} << 30) + 12345, std::uint64_t{5} << 40}) {
      DiscoveredSize found = discover(size, link);
      EXPECT_EQ(found.size, size);
      ASSERT_FALSE(found.pieces.empty());
      EXPECT_EQ(found.pieces.front().offset, 0u);
      for (const KnownPiece& piece : found.pieces) {
        EXPECT_EQ(piece.offset % kPage, 0u) << "pieces start on pages";
        EXPECT_LE(piece.offset + piece.bytes.size(), size);
        for (std::size_t i = 0; i < piece.bytes.size(); i += 4093)
          ASSERT_EQ(static_cast<unsigned char>(piece.bytes[i]), (piece.offset + i) % 251);
      }
      if (found.pieces.size() > 1) {
        const KnownPiece& last = found.pieces.back();
        EXPECT_EQ(last.offset + last.bytes.size(), size) << "the last window ends at EOF";
      }
    }
  }
}

TEST_F(SizeDiscoveryTest, ASmallFileIsOneRequest) {
  DiscoveredSize found = discover(16000, kVpn);
  EXPECT_EQ(found.rounds, 1u);
  EXPECT_EQ(source_.requests, 1) << "no probes are asked for once the head is short";
  EXPECT_EQ(found.pieces.front().bytes.size(), 16000u);
}

TEST_F(SizeDiscoveryTest, AcrossALinkWithLatencyRoundsCarrySeveralProbes) {
  DiscoveredSize found = discover(std::uint64_t{1} << 30, kVpn);
  EXPECT_EQ(DiscoveryPlan::head_size(kVpn, kConfig), 2 * kPage)
      << "the head is the kernel's first read";
  EXPECT_GT(DiscoveryPlan::first_round_probes(kVpn), 4u);
  // One after another, 1 GiB takes about 2*log2(2^30 / 64 KiB) = 28 requests in as many
  // round trips; in rounds of probes sent at once, the budget's 4.
  EXPECT_LE(found.rounds, 4u);
  EXPECT_LT(found.rounds * 3, found.requests);
  std::printf("1 GiB across a 20 ms link: %u rounds, %u requests\n", found.rounds, found.requests);
}

TEST_F(SizeDiscoveryTest, ARoundStopsReadingAtItsFirstAnswerPastEof) {
  for (std::uint64_t size : {std::uint64_t{45000000}, std::uint64_t{1} << 30}) {
    discover(size, kVpn);
    ASSERT_GT(source_.round_sizes.size(), 1u);
    EXPECT_GT(source_.round_sizes.front(), 4u) << "probes beside the head";
    // The first round's answers are read up to its first probe at or past EOF, not to
    // its last probe (1 TiB): the rest are implied, and the next round goes out at once.
    EXPECT_LT(source_.answers_read.front(), source_.round_sizes.front()) << size;
    for (std::size_t round = 0; round < source_.round_sizes.size(); ++round)
      EXPECT_LE(source_.answers_read[round], source_.round_sizes[round]);
  }
}

TEST_F(SizeDiscoveryTest, AcrossALinkWithLatencyTheLastRoundIsWindowsFromTheTopDown) {
  for (std::uint64_t size : {std::uint64_t{45000000}, std::uint64_t{1} << 30,
                             (std::uint64_t{1} << 30) + 12345, std::uint64_t{3000000}}) {
    std::vector<ByteRange> last;
    source_.on_round = [&](const std::vector<ByteRange>& ranges) { last = ranges; };
    DiscoveredSize found = discover(size, kVpn);
    source_.on_round = nullptr;
    ASSERT_GT(last.size(), 1u) << size;
    // Windows that tile an interval around EOF, on pages, the highest first.
    for (std::size_t i = 0; i + 1 < last.size(); ++i) {
      EXPECT_EQ(last[i + 1].end, last[i].start) << size;
      EXPECT_EQ(last[i].start % kPage, 0u);
    }
    EXPECT_LE(last.back().start, size);
    EXPECT_GT(last.front().end, size);
    // Read up to the first window that brings bytes, the one that holds the file's end.
    std::size_t past_eof = 0;
    while (last[past_eof].start >= size) ++past_eof;
    EXPECT_EQ(source_.answers_read.back(), past_eof + 1) << size;
    EXPECT_EQ(found.pieces.back().offset, last[past_eof].start);
    EXPECT_EQ(found.pieces.back().offset + found.pieces.back().bytes.size(), size);
    // 45 MB in three rounds: a probe round, then the windows, after the head's round (a
    // probe round and then one window took four).
    if (size == 45000000) {
      EXPECT_EQ(found.rounds, 3u);
    }
    EXPECT_LE(found.rounds, 4u) << size;
  }
}

TEST_F(SizeDiscoveryTest, AWindowThatContradictsTheOnesAboveIsAProtocolError) {
  // From the round of windows on, a node that answers every range in full: its top window
  // then claims bytes past the end that its probes set.
  source_.size = 45000000;
  source_.full_from_round = 3;
  DiscoveredSize found;
  Status result = attempt(kVpn, found);
  EXPECT_EQ(result.cause(), Cause::kProtocolError) << found.size;
  EXPECT_EQ(source_.rounds, 3);
  EXPECT_GT(source_.round_sizes.back(), 1u) << "the round of windows";
  EXPECT_EQ(source_.answers_read.back(), 1u) << "its top window settles it";
}

TEST_F(SizeDiscoveryTest, OnLoopbackProbesGoOneByOne) {
  EXPECT_EQ(DiscoveryPlan::first_round_probes(kLoopback), 0u);
  EXPECT_EQ(DiscoveryPlan::probes_per_round(kLoopback, 10), 1u);
  EXPECT_EQ(DiscoveryPlan::head_size(kLoopback, kConfig), 1u << 20);
  DiscoveredSize found = discover(std::uint64_t{1} << 30, kLoopback);
  ASSERT_FALSE(source_.round_sizes.empty());
  EXPECT_EQ(source_.round_sizes.front(), 1u) << "the head alone";
  // A round trip costs less than a request here: rounds of one request, or two where a
  // last fraction of a bit is left.
  for (std::size_t n : source_.round_sizes) EXPECT_LE(n, 2u);
}

TEST_F(SizeDiscoveryTest, OnLoopbackTheLadderClimbsThreeBitsARung) {
  // Rounds of one probe: a ladder of doublings from 1 MiB took 20 and 22 requests for
  // these 1 GiB sizes, and 40 for 1 TiB. Rungs 8 times apart, then splits by ratio, take
  // fewer, and small files about as many (3 MiB and 7 MiB: 4 and 6 with doublings).
  for (std::uint64_t size : {std::uint64_t{1} << 30, std::uint64_t{1074000000}})
    EXPECT_LE(discover(size, kLoopback).requests, 17u) << size;
  EXPECT_LE(discover(std::uint64_t{1} << 40, kLoopback).requests, 31u);
  EXPECT_LE(discover(std::uint64_t{3} << 20, kLoopback).requests, 5u);
  EXPECT_LE(discover(std::uint64_t{7} << 20, kLoopback).requests, 6u);
}

TEST_F(SizeDiscoveryTest, TheRoundSizeFollowsTheRoundTrip) {
  LinkEstimate lan{0.0015, 0.001, 125e6};
  LinkEstimate wan{0.061, 0.001, 6e6};
  unsigned on_lan = DiscoveryPlan::probes_per_round(lan, 20);
  unsigned on_vpn = DiscoveryPlan::probes_per_round(kVpn, 20);
  unsigned on_wan = DiscoveryPlan::probes_per_round(wan, 20);
  EXPECT_LE(on_lan, on_vpn);
  EXPECT_LT(on_vpn, on_wan);
  EXPECT_EQ(DiscoveryPlan::probes_per_round(wan, 2), 3u) << "no more than the bits left need";
}

TEST_F(SizeDiscoveryTest, AcrossALinkWithLatencyEverySizeFitsTheRoundBudget) {
  // kVpn, and what a mount measured across the benchmark's vpn link against the node-like
  // emulator (where the cheapest plan for 1 GiB is 3 rounds of probes and a window).
  for (const LinkEstimate& link : {kVpn, LinkEstimate{0.0218, 0.00133, 23e6}}) {
    for (std::uint64_t size :
         {std::uint64_t{3} << 20, std::uint64_t{45000000}, std::uint64_t{1074000000},
          (std::uint64_t{1} << 30) + 12345, std::uint64_t{2} << 30}) {
      DiscoveredSize found = discover(size, link);
      EXPECT_LE(found.rounds, 4u) << size << " bytes, " << link.per_request * 1e3
                                  << " ms a request";
    }
  }
  // Beyond, the budget would cost more than a quarter over the cheapest plan, which is taken.
  EXPECT_LE(discover(std::uint64_t{1} << 38, kVpn).rounds, 8u);
  // On a LAN a round trip is worth about two requests: no budget, rounds of a few probes.
  DiscoveredSize on_lan = discover(std::uint64_t{1} << 30, LinkEstimate{0.0025, 0.001, 110e6});
  EXPECT_GT(on_lan.rounds, 4u);
  EXPECT_LT(on_lan.requests, 3 * on_lan.rounds);
  // A tighter budget asks for wider rounds.
  const std::uint64_t interval = 100000000;
  auto free_plan = DiscoveryPlan::next_round(kVpn, interval, 64, kConfig);
  auto one_round = DiscoveryPlan::next_round(kVpn, interval, 1, kConfig);
  EXPECT_LT(free_plan.probes, one_round.probes);
  EXPECT_LE(one_round.window, kConfig.max_window);
  EXPECT_LE(one_round.window * one_round.windows, kConfig.max_last_span);
  EXPECT_GE((one_round.probes + 1.0) * static_cast<double>(one_round.window * one_round.windows),
            static_cast<double>(interval))
      << "one round and the windows settle it";
  auto two_rounds = DiscoveryPlan::next_round(kVpn, std::uint64_t{1} << 30, 2, kConfig);
  EXPECT_GE(std::pow(two_rounds.probes + 1.0, 2) *
                static_cast<double>(two_rounds.window * two_rounds.windows),
            std::exp2(30))
      << "two rounds and the windows settle 1 GiB";
  // An interval narrower than a window worth reading is read now.
  EXPECT_EQ(DiscoveryPlan::next_round(kVpn, 100000, 2, kConfig).probes, 0u);
  EXPECT_GT(DiscoveryPlan::next_round(kLoopback, 4 << 20, 64, kConfig).probes, 0u)
      << "on loopback a probe costs less than the bytes of a wider window";
  EXPECT_EQ(DiscoveryPlan::next_round(kLoopback, 4 << 20, 64, kConfig).windows, 1u)
      << "on loopback the node would send every window below EOF";
}

TEST_F(SizeDiscoveryTest, AfterARunOfSmallFilesTheHeadGoesAlone) {
  source_.estimate = kVpn;
  SizeDiscovery discovery(source_, kConfig);
  auto first_round = [&](std::uint64_t size) {
    source_.size = size;
    source_.round_sizes.clear();
    source_.answers_read.clear();
    DiscoveredSize found;
    EXPECT_TRUE(discovery.discover("x", found, never_).ok());
    EXPECT_EQ(found.size, size);
    return source_.round_sizes.front();
  };
  EXPECT_GT(first_round(1000), 1u) << "a new mount probes beside the head";
  for (int i = 0; i < 16; ++i) first_round(1000 + i);
  // Small files lately: the head alone, until large ones are half of the last 16.
  int head_alone = 0;
  for (int i = 0; i < 16; ++i) head_alone += first_round(std::uint64_t{1} << 30) == 1 ? 1 : 0;
  EXPECT_EQ(head_alone, 8);
  EXPECT_GT(first_round(std::uint64_t{1} << 30), 1u);
}

TEST_F(SizeDiscoveryTest, AMissCountsAsASmallFile) {
  // A client that asks for names that may not exist (the stock client does) soon sends no
  // probes with them: each would delay the answer by the node's time for it.
  source_.estimate = kVpn;
  source_.missing = true;
  SizeDiscovery discovery(source_, kConfig);
  auto first_round = [&] {
    source_.round_sizes.clear();
    DiscoveredSize found;
    EXPECT_EQ(discovery.discover("x", found, never_).cause(), Cause::kNotFound);
    return source_.round_sizes.front();
  };
  EXPECT_GT(first_round(), 1u) << "a new mount probes beside the head";
  EXPECT_GT(first_round(), 1u);
  EXPECT_EQ(first_round(), 1u) << "after two misses, the head alone";
}

TEST_F(SizeDiscoveryTest, ANodeThatClaimsEveryByteIsAProtocolError) {
  source_.claims_every_byte = true;
  source_.size = ~std::uint64_t{0};
  // Every probe finds a byte, and the last window comes back full: no end. On loopback
  // the ladder's last rung is the largest index, 2^53 - 1, which must not pass for a size
  // of 2^53.
  for (const LinkEstimate& link : {kVpn, kLoopback}) {
    DiscoveredSize found;
    Status result = attempt(link, found);
    EXPECT_EQ(result.cause(), Cause::kProtocolError) << found.size;
    EXPECT_LT(source_.requests, 2000);
  }
}

}  // namespace
}  // namespace kacheryfs
