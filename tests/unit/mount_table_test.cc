// The mount table read from /proc/self/mountinfo: a mounted path has a device, a plain
// directory has none, and a mount point is named as the kernel lists it.
#include "support/mount_table.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <filesystem>
#include <string>

#include "test_support.h"

namespace kacheryfs {
namespace {

class MountTableTest : public testing::TempDirTest {};

TEST_F(MountTableTest, AMountedPathHasItsDeviceAndAPlainDirectoryNone) {
  struct stat st {};
  ASSERT_EQ(stat("/proc", &st), 0);
  std::optional<std::string> device = mounted_device("/proc");
  ASSERT_TRUE(device) << "/proc is a mount point";
  EXPECT_EQ(*device, std::to_string(major(st.st_dev)) + ":" + std::to_string(minor(st.st_dev)));
  std::filesystem::create_directories(root_ / "plain");
  EXPECT_FALSE(mounted_device(canonical_mountpoint((root_ / "plain").string())));
}

TEST_F(MountTableTest, AMountPointIsNamedAsTheKernelListsIt) {
  std::filesystem::create_directories(root_ / "real dir");
  std::filesystem::create_directory_symlink(root_ / "real dir", root_ / "link");
  const std::string canonical = std::filesystem::canonical(root_ / "real dir").string();
  EXPECT_EQ(canonical_mountpoint((root_ / "link").string()), canonical);
  EXPECT_EQ(canonical_mountpoint((root_ / "link" / ".." / "real dir").string()), canonical);
  EXPECT_EQ(canonical_mountpoint("/no/such/dir"), "/no/such/dir");
}

}  // namespace
}  // namespace kacheryfs
