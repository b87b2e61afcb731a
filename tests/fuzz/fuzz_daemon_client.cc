// libFuzzer target: the daemon client end to end, raw response bytes in, typed result out.
// Each connection the client opens is one end of a socketpair whose other end already holds
// the fuzz input, then end-of-file, so nothing waits. The input's first byte picks the
// request ('0' a range download, '1' a probe, '2' a /loadFile, '3' a /store, '4' three
// pipelined ranges; any byte picks one); the rest is what the node answers: HTTP framing as
// in fuzz_http_response, then the route's checks, JSON and JsonSocket framing. Each must end
// in a typed result, never a crash, a throw or a hang.
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "daemon_client.h"

namespace {

constexpr std::size_t kLargestInput = 64 * 1024;  // fits a socketpair's buffer at once

// The peers of this input's connections: kept open, so that the client can still write its
// requests into them, and closed when the input is done.
struct Peers {
  std::vector<int> fds;
  ~Peers() {
    for (int fd : fds) close(fd);
  }
};

int connect_to_input(const std::uint8_t* data, std::size_t size, Peers& peers) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return -1;
  peers.fds.push_back(pair[1]);
  std::size_t sent = 0;
  while (sent < size) {
    ssize_t n = send(pair[1], data + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n <= 0) __builtin_trap();  // the buffer must hold every input: see kLargestInput
    sent += static_cast<std::size_t>(n);
  }
  shutdown(pair[1], SHUT_WR);
  return pair[0];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0 || size > kLargestInput) return 0;
  Peers peers;
  kacheryfs::DaemonClientConfig config;
  config.address.host = "127.0.0.1";
  config.address.port = 1;
  config.timeouts = {std::chrono::milliseconds(500), std::chrono::milliseconds(300),
                     std::chrono::milliseconds(300), 0, std::chrono::milliseconds(1000)};
  config.retries = 0;
  config.connector = [&] { return connect_to_input(data + 1, size - 1, peers); };
  kacheryfs::DaemonClient client(config);
  switch (data[0] % 8 % 5) {
    case 0: {
      std::uint64_t received = 0;
      kacheryfs::Status result = client.read_range(
          std::string(40, 'a'), 0, 1000,
          [&](const char*, std::size_t n) {
            received += n;
            return true;
          },
          kacheryfs::NeverCancelled());
      if (received > 1000) __builtin_trap();  // never more than the range asked
      if (result.ok() && result.detail().find('\n') != std::string::npos) __builtin_trap();
      break;
    }
    case 1: {
      kacheryfs::ProbeInfo info;
      if (client.probe(&info, kacheryfs::NeverCancelled()).ok() && info.node_id.size() != 64)
        __builtin_trap();
      break;
    }
    case 2: {
      kacheryfs::Status loaded = client.load_file(
          std::string(40, 'b'), "", [](const kacheryfs::LoadProgress&) {},
          kacheryfs::NeverCancelled());
      // A failure's detail reaches the log: one line, whatever the node sent.
      if (!loaded.ok() && loaded.detail().find('\n') != std::string::npos) __builtin_trap();
      break;
    }
    case 3: {
      kacheryfs::StoreAnswer stored;
      bool produced = false;
      kacheryfs::Status store = client.store(
          3,
          [&](char* into, std::size_t) -> long {
            if (produced) return 0;
            produced = true;
            into[0] = 'a', into[1] = 'b', into[2] = 'c';
            return 3;
          },
          &stored, kacheryfs::NeverCancelled());
      if (store.ok() && stored.sha1.size() != 40) __builtin_trap();
      break;
    }
    default: {
      const std::vector<kacheryfs::ByteRange> ranges = {
          {0, 10}, {10, 20}, {1 << 20, (1 << 20) + 5}};
      std::vector<std::string> answers;
      kacheryfs::Status result = client.read_ranges(std::string(40, 'c'), ranges, answers, {},
                                                    kacheryfs::NeverCancelled());
      if (answers.size() != ranges.size()) __builtin_trap();
      for (std::size_t i = 0; i < ranges.size(); ++i)
        if (answers[i].size() > ranges[i].end - ranges[i].start) __builtin_trap();
      (void)result;
    }
  }
  return 0;
}
