// CacheIndex: rows and sizes that reach SQLite at flush and survive a reopen, queued
// writes visible before they are flushed, and eviction order.
#include "cache/cache_index.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "cache/cache_layout.h"
#include "test_support.h"

namespace kacheryfs {
namespace {

std::string name(char c) { return std::string(40, c); }

class CacheIndexTest : public testing::CacheDirTest {
 protected:
  std::unique_ptr<CacheIndex> open() {
    auto index = CacheIndex::open(*layout_);
    EXPECT_TRUE(index.ok()) << index.detail();
    return index.ok() ? std::move(*index) : nullptr;
  }
};

TEST_F(CacheIndexTest, RowsSizesAndCountersSurviveAReopen) {
  {
    auto index = open();
    index->record(name('a'), 100, 100, true);
    index->record(name('b'), 5000, 1000, false);
    index->remember_size(name('c'), 123456);
    index->add_counter("hits", 3);
    ASSERT_TRUE(index->set_pinned(name('a'), true));
    EXPECT_FALSE(index->set_pinned(name('z'), true)) << "not in the index";
  }  // the destructor flushes
  auto index = open();
  auto a = index->get(name('a'));
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->complete);
  EXPECT_TRUE(a->pinned);
  auto b = index->get(name('b'));
  ASSERT_TRUE(b);
  EXPECT_FALSE(b->complete);
  EXPECT_EQ(b->bytes, 1000u);
  EXPECT_EQ(index->remembered_size(name('c')), 123456u);
  EXPECT_FALSE(index->remembered_size(name('d')));
  EXPECT_EQ(index->counter("hits"), 3u);
  IndexTotals totals = index->totals();
  EXPECT_EQ(totals.objects, 2u);
  EXPECT_EQ(totals.bytes, 1100u);
  EXPECT_EQ(totals.pinned, 1u);
  EXPECT_EQ(totals.partial, 1u);
}

TEST_F(CacheIndexTest, QueuedWritesAreSeenBeforeTheFlushAndRemovalWins) {
  auto index = open();
  index->record(name('a'), 10, 10, true);
  EXPECT_TRUE(index->get(name('a'))) << "a read flushes first";
  index->remove(name('a'));
  EXPECT_FALSE(index->get(name('a')));
  EXPECT_TRUE(index->empty());
}

TEST_F(CacheIndexTest, EvictionSkipsPinnedAndOpenObjects) {
  auto index = open();
  for (char c : {'a', 'b', 'c', 'd'}) index->record(name(c), 10, 10, true);
  index->set_pinned(name('b'), true);
  index->set_open(name('c'), true);
  std::vector<std::string> candidates;
  for (const IndexEntry& entry : index->eviction_candidates()) candidates.push_back(entry.sha1);
  EXPECT_EQ(candidates.size(), 2u);
  EXPECT_NE(std::find(candidates.begin(), candidates.end(), name('a')), candidates.end());
  EXPECT_NE(std::find(candidates.begin(), candidates.end(), name('d')), candidates.end());
  index->set_open(name('c'), false);
  EXPECT_EQ(index->eviction_candidates().size(), 3u);
  index->clear_open();
}

}  // namespace
}  // namespace kacheryfs
