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

  // Puts `data` in the source and opens its partial file, `extra` bytes larger than the
  // data where a test needs the node to have less than the file's size says.
  std::shared_ptr<PartialFile> stage(const std::string& data, std::uint64_t extra = 0) {
    sha1_ = source_.add(data);
    return open_partial(sha1_, data.size() + extra);
  }

  // A verifier that records the sha1 of every file it fails in failed_.
  std::unique_ptr<Verifier> recording_verifier() {
    return std::make_unique<Verifier>(source_, *cache_, quota_, counters_,
                                      [this](const std::string& bad) { failed_.push_back(bad); });
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
  MemorySource source_;
  BlockDownload download_{source_, quota_, counters_, kBlock};
  std::string sha1_;  // of the data stage() put in the source
  std::vector<std::string> failed_;
};

TEST_F(BlockStagesTest, ARunIsOneRangeOfAtMostABlockAndItsPagesArePresent) {
  const std::string data = pattern(100000);
  auto file = stage(data);
  ASSERT_TRUE(file->claim(2));
  ASSERT_TRUE(download_.fetch_run(*file, 2, 20, never_, BlockDownload::Purpose::kDemand).ok());
  ASSERT_EQ(source_.ranges_asked().size(), 1u);
  EXPECT_EQ(source_.ranges_asked()[0], std::make_pair(2 * kPage, 2 * kPage + kBlock));
  for (std::uint64_t page = 0; page < file->page_count(); ++page)
    EXPECT_EQ(file->present(page), page >= 2 && page < 6) << "page " << page;
  EXPECT_EQ(bytes_at(*file, 2 * kPage, kBlock), data.substr(2 * kPage, kBlock));
  EXPECT_EQ(counters_.get(Counter::kBytesFetched), kBlock);
}

TEST_F(BlockStagesTest, ARangeThatComesBackShortLeavesItsMissingPagesToBeFetchedAgain) {
  const std::string data = pattern(100000);
  auto file = stage(data, 3 * kPage);  // larger than what the node has
  const std::uint64_t last_page = file->page_count() - 1;
  ASSERT_TRUE(file->claim(last_page - 3));
  Status result =
      download_.fetch_run(*file, last_page - 3, last_page, never_, BlockDownload::Purpose::kDemand);
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.cause(), Cause::kProtocolError) << result.detail();
  EXPECT_FALSE(file->present(last_page));
  EXPECT_TRUE(file->claim(last_page)) << "a page that did not arrive can be claimed again";
}

TEST_F(BlockStagesTest, BytesInHandAreStoredOnlyAsTheWholePagesTheyCover) {
  const std::string data = pattern(5 * kPage);
  auto file = stage(data);
  EXPECT_TRUE(download_.store(*file, 100, data.substr(100, 3 * kPage)));
  EXPECT_FALSE(file->present(0)) << "page 0 is covered only from byte 100";
  EXPECT_TRUE(file->present(1));
  EXPECT_TRUE(file->present(2));
  EXPECT_FALSE(file->present(3)) << "page 3 is covered only up to byte 99 of it";
  EXPECT_EQ(bytes_at(*file, kPage, 2 * kPage), data.substr(kPage, 2 * kPage));
  EXPECT_FALSE(download_.store(*file, kPage, data.substr(kPage, kPage)))
      << "a present page is not stored twice";
  EXPECT_EQ(source_.requests.load(), 0);
}

TEST_F(BlockStagesTest, TheVerifierMovesAWholeMatchingFileIntoTheCache) {
  const std::string data = pattern(3 * kPage + 123);
  auto file = stage(data);
  auto verifier = recording_verifier();
  ASSERT_TRUE(download_.store(*file, 0, data.substr(0, kPage)));
  verifier->schedule(file);
  ASSERT_TRUE(download_.store(*file, kPage, data.substr(kPage)));
  verifier->schedule(file);
  ASSERT_TRUE(file->wait_complete(never_).ok());
  verifier->stop();
  EXPECT_EQ(cache_->complete_size(sha1_), data.size());
  EXPECT_TRUE(failed_.empty());
  EXPECT_EQ(counters_.get(Counter::kVerifyFailures), 0u);
}

TEST_F(BlockStagesTest, TheVerifierFailsAMismatchedFileAndSaysWhichOne) {
  const std::string data = pattern(3 * kPage);
  auto file = stage(data);
  std::string wrong = data;
  wrong[kPage + 7] ^= 1;
  auto verifier = recording_verifier();
  ASSERT_TRUE(download_.store(*file, 0, wrong));
  verifier->schedule(file);
  Status complete = file->wait_complete(never_);
  EXPECT_FALSE(complete.ok());
  EXPECT_EQ(complete.cause(), Cause::kBadBytes) << complete.detail();
  EXPECT_TRUE(file->failed());
  verifier->stop();  // readers wake before the callback runs; the join waits for the rest
  EXPECT_FALSE(cache_->complete_size(sha1_).has_value());
  EXPECT_EQ(failed_, std::vector<std::string>{sha1_});
  EXPECT_EQ(counters_.get(Counter::kVerifyFailures), 1u);
}

TEST_F(BlockStagesTest, QueuedRunsAreFetchedByTheWorkersAndVerified) {
  const std::string data = pattern(10 * kPage + 17);
  auto file = stage(data);
  Verifier verifier(source_, *cache_, quota_, counters_, {});
  Prefetcher prefetcher(download_, verifier, 2);
  prefetcher.enqueue({{file, 0, 3}, {file, 4, 7}, {file, 8, file->page_count() - 1}});
  ASSERT_TRUE(file->wait_complete(never_).ok());
  EXPECT_EQ(cache_->complete_size(sha1_), data.size());
  EXPECT_EQ(source_.fetched_bytes(), data.size()) << "every byte fetched once";
  for (auto [start, end] : source_.ranges_asked()) EXPECT_LE(end - start, kBlock);
}

TEST_F(BlockStagesTest, AStoppedPrefetcherFetchesNothing) {
  const std::string data = pattern(4 * kPage);
  auto file = stage(data);
  Verifier verifier(source_, *cache_, quota_, counters_, {});
  Prefetcher prefetcher(download_, verifier, 2);
  prefetcher.stop();
  prefetcher.enqueue({{file, 0, file->page_count() - 1}});
  prefetcher.stop();  // joins any worker that could have taken the run
  EXPECT_EQ(source_.requests.load(), 0);
  EXPECT_FALSE(file->present(0));
}

}  // namespace
}  // namespace kacheryfs
