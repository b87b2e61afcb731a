// kachery-daemon-emulator: serves a kachery storage dir over the kachery daemon's HTTP API
// on 127.0.0.1, for kacheryfs's tests, demo and benchmarks. See --help.
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "emulator_server.h"
#include "kachery/hash_name.h"

namespace {

const char* kUsage = R"(usage: kachery-daemon-emulator --storage-dir DIR [options]

Serves DIR (a kachery storage dir: DIR/sha1/ab/cd/ef/<sha1>) over the kachery daemon's
HTTP API on 127.0.0.1. Writes DIR/client-auth and DIR/kachery-node-id.

  --port N                  port to bind (default 0: any free port; printed on stdout)
  --port-file FILE          also write the bound port to FILE
  --auth-period SEC         rotate the client auth code every SEC seconds (default 180)
  --network-dir DIR         simulated kachery network for /loadFile with a channelName:
                            a file at DIR/sha1/ab/cd/ef/<sha1> is "fetched" into storage
  --load-delay-ms N         how long such a fetch takes (default 1000)
  --request-log FILE        append one line per content request to FILE (a request that
                            came pipelined behind another ends with "pipelined")
  --report-storage-dir DIR  report DIR as the node's storage path (/probe, /loadFile), as a
                            daemon on another machine whose storage is mounted elsewhere
speed (default: as fast as loopback goes; bodies always come in 65,536-byte chunks):
  --rate MBPS               each download sends at most MBPS megabytes (10^6 B) a second
  --total-rate MBPS         all downloads together send at most MBPS megabytes a second
  --request-cost-ms MS      every request costs MS ms of the daemon's one thread
  --cpu-bound               the daemon's thread spends its time (--total-rate,
                            --request-cost-ms) busy on a CPU, as Node's does, so that it
                            competes with the client for the cores; else it sleeps
  --node-like               the real kachery-daemon 1.2.1 as measured on a 2-core machine:
                            --rate 400 --total-rate 700 --request-cost-ms 1 --cpu-bound
                            --batch-pipelined
  --batch-pipelined         requests that arrive pipelined together are all dispatched
                            before the first is answered, as Node's HTTP server does: the
                            first answer waits for the request cost of the whole batch
fault injection (on /downloadFileData):
  --fault-sha1 SHA1         apply the faults below to this sha1 only
  --first-byte-delay-ms N   wait N ms before answering
  --stall-after-bytes N     stop sending after N body bytes ...
  --stall-ms N              ... for N ms, then go on
  --drop-after-bytes N      close the connection after N body bytes
  --wrong-bytes SHA1        serve corrupted bytes for SHA1 (repeatable)
  --corrupt-offset N        with --wrong-bytes: corrupt only the byte at offset N
  --fail-500 N              answer the next N requests with 500
  --chaos PERCENT[:SEED]    that share of downloads (any sha1) gets, at random, a 500, a
                            drop after up to 1 MiB, or a stall of 0.5-4 s (for the soak)
)";

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "kachery-daemon-emulator: " << message << "\n";
  std::exit(2);
}

std::uint64_t number(const std::string& flag, const std::string& text) {
  try {
    std::size_t used = 0;
    unsigned long long value = std::stoull(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  usage_error(flag + ": expected a non-negative integer, got '" + text + "'");
}

double positive_number(const std::string& flag, const std::string& text) {
  try {
    std::size_t used = 0;
    double value = std::stod(text, &used);
    if (used == text.size() && value > 0 && value < 1e9) return value;
  } catch (const std::exception&) {
  }
  usage_error(flag + ": expected a positive number, got '" + text + "'");
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  kachery_emulator::EmulatorConfig config;
  kachery_emulator::Faults faults;
  std::uint16_t port = 0;
  std::string port_file;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& flag = args[i];
    if (flag == "-h" || flag == "--help") {
      std::cout << kUsage;
      return 0;
    }
    if (flag == "--node-like") {
      config.connection_rate = 400e6;
      config.total_rate = 700e6;
      config.request_cost = std::chrono::microseconds(1000);
      config.cpu_bound = true;
      config.batch_pipelined = true;
      continue;
    }
    if (flag == "--cpu-bound") {
      config.cpu_bound = true;
      continue;
    }
    if (flag == "--batch-pipelined") {
      config.batch_pipelined = true;
      continue;
    }
    if (i + 1 >= args.size()) usage_error("unknown flag or missing value: " + flag);
    const std::string& value = args[++i];
    if (flag == "--storage-dir")
      config.storage_dir = value;
    else if (flag == "--port")
      port = static_cast<std::uint16_t>(number(flag, value));
    else if (flag == "--port-file")
      port_file = value;
    else if (flag == "--auth-period") {
      double seconds = std::atof(value.c_str());
      if (seconds <= 0) usage_error("--auth-period: expected a positive number of seconds");
      config.auth_period = std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
    } else if (flag == "--network-dir")
      config.network_dir = value;
    else if (flag == "--load-delay-ms")
      config.load_delay = std::chrono::milliseconds(number(flag, value));
    else if (flag == "--request-log")
      config.request_log = value;
    else if (flag == "--report-storage-dir")
      config.reported_storage_dir = value;
    else if (flag == "--rate")
      config.connection_rate = positive_number(flag, value) * 1e6;
    else if (flag == "--total-rate")
      config.total_rate = positive_number(flag, value) * 1e6;
    else if (flag == "--request-cost-ms")
      config.request_cost =
          std::chrono::microseconds(static_cast<std::int64_t>(positive_number(flag, value) * 1e3));
    else if (flag == "--fault-sha1")
      faults.only_sha1 = value;
    else if (flag == "--first-byte-delay-ms")
      faults.first_byte_delay = std::chrono::milliseconds(number(flag, value));
    else if (flag == "--stall-after-bytes")
      faults.stall_after_bytes = number(flag, value);
    else if (flag == "--stall-ms")
      faults.stall_duration = std::chrono::milliseconds(number(flag, value));
    else if (flag == "--drop-after-bytes")
      faults.drop_after_bytes = number(flag, value);
    else if (flag == "--wrong-bytes") {
      if (!kacheryfs::is_sha1_name(value)) usage_error("--wrong-bytes: expected a lower-case sha1");
      faults.wrong_bytes.insert(value);
    } else if (flag == "--corrupt-offset") {
      faults.corrupt_offset = static_cast<std::int64_t>(number(flag, value));
    } else if (flag == "--chaos") {
      std::size_t colon = value.find(':');
      faults.chaos_percent = static_cast<int>(number(flag, value.substr(0, colon)));
      if (faults.chaos_percent > 100) usage_error("--chaos: a percentage, 0 to 100");
      if (colon != std::string::npos) faults.chaos_seed = number(flag, value.substr(colon + 1));
    } else if (flag == "--fail-500")
      faults.fail_500_remaining = static_cast<int>(number(flag, value));
    else
      usage_error("unknown flag " + flag + " (see --help)");
  }
  if (config.storage_dir.empty()) usage_error("--storage-dir is required (see --help)");
  try {
    kachery_emulator::EmulatorServer server(config, faults);
    std::uint16_t bound = server.bind(port);
    if (!port_file.empty()) std::ofstream(port_file) << bound << "\n";
    std::cout << "kachery-daemon-emulator listening on http://127.0.0.1:" << bound << " storage "
              << config.storage_dir.string() << std::endl;
    server.run();
  } catch (const std::exception& e) {
    std::cerr << "kachery-daemon-emulator: " << e.what() << "\n";
    return 1;
  }
}
