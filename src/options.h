// kacheryfs's command line as plain typed data, following sshfs conventions:
//   kacheryfs [options] [HOST[:PORT]|URL] MOUNTPOINT   with -o opt[=val],...  -f -d -h -V
// Every value is validated by a from_string-style parser that is unit tested, and all
// errors are reported together. fstab-only options are accepted and ignored; a few FUSE
// mount options are passed through. Used by main.cc and by the tests.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon_address.h"

namespace kacheryfs {

struct MountOptions {
  std::string source;  // as given; "" means KACHERY_DAEMON_HOST/PORT
  DaemonAddress daemon;
  std::string mountpoint;
  bool foreground = false;
  bool debug = false;
  bool single_threaded = false;
  bool show_help = false;
  bool show_version = false;

  std::string cache_dir;
  std::string auth_file;  // "" means no auth header
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds timeout{10000};  // first byte and idle, per request
  std::uint64_t range_size = 4 << 20;
  unsigned retries = 2;
  std::chrono::seconds negative_timeout{10};
  std::string channel;  // when set, missing files are loaded through it (/loadFile)
  std::chrono::seconds load_timeout{600};
  std::string log_level = "info";
  std::uint32_t max_read = 256 << 10;      // replies fit a pipe, so splice works
  std::uint64_t block_size = 4 << 20;      // block of the sparse cache for large files
  unsigned max_conns = 4;                  // range requests in flight for prefetching
  std::uint64_t whole_max = 64 << 20;      // files up to this size are fetched whole at open
  std::uint64_t max_readahead = 64 << 20;  // largest readahead window
  bool verify_strict = false;
  std::uint64_t cache_max = 0;            // 0: a quarter of the cache's file system
  std::uint64_t cache_min_free = 0;       // bytes; 0: use cache_min_free_fraction
  double cache_min_free_fraction = 0.10;  // -o verify=strict: serve only verified bytes

  std::vector<std::string> fuse_options;  // passed to libfuse as -o
};

struct ParsedCommandLine {
  MountOptions options;
  std::vector<std::string> errors;  // one line each; empty on success
};

using EnvLookup = std::function<std::optional<std::string>(const char* name)>;

// Reads the real environment.
std::optional<std::string> process_env(const char* name);

ParsedCommandLine parse_command_line(const std::vector<std::string>& args, const EnvLookup& env);

// "4096", "64K", "4M", "4MiB", "1G", "1T" (binary multiples). nullopt if malformed.
std::optional<std::uint64_t> parse_size(std::string_view text);
// "10", "2.5", "500ms". nullopt if malformed or negative.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

std::string usage_text(std::string_view program);
// One line with the effective configuration, for the log at start.
std::string describe(const MountOptions& options);

}  // namespace kacheryfs
