// Counters: named values round-trip (what the index stores), hit rate, EIO by site, the
// request-duration histogram.
#include "support/counters.h"

#include <gtest/gtest.h>

namespace kacheryfs {
namespace {

TEST(Counters, HitRateAndEioSites) {
  Counters counters;
  EXPECT_EQ(counters.hit_rate(), 0.0);
  counters.add(Counter::kHits, 3);
  counters.add(Counter::kMisses);
  EXPECT_DOUBLE_EQ(counters.hit_rate(), 0.75);
  EXPECT_EQ(counters.count_eio(EioSite::kBlockChecksum), 1u);
  EXPECT_EQ(counters.count_eio(EioSite::kDownload), 2u) << "numbers run over all sites";
  EXPECT_EQ(counters.eio(EioSite::kBlockChecksum), 1u);
  EXPECT_EQ(counters.eio_report(), "3 download=1\n8 block_checksum=1\n");
}

TEST(Counters, NamedValuesRoundTrip) {
  Counters counters;
  counters.add(Counter::kBytesFetched, 1234);
  counters.count_eio(EioSite::kSizeProbe);
  Counters copy;
  copy.load(counters.named_values());
  EXPECT_EQ(copy.named_values(), counters.named_values());
  EXPECT_EQ(copy.eio_total(), 1u);
  EXPECT_EQ(copy.get(Counter::kBytesFetched), 1234u);
}

TEST(Counters, RequestDurationsFallInTheirBucketsAndRoundTrip) {
  using std::chrono::microseconds;
  Counters counters;
  counters.observe_request(microseconds(400));         // <= 0.001
  counters.observe_request(microseconds(1000));        // == 0.001: the bound is inclusive (le)
  counters.observe_request(microseconds(30000));       // <= 0.05
  counters.observe_request(std::chrono::seconds(60));  // +Inf
  auto buckets = counters.request_buckets();
  EXPECT_EQ(buckets[0], 2u);
  EXPECT_EQ(buckets[5], 1u);
  EXPECT_EQ(buckets.back(), 1u);
  EXPECT_EQ(counters.request_count(), 4u);
  EXPECT_DOUBLE_EQ(counters.request_seconds_sum(), 60.0314);
  Counters copy;
  copy.load(counters.named_values());
  EXPECT_EQ(copy.request_buckets(), buckets);
  EXPECT_DOUBLE_EQ(copy.request_seconds_sum(), 60.0314);
}

}  // namespace
}  // namespace kacheryfs
