// CacheIndex and CacheKeeper on a temp cache dir: accounting, LRU eviction that spares
// pinned and open objects, and counters.
#include "cache/cache_keeper.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "test_support.h"

namespace kacheryfs {
namespace {

namespace fs = std::filesystem;

class CacheKeeperTest : public testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    cache_ = std::make_unique<ContentCache>(root_);
    auto index = CacheIndex::open(cache_->layout());
    ASSERT_TRUE(index.ok()) << index.detail();
    index_ = std::move(*index);
  }

  // A complete object of `size` bytes on disk and in the index, used at `age` seconds ago.
  std::string put(char fill, std::uint64_t size, CacheKeeper& keeper) {
    std::string sha1(40, fill);
    fs::create_directories(cache_->complete_path(sha1).parent_path());
    std::ofstream(cache_->complete_path(sha1)) << std::string(size, 'x');
    keeper.complete(sha1, size);
    return sha1;
  }

  std::unique_ptr<ContentCache> cache_;
  OpenObjects in_use_;
  std::unique_ptr<CacheIndex> index_;
};

TEST_F(CacheKeeperTest, AccountsCompleteAndPartialObjects) {
  CacheKeeper keeper(*cache_, *index_, {1 << 30, 1, 0}, in_use_);
  put('a', 1000, keeper);
  keeper.partial(std::string(40, 'b'), 5000, 2000);
  keeper.partial(std::string(40, 'b'), 5000, 3000);
  EXPECT_EQ(keeper.cached_bytes(), 4000u);
  IndexTotals totals = index_->totals();
  EXPECT_EQ(totals.bytes, 4000u);
  EXPECT_EQ(totals.objects, 2u);
  EXPECT_EQ(totals.partial, 1u);
  CacheKeeper reopened(*cache_, *index_, {1 << 30, 1, 0}, in_use_);
  EXPECT_EQ(reopened.cached_bytes(), 4000u) << "totals come from the index, not a scan";
}

TEST_F(CacheKeeperTest, EvictsLeastRecentlyUsedButNeverPinnedOrOpen) {
  CacheKeeper keeper(*cache_, *index_, {3000, 1, 0}, in_use_);
  std::string oldest = put('1', 1000, keeper);
  std::string pinned = put('2', 1000, keeper);
  std::string open = put('3', 1000, keeper);
  index_->set_pinned(pinned, true);
  index_->set_open(open, true);
  sleep(1);
  std::string newest = put('4', 1000, keeper);  // 4000 > 3000
  EXPECT_EQ(keeper.make_room(0), 1000u);
  EXPECT_FALSE(fs::exists(cache_->complete_path(oldest)));
  EXPECT_TRUE(fs::exists(cache_->complete_path(pinned)));
  EXPECT_TRUE(fs::exists(cache_->complete_path(open)));
  EXPECT_TRUE(fs::exists(cache_->complete_path(newest)));
  EXPECT_FALSE(index_->get(oldest));
  EXPECT_EQ(keeper.cached_bytes(), 3000u);
  OpenObjects::Hold reading = in_use_.hold(newest);  // open in this process
  EXPECT_EQ(keeper.make_room(2500), 0u) << "nothing left that may go";
}

TEST_F(CacheKeeperTest, CountersAndUnindexedFiles) {
  index_->add_counter("hits", 3);
  index_->add_counter("hits", 2);
  EXPECT_EQ(index_->counter("hits"), 5u);
  EXPECT_EQ(index_->counter("misses"), 0u);
  std::string sha1(40, 'c');
  fs::create_directories(cache_->complete_path(sha1).parent_path());
  std::ofstream(cache_->complete_path(sha1)) << "hello";
  CacheKeeper keeper(*cache_, *index_, {1 << 30, 1, 0}, in_use_);
  keeper.adopt_unindexed_files();
  ASSERT_TRUE(index_->get(sha1));
  EXPECT_EQ(index_->get(sha1)->size, 5u);
}

}  // namespace
}  // namespace kacheryfs
