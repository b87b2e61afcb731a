// The emulator's HTTP side: accepts connections on 127.0.0.1, one thread per connection,
// HTTP/1.1 keep-alive with the daemon's 5 s idle timeout, and answers every route of the
// kachery daemon API the way kachery-daemon-protocol.md describes, quirks included.
// Fault switches make downloads slow, stalled, cut, wrong or failing, for client tests.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>

#include "auth_codes.h"
#include "emulator_storage.h"

namespace kachery_emulator {

struct Faults {
  std::string only_sha1;  // when set, timing and failure faults apply to this sha1 only
  std::chrono::milliseconds first_byte_delay{0};
  std::uint64_t stall_after_bytes = 0;  // 0 = off
  std::chrono::milliseconds stall_duration{0};
  std::uint64_t drop_after_bytes = 0;  // 0 = off
  std::set<std::string> wrong_bytes;   // serve corrupted bytes for these sha1s
  std::int64_t corrupt_offset = -1;    // with wrong_bytes: corrupt only the byte at this offset
  std::atomic<int> fail_500_remaining{0};
  int chaos_percent = 0;  // this share of downloads gets a 500, a drop or a stall at random
  std::uint64_t chaos_seed = 1;
};

struct EmulatorConfig {
  std::filesystem::path storage_dir;
  std::filesystem::path network_dir;  // simulated kachery network for /loadFile ("" = none)
  std::chrono::milliseconds load_delay{1000};
  std::chrono::milliseconds auth_period{180000};
  std::filesystem::path request_log;  // "" = none
  // The storage path the node reports (/probe's kacheryStorageDir, /loadFile's
  // localFilePath), as a daemon on another machine would; "" = the real storage dir.
  std::filesystem::path reported_storage_dir;
  // Speed of a daemon that takes CPU (0 = as fast as loopback goes).
  double connection_rate = 0;                 // body bytes per second, each download
  double total_rate = 0;                      // body bytes per second, all connections together
  std::chrono::microseconds request_cost{0};  // fixed work per request, one at a time
  bool cpu_bound = false;  // the daemon thread's work burns a CPU (as Node's does), not sleeps
  // Requests that arrive pipelined together are all dispatched before the first of them
  // is answered, as Node's HTTP server does: the first answer waits for every one's
  // request_cost, not only its own.
  bool batch_pipelined = false;
};

class EmulatorServer {
 public:
  EmulatorServer(EmulatorConfig config, Faults& faults);
  // Binds 127.0.0.1:port (0 = any free port) and returns the port bound.
  std::uint16_t bind(std::uint16_t port);
  // Serves until the process ends.
  void run();

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace kachery_emulator
