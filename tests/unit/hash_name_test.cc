#include "kachery/hash_name.h"

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

namespace kacheryfs {
namespace {

TEST(HashName, ContentNamesMayCarryTheirManifest) {
  const std::string h = "6cf9224c0ced0affde6832a101676ff656a7cd6f";
  const std::string m = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
  auto plain = parse_content_name(h);
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->sha1, h);
  EXPECT_EQ(plain->manifest_sha1, "");
  auto with = parse_content_name(h + "?manifest=" + m);
  ASSERT_TRUE(with);
  EXPECT_EQ(with->sha1, h);
  EXPECT_EQ(with->manifest_sha1, m);
  EXPECT_FALSE(parse_content_name(h + "?manifest="));
  EXPECT_FALSE(parse_content_name(h + "?manifest=" + m + "0"));
  EXPECT_FALSE(parse_content_name(h + "?other=" + m));
  EXPECT_FALSE(parse_content_name(h + "?manifest=" + std::string(40, 'G')));
}

}  // namespace
}  // namespace kacheryfs
