// link-proxy: an emulated network link for the benchmarks, since this kernel has no netem.
// A TCP proxy on 127.0.0.1 that forwards every connection to one target and adds, in each
// direction, a one-way delay and a bandwidth cap shared by all connections (one queue per
// direction, as one link). A new connection pays the TCP handshake's round trip before its
// first bytes go. Each connection holds at most one bandwidth-delay product plus 1 MiB in
// flight per direction, so a fast sender feels the link's back-pressure.
//
//   link-proxy --target PORT --delay-us N --rate-mbit N [--port N]
//
// Prints the listening port on stdout, then serves until killed. Single-threaded.
// clang-format off
#include <utility>  // first: Boost 1.74's asio/awaitable.hpp uses std::exchange without it
#include <boost/asio.hpp>
// clang-format on
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// One direction of the link: when it is next free to start sending, and how fast it sends.
struct Wire {
  Clock::duration delay{};
  double bytes_per_second = 0;  // 0 = unlimited
  Clock::time_point free_at{};

  // The time `bytes` read now are delivered at the far end.
  Clock::time_point schedule(std::size_t bytes, Clock::time_point not_before) {
    Clock::time_point start = std::max({Clock::now(), free_at, not_before});
    if (bytes_per_second > 0) {
      start += std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(static_cast<double>(bytes) / bytes_per_second));
    }
    free_at = start;
    return start + delay;
  }
};

// Moves bytes from one socket to the other through a Wire, in order.
class Pump : public std::enable_shared_from_this<Pump> {
 public:
  Pump(tcp::socket& from, tcp::socket& to, Wire& wire, std::size_t max_in_flight,
       Clock::time_point not_before)
      : from_(from),
        to_(to),
        wire_(wire),
        timer_(from.get_executor()),
        max_in_flight_(max_in_flight),
        not_before_(not_before) {}

  void start() { read(); }
  std::function<void()> on_done;

 private:
  struct Piece {
    std::vector<char> bytes;
    Clock::time_point deliver_at;
  };

  void read() {
    if (reading_ || eof_ || in_flight_ >= max_in_flight_) return;
    reading_ = true;
    auto buffer = std::make_shared<std::vector<char>>(64 * 1024);
    from_.async_read_some(net::buffer(*buffer), [self = shared_from_this(), buffer](
                                                    boost::system::error_code ec, std::size_t n) {
      self->reading_ = false;
      if (ec) {
        self->eof_ = true;
        if (self->queue_.empty() && !self->writing_) self->finish();
        return;
      }
      buffer->resize(n);
      self->in_flight_ += n;
      self->queue_.push_back({std::move(*buffer), self->wire_.schedule(n, self->not_before_)});
      self->write();
      self->read();
    });
  }

  void write() {
    if (writing_ || queue_.empty()) return;
    writing_ = true;
    timer_.expires_at(queue_.front().deliver_at);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code) {
      net::async_write(self->to_, net::buffer(self->queue_.front().bytes),
                       [self](boost::system::error_code ec, std::size_t n) {
                         self->writing_ = false;
                         self->in_flight_ -= n;
                         self->queue_.pop_front();
                         if (ec) {
                           self->finish();
                           return;
                         }
                         if (self->queue_.empty() && self->eof_) {
                           self->finish();
                           return;
                         }
                         self->write();
                         self->read();
                       });
    });
  }

  void finish() {
    if (done_) return;
    done_ = true;
    boost::system::error_code ignored;
    to_.shutdown(tcp::socket::shutdown_send, ignored);
    if (on_done) on_done();
  }

  tcp::socket& from_;
  tcp::socket& to_;
  Wire& wire_;
  net::steady_timer timer_;
  std::size_t max_in_flight_;
  Clock::time_point not_before_;
  std::deque<Piece> queue_;
  std::size_t in_flight_ = 0;
  bool reading_ = false;
  bool writing_ = false;
  bool eof_ = false;
  bool done_ = false;
};

struct Connection : std::enable_shared_from_this<Connection> {
  explicit Connection(net::io_context& ioc) : client(ioc), server(ioc) {}
  tcp::socket client;
  tcp::socket server;
  int pumps_done = 0;
};

struct Options {
  unsigned short target = 0;
  unsigned short port = 0;
  long delay_us = 0;
  double rate_mbit = 0;
};

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string name = argv[i];
    const char* value = argv[i + 1];
    if (name == "--target")
      options.target = static_cast<unsigned short>(std::atoi(value));
    else if (name == "--port")
      options.port = static_cast<unsigned short>(std::atoi(value));
    else if (name == "--delay-us")
      options.delay_us = std::atol(value);
    else if (name == "--rate-mbit")
      options.rate_mbit = std::atof(value);
    else {
      std::cerr << "link-proxy: unknown option " << name << "\n";
      std::exit(2);
    }
  }
  if (options.target == 0) {
    std::cerr << "usage: link-proxy --target PORT --delay-us N --rate-mbit N [--port N]\n";
    std::exit(2);
  }
  return options;
}

}  // namespace

// A listener on 127.0.0.1:port. Port 0 picks a free port, but never one whose number ends
// in 443: the kachery tools, kacheryfs among them, take such a port to speak HTTPS.
tcp::acceptor listen_on(net::io_context& ioc, unsigned short port) {
  const auto loopback = net::ip::make_address("127.0.0.1");
  tcp::acceptor acceptor(ioc, tcp::endpoint(loopback, port));
  std::vector<tcp::acceptor> skipped;  // held open until the end, so no port comes twice
  while (port == 0 && acceptor.local_endpoint().port() % 1000 == 443) {
    skipped.push_back(std::move(acceptor));
    acceptor = tcp::acceptor(ioc, tcp::endpoint(loopback, 0));
  }
  return acceptor;
}

int main(int argc, char** argv) {
  Options options = parse(argc, argv);
  net::io_context ioc;
  Wire up;    // client -> server
  Wire down;  // server -> client
  up.delay = down.delay = std::chrono::microseconds(options.delay_us);
  up.bytes_per_second = down.bytes_per_second = options.rate_mbit * 1e6 / 8;
  std::size_t bdp = static_cast<std::size_t>(up.bytes_per_second * 2 * options.delay_us / 1e6);
  std::size_t max_in_flight = bdp + (1 << 20);

  tcp::acceptor acceptor = listen_on(ioc, options.port);
  std::cout << acceptor.local_endpoint().port() << std::endl;
  tcp::endpoint target(net::ip::make_address("127.0.0.1"), options.target);

  std::function<void()> accept = [&] {
    auto connection = std::make_shared<Connection>(ioc);
    acceptor.async_accept(connection->client, [&, connection](boost::system::error_code ec) {
      accept();
      if (ec) return;
      // The client's first bytes leave after its handshake (one round trip) and then cross.
      Clock::time_point handshake_done = Clock::now() + 2 * up.delay;
      connection->server.async_connect(
          target, [&, connection, handshake_done](boost::system::error_code e) {
            if (e) return;
            boost::system::error_code ignored;
            connection->client.set_option(tcp::no_delay(true), ignored);
            connection->server.set_option(tcp::no_delay(true), ignored);
            auto to_server = std::make_shared<Pump>(connection->client, connection->server, up,
                                                    max_in_flight, handshake_done);
            auto to_client = std::make_shared<Pump>(connection->server, connection->client, down,
                                                    max_in_flight, Clock::time_point{});
            auto done = [connection] {
              if (++connection->pumps_done == 2) {
                boost::system::error_code ignored2;
                connection->client.close(ignored2);
                connection->server.close(ignored2);
              }
            };
            to_server->on_done = done;
            to_client->on_done = done;
            to_server->start();
            to_client->start();
          });
    });
  };
  accept();
  ioc.run();
  return 0;
}
