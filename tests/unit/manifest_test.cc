#include "kachery/manifest.h"

#include <gtest/gtest.h>

namespace kacheryfs {
namespace {

const std::string kSha1 = "6cf9224c0ced0affde6832a101676ff656a7cd6f";
const std::string kChunkA = "1111111111111111111111111111111111111111";
const std::string kChunkB = "2222222222222222222222222222222222222222";

TEST(Manifest, ParsesTheDaemonsFormat) {
  auto m = parse_manifest(R"({"size":20000001,"sha1":")" + kSha1 +
                          R"(","chunks":[{"start":0,"end":20000000,"sha1":")" + kChunkA +
                          R"("},{"start":20000000,"end":20000001,"sha1":")" + kChunkB + R"("}]})");
  ASSERT_TRUE(m) << m.detail();
  EXPECT_EQ(m->size, 20000001u);
  EXPECT_EQ(m->sha1, kSha1);
  ASSERT_EQ(m->chunks.size(), 2u);
  EXPECT_EQ(m->chunks[1].start, 20000000u);
  EXPECT_EQ(m->chunks[1].sha1, kChunkB);
}

TEST(Manifest, RejectsWhatDoesNotDescribeTheFile) {
  auto chunk = [](int s, int e, const std::string& h) {
    return R"({"start":)" + std::to_string(s) + R"(,"end":)" + std::to_string(e) + R"(,"sha1":")" +
           h + R"("})";
  };
  auto manifest = [&](int size, const std::string& chunks) {
    return R"({"size":)" + std::to_string(size) + R"(,"sha1":")" + kSha1 + R"(","chunks":[)" +
           chunks + "]}";
  };
  EXPECT_FALSE(parse_manifest("not json"));
  auto uncovered = parse_manifest(manifest(10, chunk(0, 5, kChunkA)));
  EXPECT_FALSE(uncovered) << "does not cover the file";
  EXPECT_EQ(uncovered.detail(), "chunks do not cover the file");
  EXPECT_EQ(uncovered.cause(), Cause::kProtocolError);
  EXPECT_FALSE(parse_manifest(manifest(10, chunk(0, 5, kChunkA) + "," + chunk(6, 10, kChunkB))))
      << "gap";
  EXPECT_FALSE(parse_manifest(manifest(10, chunk(0, 10, "xyz")))) << "bad chunk sha1";
  EXPECT_FALSE(parse_manifest(manifest(10, chunk(5, 5, kChunkA)))) << "empty chunk";
  auto whole = parse_manifest(manifest(10, chunk(0, 10, kChunkA)));
  EXPECT_TRUE(whole) << whole.detail();
}

}  // namespace
}  // namespace kacheryfs
