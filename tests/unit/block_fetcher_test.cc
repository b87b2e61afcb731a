// BlockFetcher and PartialFile with an in-memory source: pages fetched once, persisted
// across instances, verified into the complete layout, and dropped on a mismatch.
#include "block_fetcher.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "sha1_hasher.h"

namespace kacheryfs {
namespace {

namespace fs = std::filesystem;

class RangeSource final : public BlobSource {
 public:
  explicit RangeSource(std::string data) : data_(std::move(data)), sha1_(sha1_hex_of(data_)) {}
  FetchResult read_range(std::string_view, std::uint64_t start, std::uint64_t end,
                         const ByteSink& sink, const CancelToken&) override {
    {
      std::lock_guard lock(mutex);
      ranges.emplace_back(start, end);
    }
    if (start >= data_.size()) return {};
    std::string piece = data_.substr(start, end - start);
    if (corrupt_at >= start && corrupt_at < start + piece.size()) piece[corrupt_at - start] ^= 1;
    sink(piece.data(), piece.size());
    return {};
  }
  FetchResult load_blob(std::string_view, const CancelToken&) override {
    return {FetchStatus::kNotFound, ""};
  }
  const std::string& sha1() const { return sha1_; }
  std::uint64_t fetched_bytes() {
    std::lock_guard lock(mutex);
    std::uint64_t n = 0;
    for (auto [s, e] : ranges) n += std::min<std::uint64_t>(e, data_.size()) - s;
    return n;
  }

  std::mutex mutex;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  std::uint64_t corrupt_at = ~std::uint64_t{0};

 private:
  std::string data_;
  std::string sha1_;
};

std::string pattern(std::size_t size) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 2654435761u) >> 13);
  return s;
}

class BlockFetcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("kfs-blocks-test-" + std::to_string(getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    cache_ = std::make_unique<ContentCache>(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  template <class Predicate>
  bool eventually(Predicate predicate) {
    for (int i = 0; i < 1000 && !predicate(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return predicate();
  }

  fs::path root_;
  std::unique_ptr<ContentCache> cache_;
  NeverCancelled never_;
  BlockFetcherConfig config_{4096, 16384, 2};
};

TEST_F(BlockFetcherTest, ARandomReadFetchesOnlyItsPages) {
  RangeSource source(pattern(1 << 20));
  ContentFetcher errors(source, *cache_, {});
  BlockFetcher blocks(source, *cache_, errors, config_);
  int error = 0;
  auto file = blocks.partial(source.sha1(), 1 << 20, std::nullopt, &error);
  ASSERT_TRUE(file);
  ASSERT_EQ(blocks.ensure(file, 100000, 100, false, never_), 0);
  EXPECT_EQ(source.fetched_bytes(), 4096u);
  EXPECT_TRUE(file->present(100000 / 4096));
  EXPECT_EQ(blocks.partial_bytes(source.sha1(), 1 << 20), 4096u);
  ASSERT_EQ(blocks.ensure(file, 100000, 5000, false, never_), 0);
  EXPECT_EQ(source.fetched_bytes(), 8192u) << "only the missing page";
  char byte = 0;
  ASSERT_EQ(pread(file->data_fd(), &byte, 1, 100001), 1);
  EXPECT_EQ(byte, pattern(1 << 20)[100001]);
}

TEST_F(BlockFetcherTest, ContiguousMissingPagesGoInBoundedRuns) {
  RangeSource source(pattern(100000));
  ContentFetcher errors(source, *cache_, {});
  BlockFetcher blocks(source, *cache_, errors, config_);
  int error = 0;
  auto file = blocks.partial(source.sha1(), 100000, std::nullopt, &error);
  ASSERT_EQ(blocks.ensure(file, 0, 100000, false, never_), 0);
  for (auto [start, end] : source.ranges) EXPECT_LE(end - start, 16384u);
  EXPECT_EQ(source.fetched_bytes(), 100000u);
}

TEST_F(BlockFetcherTest, PresentPagesSurviveANewInstanceAndTheWholeFileIsVerified) {
  std::string data = pattern(50000);
  RangeSource source(data);
  {
    ContentFetcher errors(source, *cache_, {});
    BlockFetcher blocks(source, *cache_, errors, config_);
    int error = 0;
    auto file = blocks.partial(source.sha1(), data.size(), std::nullopt, &error);
    ASSERT_EQ(blocks.ensure(file, 0, 20000, false, never_), 0);
  }
  EXPECT_EQ(cache_->partial_size(source.sha1()), data.size());
  std::uint64_t before = source.fetched_bytes();
  ContentFetcher errors(source, *cache_, {});
  BlockFetcher blocks(source, *cache_, errors, config_);
  int error = 0;
  auto file = blocks.partial(source.sha1(), data.size(), std::nullopt, &error);
  ASSERT_EQ(blocks.ensure(file, 0, data.size(), false, never_), 0);
  EXPECT_EQ(source.fetched_bytes() - before, data.size() - 20480) << "pages 0-4 were kept";
  ASSERT_TRUE(eventually([&] { return file->complete(); }));
  std::ifstream in(cache_->complete_path(source.sha1()), std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), data);
  EXPECT_FALSE(cache_->partial_size(source.sha1()));
}

TEST_F(BlockFetcherTest, AMismatchDropsEverythingAndFailsReaders) {
  RangeSource source(pattern(50000));
  source.corrupt_at = 30000;
  ContentFetcher errors(source, *cache_, {});
  BlockFetcher blocks(source, *cache_, errors, config_);
  std::atomic<int> invalidated{0};
  blocks.on_failure([&](const std::string&) { ++invalidated; });
  int error = 0;
  auto file = blocks.partial(source.sha1(), 50000, std::nullopt, &error);
  // Unverified bytes may be served, unless the verifier already found the mismatch.
  int first = blocks.ensure(file, 0, 50000, false, never_);
  EXPECT_TRUE(first == 0 || first == -EIO) << first;
  ASSERT_TRUE(eventually([&] { return file->failed(); }));
  EXPECT_EQ(blocks.ensure(file, 0, 10, false, never_), -EIO);
  EXPECT_EQ(invalidated.load(), 1);
  EXPECT_FALSE(cache_->complete_size(source.sha1()));
  EXPECT_FALSE(cache_->partial_size(source.sha1()));
  EXPECT_EQ(errors.io_errors(), 1u);
  auto again = blocks.partial(source.sha1(), 50000, std::nullopt, &error);
  EXPECT_NE(again.get(), file.get()) << "a failed file is fetched afresh";
}

TEST_F(BlockFetcherTest, ManifestChunksAreVerifiedAsTheyComplete) {
  std::string data = pattern(30000);
  RangeSource source(data);
  Manifest manifest{30000,
                    source.sha1(),
                    {{0, 10000, sha1_hex_of(data.substr(0, 10000))},
                     {10000, 20000, sha1_hex_of(data.substr(10000, 10000))},
                     {20000, 30000, "0000000000000000000000000000000000000000"}}};
  ContentFetcher errors(source, *cache_, {});
  BlockFetcher blocks(source, *cache_, errors, config_);
  int error = 0;
  auto file = blocks.partial(source.sha1(), 30000, manifest, &error);
  // verified_only: the whole first chunk is fetched and verified before the read returns
  ASSERT_EQ(blocks.ensure(file, 5000, 10, true, never_), 0);
  EXPECT_TRUE(file->chunk_verified(0));
  EXPECT_FALSE(file->chunk_verified(1));
  EXPECT_EQ(blocks.verified_chunks(source.sha1()), 1u);
  EXPECT_EQ(blocks.ensure(file, 25000, 10, true, never_), -EIO)
      << "chunk 2 does not match its manifest";
}

}  // namespace
}  // namespace kacheryfs
