#include "tree/tree.h"

#include <gtest/gtest.h>

namespace kacheryfs {
namespace {

constexpr std::string_view kHash = "6cf9224c0ced0affde6832a101676ff656a7cd6f";

TEST(Tree, RootHasSha1AndNodeId) {
  Tree tree;
  EXPECT_EQ(tree.child(Tree::kRootIno, "sha1"), Tree::kSha1DirIno);
  EXPECT_EQ(tree.child(Tree::kRootIno, "kachery-node-id"), Tree::kNodeIdIno);
  EXPECT_FALSE(tree.child(Tree::kRootIno, "other"));
}

TEST(Tree, BothLayoutsReachTheSameInode) {
  Tree tree;
  auto flat = tree.child(Tree::kSha1DirIno, kHash);
  ASSERT_TRUE(flat);
  auto ab = tree.child(Tree::kSha1DirIno, "6c");
  auto cd = tree.child(*ab, "f9");
  auto ef = tree.child(*cd, "22");
  ASSERT_TRUE(ef);
  EXPECT_EQ(tree.child(*ef, kHash), flat);
  EXPECT_EQ(tree.node(*flat)->kind, NodeKind::kContent);
  EXPECT_EQ(tree.node(*flat)->key, kHash);
  EXPECT_EQ(tree.node(*ef)->key, "6cf922");
  EXPECT_EQ(tree.child(Tree::kSha1DirIno, kHash), flat) << "inodes are stable";
}

TEST(Tree, MalformedNamesHaveNoNode) {
  Tree tree;
  auto ab = *tree.child(Tree::kSha1DirIno, "6c");
  auto ef = *tree.child(*tree.child(ab, "f9"), "22");
  for (std::string_view name : {"6C", "6", "6cf", "zz", "6CF9224C0CED0AFFDE6832A101676FF656A7CD6F",
                                "6cf9224c0ced0affde6832a101676ff656a7cd6", ".", ""}) {
    EXPECT_FALSE(tree.child(Tree::kSha1DirIno, name)) << name;
  }
  EXPECT_FALSE(tree.child(ef, "0000000000000000000000000000000000000000")) << "prefix must match";
  EXPECT_FALSE(tree.child(ef, "33")) << "no fourth prefix level";
  EXPECT_FALSE(tree.child(*tree.child(Tree::kSha1DirIno, kHash), "x")) << "files have no children";
  EXPECT_FALSE(tree.node(0));
  EXPECT_FALSE(tree.node(999999));
}

}  // namespace
}  // namespace kacheryfs
