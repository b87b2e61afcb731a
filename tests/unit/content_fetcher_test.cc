#include "fetch/content_fetcher.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "kachery/hash_name.h"
#include "kachery/sha1_hasher.h"
#include "test_support.h"

namespace kacheryfs {
namespace {

namespace fs = std::filesystem;

using testing::FlagToken;
using testing::pattern;

class ContentFetcherTest : public testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    cache_ = std::make_unique<ContentCache>(root_);
    config_.probe_size = 1024;
    config_.range_size = 4096;
  }
  ContentFetcher make() { return ContentFetcher(source_, *cache_, quota_, counters_, config_); }
  std::string cached_bytes(const std::string& sha1) {
    std::ifstream in(cache_->complete_path(sha1), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  std::unique_ptr<ContentCache> cache_;
  testing::MemorySource source_;
  NoQuota quota_;
  Counters counters_;
  FetcherConfig config_;
  NeverCancelled never_;
};

TEST_F(ContentFetcherTest, EmptyBlobNeedsNoRequest) {
  auto fetcher = make();
  Result<FoundSize> answer = fetcher.find_size(kEmptySha1, never_);
  EXPECT_EQ(answer.error(), 0);
  EXPECT_EQ(answer->size, 0u);
  EXPECT_EQ(source_.requests.load(), 0);
}

TEST_F(ContentFetcherTest, SmallBlobTakesOneRequestAndIsCachedWithItsSize) {
  std::string data = pattern(1000, 1);
  std::string sha1 = source_.add(data);
  auto fetcher = make();
  EXPECT_EQ(fetcher.find_size(sha1, never_).value().size, 1000u);
  EXPECT_EQ(source_.requests.load(), 1);
  EXPECT_EQ(fetcher.ensure_cached(sha1, never_).error(), 0);
  EXPECT_EQ(source_.requests.load(), 1) << "the size request brought the bytes";
  EXPECT_EQ(cached_bytes(sha1), data);
}

TEST_F(ContentFetcherTest, AFileWhoseHeadAndLastWindowMeetIsCachedWholeByItsLookup) {
  // probe_size 1024 and 64 KiB pages: the last window starts on a page, at 0, and brings
  // every byte the head did not.
  std::string data = pattern(1500, 3);
  std::string sha1 = source_.add(data);
  auto fetcher = make();
  Result<FoundSize> found = fetcher.find_size(sha1, never_);
  ASSERT_TRUE(found.ok()) << found.detail();
  EXPECT_EQ(found->size, 1500u);
  EXPECT_TRUE(found->fetched_whole) << "the lookup is the miss";
  EXPECT_TRUE(found->pieces.empty());
  EXPECT_EQ(cached_bytes(sha1), data);
  EXPECT_EQ(counters_.get(Counter::kMisses), 1u);
}

TEST_F(ContentFetcherTest, SizeDiscoveryFindsEverySizeAroundTheProbe) {
  auto fetcher = make();
  for (std::size_t size : {1u, 1023u, 1024u, 1025u, 2047u, 2048u, 2049u, 5000u, 65537u, 1000000u}) {
    std::string sha1 = source_.add(pattern(size, static_cast<unsigned>(size)));
    int before = source_.requests.load();
    Result<FoundSize> answer = fetcher.find_size(sha1, never_);
    ASSERT_EQ(answer.error(), 0);
    EXPECT_EQ(answer->size, size);
    int used = source_.requests.load() - before;
    if (size >= 1024) {
      // about 2*log2(size/probe) one-byte probes
      EXPECT_LE(used, 3 + 2 * static_cast<int>(std::log2(static_cast<double>(size) / 1024) + 1))
          << size;
    }
  }
}

TEST_F(ContentFetcherTest, LargeBlobIsDownloadedInBoundedRangesAndVerified) {
  std::string data = pattern(50000, 3);
  std::string sha1 = source_.add(data);
  auto fetcher = make();
  ASSERT_EQ(fetcher.ensure_cached(sha1, never_).error(), 0);
  EXPECT_EQ(cached_bytes(sha1), data);
  for (auto [start, end] : source_.ranges) EXPECT_LE(end - start, 4096u);
  EXPECT_EQ(counters_.get(Counter::kBytesFetched) >= data.size(), true);
}

TEST_F(ContentFetcherTest, MismatchIsEioAndNothingIsCached) {
  std::string small = source_.add(pattern(500, 4));
  std::string large = source_.add(pattern(20000, 5));
  source_.corrupt = true;
  auto fetcher = make();
  EXPECT_EQ(fetcher.ensure_cached(small, never_).error(), -EIO);
  Status wrong = fetcher.ensure_cached(large, never_);
  EXPECT_EQ(wrong.error(), -EIO);
  EXPECT_EQ(wrong.cause(), Cause::kBadBytes) << "the failure says why: " << wrong.detail();
  EXPECT_NE(wrong.detail().find("hash to"), std::string::npos) << wrong.detail();
  EXPECT_FALSE(cache_->complete_size(small));
  EXPECT_FALSE(cache_->complete_size(large));
  EXPECT_TRUE(fs::is_empty(root_ / "tmp"));
  EXPECT_GE(counters_.eio_total(), 2u);
  source_.corrupt = false;
  EXPECT_EQ(fetcher.ensure_cached(large, never_).error(), 0) << "good bytes later are accepted";
}

TEST_F(ContentFetcherTest, AMissIsEnoentAndEachLookupAsksAgain) {
  auto fetcher = make();
  std::string data = pattern(5000, 9);
  std::string sha1 = sha1_hex_of(data);
  EXPECT_EQ(fetcher.find_size(sha1, never_).error(), -ENOENT);
  EXPECT_EQ(fetcher.find_size(sha1, never_).error(), -ENOENT);
  EXPECT_EQ(source_.requests.load(), 2) << "one request a miss, and no more";
  EXPECT_EQ(counters_.eio_total(), 0u);
  source_.add(data);  // stored on the node right after the miss
  EXPECT_EQ(fetcher.find_size(sha1, never_).value().size, 5000u);
}

TEST_F(ContentFetcherTest, WithANegativeTtlAMissIsRemembered) {
  config_.negative_ttl = std::chrono::seconds(600);
  auto fetcher = make();
  std::string sha1 = sha1_hex_of("nobody has this");
  EXPECT_EQ(fetcher.find_size(sha1, never_).error(), -ENOENT);
  EXPECT_EQ(fetcher.find_size(sha1, never_).error(), -ENOENT);
  EXPECT_EQ(source_.requests.load(), 1);
}

TEST_F(ContentFetcherTest, ConcurrentCallersCauseOneDownload) {
  std::string data = pattern(40000, 6);
  std::string sha1 = source_.add(data);
  source_.delay = std::chrono::milliseconds(20);
  auto fetcher = make();
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      if (fetcher.ensure_cached(sha1, never_).error() != 0) ++failures;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  std::map<std::pair<std::uint64_t, std::uint64_t>, int> seen;
  for (auto range : source_.ranges) ++seen[range];
  for (auto& [range, count] : seen) EXPECT_EQ(count, 1) << range.first << "-" << range.second;
  EXPECT_EQ(counters_.get(Counter::kMisses), 1u);
}

TEST_F(ContentFetcherTest, CancellationIsEintrAndLeavesNoTrace) {
  std::string sha1 = source_.add(pattern(40000, 7));
  source_.delay = std::chrono::milliseconds(5000);
  auto fetcher = make();
  FlagToken token;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    token.cancel();
  });
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(fetcher.ensure_cached(sha1, token).error(), -EINTR);
  canceller.join();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(4));
  EXPECT_FALSE(cache_->complete_size(sha1));
  EXPECT_EQ(counters_.eio_total(), 0u);
}

TEST_F(ContentFetcherTest, LoadsMissingBlobsWhenAllowed) {
  std::string data = pattern(3000, 8);
  std::string sha1 = sha1_hex_of(data);
  source_.network[sha1] = data;
  config_.load_missing = true;
  auto fetcher = make();
  EXPECT_EQ(fetcher.ensure_cached(sha1, never_).error(), 0);
  EXPECT_EQ(source_.loads.load(), 1);
  EXPECT_EQ(cached_bytes(sha1), data);
  EXPECT_EQ(fetcher.find_size(sha1_hex_of("nowhere"), never_).error(), -ENOENT);
}

}  // namespace
}  // namespace kacheryfs
