// Tree: names resolve syntactically; inodes are made by lookups, shared by both layouts,
// counted, and dropped when the kernel forgets them all; fixed inodes stay.
#include "tree/tree.h"

#include <gtest/gtest.h>

namespace kacheryfs {
namespace {

constexpr std::string_view kHash = "6cf9224c0ced0affde6832a101676ff656a7cd6f";

// The inode of parent's child `name`, looked up once (as a kernel lookup would).
std::optional<std::uint64_t> look_up(Tree& tree, std::uint64_t parent, std::string_view name) {
  auto node = tree.resolve(parent, name);
  if (!node) return std::nullopt;
  return tree.acquire(*node);
}

TEST(Tree, RootHasSha1AndNodeId) {
  Tree tree;
  EXPECT_EQ(look_up(tree, Tree::kRootIno, "sha1"), Tree::kSha1DirIno);
  EXPECT_EQ(look_up(tree, Tree::kRootIno, "kachery-node-id"), Tree::kNodeIdIno);
  EXPECT_FALSE(look_up(tree, Tree::kRootIno, "other"));
}

TEST(Tree, BothLayoutsReachTheSameInode) {
  Tree tree;
  auto flat = look_up(tree, Tree::kSha1DirIno, kHash);
  ASSERT_TRUE(flat);
  auto ab = look_up(tree, Tree::kSha1DirIno, "6c");
  auto cd = look_up(tree, *ab, "f9");
  auto ef = look_up(tree, *cd, "22");
  ASSERT_TRUE(ef);
  EXPECT_EQ(look_up(tree, *ef, kHash), flat);
  EXPECT_EQ(tree.node(*flat)->kind, NodeKind::kContent);
  EXPECT_EQ(tree.node(*flat)->key, kHash);
  EXPECT_EQ(tree.node(*ef)->key, "6cf922");
  EXPECT_EQ(look_up(tree, Tree::kSha1DirIno, kHash), flat) << "stable while looked up";
  EXPECT_EQ(tree.existing_ino(NodeKind::kContent, kHash), flat);
}

TEST(Tree, AnInodeLivesUntilEveryLookupIsForgotten) {
  Tree tree;
  const std::size_t fixed = tree.size();
  auto first = *look_up(tree, Tree::kSha1DirIno, kHash);
  auto again = *look_up(tree, Tree::kSha1DirIno, kHash);
  ASSERT_EQ(first, again);
  EXPECT_EQ(tree.size(), fixed + 1);
  tree.forget(first, 1);
  EXPECT_TRUE(tree.node(first)) << "one lookup is still held";
  tree.forget(first, 1);
  EXPECT_FALSE(tree.node(first));
  EXPECT_FALSE(tree.existing_ino(NodeKind::kContent, kHash));
  EXPECT_EQ(tree.size(), fixed);
  auto later = *look_up(tree, Tree::kSha1DirIno, kHash);
  EXPECT_NE(later, first) << "a number is never reused during the mount";
  tree.forget(later, 5);  // more than held (forget_multi batches): gone, no underflow
  EXPECT_EQ(tree.size(), fixed);
  tree.forget(Tree::kRootIno, 1);
  tree.forget(Tree::kSha1DirIno, 100);
  EXPECT_TRUE(tree.node(Tree::kRootIno) && tree.node(Tree::kSha1DirIno)) << "fixed inodes stay";
}

TEST(Tree, MalformedNamesHaveNoNode) {
  Tree tree;
  auto ab = *look_up(tree, Tree::kSha1DirIno, "6c");
  auto ef = *look_up(tree, *look_up(tree, ab, "f9"), "22");
  for (std::string_view name : {"6C", "6", "6cf", "zz", "6CF9224C0CED0AFFDE6832A101676FF656A7CD6F",
                                "6cf9224c0ced0affde6832a101676ff656a7cd6", ".", ""}) {
    EXPECT_FALSE(tree.resolve(Tree::kSha1DirIno, name)) << name;
  }
  EXPECT_FALSE(tree.resolve(ef, "0000000000000000000000000000000000000000")) << "prefix must match";
  EXPECT_FALSE(tree.resolve(ef, "33")) << "no fourth prefix level";
  EXPECT_FALSE(tree.resolve(*look_up(tree, Tree::kSha1DirIno, kHash), "x"))
      << "files have no children";
  EXPECT_FALSE(tree.node(0));
  EXPECT_FALSE(tree.node(999999));
}

}  // namespace
}  // namespace kacheryfs
