// The block cache's stages on their own, with an in-memory source: BlockDownload (one range
// written into a partial file, bytes in hand stored as whole pages), Prefetcher (queued runs
// fetched by its workers, nothing fetched once stopped) and Verifier (a matching file moved
// into the complete layout, a mismatch failing the file and its readers).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "cache/cache_accounting.h"
#include "cache/content_cache.h"
#include "cache/partial_file.h"
#include "fetch/block_download.h"
#include "fetch/prefetcher.h"
#include "fetch/verifier.h"
#include "support/counters.h"
#include "test_support.h"

namespace kacheryfs {
namespace {

using testing::MemorySource;
using testing::pattern;

constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t kBlock = 16384;

class BlockStagesTest : public testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    cache_ = std::make_unique<ContentCache>(root_);
  }

  std::shared_ptr<PartialFile> open_partial(const std::string& sha1, std::uint64_t size) {
    auto opened = PartialFile::open(cache_->layout(), sha1, size, kPage);
    EXPECT_TRUE(opened.ok()) << opened.detail();
    return opened.ok() ? *opened : nullptr;
  }

  std::string bytes_at(const PartialFile& file, std::uint64_t offset, std::size_t length) {
    std::string out(length, '\0');
    EXPECT_EQ(pread(file.data_fd(), out.data(), length, static_cast<off_t>(offset)),
              static_cast<ssize_t>(length));
    return out;
  }

  std::unique_ptr<ContentCache> cache_;
  NeverCancelled never_;
  Counters counters_;
  NoQuota quota_;
};

TEST_F(BlockStagesTest, ARunIsOneRangeOfAtMostABlockAndItsPagesArePresent) {
  MemorySource source;
  const std::string data = pattern(100000);
  const std::string sha1 = source.add(data);
  auto file = open_partial(sha1, data.size());
  BlockDownload download(source, quota_, counters_, kBlock);
  ASSERT_TRUE(file->claim(2));
  ASSERT_TRUE(download.fetch_run(*file, 2, 20, never_, BlockDownload::Purpose::kDemand).ok());
  ASSERT_EQ(source.ranges_asked().size(), 1u);
  EXPECT_EQ(source.ranges_asked()[0], std::make_pair(2 * kPage, 2 * kPage + kBlock));
  for (std::uint64_t page = 0; page < file->page_count(); ++page)
    EXPECT_EQ(file->present(page), page >= 2 && page < 6) << "page " << page;
  EXPECT_EQ(bytes_at(*file, 2 * kPage, kBlock), data.substr(2 * kPage, kBlock));
  EXPECT_EQ(counters_.get(Counter::kBytesFetched), kBlock);
}

TEST_F(BlockStagesTest, ARangeThatComesBackShortLeavesItsMissingPagesToBeFetchedAgain) {
  MemorySource source;
  const std::string data = pattern(100000);
  const std::string sha1 = source.add(data);
  auto file = open_partial(sha1, data.size() + 3 * kPage);  // larger than what the node has
  BlockDownload download(source, quota_, counters_, kBlock);
  const std::uint64_t last_page = file->page_count() - 1;
  ASSERT_TRUE(file->claim(last_page - 3));
  Status result =
      download.fetch_run(*file, last_page - 3, last_page, never_, BlockDownload::Purpose::kDemand);
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.cause(), Cause::kProtocolError) << result.detail();
  EXPECT_FALSE(file->present(last_page));
  EXPECT_TRUE(file->claim(last_page)) << "a page that did not arrive can be claimed again";
}

TEST_F(BlockStagesTest, BytesInHandAreStoredOnlyAsTheWholePagesTheyCover) {
  MemorySource source;
  const std::string data = pattern(5 * kPage);
  const std::string sha1 = source.add(data);
  auto file = open_partial(sha1, data.size());
  BlockDownload download(source, quota_, counters_, kBlock);
  EXPECT_TRUE(download.store(*file, 100, data.substr(100, 3 * kPage)));
  EXPECT_FALSE(file->present(0)) << "page 0 is covered only from byte 100";
  EXPECT_TRUE(file->present(1));
  EXPECT_TRUE(file->present(2));
  EXPECT_FALSE(file->present(3)) << "page 3 is covered only up to byte 99 of it";
  EXPECT_EQ(bytes_at(*file, kPage, 2 * kPage), data.substr(kPage, 2 * kPage));
  EXPECT_FALSE(download.store(*file, kPage, data.substr(kPage, kPage)))
      << "a present page is not stored twice";
  EXPECT_EQ(source.requests.load(), 0);
}

TEST_F(BlockStagesTest, TheVerifierMovesAWholeMatchingFileIntoTheCache) {
  MemorySource source;
  const std::string data = pattern(3 * kPage + 123);
  const std::string sha1 = source.add(data);
  auto file = open_partial(sha1, data.size());
  BlockDownload download(source, quota_, counters_, kBlock);
  std::vector<std::string> failed;
  Verifier verifier(source, *cache_, quota_, counters_,
                    [&](const std::string& bad) { failed.push_back(bad); });
  ASSERT_TRUE(download.store(*file, 0, data.substr(0, kPage)));
  verifier.schedule(file);
  ASSERT_TRUE(download.store(*file, kPage, data.substr(kPage)));
  verifier.schedule(file);
  ASSERT_TRUE(file->wait_complete(never_).ok());
  verifier.stop();
  EXPECT_EQ(cache_->complete_size(sha1), data.size());
  EXPECT_TRUE(failed.empty());
  EXPECT_EQ(counters_.get(Counter::kVerifyFailures), 0u);
}

TEST_F(BlockStagesTest, TheVerifierFailsAMismatchedFileAndSaysWhichOne) {
  MemorySource source;
  const std::string data = pattern(3 * kPage);
  const std::string sha1 = source.add(data);
  auto file = open_partial(sha1, data.size());
  BlockDownload download(source, quota_, counters_, kBlock);
  std::string wrong = data;
  wrong[kPage + 7] ^= 1;
  std::vector<std::string> failed;
  Verifier verifier(source, *cache_, quota_, counters_,
                    [&](const std::string& bad) { failed.push_back(bad); });
  ASSERT_TRUE(download.store(*file, 0, wrong));
  verifier.schedule(file);
  Status complete = file->wait_complete(never_);
  EXPECT_FALSE(complete.ok());
  EXPECT_EQ(complete.cause(), Cause::kBadBytes) << complete.detail();
  EXPECT_TRUE(file->failed());
  verifier.stop();  // readers wake before the callback runs; the join waits for the rest
  EXPECT_FALSE(cache_->complete_size(sha1).has_value());
  EXPECT_EQ(failed, std::vector<std::string>{sha1});
  EXPECT_EQ(counters_.get(Counter::kVerifyFailures), 1u);
}

TEST_F(BlockStagesTest, QueuedRunsAreFetchedByTheWorkersAndVerified) {
  MemorySource source;
  const std::string data = pattern(10 * kPage + 17);
  const std::string sha1 = source.add(data);
  auto file = open_partial(sha1, data.size());
  BlockDownload download(source, quota_, counters_, kBlock);
  Verifier verifier(source, *cache_, quota_, counters_, {});
  Prefetcher prefetcher(download, verifier, 2);
  prefetcher.enqueue({{file, 0, 3}, {file, 4, 7}, {file, 8, file->page_count() - 1}});
  ASSERT_TRUE(file->wait_complete(never_).ok());
  EXPECT_EQ(cache_->complete_size(sha1), data.size());
  EXPECT_EQ(source.fetched_bytes(), data.size()) << "every byte fetched once";
  for (auto [start, end] : source.ranges_asked()) EXPECT_LE(end - start, kBlock);
}

TEST_F(BlockStagesTest, AStoppedPrefetcherFetchesNothing) {
  MemorySource source;
  const std::string data = pattern(4 * kPage);
  const std::string sha1 = source.add(data);
  auto file = open_partial(sha1, data.size());
  BlockDownload download(source, quota_, counters_, kBlock);
  Verifier verifier(source, *cache_, quota_, counters_, {});
  Prefetcher prefetcher(download, verifier, 2);
  prefetcher.stop();
  prefetcher.enqueue({{file, 0, file->page_count() - 1}});
  prefetcher.stop();  // joins any worker that could have taken the run
  EXPECT_EQ(source.requests.load(), 0);
  EXPECT_FALSE(file->present(0));
}

}  // namespace
}  // namespace kacheryfs
