#include "jsonsocket_parser.h"

#include <gtest/gtest.h>

namespace kacheryfs {
namespace {

const std::string kStream =
    R"(50#{"type":"progress","bytesLoaded":0,"bytesTotal":0}40#{"type":"finished","localFilePath":"/x"})";

TEST(JsonSocketParser, WholeStream) {
  JsonSocketParser parser;
  auto messages = parser.feed(kStream);
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[0]["type"], "progress");
  EXPECT_EQ(messages[1]["localFilePath"], "/x");
  EXPECT_TRUE(parser.at_boundary());
  EXPECT_TRUE(parser.error().empty());
}

TEST(JsonSocketParser, ByteByByte) {
  JsonSocketParser parser;
  std::vector<nlohmann::json> all;
  for (char c : kStream) {
    for (auto& m : parser.feed(std::string_view(&c, 1))) all.push_back(m);
  }
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1]["type"], "finished");
}

TEST(JsonSocketParser, MalformedFraming) {
  JsonSocketParser bad_prefix;
  EXPECT_TRUE(bad_prefix.feed("x5#{}").empty());
  EXPECT_FALSE(bad_prefix.error().empty());

  JsonSocketParser bad_json;
  EXPECT_TRUE(bad_json.feed("3#{x}").empty());
  EXPECT_FALSE(bad_json.error().empty());

  JsonSocketParser no_hash;
  no_hash.feed(std::string(30, '1'));
  EXPECT_FALSE(no_hash.error().empty());
}

TEST(JsonSocketParser, ABadPrefixIsQuotedOnOneLine) {
  // Found by fuzz_daemon_client: the node's bytes before '#' were quoted raw, so a CR LF in
  // them split the error /loadFile logs.
  JsonSocketParser parser;
  parser.feed("42se\r\n\r\n50#{}");
  ASSERT_FALSE(parser.error().empty());
  EXPECT_EQ(parser.error().find_first_of("\r\n"), std::string::npos) << parser.error();
  EXPECT_NE(parser.error().find("42se\\x0d\\n"), std::string::npos) << parser.error();
}

TEST(JsonSocketParser, IncompleteMessageWaits) {
  JsonSocketParser parser;
  EXPECT_TRUE(parser.feed("13#{\"type\":\"pro").empty());
  EXPECT_FALSE(parser.at_boundary());
  EXPECT_TRUE(parser.error().empty());
}

}  // namespace
TEST(JsonSocketParser, HugeLengthsAreRefusedWhereverTheBytesAreCut) {
  // Found by fuzz_jsonsocket: a 23-digit prefix was an error only when cut before '#', and
  // a huge length made the parser buffer whatever came next, without end.
  std::string stream = "00011261450702569576270#{\"";
  JsonSocketParser whole;
  whole.feed(stream);
  EXPECT_FALSE(whole.error().empty());
  JsonSocketParser cut;
  cut.feed(stream.substr(0, 10));
  cut.feed(stream.substr(10));
  EXPECT_FALSE(cut.error().empty());
  JsonSocketParser big;
  big.feed("99999999#{");
  EXPECT_NE(big.error().find("limit"), std::string::npos) << big.error();
}

}  // namespace kacheryfs
