// Filesystem without FUSE: lookup, attributes, the open paths (from the cache, fetched
// whole, streamed), reads, the synthetic node id file and the root's extended attributes,
// over an in-memory source.
#include "tree/filesystem.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "kachery/hash_name.h"
#include "kachery/sha1_hasher.h"
#include "test_support.h"

namespace kacheryfs {
namespace {

using testing::MemorySource;
using testing::pattern;

class FilesystemTest : public testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    cache_ = std::make_unique<ContentCache>(root_);
    FetcherConfig fetcher_config;
    fetcher_config.probe_size = 4096;
    fetcher_config.range_size = 8192;
    fetcher_ =
        std::make_unique<ContentFetcher>(source_, *cache_, quota_, counters_, fetcher_config);
    blocks_ = std::make_unique<BlockFetcher>(source_, *cache_, quota_, counters_, in_use_,
                                             BlockFetcherConfig{4096, 16384, 2});
    content_ = std::make_unique<ContentAccess>(*cache_, *fetcher_, *blocks_, quota_, counters_,
                                               in_use_, StreamingConfig{20000, 65536, false});
    filesystem_ =
        std::make_unique<Filesystem>(tree_, *cache_, *content_, counters_, quota_, daemon_,
                                     [this](std::string* id, const CancelToken&) -> Status {
                                       ++probes_;
                                       *id = std::string(64, 'e');
                                       return {};
                                     });
  }

  // The inode of sha1/<name>, or the lookup's -errno.
  int lookup(const std::string& name, Attributes& out) {
    return filesystem_->lookup(Tree::kSha1DirIno, name, out, never_);
  }

  std::string read_all(std::uint64_t ino, std::uint64_t size) {
    OpenedFile file;
    EXPECT_EQ(filesystem_->open(ino, file, never_), 0);
    int fd = -1;
    EXPECT_EQ(filesystem_->prepare_read(file, 0, size, &fd, never_), 0);
    if (fd < 0) return file.bytes.substr(0, size);
    std::string bytes(size, '\0');
    EXPECT_EQ(pread(fd, bytes.data(), size, 0), static_cast<ssize_t>(size));
    return bytes;
  }

  std::string root_xattr(const std::string& name) {
    std::string value;
    EXPECT_EQ(filesystem_->get_xattr(Tree::kRootIno, name, value, never_), 0) << name;
    return value;
  }

  MemorySource source_;
  NoQuota quota_;
  Counters counters_;
  OpenObjects in_use_;
  NodeSet daemon_{{{"test", &source_}}, NodeSetConfig{}};
  Tree tree_;
  std::unique_ptr<ContentCache> cache_;
  std::unique_ptr<ContentFetcher> fetcher_;
  std::unique_ptr<BlockFetcher> blocks_;
  std::unique_ptr<ContentAccess> content_;
  std::unique_ptr<Filesystem> filesystem_;
  NeverCancelled never_;
  int probes_ = 0;
};

TEST_F(FilesystemTest, MalformedAndMissingNamesAreEnoent) {
  Attributes attributes;
  EXPECT_EQ(lookup("not-a-hash", attributes), -ENOENT);
  EXPECT_EQ(lookup(std::string(40, 'A'), attributes), -ENOENT) << "upper case is not a name";
  EXPECT_EQ(source_.requests.load(), 0) << "malformed names cost no request";
  EXPECT_EQ(lookup(sha1_hex_of("stored nowhere"), attributes), -ENOENT);
  EXPECT_EQ(source_.requests.load(), 1);
}

TEST_F(FilesystemTest, ASmallFileIsFetchedWholeAndItsReadsComeFromTheCache) {
  std::string data = pattern(3000, 1);
  std::string sha1 = source_.add(data);
  Attributes attributes;
  ASSERT_EQ(lookup(sha1, attributes), 0);
  EXPECT_TRUE(attributes.content);
  EXPECT_EQ(attributes.size, data.size());
  EXPECT_EQ(read_all(attributes.ino, data.size()), data);
  EXPECT_EQ(cache_->complete_size(sha1), data.size());
  // One cold read: the bytes were fetched (during the lookup's size discovery), so the
  // open that followed is a miss, not a hit.
  EXPECT_EQ(root_xattr("user.kachery.hitrate"), "0.000");
  EXPECT_EQ(read_all(attributes.ino, data.size()), data);
  EXPECT_EQ(root_xattr("user.kachery.hitrate"), "0.500");
  EXPECT_EQ(root_xattr("user.kachery.bytes_fetched"), std::to_string(data.size()));
}

TEST_F(FilesystemTest, ALargeFileStreamsThroughTheBlockCache) {
  std::string data = pattern(100000, 2);
  std::string sha1 = source_.add(data);
  Attributes attributes;
  ASSERT_EQ(lookup(sha1, attributes), 0);
  EXPECT_EQ(attributes.size, data.size());
  OpenedFile file;
  ASSERT_EQ(filesystem_->open(attributes.ino, file, never_), 0);
  ASSERT_TRUE(file.content.partial) << "above whole_max: streamed";
  int fd = -1;
  ASSERT_EQ(filesystem_->prepare_read(file, 50000, 100, &fd, never_), 0);
  std::string bytes(100, '\0');
  ASSERT_EQ(pread(fd, bytes.data(), 100, 50000), 100);
  EXPECT_EQ(bytes, data.substr(50000, 100));
  std::string value;
  ASSERT_EQ(filesystem_->get_xattr(attributes.ino, "user.kachery.sha1", value, never_), 0);
  EXPECT_EQ(value, sha1);
  EXPECT_TRUE(in_use_.held(sha1)) << "an open file is never evicted";
}

TEST_F(FilesystemTest, WrongBytesAreEioCountedAtTheirSite) {
  std::string sha1 = source_.add(pattern(3000, 3));
  source_.corrupt = true;
  Attributes attributes;
  // The file fits in size discovery's head, which fails verification: the lookup says so.
  EXPECT_EQ(lookup(sha1, attributes), -EIO);
  EXPECT_EQ(root_xattr("user.kachery.nioerr"), "1");
  EXPECT_EQ(root_xattr("user.kachery.eio"), "5 download_checksum=1\n");
  EXPECT_FALSE(cache_->complete_size(sha1));
}

TEST_F(FilesystemTest, AStreamedFileWithWrongBytesOpensAndFailsAtItsEnd) {
  std::string sha1 = source_.add(pattern(100000, 4));
  source_.corrupt_at = 70000;  // past size discovery's head
  Attributes attributes;
  ASSERT_EQ(lookup(sha1, attributes), 0);
  OpenedFile file;
  ASSERT_EQ(filesystem_->open(attributes.ino, file, never_), 0) << "an open waits for no bytes";
  int fd = -1;
  EXPECT_EQ(filesystem_->prepare_read(file, 0, 4096, &fd, never_), 0)
      << "bytes before the end are served as they arrive (verify=normal)";
  EXPECT_EQ(filesystem_->prepare_read(file, 96000, 4000, &fd, never_), -EIO)
      << "the read that reaches EOF waits for verification";
  EXPECT_EQ(root_xattr("user.kachery.eio"), "8 block_checksum=1\n");
  EXPECT_FALSE(cache_->complete_size(sha1)) << "nothing is cached";
}

TEST_F(FilesystemTest, ANodeNotReachedYetHasNoIdFileUntilItAnswers) {
  int asked = 0;
  bool reachable = false;
  Filesystem offline(tree_, *cache_, *content_, counters_, quota_, daemon_,
                     [&](std::string* id, const CancelToken&) -> Status {
                       ++asked;
                       if (!reachable) return {Cause::kUnreachable, "connection refused"};
                       *id = std::string(64, 'f');
                       return {};
                     });
  Attributes attributes;
  EXPECT_EQ(offline.lookup(Tree::kRootIno, "kachery-node-id", attributes, never_), -ENOENT)
      << "no entry of question marks: the file does not exist yet";
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(counters_.eio_total(), 0u);
  reachable = true;
  ASSERT_EQ(offline.lookup(Tree::kRootIno, "kachery-node-id", attributes, never_), 0);
  EXPECT_EQ(attributes.size, 64u);
  EXPECT_FALSE(attributes.changing);
  EXPECT_EQ(asked, 2);
  ASSERT_EQ(offline.lookup(Tree::kRootIno, "kachery-node-id", attributes, never_), 0);
  EXPECT_EQ(asked, 2) << "known now, and recorded";
}

TEST_F(FilesystemTest, NodeIdFileAndRootAttributes) {
  Attributes attributes;
  ASSERT_EQ(filesystem_->lookup(Tree::kRootIno, "kachery-node-id", attributes, never_), 0);
  EXPECT_EQ(attributes.size, 64u);
  EXPECT_EQ(read_all(attributes.ino, 64), std::string(64, 'e'));
  EXPECT_EQ(probes_, 1) << "fetched once, then remembered";
  ASSERT_EQ(filesystem_->lookup(Tree::kRootIno, "kachery-node-id", attributes, never_), 0);
  EXPECT_FALSE(attributes.changing) << "a known id is cached like any file";
  std::vector<std::string> names;
  ASSERT_EQ(filesystem_->list_xattrs(Tree::kRootIno, names), 0);
  for (const std::string& name : names) root_xattr(name);  // each one answers
  EXPECT_EQ(names.size(), 8u);
  EXPECT_EQ(root_xattr("user.kachery.inodes"), "4") << "the fixed inodes";
  EXPECT_EQ(root_xattr("user.kachery.online"), "1");
  EXPECT_EQ(root_xattr("user.kachery.nodes"), "test up served=0 rate=0.0MB/s\n");
  std::string value;
  EXPECT_EQ(filesystem_->get_xattr(Tree::kRootIno, "user.other", value, never_), -ENODATA);
  std::vector<DirEntry> entries;
  ASSERT_EQ(filesystem_->list(Tree::kRootIno, entries), 0);
  EXPECT_EQ(entries.size(), 4u);  // . .. sha1 kachery-node-id
}

}  // namespace
}  // namespace kacheryfs
