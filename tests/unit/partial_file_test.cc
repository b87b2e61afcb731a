// PartialFile: the page map that survives a reopen, claims and waits, completion and
// failure, and the files it opens only through CacheLayout (no symlinks followed).
#include "cache/partial_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "cache/cache_layout.h"
#include "test_support.h"

namespace kacheryfs {
namespace {

constexpr std::uint64_t kPage = 64 << 10;
const std::string kSha1(40, 'a');

class PartialFileTest : public testing::CacheDirTest {
 protected:
  std::shared_ptr<PartialFile> open(std::uint64_t size, std::uint64_t page = kPage) {
    auto file = PartialFile::open(*layout_, kSha1, size, page);
    EXPECT_TRUE(file.ok()) << file.detail();
    return file.ok() ? *file : nullptr;
  }
  static std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }
  NeverCancelled never_;
};

TEST_F(PartialFileTest, PresentPagesSurviveAReopenAndAnotherGeometryStartsAfresh) {
  const std::uint64_t size = 5 * kPage + 100;
  {
    auto file = open(size);
    ASSERT_EQ(file->page_count(), 6u);
    ASSERT_TRUE(file->claim(1));
    ASSERT_TRUE(file->claim(2));
    file->finish(1, 2, /*fetched=*/true);
    ASSERT_TRUE(file->claim(5));
    file->finish(5, 5, /*fetched=*/false);  // a failed fetch records nothing
  }
  {
    auto file = open(size);
    EXPECT_FALSE(file->present(0));
    EXPECT_TRUE(file->present(1));
    EXPECT_TRUE(file->present(2));
    EXPECT_FALSE(file->present(5));
    EXPECT_EQ(file->cached_bytes(), 2 * kPage);
    EXPECT_EQ(file->present_run(1, 10), 2u);
  }
  // One byte per page in the map, 1 for present.
  EXPECT_EQ(read_file(layout_->page_map(kSha1)), std::string("\0\1\1\0\0\0", 6));
  auto other = open(size, 2 * kPage);
  EXPECT_EQ(other->cached_bytes(), 0u) << "a map of another page size is not trusted";
}

TEST_F(PartialFileTest, ASecondReaderWaitsForTheClaimAndIsWokenByItsEnd) {
  auto file = open(4 * kPage);
  ASSERT_TRUE(file->claim(0));
  EXPECT_FALSE(file->claim(0)) << "each page is fetched once";
  PartialFile::WaitResult seen = PartialFile::WaitResult::kCancelled;
  std::thread reader([&] { seen = file->wait(0, never_); });
  file->finish(0, 0, true);
  reader.join();
  EXPECT_EQ(seen, PartialFile::WaitResult::kPresent);
  ASSERT_TRUE(file->claim(1));
  std::thread other([&] { seen = file->wait(1, never_); });
  file->finish(1, 1, false);
  other.join();
  EXPECT_EQ(seen, PartialFile::WaitResult::kAbsent) << "a failed claim lets the waiter fetch";
}

TEST_F(PartialFileTest, WaitsEndOnCompletionFailureOrCancellation) {
  auto file = open(2 * kPage);
  int result = 1;
  std::thread completer([&] { file->set_complete(); });
  result = file->wait_complete(never_).error();
  completer.join();
  EXPECT_EQ(result, 0);

  auto failing = PartialFile::open(*layout_, std::string(40, 'b'), 2 * kPage, kPage);
  ASSERT_TRUE(failing.ok());
  ASSERT_TRUE((*failing)->claim(0));
  PartialFile::WaitResult seen = PartialFile::WaitResult::kPresent;
  std::thread waiter([&] { seen = (*failing)->wait(0, never_); });
  (*failing)->fail();
  waiter.join();
  EXPECT_EQ(seen, PartialFile::WaitResult::kFailed);
  EXPECT_EQ((*failing)->wait_complete(never_).error(), -EIO);

  auto pending = PartialFile::open(*layout_, std::string(40, 'c'), 2 * kPage, kPage);
  ASSERT_TRUE(pending.ok());
  CancelSource cancel;
  std::thread interrupter([&] { cancel.cancel(); });
  EXPECT_EQ((*pending)->wait_complete(cancel).error(), -EINTR);
  interrupter.join();
}

TEST_F(PartialFileTest, ASizeBeyondThePageMapsLimitIsRefusedWithoutAllocating) {
  // 2^51 bytes at 64 KiB pages: page maps of 32 GiB each.
  auto huge = PartialFile::open(*layout_, std::string(40, 'd'), std::uint64_t{1} << 51, 65536);
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.error(), -EFBIG);
  EXPECT_NE(huge.detail().find("2251799813685248 bytes"), std::string::npos) << huge.detail();
  EXPECT_FALSE(std::filesystem::exists(layout_->partial_data(std::string(40, 'd'))));
  auto one_over =
      PartialFile::open(*layout_, std::string(40, 'e'), PartialFile::kMaxPages * 65536 + 1, 65536);
  EXPECT_EQ(one_over.error(), -EFBIG);
}

TEST_F(PartialFileTest, PlantedSymlinksAreNeverFollowed) {
  std::filesystem::create_directories(layout_->partial_dir());
  const auto outside = root_.parent_path() / ("kfs-outside-" + std::to_string(getpid()));
  std::ofstream(outside) << "precious";
  // A link where the data file goes: the entry cannot be opened.
  std::filesystem::create_symlink(outside, layout_->partial_data(kSha1));
  auto refused = PartialFile::open(*layout_, kSha1, kPage, kPage);
  EXPECT_FALSE(refused.ok());
  std::filesystem::remove(layout_->partial_data(kSha1));
  // A link where the verified chunks go: set_manifest does not write through it.
  std::filesystem::create_symlink(outside, layout_->verified_chunks(kSha1));
  auto file = open(2 * kPage);
  Manifest manifest{2 * kPage, kSha1, {{0, kPage, std::string(40, '1')}, {kPage, 2 * kPage, ""}}};
  file->set_manifest(manifest);
  file->set_chunk_verified(0);
  EXPECT_TRUE(file->chunk_verified(0)) << "still verified in memory";
  EXPECT_EQ(read_file(outside), "precious");
  std::filesystem::remove(outside);
}

}  // namespace
}  // namespace kacheryfs
