// kacheryfs's command line as plain typed data, following sshfs conventions:
//   kacheryfs [options] [NODE[,NODE...]] MOUNTPOINT   (NODE = HOST[:PORT] or a URL)   with -o
//   opt[=val],...  -f -d -h -V
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

#include "support/daemon_address.h"

namespace kacheryfs {

// Every field set by an -o option gets its default from the option table in options.cc
// (default_mount_options()); nothing here repeats a default.
struct MountOptions {
  std::string source;                // as given; "" means KACHERY_DAEMON_HOST/PORT
  DaemonAddress daemon;              // the first node (its id is kachery-node-id)
  std::vector<DaemonAddress> nodes;  // every node of the source, in order (nodes[0] == daemon)
  std::string mountpoint;
  bool foreground = false;
  bool debug = false;
  bool single_threaded = false;
  bool show_help = false;
  bool show_version = false;

  std::string cache_dir;  // default: a per-user dir (see default_cache_dir in options.cc)
  std::string auth_file;  // "" means no auth header; FILE1:FILE2 gives one per node
  std::vector<std::string> node_auth_files;  // auth_file per node ("" = none), as nodes
  std::string auth_group;            // group that may read MOUNTPOINT/client-auth ("" = owner only)
  bool hide_auth = false;            // no MOUNTPOINT/client-auth
  std::optional<std::uint32_t> uid;  // owner shown for files (default: the mounting user)
  std::optional<std::uint32_t> gid;
  std::uint32_t umask = 0;      // bits taken away from 0444 files and 0555 directories
  bool require_daemon = false;  // fail the mount when the daemon does not answer
  std::string log_file;         // "" = syslog once daemonized
  std::string metrics_file;     // "" = none; else the Prometheus text, rewritten atomically
  std::chrono::milliseconds metrics_interval{};
  bool sloppy = false;  // --sloppy (mount -s): unknown options only warn
  std::chrono::milliseconds connect_timeout{};
  std::chrono::milliseconds timeout{};         // first byte and idle, per request
  std::uint64_t low_speed_limit = 0;           // bytes/s a body must average...
  std::chrono::milliseconds low_speed_time{};  // ...over every window this long
  std::uint64_t range_size = 0;                // bytes per whole-file download request
  unsigned retries = 0;
  std::chrono::seconds negative_timeout{};
  std::chrono::seconds keep_warm{};  // a connection stays open this long after the last use
  std::string channel;               // when set, missing files are loaded through it (/loadFile)
  bool spread = false;  // fetch the blocks of a large file from every healthy node at once
  std::chrono::seconds load_timeout{};
  std::string log_level;
  std::uint32_t max_read = 0;        // largest kernel read request
  std::uint64_t block_size = 0;      // fetch unit of the block cache for large files
  unsigned max_conns = 0;            // range requests in flight for prefetching
  std::uint64_t whole_max = 0;       // once read, files up to this size are fetched whole
  std::uint64_t max_readahead = 0;   // largest readahead window
  bool verify_strict = false;        // -o verify=strict: serve only verified bytes
  bool passthrough = true;           // -o passthrough=auto: kernel passthrough where it works
  std::uint64_t cache_max = 0;       // 0: a quarter of the cache's file system
  std::uint64_t cache_min_free = 0;  // bytes; 0: use cache_min_free_fraction
  double cache_min_free_fraction = 0;

  std::vector<std::string> fuse_options;  // passed to libfuse as -o
};

// One row of the option table: the single description of an -o option, from which the
// parser, --help, the startup log line and the documentation test are all driven.
struct OptionRow {
  std::string_view name;
  std::string_view value_name;     // "SIZE", "SEC", "N", ... ("" for a flag)
  std::string_view default_value;  // applied by default_mount_options(); "" = none
  std::string_view default_note;   // what the default means when it is not a plain value
  std::string range;               // accepted values, e.g. "4K..1G"
  std::string_view help;           // one line
  bool to_fuse = false;            // passed through to libfuse
  // Parses the value (nullopt for "-o name" without '=') into the options; returns an
  // error text ("" on success).
  std::function<std::string(std::optional<std::string_view> value, MountOptions& options)> set;
  // The effective value as text (for the log line); empty function for FUSE options.
  std::function<std::string(const MountOptions& options)> show;
};

const std::vector<OptionRow>& option_table();
// MountOptions with every table default applied.
MountOptions default_mount_options();

struct ParsedCommandLine {
  MountOptions options;
  std::vector<std::string> errors;    // one line each; empty on success
  std::vector<std::string> warnings;  // unknown options under --sloppy
};

using EnvLookup = std::function<std::optional<std::string>(const char* name)>;

// Reads the real environment.
std::optional<std::string> process_env(const char* name);

ParsedCommandLine parse_command_line(const std::vector<std::string>& args, const EnvLookup& env);
// The same options in kacheryfs-cache's form: -o lists and a node spec ("" = from the
// environment), no mount point and no flags of the mount's.
ParsedCommandLine parse_tool_options(const std::vector<std::string>& option_lists,
                                     const std::string& source, const EnvLookup& env);

// "4096", "64K", "4M", "4MiB", "1G", "1T" (binary multiples). nullopt if malformed.
std::optional<std::uint64_t> parse_size(std::string_view text);
// "10", "2.5", "500ms". nullopt if malformed or negative.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

// --help, generated from the table.
std::string usage_text(std::string_view program);
// One line with the effective configuration, for the log at start.
std::string describe(const MountOptions& options);

}  // namespace kacheryfs
