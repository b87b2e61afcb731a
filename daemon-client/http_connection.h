// One keep-alive HTTP/1.1 connection (plain or TLS) to the daemon, with connect,
// first-byte and idle timeouts and cooperative cancellation. Bodies stream into a sink in
// bounded buffers, so memory stays small whatever the response size. Beast and Asio stay
// behind this header. Not thread-safe: DaemonClient hands each connection to one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "support/cancel_token.h"
#include "support/daemon_address.h"

namespace kacheryfs {

struct HttpTimeouts {
  std::chrono::milliseconds connect{5000};
  std::chrono::milliseconds first_byte{10000};  // request sent -> response header
  std::chrono::milliseconds idle{10000};        // between body reads
  // A body slower than low_speed_limit bytes/s over any low_speed_time window is cut
  // (as curl's --speed-limit/--speed-time): a server that trickles cannot hold a reader.
  std::uint64_t low_speed_limit = 0;  // 0 = off
  std::chrono::milliseconds low_speed_time{10000};
};

// Fills buf with up to `capacity` next bytes of a request body; returns how many (0 only at
// the end), or -1 to abort the request.
using BodyProducer = std::function<long(char* buf, std::size_t capacity)>;

struct HttpRequest {
  std::string method = "POST";
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // A large body streamed from a producer instead of `body`: exactly body_length bytes,
  // sent with a Content-Length. Such a request is never retried (the body cannot be
  // replayed), so it should go on a fresh connection.
  BodyProducer body_producer;
  std::uint64_t body_length = 0;
};

enum class TransportError {
  kNone,
  kConnect,
  kTimeout,
  kCancelled,
  kBroken,
  kProtocol,
  kSinkRefused
};

struct HttpOutcome {
  TransportError error = TransportError::kNone;
  std::string detail;               // one line, for errors
  unsigned status = 0;              // HTTP status when a header arrived
  std::uint64_t body_bytes = 0;     // bytes handed to the sink (2xx) or kept in error_body
  std::string error_body;           // first 64 KiB of a non-2xx body
  bool had_content_length = false;  // the reply framed its body with Content-Length
};

// Receives body bytes of a 2xx response. Return false to stop (the connection is closed).
using BodySink = std::function<bool(const char* data, std::size_t size)>;

// Opens a connected stream socket and returns its fd (-1 on failure), in place of resolving
// and connecting to the address. The fuzzer uses it to answer from memory through a
// socketpair; a connection made this way is always plain HTTP.
using StreamConnector = std::function<int()>;

class HttpConnection {
 public:
  explicit HttpConnection(const DaemonAddress& address, StreamConnector connector = {});
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Sends one request and streams the response. Reconnects as needed; a request that
  // fails on a reused connection before any response byte is retried once on a fresh one.
  HttpOutcome exchange(const HttpRequest& request, const BodySink& sink,
                       const HttpTimeouts& timeouts, const CancelToken& cancel);

  // HTTP/1.1 pipelining: writes every request at once and reads the responses in order.
  // Response i streams into sink_for(i); then on_response(i, outcome) says whether to read
  // the next one. Responses left unread when it says no (or when the caller stops) are
  // owed: the connection reads and drops them before its next exchange, after writing that
  // exchange's request, so the connection can go back to the pool at once and the server
  // works through the rest meanwhile. A transport failure ends the exchange: on_response
  // gets it, and the connection is closed.
  void exchange_pipelined(const std::vector<HttpRequest>& requests,
                          const std::function<BodySink(std::size_t)>& sink_for,
                          const std::function<bool(std::size_t, const HttpOutcome&)>& on_response,
                          const HttpTimeouts& timeouts, const CancelToken& cancel);

  // Connects now unless connected, so that the next exchange pays no connect: a warm
  // spare for the pool.
  HttpOutcome connect(const HttpTimeouts& timeouts, const CancelToken& cancel);

  bool is_open() const;
  // Closes the connection, and with it the responses still owed: the server's writes then
  // fail instead of crossing the link.
  void close();
  // Open and owing no responses: an exchange now waits for nothing but its own answer, so
  // its time is a round trip.
  bool is_idle_and_open() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kacheryfs
