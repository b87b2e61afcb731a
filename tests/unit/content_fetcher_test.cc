#include "content_fetcher.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "hash_name.h"
#include "sha1_hasher.h"

namespace kacheryfs {
namespace {

namespace fs = std::filesystem;

// An in-memory BlobSource that counts requests and can corrupt, slow down or lack blobs.
class FakeSource final : public BlobSource {
 public:
  std::string add(std::string bytes) {
    std::string sha1 = sha1_hex_of(bytes);
    std::lock_guard lock(mutex);
    blobs[sha1] = std::move(bytes);
    return sha1;
  }

  FetchResult read_range(std::string_view sha1, std::uint64_t start, std::uint64_t end,
                         const ByteSink& sink, const CancelToken& cancel) override {
    ++requests;
    std::string bytes;
    {
      std::lock_guard lock(mutex);
      ranges.emplace_back(start, end);
      auto it = blobs.find(std::string(sha1));
      if (it == blobs.end()) return {FetchStatus::kNotFound, "no such blob"};
      bytes = it->second;
    }
    auto until = std::chrono::steady_clock::now() + delay;
    while (std::chrono::steady_clock::now() < until) {
      if (cancel.cancelled()) return {FetchStatus::kCancelled, "cancelled"};
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (start >= bytes.size()) return {};
    std::string piece = bytes.substr(start, end - start);
    if (corrupt) piece[0] ^= 1;
    if (!sink(piece.data(), piece.size())) return {FetchStatus::kLocalError, "sink"};
    return {};
  }

  FetchResult load_blob(std::string_view sha1, const CancelToken&) override {
    ++loads;
    std::lock_guard lock(mutex);
    auto it = network.find(std::string(sha1));
    if (it == network.end()) return {FetchStatus::kNotFound, "Unable to find file"};
    blobs[it->first] = it->second;
    return {};
  }

  std::mutex mutex;
  std::map<std::string, std::string> blobs;
  std::map<std::string, std::string> network;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  std::atomic<int> requests{0};
  std::atomic<int> loads{0};
  std::atomic<bool> corrupt{false};
  std::chrono::milliseconds delay{0};
};

class FlagToken final : public CancelToken {
 public:
  bool cancelled() const override { return flag.load(); }
  std::atomic<bool> flag{false};
};

std::string pattern(std::size_t size, unsigned seed) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i)
    s[i] = static_cast<char>((i * 31 + seed * 7 + (i >> 8)) & 0xff);
  return s;
}

class ContentFetcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("kfs-fetcher-test-" + std::to_string(getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    cache_ = std::make_unique<ContentCache>(root_);
    config_.probe_size = 1024;
    config_.range_size = 4096;
  }
  void TearDown() override { fs::remove_all(root_); }
  ContentFetcher make() { return ContentFetcher(source_, *cache_, config_); }
  std::string cached_bytes(const std::string& sha1) {
    std::ifstream in(cache_->complete_path(sha1), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  fs::path root_;
  std::unique_ptr<ContentCache> cache_;
  FakeSource source_;
  FetcherConfig config_;
  NeverCancelled never_;
};

TEST_F(ContentFetcherTest, EmptyBlobNeedsNoRequest) {
  auto fetcher = make();
  SizeAnswer answer = fetcher.blob_size(kEmptySha1, never_);
  EXPECT_EQ(answer.error, 0);
  EXPECT_EQ(answer.size, 0u);
  EXPECT_EQ(source_.requests.load(), 0);
}

TEST_F(ContentFetcherTest, SmallBlobTakesOneRequestAndIsCachedWithItsSize) {
  std::string data = pattern(1000, 1);
  std::string sha1 = source_.add(data);
  auto fetcher = make();
  EXPECT_EQ(fetcher.blob_size(sha1, never_).size, 1000u);
  EXPECT_EQ(source_.requests.load(), 1);
  EXPECT_EQ(fetcher.ensure_cached(sha1, never_), 0);
  EXPECT_EQ(source_.requests.load(), 1) << "the size request brought the bytes";
  EXPECT_EQ(cached_bytes(sha1), data);
}

TEST_F(ContentFetcherTest, SizeDiscoveryFindsEverySizeAroundTheProbe) {
  auto fetcher = make();
  for (std::size_t size : {1u, 1023u, 1024u, 1025u, 2047u, 2048u, 2049u, 5000u, 65537u, 1000000u}) {
    std::string sha1 = source_.add(pattern(size, static_cast<unsigned>(size)));
    int before = source_.requests.load();
    SizeAnswer answer = fetcher.blob_size(sha1, never_);
    EXPECT_EQ(answer.error, 0);
    EXPECT_EQ(answer.size, size);
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
  ASSERT_EQ(fetcher.ensure_cached(sha1, never_), 0);
  EXPECT_EQ(cached_bytes(sha1), data);
  for (auto [start, end] : source_.ranges) EXPECT_LE(end - start, 4096u);
  EXPECT_EQ(fetcher.bytes_fetched() >= data.size(), true);
}

TEST_F(ContentFetcherTest, MismatchIsEioAndNothingIsCached) {
  std::string small = source_.add(pattern(500, 4));
  std::string large = source_.add(pattern(20000, 5));
  source_.corrupt = true;
  auto fetcher = make();
  EXPECT_EQ(fetcher.ensure_cached(small, never_), -EIO);
  EXPECT_EQ(fetcher.ensure_cached(large, never_), -EIO);
  EXPECT_FALSE(cache_->complete_size(small));
  EXPECT_FALSE(cache_->complete_size(large));
  EXPECT_TRUE(fs::is_empty(root_ / "tmp"));
  EXPECT_GE(fetcher.io_errors(), 2u);
  source_.corrupt = false;
  EXPECT_EQ(fetcher.ensure_cached(large, never_), 0) << "good bytes later are accepted";
}

TEST_F(ContentFetcherTest, MissingBlobIsEnoentAndRememberedBriefly) {
  auto fetcher = make();
  std::string sha1 = sha1_hex_of("nobody has this");
  EXPECT_EQ(fetcher.blob_size(sha1, never_).error, -ENOENT);
  EXPECT_EQ(fetcher.blob_size(sha1, never_).error, -ENOENT);
  EXPECT_EQ(source_.requests.load(), 1);
  EXPECT_EQ(fetcher.io_errors(), 0u);
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
      if (fetcher.ensure_cached(sha1, never_) != 0) ++failures;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  std::map<std::pair<std::uint64_t, std::uint64_t>, int> seen;
  for (auto range : source_.ranges) ++seen[range];
  for (auto& [range, count] : seen) EXPECT_EQ(count, 1) << range.first << "-" << range.second;
  EXPECT_EQ(fetcher.downloads_completed(), 1u);
}

TEST_F(ContentFetcherTest, CancellationIsEintrAndLeavesNoTrace) {
  std::string sha1 = source_.add(pattern(40000, 7));
  source_.delay = std::chrono::milliseconds(5000);
  auto fetcher = make();
  FlagToken token;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    token.flag = true;
  });
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(fetcher.ensure_cached(sha1, token), -EINTR);
  canceller.join();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(4));
  EXPECT_FALSE(cache_->complete_size(sha1));
  EXPECT_EQ(fetcher.io_errors(), 0u);
}

TEST_F(ContentFetcherTest, LoadsMissingBlobsWhenAllowed) {
  std::string data = pattern(3000, 8);
  std::string sha1 = sha1_hex_of(data);
  source_.network[sha1] = data;
  config_.load_missing = true;
  auto fetcher = make();
  EXPECT_EQ(fetcher.ensure_cached(sha1, never_), 0);
  EXPECT_EQ(source_.loads.load(), 1);
  EXPECT_EQ(cached_bytes(sha1), data);
  EXPECT_EQ(fetcher.blob_size(sha1_hex_of("nowhere"), never_).error, -ENOENT);
}

}  // namespace
}  // namespace kacheryfs
