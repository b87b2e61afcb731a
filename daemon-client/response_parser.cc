#include "response_parser.h"

#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/system/error_code.hpp>
#include <limits>
#include <optional>
#include <string>

namespace kacheryfs {

namespace http = boost::beast::http;
using boost::beast::error_code;
using boost::beast::string_view;

namespace {
constexpr std::size_t kErrorBodyLimit = 64 * 1024;
constexpr int kMostInformationalReplies = 8;
constexpr std::size_t kShortestLastChunk = 5;
constexpr std::size_t kHeaderLimit = 8 * 1024;  // Beast's own bound, for a header in one piece
}  // namespace

// Beast's response parser without a message: the start line, fields and framing are
// checked by Beast (header at most 8 KiB), the status is kept, and body bytes go to
// ResponseParser::take_body as they are decoded. A 1xx reply is followed by a fresh one.
class ResponseParser::Framing {
 public:
  explicit Framing(ResponseParser& owner) : owner_(owner) { restart(); }

  void restart() {
    beast_.emplace(owner_);
    // Not boost::none: Beast 1.74 then rejects every Content-Length.
    beast_->body_limit(std::numeric_limits<std::uint64_t>::max());
  }

  class Beast final : public http::basic_parser<false> {
   public:
    explicit Beast(ResponseParser& owner) : owner_(owner) {}
    unsigned status() const { return status_; }

   private:
    void on_request_impl(http::verb, string_view, string_view, int, error_code&) override {}
    void on_response_impl(int code, string_view, int, error_code&) override {
      status_ = static_cast<unsigned>(code);
    }
    void on_field_impl(http::field, string_view, string_view, error_code&) override {}
    void on_header_impl(error_code&) override {}
    void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
    std::size_t on_body_impl(string_view body, error_code& ec) override { return take(body, ec); }
    void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
    std::size_t on_chunk_body_impl(std::uint64_t, string_view body, error_code& ec) override {
      return take(body, ec);
    }
    void on_finish_impl(error_code&) override {}

    std::size_t take(string_view body, error_code& ec) {
      std::size_t taken = owner_.take_body(body.data(), body.size());
      if (taken < body.size())
        ec = boost::system::errc::make_error_code(boost::system::errc::operation_canceled);
      return taken;
    }

    ResponseParser& owner_;
    unsigned status_ = 0;
  };

  Beast& beast() { return *beast_; }

 private:
  ResponseParser& owner_;
  std::optional<Beast> beast_;
};

ResponseParser::ResponseParser(const BodySink& sink)
    : sink_(sink), framing_(std::make_unique<Framing>(*this)) {}

ResponseParser::~ResponseParser() = default;

bool ResponseParser::header_done() const { return header_done_; }

bool ResponseParser::keep_alive() const {
  auto& beast = framing_->beast();
  return beast.is_done() && beast.keep_alive();
}

ResponseParser::Step ResponseParser::fail(TransportError error, std::string detail) {
  outcome_.error = error;
  outcome_.detail = std::move(detail);
  return Step::kFailed;
}

std::size_t ResponseParser::take_body(const char* data, std::size_t size) {
  if (size == 0) return 0;
  if (outcome_.status >= 200 && outcome_.status < 300) {
    if (!sink_(data, size)) {
      sink_refused_ = true;
      return 0;
    }
    outcome_.body_bytes += size;
  } else if (outcome_.error_body.size() < kErrorBodyLimit) {
    outcome_.error_body.append(data, std::min(size, kErrorBodyLimit - outcome_.error_body.size()));
  }
  return size;
}

ResponseParser::Step ResponseParser::feed(const char* data, std::size_t size, std::size_t* used) {
  *used = 0;
  error_code ec;
  // The header, whole: 1xx replies (100 Continue, 102 Processing) come before the real one.
  while (!header_done_) {
    auto& beast = framing_->beast();
    std::size_t took = beast.put(boost::asio::buffer(data + *used, size - *used), ec);
    *used += took;
    header_bytes_ += took;
    // Beast bounds the header bytes it holds unparsed, not the fields it parsed from an
    // earlier piece; the whole header is bounded here, however it is cut.
    if (ec == http::error::need_more) ec = {};
    if (!ec && header_bytes_ + (beast.is_header_done() ? 0 : size - *used) >= kHeaderLimit)
      ec = http::error::header_limit;
    if (ec) return fail(TransportError::kBroken, "reading the response header: " + ec.message());
    if (!beast.is_header_done()) return Step::kMore;
    unsigned status = beast.status();
    if (status >= 100 && status < 200 && status != 101) {
      if (++informational_ > kMostInformationalReplies)
        return fail(TransportError::kProtocol, "endless 1xx replies");
      framing_->restart();
      header_bytes_ = 0;
      continue;
    }
    header_done_ = true;
    beast.eager(true);
    outcome_.status = status;
    outcome_.had_content_length = beast.content_length().has_value();
  }
  auto& beast = framing_->beast();
  while (!beast.is_done()) {
    // Until a chunked body is done, what is left of it is at least its last chunk,
    // "0\r\n\r\n": fewer bytes never finish it. Beast 1.74 relies on that (it asserts that
    // a last chunk it saw incomplete comes back with 5 bytes or more), so they wait.
    if (beast.chunked() && size - *used < kShortestLastChunk) return Step::kMore;
    std::size_t took = beast.put(boost::asio::buffer(data + *used, size - *used), ec);
    *used += took;
    if (sink_refused_) return fail(TransportError::kSinkRefused, "the receiver refused the bytes");
    if (ec == http::error::need_more) return Step::kMore;
    if (ec) return fail(TransportError::kProtocol, "malformed response body: " + ec.message());
    if (took == 0) return Step::kMore;
  }
  return Step::kDone;
}

ResponseParser::Step ResponseParser::end_of_stream() {
  auto& beast = framing_->beast();
  if (beast.is_done()) return Step::kDone;
  if (!header_done_) {
    return fail(TransportError::kBroken,
                "reading the response header: " +
                    (beast.got_some() ? http::make_error_code(http::error::partial_message)
                                      : http::make_error_code(http::error::end_of_stream))
                        .message());
  }
  // A body delimited by the close (HTTP/1.0 style) ends here; any other body is cut.
  error_code ec;
  beast.put_eof(ec);
  if (!ec) return Step::kDone;
  return fail(TransportError::kBroken, "reading the body: " + ec.message());
}

}  // namespace kacheryfs
