// BlockFetcher and PartialFile with an in-memory source: pages fetched once, persisted
// across instances, verified into the complete layout, and dropped on a mismatch.
#include "fetch/block_fetcher.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "kachery/sha1_hasher.h"
#include "test_support.h"

namespace kacheryfs {
namespace {

using testing::MemorySource;
using testing::pattern;

class BlockFetcherTest : public testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    cache_ = std::make_unique<ContentCache>(root_);
  }

  std::unique_ptr<ContentCache> cache_;
  NeverCancelled never_;
  BlockFetcherConfig config_{4096, 16384, 2};
  Counters counters_;
  NoQuota quota_;
  OpenObjects in_use_;
};

TEST_F(BlockFetcherTest, ARandomReadFetchesOnlyItsPages) {
  MemorySource source;
  const std::string sha1 = source.add(pattern(1 << 20));
  BlockFetcher blocks(source, *cache_, quota_, counters_, in_use_, config_);
  auto file = *blocks.partial(sha1, 1 << 20, std::nullopt);
  ASSERT_TRUE(file);
  ASSERT_EQ(blocks.ensure(file, 100000, 100, false, never_).error(), 0);
  EXPECT_EQ(source.fetched_bytes(), 4096u);
  EXPECT_TRUE(file->present(100000 / 4096));
  EXPECT_EQ(blocks.partial_bytes(sha1, 1 << 20), 4096u);
  ASSERT_EQ(blocks.ensure(file, 100000, 5000, false, never_).error(), 0);
  EXPECT_EQ(source.fetched_bytes(), 8192u) << "only the missing page";
  char byte = 0;
  ASSERT_EQ(pread(file->data_fd(), &byte, 1, 100001), 1);
  EXPECT_EQ(byte, pattern(1 << 20)[100001]);
}

TEST_F(BlockFetcherTest, ContiguousMissingPagesGoInBoundedRuns) {
  MemorySource source;
  const std::string sha1 = source.add(pattern(100000));
  BlockFetcher blocks(source, *cache_, quota_, counters_, in_use_, config_);
  auto file = *blocks.partial(sha1, 100000, std::nullopt);
  ASSERT_EQ(blocks.ensure(file, 0, 100000, false, never_).error(), 0);
  for (auto [start, end] : source.ranges) EXPECT_LE(end - start, 16384u);
  EXPECT_EQ(source.fetched_bytes(), 100000u);
}

TEST_F(BlockFetcherTest, PresentPagesSurviveANewInstanceAndTheWholeFileIsVerified) {
  std::string data = pattern(50000);
  MemorySource source;
  const std::string sha1 = source.add(data);
  {
    BlockFetcher blocks(source, *cache_, quota_, counters_, in_use_, config_);
    auto file = *blocks.partial(sha1, data.size(), std::nullopt);
    ASSERT_EQ(blocks.ensure(file, 0, 20000, false, never_).error(), 0);
  }
  EXPECT_EQ(cache_->partial_size(sha1), data.size());
  std::uint64_t before = source.fetched_bytes();
  BlockFetcher blocks(source, *cache_, quota_, counters_, in_use_, config_);
  auto file = *blocks.partial(sha1, data.size(), std::nullopt);
  ASSERT_EQ(blocks.ensure(file, 0, data.size(), false, never_).error(), 0);
  EXPECT_EQ(source.fetched_bytes() - before, data.size() - 20480) << "pages 0-4 were kept";
  ASSERT_TRUE(eventually([&] { return file->complete(); }));
  std::ifstream in(cache_->complete_path(sha1), std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), data);
  EXPECT_FALSE(cache_->partial_size(sha1));
}

TEST_F(BlockFetcherTest, SeededBytesAreWholePagesThatAreNeverFetchedAgain) {
  std::string data = pattern(50000, 4);
  MemorySource source;
  const std::string sha1 = source.add(data);
  BlockFetcher blocks(source, *cache_, quota_, counters_, in_use_, config_);
  auto file = *blocks.partial(sha1, data.size(), std::nullopt);
  blocks.seed(file, 0, data.substr(0, 10000));        // pages 0 and 1; page 2 is cut short
  blocks.seed(file, 45056, data.substr(45056));       // the last page, up to the end
  blocks.seed(file, 20000, data.substr(20000, 100));  // covers no whole page
  EXPECT_TRUE(file->present(0));
  EXPECT_TRUE(file->present(1));
  EXPECT_FALSE(file->present(2));
  EXPECT_FALSE(file->present(4));
  EXPECT_TRUE(file->present(data.size() / 4096));
  ASSERT_EQ(blocks.ensure(file, 0, data.size(), false, never_).error(), 0);
  EXPECT_EQ(source.fetched_bytes(), 45056u - 8192u) << "only the pages not seeded";
  ASSERT_TRUE(eventually([&] { return file->complete(); }));  // seeded bytes verified too
  std::ifstream in(cache_->complete_path(sha1), std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), data);
}

TEST_F(BlockFetcherTest, WrongSeededBytesFailVerification) {
  std::string data = pattern(50000, 5);
  MemorySource source;
  const std::string sha1 = source.add(data);
  BlockFetcher blocks(source, *cache_, quota_, counters_, in_use_, config_);
  auto file = *blocks.partial(sha1, data.size(), std::nullopt);
  std::string wrong = data.substr(0, 8192);
  wrong[100] ^= 1;
  blocks.seed(file, 0, wrong);
  // The verifier may find the mismatch before the fetch of the rest returns.
  int first = blocks.ensure(file, 0, data.size(), false, never_).error();
  EXPECT_TRUE(first == 0 || first == -EIO) << first;
  ASSERT_TRUE(eventually([&] { return file->failed(); }));
  EXPECT_EQ(blocks.ensure(file, 0, 10, false, never_).error(), -EIO);
  EXPECT_FALSE(cache_->complete_size(sha1));
}

TEST_F(BlockFetcherTest, AMismatchDropsEverythingAndFailsReaders) {
  MemorySource source;
  const std::string sha1 = source.add(pattern(50000));
  source.corrupt_at = 30000;
  std::atomic<int> invalidated{0};
  BlockFetcher blocks(source, *cache_, quota_, counters_, in_use_, config_,
                      [&](const std::string&) { ++invalidated; });
  auto file = *blocks.partial(sha1, 50000, std::nullopt);
  // Unverified bytes may be served, unless the verifier already found the mismatch.
  int first = blocks.ensure(file, 0, 50000, false, never_).error();
  EXPECT_TRUE(first == 0 || first == -EIO) << first;
  ASSERT_TRUE(eventually([&] { return file->failed(); }));
  EXPECT_EQ(blocks.ensure(file, 0, 10, false, never_).error(), -EIO);
  // The file fails before the verifier drops the kernel's pages, so the callback may
  // still be on its way when the readers already see the failure.
  ASSERT_TRUE(eventually([&] { return invalidated.load() > 0; }));
  EXPECT_EQ(invalidated.load(), 1);
  EXPECT_FALSE(cache_->complete_size(sha1));
  EXPECT_FALSE(cache_->partial_size(sha1));
  EXPECT_EQ(counters_.eio(EioSite::kBlockChecksum), 1u);
  auto again = *blocks.partial(sha1, 50000, std::nullopt);
  EXPECT_NE(again.get(), file.get()) << "a failed file is fetched afresh";
}

TEST_F(BlockFetcherTest, ConcurrentFirstReadersShareOneEntrySeededWithTheBytesInHand) {
  MemorySource source;
  const std::string data = pattern(100000);
  const std::string sha1 = source.add(data);
  BlockFetcher blocks(source, *cache_, quota_, counters_, in_use_, config_);
  // Three pages and a bit: the bit is no whole page, so it is not kept.
  const std::vector<KnownPiece> head = {{0, data.substr(0, 3 * 4096 + 100)}};
  std::vector<std::shared_ptr<PartialFile>> seen(8);
  std::vector<std::thread> readers;
  for (std::size_t i = 0; i < seen.size(); ++i)
    readers.emplace_back([&, i] { seen[i] = *blocks.partial(sha1, 100000, std::nullopt, head); });
  for (auto& reader : readers) reader.join();
  for (const auto& file : seen) EXPECT_EQ(file.get(), seen[0].get());
  EXPECT_EQ(seen[0]->cached_bytes(), 3u * 4096);
  EXPECT_TRUE(source.ranges_asked().empty()) << "the bytes in hand are not fetched";
  // A later reader, after the first ones let go of the entry, has them too.
  seen.clear();
  auto reopened = *blocks.partial(sha1, 100000, std::nullopt);
  EXPECT_EQ(reopened->cached_bytes(), 3u * 4096);
}

TEST_F(BlockFetcherTest, ALaterReaderBringsTheManifest) {
  std::string data = pattern(30000);
  MemorySource source;
  const std::string sha1 = source.add(data);
  Manifest manifest{30000, sha1, {{0, 30000, sha1}}};
  BlockFetcher blocks(source, *cache_, quota_, counters_, in_use_, config_);
  auto file = *blocks.partial(sha1, 30000, std::nullopt);
  EXPECT_FALSE(file->manifest());
  auto again = *blocks.partial(sha1, 30000, manifest);
  ASSERT_EQ(again.get(), file.get());
  ASSERT_TRUE(file->manifest());
  Manifest other{30000, sha1, {{0, 15000, sha1}, {15000, 30000, sha1}}};
  (void)*blocks.partial(sha1, 30000, other);
  EXPECT_EQ(file->manifest()->chunks.size(), 1u) << "the first manifest stays";
}

TEST_F(BlockFetcherTest, ManifestChunksAreVerifiedAsTheyComplete) {
  std::string data = pattern(30000);
  MemorySource source;
  const std::string sha1 = source.add(data);
  Manifest manifest{30000,
                    sha1,
                    {{0, 10000, sha1_hex_of(data.substr(0, 10000))},
                     {10000, 20000, sha1_hex_of(data.substr(10000, 10000))},
                     {20000, 30000, "0000000000000000000000000000000000000000"}}};
  BlockFetcher blocks(source, *cache_, quota_, counters_, in_use_, config_);
  auto file = *blocks.partial(sha1, 30000, manifest);
  // verified_only: the whole first chunk is fetched and verified before the read returns
  ASSERT_EQ(blocks.ensure(file, 5000, 10, true, never_).error(), 0);
  EXPECT_TRUE(file->chunk_verified(0));
  EXPECT_FALSE(file->chunk_verified(1));
  EXPECT_EQ(blocks.verified_chunks(sha1), 1u);
  EXPECT_EQ(blocks.ensure(file, 25000, 10, true, never_).error(), -EIO)
      << "chunk 2 does not match its manifest";
}

}  // namespace
}  // namespace kacheryfs
