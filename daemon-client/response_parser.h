// One HTTP/1.1 response parsed from bytes pushed in, with no I/O of its own: 1xx replies
// are skipped, the body is decoded (chunked or Content-Length or up to the close) and handed
// to a sink for a 2xx, straight from the bytes fed in, and kept (its first 64 KiB) for any
// other status. Header fields are checked but not stored (only the status and the framing
// matter here), and a header is at most 8 KiB however it arrives. HttpConnection feeds it
// from the socket; the http_response fuzzer feeds it from memory. Beast stays behind it.
#pragma once

#include <cstddef>
#include <memory>

#include "http_connection.h"

namespace kacheryfs {

class ResponseParser {
 public:
  enum class Step { kMore, kDone, kFailed };

  explicit ResponseParser(const BodySink& sink);
  ~ResponseParser();
  ResponseParser(const ResponseParser&) = delete;
  ResponseParser& operator=(const ResponseParser&) = delete;

  // Takes bytes from the front of [data, data+size) and sets *used to how many. kMore: give
  // the bytes not used again, with more after them (a header is parsed whole). kDone: the
  // response ended; bytes after *used belong to the next one. kFailed: see outcome().
  Step feed(const char* data, std::size_t size, std::size_t* used);
  // The peer closed the connection: ends a body delimited by the close, fails otherwise.
  Step end_of_stream();

  // The final (non-1xx) status line and headers have arrived.
  bool header_done() const;
  // The connection may carry another response after this one.
  bool keep_alive() const;
  // What arrived: status, body bytes and error body so far; on kFailed, the error.
  const HttpOutcome& outcome() const { return outcome_; }

 private:
  class Framing;
  Step fail(TransportError error, std::string detail);
  // Where the body's decoded bytes go: the sink for a 2xx, the error body otherwise.
  std::size_t take_body(const char* data, std::size_t size);

  const BodySink& sink_;
  std::unique_ptr<Framing> framing_;
  HttpOutcome outcome_;
  bool header_done_ = false;
  std::size_t header_bytes_ = 0;  // of the reply being parsed, fed so far
  bool sink_refused_ = false;
  int informational_ = 0;
};

}  // namespace kacheryfs
