#include "cache/content_cache.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "kachery/hash_name.h"
#include "kachery/sha1_hasher.h"
#include "test_support.h"

namespace kacheryfs {
namespace {

namespace fs = std::filesystem;

using ContentCacheTest = testing::TempDirTest;

TEST_F(ContentCacheTest, CommittedEntryAppearsOneLevelDeep) {
  ContentCache cache(root_);
  std::string data = "hello kachery\n";
  std::string sha1 = sha1_hex_of(data);
  EXPECT_FALSE(cache.complete_size(sha1));
  auto begun = cache.begin(sha1);
  ASSERT_TRUE(begun.ok());
  auto& tx = *begun;
  ASSERT_EQ(tx->append(data.data(), data.size()), 0);
  EXPECT_FALSE(cache.complete_size(sha1)) << "invisible before commit";
  ASSERT_EQ(tx->commit(), 0);
  EXPECT_EQ(cache.complete_size(sha1), data.size());
  EXPECT_TRUE(fs::exists(root_ / "objects" / sha1.substr(0, 2) / sha1));
  auto fd = cache.open_complete(sha1);
  ASSERT_TRUE(fd.ok());
  EXPECT_GE(fd->get(), 0);
  EXPECT_EQ(cache.list_all(), std::vector<std::string>{sha1});
  EXPECT_EQ(cache.list_level(""), std::vector<std::string>{sha1.substr(0, 2)});
  EXPECT_EQ(cache.list_level(sha1.substr(0, 2)), std::vector<std::string>{sha1.substr(2, 2)});
  EXPECT_EQ(cache.list_level(sha1.substr(0, 4)), std::vector<std::string>{sha1.substr(4, 2)});
  EXPECT_EQ(cache.list_level(sha1.substr(0, 6)), std::vector<std::string>{sha1});
  EXPECT_TRUE(fs::is_empty(root_ / "tmp"));
}

TEST_F(ContentCacheTest, TheLevelsOfTheStorageLayoutAreSpansOfTheNames) {
  ContentCache cache(root_);
  const std::vector<std::string> names = {
      "ab00" + std::string(36, '1'), "ab00" + std::string(36, '2'), "ab01" + std::string(36, '3'),
      "cd22" + std::string(36, '4')};
  for (const std::string& name : names) {
    fs::create_directories(root_ / "objects" / name.substr(0, 2));
    std::ofstream(root_ / "objects" / name.substr(0, 2) / name) << "x";
  }
  std::ofstream(root_ / "objects" / "ab" / "not-a-hash") << "x";
  auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  EXPECT_EQ(sorted(cache.list_level("")), (std::vector<std::string>{"ab", "cd"}));
  EXPECT_EQ(cache.list_level("ab"), (std::vector<std::string>{"00", "01"}));
  EXPECT_EQ(cache.list_level("ab00"), (std::vector<std::string>{"11", "22"}));
  EXPECT_EQ(cache.list_level("ab0011"), (std::vector<std::string>{names[0]}));
  EXPECT_TRUE(cache.list_level("ef").empty());
  EXPECT_EQ(sorted(cache.list_all()), names);
}

TEST_F(ContentCacheTest, AWritableOpenMovesTheEarlierLayoutAndAReadOnlyOneReadsIt) {
  std::string data = "from an earlier version\n";
  std::string sha1 = sha1_hex_of(data);
  fs::path legacy = root_ / storage_relpath(sha1);
  fs::create_directories(legacy.parent_path());
  std::ofstream(legacy) << data;
  {
    ContentCache reader(root_, /*read_only=*/true);
    EXPECT_EQ(reader.complete_size(sha1), data.size());
    EXPECT_EQ(reader.list_all(), std::vector<std::string>{sha1});
    EXPECT_EQ(reader.list_level(sha1.substr(0, 4)), std::vector<std::string>{sha1.substr(4, 2)});
    EXPECT_TRUE(fs::exists(legacy)) << "a reader moves nothing";
  }
  ContentCache cache(root_);
  EXPECT_FALSE(fs::exists(root_ / "sha1"));
  EXPECT_EQ(cache.complete_size(sha1), data.size());
  EXPECT_EQ(cache.list_all(), std::vector<std::string>{sha1});
  std::ifstream moved(root_ / "objects" / sha1.substr(0, 2) / sha1);
  std::string back((std::istreambuf_iterator<char>(moved)), std::istreambuf_iterator<char>());
  EXPECT_EQ(back, data);
}

TEST_F(ContentCacheTest, AnEarlierLayoutWithForeignFilesKeepsThem) {
  std::string sha1(40, 'e');
  fs::create_directories((root_ / storage_relpath(sha1)).parent_path());
  std::ofstream(root_ / storage_relpath(sha1)) << "x";
  std::ofstream(root_ / "sha1" / "README") << "someone's notes";
  ContentCache cache(root_);
  EXPECT_TRUE(cache.complete_size(sha1));
  EXPECT_TRUE(fs::exists(root_ / "sha1" / "README"));
  EXPECT_FALSE(fs::exists(root_ / storage_relpath(sha1)));
}

TEST_F(ContentCacheTest, AbandonedTransactionLeavesNothing) {
  ContentCache cache(root_);
  std::string sha1(40, 'a');
  {
    auto tx = cache.begin(sha1);
    ASSERT_TRUE(tx.ok());
    (*tx)->append("xyz", 3);
  }
  EXPECT_FALSE(cache.complete_size(sha1));
  EXPECT_EQ(cache.open_complete(sha1).error(), -ENOENT);
  EXPECT_TRUE(fs::is_empty(root_ / "tmp"));
}

TEST_F(ContentCacheTest, StartupRemovesTempFilesOfDeadProcessesOnly) {
  fs::create_directories(root_ / "tmp");
  std::string dead = std::string(40, 'b') + ".999999999.0.tmp";
  std::string alive = std::string(40, 'c') + "." + std::to_string(getpid()) + ".0.tmp";
  std::ofstream(root_ / "tmp" / dead) << "partial";
  std::ofstream(root_ / "tmp" / alive) << "partial";
  ContentCache cache(root_);
  EXPECT_FALSE(fs::exists(root_ / "tmp" / dead));
  EXPECT_TRUE(fs::exists(root_ / "tmp" / alive));
}

TEST_F(ContentCacheTest, MetaValuesPersist) {
  {
    ContentCache cache(root_);
    EXPECT_FALSE(cache.read_meta("kachery-node-id"));
    cache.write_meta("kachery-node-id", "abc");
  }
  ContentCache again(root_);
  EXPECT_EQ(again.read_meta("kachery-node-id"), "abc");
}

TEST_F(ContentCacheTest, UnwritableRootIsAnError) {
  EXPECT_THROW(ContentCache("/proc/kacheryfs-cannot-be-here"), std::exception);
}

}  // namespace
}  // namespace kacheryfs
