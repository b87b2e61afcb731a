// CacheLayout: the names of a cache dir's files, and the guard of its file operations (no
// symlink is followed, nothing outside the root is reached).
#include "cache/cache_layout.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "test_support.h"

namespace kacheryfs {
namespace {

using testing::TempDirTest;

class CacheLayoutTest : public TempDirTest {};

TEST_F(CacheLayoutTest, NamesFollowTheKacheryStorageLayout) {
  CacheLayout layout(root_);
  const std::string sha1 = "0123456789abcdef0123456789abcdef01234567";
  EXPECT_EQ(layout.complete_path(sha1), root_ / "objects" / "01" / sha1);
  EXPECT_EQ(layout.partial_data(sha1), root_ / "partial" / (sha1 + ".data"));
  EXPECT_EQ(layout.page_map(sha1), root_ / "partial" / (sha1 + ".blocks"));
  EXPECT_EQ(layout.verified_chunks(sha1), root_ / "partial" / (sha1 + ".chunks"));
  EXPECT_EQ(CacheLayout::sha1_of_partial_data(sha1 + ".data"), sha1);
  EXPECT_EQ(CacheLayout::sha1_of_partial_data(sha1 + ".blocks"), "");
  EXPECT_EQ(CacheLayout::sha1_of_partial_data("../" + sha1.substr(3) + ".data"), "");
}

TEST_F(CacheLayoutTest, OpenFileFollowsNoSymlinkAndStaysUnderTheRoot) {
  std::filesystem::create_directories(root_ / "tmp");
  CacheLayout layout(root_);
  const auto outside = root_.parent_path() / ("kfs-layout-outside-" + std::to_string(getpid()));
  std::ofstream(outside) << "outside";

  int fd = layout.open_file(root_ / "tmp" / "plain", O_RDWR | O_CREAT);
  ASSERT_GE(fd, 0);
  ::close(fd);

  std::filesystem::create_symlink(outside, root_ / "tmp" / "link");
  EXPECT_EQ(layout.open_file(root_ / "tmp" / "link", O_RDONLY), -ELOOP);
  std::filesystem::create_directory_symlink(root_.parent_path(), root_ / "up");
  EXPECT_LT(layout.open_file(root_ / "up" / outside.filename(), O_RDONLY), 0);
  EXPECT_EQ(layout.open_file(outside, O_RDONLY), -EXDEV) << "a path outside the root";
  EXPECT_EQ(layout.open_file(root_ / ".." / outside.filename(), O_RDONLY), -EXDEV);
  struct stat st {};
  EXPECT_FALSE(layout.stat_file(root_ / "tmp" / "link", &st));
  EXPECT_TRUE(layout.stat_file(root_ / "tmp" / "plain", &st));
  std::filesystem::remove(outside);
}

TEST_F(CacheLayoutTest, ReadRemoveAndRenameGoThroughNoPlantedLink) {
  std::filesystem::create_directories(root_);
  CacheLayout layout(root_);
  // A directory outside the root, holding a file named like a cache file.
  const auto outside = root_.parent_path() / ("kfs-layout-dir-" + std::to_string(getpid()));
  std::filesystem::create_directories(outside);
  const std::string name = "0123456789abcdef0123456789abcdef01234567.blocks";
  std::ofstream(outside / name) << "victim";
  std::filesystem::create_directory_symlink(outside, root_ / "partial");  // planted
  const auto through_link = root_ / "partial" / name;
  EXPECT_FALSE(layout.read_file(through_link));
  EXPECT_LT(layout.remove_file(through_link), 0);
  EXPECT_LT(layout.rename_file(through_link, root_ / "moved"), 0);
  EXPECT_TRUE(std::filesystem::exists(outside / name)) << "the file behind the link is left alone";
  std::filesystem::remove(root_ / "partial");

  // A link as the file itself is removed as a link, never followed.
  std::filesystem::create_directories(root_ / "tmp");
  std::filesystem::create_symlink(outside / name, root_ / "tmp" / "link");
  EXPECT_FALSE(layout.read_file(root_ / "tmp" / "link"));
  EXPECT_EQ(layout.remove_file(root_ / "tmp" / "link"), 0);
  EXPECT_TRUE(std::filesystem::exists(outside / name));

  // Plain files: read whole, renamed, removed; a second removal is ENOENT.
  std::ofstream(root_ / "tmp" / "plain") << "map bytes";
  EXPECT_EQ(layout.read_file(root_ / "tmp" / "plain"), "map bytes");
  EXPECT_EQ(layout.rename_file(root_ / "tmp" / "plain", root_ / "renamed"), 0);
  EXPECT_EQ(layout.read_file(root_ / "renamed"), "map bytes");
  EXPECT_EQ(layout.remove_file(root_ / "renamed"), 0);
  EXPECT_EQ(layout.remove_file(root_ / "renamed"), -ENOENT);
  std::filesystem::remove_all(outside);
}

TEST_F(CacheLayoutTest, ARootCreatedAfterTheLayoutStillWorks) {
  CacheLayout layout(root_);  // the dir does not exist yet
  std::filesystem::create_directories(root_);
  int fd = layout.open_file(root_ / "file", O_RDWR | O_CREAT);
  EXPECT_GE(fd, 0);
  if (fd >= 0) ::close(fd);
}

}  // namespace
}  // namespace kacheryfs
