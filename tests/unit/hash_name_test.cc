#include "hash_name.h"

#include <gtest/gtest.h>

namespace kacheryfs {
namespace {

TEST(HashName, AcceptsOnlyFortyLowerCaseHexCharacters) {
  EXPECT_TRUE(is_sha1_name("da39a3ee5e6b4b0d3255bfef95601890afd80709"));
  EXPECT_FALSE(is_sha1_name("DA39A3EE5E6B4B0D3255BFEF95601890AFD80709"));
  EXPECT_FALSE(is_sha1_name("da39a3ee5e6b4b0d3255bfef95601890afd8070"));
  EXPECT_FALSE(is_sha1_name("da39a3ee5e6b4b0d3255bfef95601890afd807090"));
  EXPECT_FALSE(is_sha1_name("ga39a3ee5e6b4b0d3255bfef95601890afd80709"));
  EXPECT_FALSE(is_sha1_name(""));
}

TEST(HashName, StorageLayoutPath) {
  EXPECT_EQ(storage_relpath("da39a3ee5e6b4b0d3255bfef95601890afd80709"),
            "sha1/da/39/a3/da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

}  // namespace
}  // namespace kacheryfs
