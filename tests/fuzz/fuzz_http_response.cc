// libFuzzer target: the daemon client's HTTP response path, raw bytes in, result out. A
// loopback server answers every connection with the fuzz input and closes; the client runs
// a range download and a probe against it (status line, headers, chunked framing, bodies,
// JSON), which must end in a typed result, never a crash or a hang.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "daemon_client.h"

namespace {

std::mutex input_mutex;
std::string input;
int listen_fd = -1;
std::uint16_t port = 0;

void serve() {
  for (;;) {
    int fd = accept(listen_fd, nullptr, nullptr);
    if (fd < 0) continue;
    timeval tv{0, 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    std::string request;
    char buffer[4096];
    // The request: headers, then a JSON body of at most a few hundred bytes.
    while (request.find("\r\n\r\n") == std::string::npos || request.back() != '}') {
      ssize_t n = read(fd, buffer, sizeof(buffer));
      if (n <= 0) break;
      request.append(buffer, static_cast<std::size_t>(n));
      if (request.starts_with("GET") && request.find("\r\n\r\n") != std::string::npos) break;
    }
    std::string answer;
    {
      std::lock_guard lock(input_mutex);
      answer = input;
    }
    std::size_t sent = 0;
    while (sent < answer.size()) {
      ssize_t n = send(fd, answer.data() + sent, answer.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<std::size_t>(n);
    }
    close(fd);
  }
}

void start_server() {
  listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(listen_fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  listen(listen_fd, 16);
  socklen_t length = sizeof(address);
  getsockname(listen_fd, reinterpret_cast<sockaddr*>(&address), &length);
  port = ntohs(address.sin_port);
  std::thread(serve).detach();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static std::once_flag started;
  std::call_once(started, start_server);
  {
    std::lock_guard lock(input_mutex);
    input.assign(reinterpret_cast<const char*>(data), size);
  }
  kacheryfs::DaemonClientConfig config;
  config.address.host = "127.0.0.1";
  config.address.port = port;
  config.timeouts = {std::chrono::milliseconds(500), std::chrono::milliseconds(300),
                     std::chrono::milliseconds(300), 0, std::chrono::milliseconds(1000)};
  config.retries = 0;
  kacheryfs::DaemonClient client(config);
  std::uint64_t received = 0;
  kacheryfs::FetchResult result = client.read_range(
      std::string(40, 'a'), 0, 1000,
      [&](const char*, std::size_t n) {
        received += n;
        return true;
      },
      kacheryfs::NeverCancelled());
  if (received > 1000) __builtin_trap();  // never more than the range asked
  if (result.ok() && result.detail.find('\n') != std::string::npos) __builtin_trap();
  kacheryfs::ProbeInfo info;
  if (client.probe(&info, kacheryfs::NeverCancelled()).ok() && info.node_id.size() != 64)
    __builtin_trap();
  return 0;
}
