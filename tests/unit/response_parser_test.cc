// ResponseParser from memory: framing, 1xx replies, pipelined leftovers, pieces of any size,
// bodies delimited by the close, and the errors a hostile daemon can cause.
#include "response_parser.h"

#include <gtest/gtest.h>

#include <string>

namespace kacheryfs {
namespace {

struct Parsed {
  ResponseParser::Step step;
  HttpOutcome outcome;
  std::string body;
  std::size_t used;  // bytes of the input the response took
  bool keep_alive;
};

// Feeds `wire` in pieces of `piece` bytes, keeping the unused bytes as a socket buffer
// would; `closed` adds end-of-file after the last byte.
Parsed parse(const std::string& wire, std::size_t piece = 1 << 20, bool closed = true) {
  Parsed parsed{};
  BodySink sink = [&](const char* data, std::size_t size) {
    parsed.body.append(data, size);
    return true;
  };
  ResponseParser parser(sink);
  std::size_t arrived = 0, consumed = 0;
  for (;;) {
    std::size_t used = 0;
    parsed.step = parser.feed(wire.data() + consumed, arrived - consumed, &used);
    consumed += used;
    if (parsed.step != ResponseParser::Step::kMore) break;
    if (arrived == wire.size()) {
      if (closed) parsed.step = parser.end_of_stream();
      break;
    }
    arrived = std::min(wire.size(), arrived + piece);
  }
  parsed.outcome = parser.outcome();
  parsed.used = consumed;
  parsed.keep_alive = parser.keep_alive();
  return parsed;
}

const std::string kChunked =
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    "5\r\nhello\r\n1a\r\n, world, in two chunks....\r\n0\r\n\r\n";

TEST(ResponseParser, AChunkedBodyIsTheSameInEveryPieceSize) {
  for (std::size_t piece : {1, 2, 7, 64, 4096}) {
    Parsed parsed = parse(kChunked, piece);
    ASSERT_EQ(parsed.step, ResponseParser::Step::kDone) << piece;
    EXPECT_EQ(parsed.body, "hello, world, in two chunks....") << piece;
    EXPECT_EQ(parsed.outcome.body_bytes, parsed.body.size());
    EXPECT_EQ(parsed.outcome.status, 200u);
    EXPECT_FALSE(parsed.outcome.had_content_length);
    EXPECT_TRUE(parsed.keep_alive);
  }
}

TEST(ResponseParser, ALastChunkWithTrailersArrivesAByteAtATime) {
  // The last chunk is the first one, so no CRLF comes before it (which Beast 1.74's debug
  // assertions once tripped over, fed 3 bytes and then 4).
  for (std::size_t piece : {1, 2, 3, 4}) {
    Parsed parsed = parse(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Trailer: y\r\n\r\n", piece);
    ASSERT_EQ(parsed.step, ResponseParser::Step::kDone) << piece;
    EXPECT_TRUE(parsed.body.empty());
  }
}

TEST(ResponseParser, LeavesTheNextPipelinedResponseUnused) {
  std::string first = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
  Parsed parsed = parse(first + "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nd", 1 << 20, false);
  ASSERT_EQ(parsed.step, ResponseParser::Step::kDone);
  EXPECT_EQ(parsed.body, "abc");
  EXPECT_EQ(parsed.used, first.size());
  EXPECT_TRUE(parsed.outcome.had_content_length);
}

TEST(ResponseParser, SkipsInformationalRepliesButNotEndlessOnes) {
  Parsed parsed = parse(
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
      5);
  ASSERT_EQ(parsed.step, ResponseParser::Step::kDone);
  EXPECT_EQ(parsed.outcome.status, 200u);
  EXPECT_EQ(parsed.body, "ok");

  std::string endless;
  for (int i = 0; i < 20; ++i) endless += "HTTP/1.1 100 Continue\r\n\r\n";
  parsed = parse(endless);
  ASSERT_EQ(parsed.step, ResponseParser::Step::kFailed);
  EXPECT_EQ(parsed.outcome.error, TransportError::kProtocol);
}

TEST(ResponseParser, AnErrorBodyIsKeptNotSunkAndCapped) {
  std::string big(100 * 1024, 'x');
  Parsed parsed = parse(
      "HTTP/1.1 500 Internal\r\nContent-Length: " + std::to_string(big.size()) + "\r\n\r\n" + big,
      1000, true);
  ASSERT_EQ(parsed.step, ResponseParser::Step::kDone);
  EXPECT_EQ(parsed.outcome.status, 500u);
  EXPECT_TRUE(parsed.body.empty());
  EXPECT_EQ(parsed.outcome.error_body, std::string(64 * 1024, 'x'));
}

TEST(ResponseParser, ABodyDelimitedByTheCloseEndsThereAndIsNotReusable) {
  Parsed parsed = parse("HTTP/1.0 200 OK\r\n\r\nto the end", 3);
  ASSERT_EQ(parsed.step, ResponseParser::Step::kDone);
  EXPECT_EQ(parsed.body, "to the end");
  EXPECT_FALSE(parsed.keep_alive);
}

TEST(ResponseParser, ACutBodyOrHeaderIsBrokenAndSaysWhich) {
  Parsed cut_body = parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
  ASSERT_EQ(cut_body.step, ResponseParser::Step::kFailed);
  EXPECT_EQ(cut_body.outcome.error, TransportError::kBroken);
  EXPECT_NE(cut_body.outcome.detail.find("reading the body"), std::string::npos);
  EXPECT_EQ(cut_body.body, "abc");

  Parsed cut_header = parse("HTTP/1.1 200 OK\r\nContent-Le");
  ASSERT_EQ(cut_header.step, ResponseParser::Step::kFailed);
  EXPECT_EQ(cut_header.outcome.error, TransportError::kBroken);
  EXPECT_FALSE(cut_header.outcome.detail.empty());

  Parsed nothing = parse("");
  ASSERT_EQ(nothing.step, ResponseParser::Step::kFailed);
  EXPECT_NE(nothing.outcome.detail.find("end of stream"), std::string::npos);
}

TEST(ResponseParser, MalformedFramingFailsWithOneLine) {
  Parsed bad_status = parse("HTTP/1.1 2x0 OK\r\n\r\n");
  ASSERT_EQ(bad_status.step, ResponseParser::Step::kFailed);
  Parsed bad_chunk = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzzzz\r\n");
  ASSERT_EQ(bad_chunk.step, ResponseParser::Step::kFailed);
  EXPECT_EQ(bad_chunk.outcome.error, TransportError::kProtocol);
  for (const auto& parsed : {bad_status, bad_chunk})
    EXPECT_EQ(parsed.outcome.detail.find('\n'), std::string::npos);
}

TEST(ResponseParser, ASinkThatRefusesStopsTheBody) {
  BodySink refuse = [](const char*, std::size_t) { return false; };
  ResponseParser parser(refuse);
  std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
  std::size_t used = 0;
  EXPECT_EQ(parser.feed(wire.data(), wire.size(), &used), ResponseParser::Step::kFailed);
  EXPECT_EQ(parser.outcome().error, TransportError::kSinkRefused);
}

TEST(ResponseParser, BodyBytesReachTheSinkFromTheBytesFedNotACopy) {
  std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Other: 1\r\n\r\nhello";
  const char* from = nullptr;
  std::size_t sunk = 0;
  BodySink sink = [&](const char* data, std::size_t size) {
    from = data;
    sunk = size;
    return true;
  };
  ResponseParser parser(sink);
  std::size_t used = 0;
  ASSERT_EQ(parser.feed(wire.data(), wire.size(), &used), ResponseParser::Step::kDone);
  EXPECT_EQ(sunk, 5u);
  EXPECT_EQ(from, wire.data() + wire.size() - 5);
}

TEST(ResponseParser, AHeaderOver8KiBFailsHoweverItArrives) {
  std::string wire = "HTTP/1.1 200 OK\r\n";
  while (wire.size() < 9000) wire += "X-Padding: " + std::string(100, 'p') + "\r\n";
  wire += "Content-Length: 0\r\n\r\n";
  for (std::size_t piece : {std::size_t{1}, std::size_t{113}, std::size_t{500}, std::size_t{1000},
                            std::size_t{4096}, std::size_t{1} << 20}) {
    Parsed parsed = parse(wire, piece);
    ASSERT_EQ(parsed.step, ResponseParser::Step::kFailed) << piece;
    EXPECT_EQ(parsed.outcome.error, TransportError::kBroken);
    EXPECT_NE(parsed.outcome.detail.find("header"), std::string::npos) << parsed.outcome.detail;
  }
}

}  // namespace
}  // namespace kacheryfs
