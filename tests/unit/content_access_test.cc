// ContentAccess: an open that waits only for the size, reads that fetch only their pages
// until a reader goes on where it stopped, readahead that opens at what fills the link,
// a small file fetched whole in the background, and a pin that fetches and verifies all.
#include "fetch/content_access.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "cache/content_cache.h"
#include "fetch/block_fetcher.h"
#include "fetch/content_fetcher.h"
#include "test_support.h"

namespace kacheryfs {
namespace {

using testing::MemorySource;
using testing::pattern;

constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t kBlock = 64 << 10;

class ContentAccessTest : public testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    cache_ = std::make_unique<ContentCache>(root_);
    FetcherConfig fetcher_config;
    fetcher_config.probe_size = kPage;
    fetcher_config.page_size = kPage;
    fetcher_ =
        std::make_unique<ContentFetcher>(source_, *cache_, quota_, counters_, fetcher_config);
    blocks_ = std::make_unique<BlockFetcher>(source_, *cache_, quota_, counters_, in_use_,
                                             BlockFetcherConfig{kPage, kBlock, 2});
    content_ = std::make_unique<ContentAccess>(*cache_, *fetcher_, *blocks_, quota_, counters_,
                                               in_use_, StreamingConfig{100000, 1 << 20, false});
  }
  // Whether any range asked for after the first `after` reaches into [start, end).
  bool asked_within(std::uint64_t start, std::uint64_t end, std::size_t after = 0) {
    auto ranges = source_.ranges_asked();
    return std::any_of(ranges.begin() + static_cast<std::ptrdiff_t>(std::min(after, ranges.size())),
                       ranges.end(),
                       [&](const auto& r) { return r.first < end && r.second > start; });
  }

  MemorySource source_;
  NoQuota quota_;
  Counters counters_;
  OpenObjects in_use_;
  std::unique_ptr<ContentCache> cache_;
  std::unique_ptr<ContentFetcher> fetcher_;
  std::unique_ptr<BlockFetcher> blocks_;
  std::unique_ptr<ContentAccess> content_;
  NeverCancelled never_;
};

ContentRequest request(const std::string& sha1, Intent intent = Intent::kRead) {
  ContentRequest r;
  r.sha1 = sha1;
  r.intent = intent;
  return r;
}

TEST_F(ContentAccessTest, AFirstReadFetchesItsPagesAndReadaheadStartsWhenTheReaderGoesOn) {
  const std::string bytes = pattern(1 << 20, 3);
  const std::string sha1 = source_.add(bytes);
  ASSERT_EQ(content_->size(sha1, never_)->size, bytes.size());
  const std::size_t discovery = source_.ranges_asked().size();  // its probes and windows
  OpenContent file;
  ASSERT_EQ(content_->open(request(sha1), file, never_).error(), 0);
  ASSERT_TRUE(file.partial) << "a file larger than the head streams";
  // The first read: its own pages (the head came with the size), nothing ahead.
  ASSERT_TRUE(content_->prepare_read(file, 0, 2 * kPage, never_).ok());
  EXPECT_FALSE(asked_within(2 * kPage, bytes.size(), discovery)) << "no readahead yet";
  // The reader goes on where it stopped: the window opens (one block, the link being
  // unmeasured) and is fetched in the background up to the end of the block it ends in,
  // no further.
  Result<int> fd = content_->prepare_read(file, 2 * kPage, 2 * kPage, never_);
  ASSERT_TRUE(fd.ok());
  const std::uint64_t window_end = 4 * kPage + kBlock;
  const std::uint64_t block_end = ((window_end - 1) / kBlock + 1) * kBlock;
  ASSERT_GT(block_end, window_end) << "the window ends inside a block";
  EXPECT_TRUE(eventually([&] { return asked_within(block_end - kPage, block_end, discovery); }))
      << "the last page of the window's last block is fetched";
  EXPECT_FALSE(asked_within(block_end, bytes.size(), discovery)) << "and nothing past it";
  std::string got(2 * kPage, '\0');
  ASSERT_EQ(pread(*fd, got.data(), got.size(), 2 * kPage), static_cast<ssize_t>(got.size()));
  EXPECT_EQ(got, bytes.substr(2 * kPage, 2 * kPage));
}

TEST_F(ContentAccessTest, AReadOvertakenWithinTheWindowKeepsTheStreamGoing) {
  // The kernel's readahead, served by several FUSE threads, delivers a stream's reads out
  // of order by a few MiB. A read that far behind the stream's end, within its readahead
  // window, is part of the stream: the window stays open and the end does not move back.
  ContentAccess content(*cache_, *fetcher_, *blocks_, quota_, counters_, in_use_,
                        StreamingConfig{20000, 8 << 20, false});
  const std::string bytes = pattern(6 << 20, 8);
  const std::string sha1 = source_.add(bytes);
  OpenContent file;
  ASSERT_EQ(content.open(request(sha1), file, never_).error(), 0);
  ASSERT_TRUE(file.partial);
  constexpr std::uint64_t kRead = 256 << 10;
  for (std::uint64_t offset = 0; offset < (4 << 20); offset += kRead)
    ASSERT_TRUE(content.prepare_read(file, offset, kRead, never_).ok());
  const std::uint64_t window = file.window;
  ASSERT_GT(window, 2u << 20) << "the window has grown past how far the next read lags";
  ASSERT_TRUE(content.prepare_read(file, (4 << 20) - (2 << 20), kRead, never_).ok());
  EXPECT_GE(file.window, window) << "an overtaken read does not close the window";
  EXPECT_EQ(file.next_offset, 4u << 20) << "nor move the stream's end back";
  // A jump more than 1 MiB past the stream's end is a seek: the window closes.
  ASSERT_TRUE(content.prepare_read(file, (5 << 20) + kRead, kRead, never_).ok());
  EXPECT_EQ(file.window, 0u);
}

TEST_F(ContentAccessTest, ALookupKeepsWhatItFetchedInTheCacheAndTheOpenCountsOnce) {
  const std::string large = pattern(1 << 20, 6);
  const std::string large_sha1 = source_.add(large);
  Result<ContentSize> size = content_->size(large_sha1, never_);
  ASSERT_TRUE(size.ok());
  EXPECT_FALSE(size->fetched) << "larger than the head: not fetched whole";
  // The head is in the block cache now, with no open: a lookup alone keeps it.
  EXPECT_GE(*content_->cached_bytes(large_sha1, never_), kPage);
  const std::size_t asked = source_.ranges_asked().size();
  OpenContent file;
  ASSERT_EQ(content_->open(request(large_sha1), file, never_).error(), 0);
  ASSERT_TRUE(content_->prepare_read(file, 0, kPage, never_).ok());
  EXPECT_FALSE(asked_within(0, kPage, asked)) << "the first page is not fetched again";
  EXPECT_EQ(counters_.get(Counter::kMisses), 1u) << "the open that streams";
  EXPECT_EQ(counters_.get(Counter::kHits), 0u);

  const std::string small = pattern(1000, 7);  // within the head: fetched whole at lookup
  const std::string small_sha1 = source_.add(small);
  size = content_->size(small_sha1, never_);
  ASSERT_TRUE(size.ok());
  EXPECT_TRUE(size->fetched);
  EXPECT_EQ(counters_.get(Counter::kMisses), 2u) << "the lookup that fetched it";
  ContentRequest after_lookup = request(small_sha1);
  after_lookup.fetched_by_lookup = true;
  OpenContent first;
  ASSERT_EQ(content_->open(after_lookup, first, never_).error(), 0);
  EXPECT_EQ(counters_.get(Counter::kHits), 0u) << "that miss's own open is no hit";
  OpenContent again;
  ASSERT_EQ(content_->open(request(small_sha1), again, never_).error(), 0);
  EXPECT_EQ(counters_.get(Counter::kHits), 1u);
  EXPECT_EQ(counters_.get(Counter::kMisses), 2u);
}

TEST_F(ContentAccessTest, TheFirstWindowFillsTheMeasuredLink) {
  BlockFetcher wide(source_, *cache_, quota_, counters_, in_use_,
                    BlockFetcherConfig{64 << 10, 4 << 20, 4});
  EXPECT_EQ(wide.first_window(), 4u << 20) << "unmeasured: one block";
  source_.estimate = {0.020, 0.0012, 25e6};  // a VPN: 20 ms, 200 Mbit/s
  EXPECT_EQ(wide.first_window(), 1048576u) << "twice the bandwidth-delay product, in pages";
  source_.estimate = {0.0005, 0.0001, 125e6};  // a LAN
  EXPECT_EQ(wide.first_window(), 256u << 10) << "at least 256 KiB";
  source_.estimate = {0.0011, 0.001, 400e6};  // loopback, a node at 1 ms a request
  EXPECT_EQ(wide.first_window(), 1638400u) << "ranges that amortize the node's time per request";
}

TEST_F(ContentAccessTest, ASmallFileIsFetchedWholeInTheBackgroundOnceRead) {
  const std::string bytes = pattern(90000, 4);  // under whole_max, over what discovery brings
  const std::string sha1 = source_.add(bytes);
  OpenContent file;
  ASSERT_EQ(content_->open(request(sha1), file, never_).error(), 0);
  ASSERT_TRUE(file.partial);
  ASSERT_TRUE(content_->prepare_read(file, 0, kPage, never_).ok());
  EXPECT_TRUE(eventually([&] { return cache_->complete_size(sha1).has_value(); }))
      << "fetched whole and verified without another read";
  EXPECT_EQ(content_->verified(sha1), "yes");
}

TEST_F(ContentAccessTest, APinFetchesAndVerifiesEverything) {
  const std::string bytes = pattern(300000, 5);
  const std::string sha1 = source_.add(bytes);
  OpenContent file;
  ASSERT_EQ(content_->open(request(sha1, Intent::kPin), file, never_).error(), 0);
  EXPECT_EQ(cache_->complete_size(sha1), bytes.size());
  EXPECT_EQ(*content_->cached_bytes(sha1, never_), bytes.size());
  source_.corrupt = true;
  const std::string bad = source_.add(pattern(300000, 6));
  OpenContent bad_file;
  EXPECT_EQ(content_->open(request(bad, Intent::kPin), bad_file, never_).error(), -EIO);
  EXPECT_FALSE(cache_->complete_size(bad));
}

}  // namespace
}  // namespace kacheryfs
