#include "fetch/size_discovery.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

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
  bool claims_every_byte = false;  // a hostile node: every probe finds a byte
  std::vector<std::size_t> round_sizes;

  FetchResult read_range(std::string_view, std::uint64_t start, std::uint64_t end,
                         const ByteSink& sink, const CancelToken&) override {
    ++requests;
    std::uint64_t stop = claims_every_byte ? end : std::min(end, size);
    std::string bytes;
    for (std::uint64_t i = start; i < stop; ++i) bytes.push_back(static_cast<char>(i % 251));
    if (!bytes.empty()) sink(bytes.data(), bytes.size());
    return {};
  }
  FetchResult read_ranges(std::string_view sha1, const std::vector<ByteRange>& ranges,
                          std::vector<std::string>& answers, const StillWanted& wanted,
                          const CancelToken& cancel) override {
    ++rounds;
    round_sizes.push_back(ranges.size());
    return BlobSource::read_ranges(sha1, ranges, answers, wanted, cancel);
  }
  FetchResult load_blob(std::string_view, const CancelToken&) override {
    return {FetchStatus::kNotFound, ""};
  }
  LinkEstimate link() const override { return estimate; }
};

constexpr std::uint64_t kPage = 64 << 10;
const LinkEstimate kLoopback{0.0011, 0.001, 400e6};
const LinkEstimate kVpn{0.021, 0.0012, 25e6};

class SizeDiscoveryTest : public ::testing::Test {
 protected:
  DiscoveredSize discover(std::uint64_t size, const LinkEstimate& link) {
    source_.size = size;
    source_.estimate = link;
    source_.rounds = source_.requests = 0;
    source_.round_sizes.clear();
    SizeDiscovery discovery(source_, SizeDiscoveryConfig{kPage, 2 * kPage, 1 << 20, 4 << 20});
    DiscoveredSize found;
    FetchResult result = discovery.discover("x", found, never_);
    EXPECT_TRUE(result.ok()) << result.detail;
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
  EXPECT_EQ(DiscoveryPlan::head_size(kVpn, {kPage, 2 * kPage, 1 << 20, 4 << 20}), 2 * kPage)
      << "the head is the kernel's first read";
  EXPECT_GT(DiscoveryPlan::first_round_probes(kVpn), 4u);
  // One after another, 1 GiB takes about 2*log2(2^30 / 64 KiB) = 28 requests in as many
  // round trips; in rounds of probes sent at once, a handful.
  EXPECT_LE(found.rounds, 6u);
  EXPECT_LT(found.rounds * 3, found.requests);
  std::printf("1 GiB across a 20 ms link: %u rounds, %u requests\n", found.rounds, found.requests);
}

TEST_F(SizeDiscoveryTest, OnLoopbackProbesGoOneByOne) {
  EXPECT_EQ(DiscoveryPlan::first_round_probes(kLoopback), 0u);
  EXPECT_EQ(DiscoveryPlan::probes_per_round(kLoopback, 10), 1u);
  EXPECT_EQ(DiscoveryPlan::head_size(kLoopback, {kPage, 2 * kPage, 1 << 20, 4 << 20}), 1u << 20);
  DiscoveredSize found = discover(std::uint64_t{1} << 30, kLoopback);
  ASSERT_FALSE(source_.round_sizes.empty());
  EXPECT_EQ(source_.round_sizes.front(), 1u) << "the head alone";
  // A round trip costs less than a request here: rounds of one request, or two where a
  // last fraction of a bit is left.
  for (std::size_t n : source_.round_sizes) EXPECT_LE(n, 2u);
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

TEST_F(SizeDiscoveryTest, ANodeThatClaimsEveryByteIsAProtocolError) {
  source_.claims_every_byte = true;
  source_.estimate = kVpn;
  SizeDiscovery discovery(source_, SizeDiscoveryConfig{kPage, 2 * kPage, 1 << 20, 4 << 20});
  DiscoveredSize found;
  // Every probe finds a byte, and the last window comes back full: no end.
  source_.size = ~std::uint64_t{0};
  FetchResult result = discovery.discover("x", found, never_);
  EXPECT_EQ(result.status, FetchStatus::kProtocolError);
  EXPECT_LT(source_.requests, 2000);
}

}  // namespace
}  // namespace kacheryfs
