#include "response_parser.h"

#include <boost/beast/http.hpp>
#include <limits>
#include <optional>
#include <string>

namespace kacheryfs {

namespace http = boost::beast::http;

namespace {
constexpr std::size_t kErrorBodyLimit = 64 * 1024;
constexpr int kMostInformationalReplies = 8;
constexpr std::size_t kShortestLastChunk = 5;
}  // namespace

struct ResponseParser::Impl {
  Impl(const BodySink& s, std::span<char> d) : sink(s), decode_buffer(d) { restart(); }

  void restart() {
    parser.emplace();
    // Not boost::none: Beast 1.74 then rejects every Content-Length.
    parser->body_limit(std::numeric_limits<std::uint64_t>::max());
  }

  const BodySink& sink;
  std::span<char> decode_buffer;
  std::optional<http::response_parser<http::buffer_body>> parser;
  bool header_done = false;
  int informational = 0;
};

ResponseParser::ResponseParser(const BodySink& sink, std::span<char> decode_buffer)
    : impl_(std::make_unique<Impl>(sink, decode_buffer)) {}

ResponseParser::~ResponseParser() = default;

bool ResponseParser::header_done() const { return impl_->header_done; }

bool ResponseParser::keep_alive() const {
  return impl_->parser->is_done() && impl_->parser->keep_alive();
}

ResponseParser::Step ResponseParser::fail(TransportError error, std::string detail) {
  outcome_.error = error;
  outcome_.detail = std::move(detail);
  return Step::kFailed;
}

ResponseParser::Step ResponseParser::feed(const char* data, std::size_t size, std::size_t* used) {
  *used = 0;
  boost::system::error_code ec;
  // The header, whole: 1xx replies (100 Continue, 102 Processing) come before the real one.
  while (!impl_->header_done) {
    std::size_t took = impl_->parser->put(boost::asio::buffer(data + *used, size - *used), ec);
    *used += took;
    if (ec == http::error::need_more) return Step::kMore;
    if (ec) return fail(TransportError::kBroken, "reading the response header: " + ec.message());
    if (!impl_->parser->is_header_done()) return Step::kMore;
    unsigned status = impl_->parser->get().result_int();
    if (status >= 100 && status < 200 && status != 101) {
      if (++impl_->informational > kMostInformationalReplies)
        return fail(TransportError::kProtocol, "endless 1xx replies");
      impl_->restart();
      continue;
    }
    impl_->header_done = true;
    impl_->parser->eager(true);
    outcome_.status = status;
    outcome_.had_content_length = impl_->parser->content_length().has_value();
  }
  auto& body_parser = *impl_->parser;
  bool success = outcome_.status >= 200 && outcome_.status < 300;
  char* decoded = impl_->decode_buffer.data();
  std::size_t room = impl_->decode_buffer.size();
  while (!body_parser.is_done()) {
    // Until a chunked body is done, what is left of it is at least its last chunk,
    // "0\r\n\r\n": fewer bytes never finish it. Beast 1.74 relies on that (it asserts that
    // a last chunk it saw incomplete comes back with 5 bytes or more), so they wait.
    if (body_parser.chunked() && size - *used < kShortestLastChunk) return Step::kMore;
    body_parser.get().body().data = decoded;
    body_parser.get().body().size = room;
    std::size_t took = body_parser.put(boost::asio::buffer(data + *used, size - *used), ec);
    *used += took;
    std::size_t got = room - body_parser.get().body().size;
    if (ec == http::error::need_buffer) ec = {};
    if (got > 0) {
      if (success) {
        if (!impl_->sink(decoded, got))
          return fail(TransportError::kSinkRefused, "the receiver refused the bytes");
        outcome_.body_bytes += got;
      } else if (outcome_.error_body.size() < kErrorBodyLimit) {
        outcome_.error_body.append(decoded,
                                   std::min(got, kErrorBodyLimit - outcome_.error_body.size()));
      }
    }
    if (ec == http::error::need_more) return Step::kMore;
    if (ec) return fail(TransportError::kProtocol, "malformed response body: " + ec.message());
    if (took == 0 && got == 0) return Step::kMore;
  }
  return Step::kDone;
}

ResponseParser::Step ResponseParser::end_of_stream() {
  auto& parser = *impl_->parser;
  if (parser.is_done()) return Step::kDone;
  if (!impl_->header_done) {
    return fail(TransportError::kBroken,
                "reading the response header: " +
                    (parser.got_some() ? http::make_error_code(http::error::partial_message)
                                       : http::make_error_code(http::error::end_of_stream))
                        .message());
  }
  // A body delimited by the close (HTTP/1.0 style) ends here; any other body is cut.
  boost::system::error_code ec;
  parser.put_eof(ec);
  if (!ec) return Step::kDone;
  return fail(TransportError::kBroken, "reading the body: " + ec.message());
}

}  // namespace kacheryfs
