#include "http_connection.h"

#include <openssl/ssl.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <type_traits>

#include "response_parser.h"

namespace kacheryfs {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kReceiveBuffer = 256 * 1024;
// A connection's first read: a header and a small body. Reads grow to kReceiveBuffer.
constexpr std::size_t kFirstRead = 16 * 1024;

net::ssl::context& shared_tls_context() {
  static net::ssl::context context = [] {
    net::ssl::context ctx(net::ssl::context::tls_client);
    ctx.set_default_verify_paths();
    ctx.set_verify_mode(net::ssl::verify_peer);
    return ctx;
  }();
  return context;
}

HttpOutcome failure(TransportError error, std::string detail) {
  HttpOutcome outcome;
  outcome.error = error;
  outcome.detail = std::move(detail);
  return outcome;
}

// Resolved addresses, shared by every connection of the process for a minute, so that a
// new connection costs no resolver thread and no getaddrinfo; an IP literal needs neither.
class ResolvedEndpoints {
 public:
  static std::optional<tcp::resolver::results_type> find(const std::string& host,
                                                         std::uint16_t port) {
    beast::error_code ec;
    auto literal = net::ip::make_address(host, ec);
    if (!ec) {
      return tcp::resolver::results_type::create(tcp::endpoint(literal, port), host,
                                                 std::to_string(port));
    }
    std::lock_guard lock(mutex());
    auto it = cache().find(key(host, port));
    if (it == cache().end() || Clock::now() >= it->second.expires) return std::nullopt;
    return it->second.endpoints;
  }
  static void remember(const std::string& host, std::uint16_t port,
                       const tcp::resolver::results_type& endpoints) {
    std::lock_guard lock(mutex());
    cache()[key(host, port)] = {endpoints, Clock::now() + std::chrono::seconds(60)};
  }
  // A connect that failed may mean the name now points elsewhere: resolve it again.
  static void forget(const std::string& host, std::uint16_t port) {
    std::lock_guard lock(mutex());
    cache().erase(key(host, port));
  }

 private:
  struct Entry {
    tcp::resolver::results_type endpoints;
    Clock::time_point expires;
  };
  static std::string key(const std::string& host, std::uint16_t port) {
    return host + ":" + std::to_string(port);
  }
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static std::map<std::string, Entry>& cache() {
    static std::map<std::string, Entry> c;
    return c;
  }
};

}  // namespace

struct HttpConnection::Impl {
  Impl(const DaemonAddress& a, StreamConnector c)
      : address(a), connector(std::move(c)), resolver(ioc) {}

  DaemonAddress address;
  StreamConnector connector;
  net::io_context ioc;
  tcp::resolver resolver;
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;
  std::size_t read_size = kFirstRead;  // doubles while reads fill it, up to kReceiveBuffer
  std::size_t owed = 0;                // responses of pipelined requests the caller stopped reading

  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
  bool open() const {
    return (plain && plain->socket().is_open()) ||
           (tls && beast::get_lowest_layer(*tls).socket().is_open());
  }

  template <class F>
  void with_stream(F&& f) {
    if (tls)
      f(*tls);
    else
      f(*plain);
  }

  void close() {
    if (!plain && !tls) return;
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().socket().close(ignored);
    plain.reset();
    tls.reset();
    buffer.clear();
    owed = 0;
  }

  // Reads and drops the responses still owed by an earlier pipelined exchange.
  HttpOutcome drain_owed(const HttpTimeouts& timeouts, const CancelToken& cancel) {
    BodySink discard = [](const char*, std::size_t) { return true; };
    while (owed > 0) {
      bool unused = true;
      HttpOutcome drained = receive(discard, timeouts, cancel, &unused);
      if (drained.error != TransportError::kNone || !open()) {
        close();
        return failure(
            drained.error == TransportError::kNone ? TransportError::kBroken : drained.error,
            "reading an earlier pipelined response: " + drained.detail);
      }
      --owed;
    }
    return {};
  }

  // Writes a request message, or bytes already serialized (several pipelined requests).
  template <class Writable>
  HttpOutcome write_request(const Writable& what, const HttpTimeouts& timeouts,
                            const CancelToken& cancel) {
    bool done = false;
    beast::error_code ec;
    auto finished = [&](beast::error_code e, std::size_t) {
      ec = e;
      done = true;
    };
    with_stream([&](auto& stream) {
      if constexpr (std::is_same_v<Writable, std::string>)
        net::async_write(stream, net::buffer(what), finished);
      else
        http::async_write(stream, what, finished);
    });
    if (auto why = run(done, Clock::now() + timeouts.first_byte, cancel);
        why != TransportError::kNone) {
      return failure(
          why, why == TransportError::kTimeout ? "sending the request timed out" : "cancelled");
    }
    if (ec) {
      close();
      return failure(TransportError::kBroken, "sending the request: " + ec.message());
    }
    return {};
  }

  // Runs the io_context until *done, the deadline or cancellation, none of them polled: a
  // timer stands for the deadline (or the token's, if earlier) and the token posts its
  // cancellation. On the latter two the socket is closed, the pending operation completes
  // with an error, and the reason is returned.
  TransportError run(const bool& done, Clock::time_point deadline, const CancelToken& cancel) {
    ioc.restart();
    TransportError why = TransportError::kNone;
    auto abandon = [&](TransportError reason) {
      if (done || why != TransportError::kNone) return;
      why = reason;
      beast::error_code ignored;
      resolver.cancel();
      if (plain || tls) lowest().socket().close(ignored);
    };
    if (auto token_deadline = cancel.deadline(); token_deadline && *token_deadline < deadline)
      deadline = *token_deadline;
    net::steady_timer timer(ioc, deadline);
    timer.async_wait([&](beast::error_code ec) {
      if (!ec) abandon(cancel.cancelled() ? TransportError::kCancelled : TransportError::kTimeout);
    });
    {
      CancelSubscription woken =
          cancel.on_cancel([&] { net::post(ioc, [&] { abandon(TransportError::kCancelled); }); });
      if (cancel.cancelled()) abandon(TransportError::kCancelled);
      while (!done && ioc.run_one() > 0) {
      }
    }
    // What is still queued (the timer's cancellation, a posted cancel) runs now, while what
    // it refers to lives; it finds the operation done and does nothing.
    timer.cancel();
    ioc.restart();
    ioc.poll();
    if (why != TransportError::kNone) close();
    return why;
  }

  HttpOutcome connect(const HttpTimeouts& timeouts, const CancelToken& cancel) {
    HttpOutcome outcome;
    close();
    auto deadline = Clock::now() + timeouts.connect;
    bool done = false;
    beast::error_code ec;
    if (connector) return adopt(connector());
    tcp::resolver::results_type endpoints;
    if (auto known = ResolvedEndpoints::find(address.host, address.port)) {
      endpoints = std::move(*known);
    } else {
      resolver.async_resolve(address.host, std::to_string(address.port),
                             [&](beast::error_code e, tcp::resolver::results_type r) {
                               ec = e;
                               endpoints = std::move(r);
                               done = true;
                             });
      if (auto why = run(done, deadline, cancel); why != TransportError::kNone) {
        return failure(why == TransportError::kTimeout ? TransportError::kConnect : why,
                       "resolving " + address.host +
                           (why == TransportError::kTimeout ? ": timed out" : ": cancelled"));
      }
      if (ec) {
        return failure(TransportError::kConnect, "resolving " + address.host + ": " + ec.message());
      }
      ResolvedEndpoints::remember(address.host, address.port, endpoints);
    }

    if (address.tls)
      tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ioc, shared_tls_context());
    else
      plain = std::make_unique<beast::tcp_stream>(ioc);
    done = false;
    lowest().async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) {
      ec = e;
      done = true;
    });
    std::string where = address.host + ":" + std::to_string(address.port);
    if (auto why = run(done, deadline, cancel); why != TransportError::kNone) {
      return failure(
          why == TransportError::kTimeout ? TransportError::kConnect : why,
          "connect " + where + (why == TransportError::kTimeout ? ": timed out" : ": cancelled"));
    }
    if (ec) {
      close();
      ResolvedEndpoints::forget(address.host, address.port);
      return failure(TransportError::kConnect, "connect " + where + ": " + ec.message());
    }
    lowest().socket().set_option(tcp::no_delay(true), ec);
    lowest().socket().set_option(
        net::socket_base::receive_buffer_size(static_cast<int>(kReceiveBuffer)), ec);
    if (tls) {
      SSL_set_tlsext_host_name(tls->native_handle(), address.host.c_str());
      tls->set_verify_callback(net::ssl::host_name_verification(address.host));
      done = false;
      tls->async_handshake(net::ssl::stream_base::client, [&](beast::error_code e) {
        ec = e;
        done = true;
      });
      if (auto why = run(done, deadline, cancel); why != TransportError::kNone) {
        return failure(why == TransportError::kTimeout ? TransportError::kConnect : why,
                       "TLS handshake with " + where + ": timed out");
      }
      if (ec) {
        close();
        return failure(TransportError::kConnect,
                       "TLS handshake with " + where + ": " + ec.message());
      }
    }
    return outcome;
  }

  // Takes a socket that a StreamConnector opened.
  HttpOutcome adopt(int fd) {
    if (fd < 0) return failure(TransportError::kConnect, "the connector opened no socket");
    plain = std::make_unique<beast::tcp_stream>(ioc);
    beast::error_code ec;
    plain->socket().assign(tcp::v4(), fd, ec);
    if (ec) {
      ::close(fd);
      plain.reset();
      return failure(TransportError::kConnect, "adopting the connector's socket: " + ec.message());
    }
    return {};
  }

  // One attempt on the current connection. *nothing_received tells whether it is safe to
  // retry on a fresh connection (a stale keep-alive connection fails this way).
  HttpOutcome attempt(const http::request<http::string_body>& request, const BodySink& sink,
                      const HttpTimeouts& timeouts, const CancelToken& cancel,
                      bool* nothing_received) {
    *nothing_received = true;
    if (HttpOutcome written = write_request(request, timeouts, cancel);
        written.error != TransportError::kNone)
      return written;
    if (HttpOutcome drained = drain_owed(timeouts, cancel); drained.error != TransportError::kNone)
      return drained;  // nothing of this request's response was read: safe to retry
    return receive(sink, timeouts, cancel, nothing_received);
  }

  // Sends a request whose body comes from a producer, piece by piece (Beast's buffer_body
  // with a serializer), then receives the response like attempt().
  HttpOutcome attempt_streamed(http::request<http::buffer_body>& request, std::uint64_t length,
                               const BodyProducer& produce, const BodySink& sink,
                               const HttpTimeouts& timeouts, const CancelToken& cancel) {
    bool nothing_received = true;
    http::request_serializer<http::buffer_body> serializer{request};
    auto pieces = std::make_unique_for_overwrite<char[]>(kReceiveBuffer);
    auto send = [&](auto&& start) -> std::optional<HttpOutcome> {
      bool done = false;
      beast::error_code ec;
      with_stream([&](auto& stream) { start(stream, ec, done); });
      if (auto why = run(done, Clock::now() + timeouts.idle, cancel);
          why != TransportError::kNone) {
        return failure(
            why, why == TransportError::kTimeout ? "sending the body timed out" : "cancelled");
      }
      if (ec && ec != http::error::need_buffer) {
        close();
        return failure(TransportError::kBroken, "sending the request: " + ec.message());
      }
      return std::nullopt;
    };
    auto write_header = [&](auto& stream, beast::error_code& ec, bool& done) {
      http::async_write_header(stream, serializer, [&](beast::error_code e, std::size_t) {
        ec = e;
        done = true;
      });
    };
    if (auto failed = send(write_header)) return *failed;
    std::uint64_t remaining = length;
    while (remaining > 0) {
      long got = produce(pieces.get(), std::min<std::uint64_t>(kReceiveBuffer, remaining));
      if (got <= 0) {
        close();
        return failure(TransportError::kSinkRefused, "the request body ended early");
      }
      remaining -= static_cast<std::uint64_t>(got);
      request.body().data = pieces.get();
      request.body().size = static_cast<std::size_t>(got);
      request.body().more = remaining > 0;
      auto write_piece = [&](auto& stream, beast::error_code& ec, bool& done) {
        http::async_write(stream, serializer, [&](beast::error_code e, std::size_t) {
          ec = e;
          done = true;
        });
      };
      if (auto failed = send(write_piece)) return *failed;
    }
    if (HttpOutcome drained = drain_owed(timeouts, cancel); drained.error != TransportError::kNone)
      return drained;
    return receive(sink, timeouts, cancel, &nothing_received);
  }

  HttpOutcome receive(const BodySink& sink, const HttpTimeouts& timeouts, const CancelToken& cancel,
                      bool* nothing_received) {
    ResponseParser parser(sink);
    auto failed = [&](HttpOutcome outcome) {
      close();
      return outcome;
    };
    // The low-speed limit: the body must bring low_speed_limit bytes/s on average over every
    // low_speed_time window.
    auto window_start = Clock::now();
    std::uint64_t window_bytes = 0;
    const auto header_deadline = Clock::now() + timeouts.first_byte;
    for (;;) {
      ResponseParser::Step step = ResponseParser::Step::kMore;
      if (buffer.size() > 0) {
        std::size_t used = 0;
        step = parser.feed(static_cast<const char*>(buffer.data().data()), buffer.size(), &used);
        buffer.consume(used);
      }
      if (parser.header_done() && *nothing_received) {
        *nothing_received = false;
        window_start = Clock::now();
        window_bytes = 0;
      }
      if (step == ResponseParser::Step::kDone) break;
      if (step == ResponseParser::Step::kFailed) return failed(parser.outcome());

      bool done = false;
      beast::error_code ec;
      std::size_t received = 0;
      with_stream([&](auto& stream) {
        stream.async_read_some(buffer.prepare(read_size), [&](beast::error_code e, std::size_t n) {
          ec = e;
          received = n;
          done = true;
        });
      });
      // The whole header must come within first_byte (a byte now and then does not extend
      // it); after it, each read must come within idle.
      bool header_done = parser.header_done();
      auto deadline = header_done ? Clock::now() + timeouts.idle : header_deadline;
      if (auto why = run(done, deadline, cancel); why != TransportError::kNone) {
        return failure(why, why == TransportError::kCancelled ? "cancelled"
                            : header_done ? "the body stalled past the idle timeout"
                                          : "no response within the first-byte timeout");
      }
      buffer.commit(received);
      if (received == read_size && read_size < kReceiveBuffer) read_size *= 2;
      if (ec == net::error::eof) {
        if (parser.end_of_stream() == ResponseParser::Step::kFailed)
          return failed(parser.outcome());
        close();
        break;
      }
      if (ec) {
        return failed(failure(
            TransportError::kBroken,
            (header_done ? "reading the body: " : "reading the response header: ") + ec.message()));
      }
      window_bytes += received;
      if (header_done && timeouts.low_speed_limit > 0 &&
          Clock::now() - window_start >= timeouts.low_speed_time) {
        auto seconds = std::chrono::duration<double>(Clock::now() - window_start).count();
        if (static_cast<double>(window_bytes) <
            static_cast<double>(timeouts.low_speed_limit) * seconds) {
          return failed(failure(TransportError::kTimeout,
                                "the body came slower than " +
                                    std::to_string(timeouts.low_speed_limit) + " bytes/s for " +
                                    std::to_string(timeouts.low_speed_time.count()) + " ms"));
        }
        window_start = Clock::now();
        window_bytes = 0;
      }
    }
    // Only a reply read to its end leaves the connection reusable.
    if (!parser.keep_alive()) close();
    return parser.outcome();
  }
};

HttpConnection::HttpConnection(const DaemonAddress& address, StreamConnector connector)
    : impl_(std::make_unique<Impl>(address, std::move(connector))) {}
HttpConnection::~HttpConnection() { impl_->close(); }

bool HttpConnection::is_open() const { return impl_->open(); }

void HttpConnection::close() { impl_->close(); }

bool HttpConnection::is_idle_and_open() const { return impl_->open() && impl_->owed == 0; }

HttpOutcome HttpConnection::connect(const HttpTimeouts& timeouts, const CancelToken& cancel) {
  if (impl_->open()) return {};
  return impl_->connect(timeouts, cancel);
}

namespace {

http::request<http::string_body> message_of(const DaemonAddress& address,
                                            const HttpRequest& request) {
  http::request<http::string_body> message;
  message.method_string(request.method);
  message.target(address.base_path + request.target);
  message.version(11);
  message.set(http::field::host, address.host + ":" + std::to_string(address.port));
  message.set(http::field::user_agent, "kacheryfs/" KACHERYFS_VERSION);
  for (const auto& [name, value] : request.headers) message.set(name, value);
  message.body() = request.body;
  message.prepare_payload();
  return message;
}

}  // namespace

void HttpConnection::exchange_pipelined(
    const std::vector<HttpRequest>& requests, const std::function<BodySink(std::size_t)>& sink_for,
    const std::function<bool(std::size_t, const HttpOutcome&)>& on_response,
    const HttpTimeouts& timeouts, const CancelToken& cancel) {
  if (requests.empty()) return;
  std::string wire;
  for (const HttpRequest& request : requests) {
    std::ostringstream serialized;
    serialized << message_of(impl_->address, request);
    wire += serialized.str();
  }
  for (int round = 0;; ++round) {
    bool reused = impl_->open();
    if (!reused) {
      HttpOutcome connected = impl_->connect(timeouts, cancel);
      if (connected.error != TransportError::kNone) {
        on_response(0, connected);
        return;
      }
    }
    HttpOutcome written = impl_->write_request(wire, timeouts, cancel);
    if (written.error == TransportError::kNone) written = impl_->drain_owed(timeouts, cancel);
    if (written.error != TransportError::kNone) {
      if (written.error == TransportError::kBroken && reused && round == 0) continue;
      on_response(0, written);
      return;
    }
    impl_->owed = requests.size();
    bool retry = false;
    for (std::size_t i = 0; i < requests.size(); ++i) {
      bool nothing_received = true;
      HttpOutcome outcome = impl_->receive(sink_for(i), timeouts, cancel, &nothing_received);
      if (outcome.error != TransportError::kNone) {
        impl_->close();
        // An idle connection that the server had closed: once more on a fresh one.
        retry = outcome.error == TransportError::kBroken && nothing_received && i == 0 && reused &&
                round == 0;
        if (!retry) on_response(i, outcome);
        break;
      }
      --impl_->owed;
      bool more = on_response(i, outcome);
      if (!impl_->open() && i + 1 < requests.size()) {
        // The server closed the connection after this reply: the rest never come.
        impl_->close();
        if (more) {
          on_response(i + 1, failure(TransportError::kBroken,
                                     "the server closed the connection within a pipeline"));
        }
        break;
      }
      if (!more) break;
    }
    if (!retry) return;
  }
}

HttpOutcome HttpConnection::exchange(const HttpRequest& request, const BodySink& sink,
                                     const HttpTimeouts& timeouts, const CancelToken& cancel) {
  http::request<http::string_body> message = message_of(impl_->address, request);
  if (request.body_producer) {
    http::request<http::buffer_body> streamed;
    streamed.method_string(request.method);
    streamed.target(impl_->address.base_path + request.target);
    streamed.version(11);
    streamed.set(http::field::host,
                 impl_->address.host + ":" + std::to_string(impl_->address.port));
    streamed.set(http::field::user_agent, "kacheryfs/" KACHERYFS_VERSION);
    for (const auto& [name, value] : request.headers) streamed.set(name, value);
    streamed.content_length(request.body_length);
    if (!impl_->open()) {
      HttpOutcome connected = impl_->connect(timeouts, cancel);
      if (connected.error != TransportError::kNone) return connected;
    }
    return impl_->attempt_streamed(streamed, request.body_length, request.body_producer, sink,
                                   timeouts, cancel);
  }

  for (int round = 0;; ++round) {
    bool reused = impl_->open();
    if (!reused) {
      HttpOutcome connected = impl_->connect(timeouts, cancel);
      if (connected.error != TransportError::kNone) return connected;
    }
    bool nothing_received = true;
    HttpOutcome outcome = impl_->attempt(message, sink, timeouts, cancel, &nothing_received);
    if (outcome.error == TransportError::kBroken && reused && nothing_received && round == 0) {
      continue;  // the server had closed the idle keep-alive connection
    }
    return outcome;
  }
}

}  // namespace kacheryfs
