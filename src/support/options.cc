#include "support/options.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "kachery/hash_name.h"
#include "support/printable.h"

namespace kacheryfs {

namespace {

constexpr std::array kIgnoredFstabOptions = {
    "_netdev", "auto",    "noauto",   "user",       "users", "nouser", "nofail", "defaults",
    "ro",      "rw",      "exec",     "noexec",     "suid",  "nosuid", "dev",    "nodev",
    "atime",   "noatime", "relatime", "nodiratime", "sync",  "async"};
template <class Array>
bool contains(const Array& array, std::string_view value) {
  return std::find(array.begin(), array.end(), value) != array.end();
}

std::optional<std::uint64_t> parse_uint(std::string_view text) {
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

// root: /var/cache/kacheryfs; a user: $XDG_CACHE_HOME/kacheryfs, else ~/.cache/kacheryfs
// of the user's own home (from the password database: `su`/`runuser` keep root's $HOME).
std::string default_cache_dir(const EnvLookup& env) {
  if (geteuid() == 0) return "/var/cache/kacheryfs";
  if (auto xdg = env("XDG_CACHE_HOME"); xdg && !xdg->empty() && access(xdg->c_str(), W_OK) == 0)
    return *xdg + "/kacheryfs";
  if (const passwd* user = getpwuid(geteuid()); user != nullptr && user->pw_dir != nullptr)
    return std::string(user->pw_dir) + "/.cache/kacheryfs";
  if (auto home = env("HOME"); home && !home->empty()) return *home + "/.cache/kacheryfs";
  return "/tmp/kacheryfs-cache-" + std::to_string(geteuid());
}

bool is_channel_name(std::string_view name) {
  return name.size() >= 3 && name.size() <= 160 &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
         });
}

std::string format_size(std::uint64_t bytes) {
  constexpr std::array kSuffixes = {"", "K", "M", "G", "T"};
  std::size_t i = 0;
  while (i + 1 < kSuffixes.size() && bytes >= 1024 && bytes % 1024 == 0) {
    bytes /= 1024;
    ++i;
  }
  return std::to_string(bytes) + kSuffixes[i];
}

template <class Duration>
std::string format_duration(Duration duration) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(duration).count();
  return ms % 1000 == 0 ? std::to_string(ms / 1000) : std::to_string(ms) + "ms";
}

using Value = std::optional<std::string_view>;
const std::string kNeedsValue = "needs a value";

// Row builders, one per kind of value (as mergerfs's from_string/to_string per type).
template <class Field>
OptionRow size_row(std::string_view name, Field MountOptions::*field, std::uint64_t low,
                   std::uint64_t high, std::string_view default_value, std::string_view range,
                   std::string_view help) {
  return {name,
          "SIZE",
          default_value,
          "",
          std::string(range),
          help,
          false,
          [=](Value value, MountOptions& o) -> std::string {
            if (!value || value->empty()) return kNeedsValue;
            auto size = parse_size(*value);
            if (!size || *size < low || *size > high)
              return "expected a size from " + format_size(low) + " to " + format_size(high) +
                     ", e.g. " + std::string(default_value.empty() ? "4M" : default_value);
            o.*field = static_cast<Field>(*size);
            return "";
          },
          [=](const MountOptions& o) { return format_size(o.*field); }};
}

template <class Duration>
OptionRow duration_row(std::string_view name, Duration MountOptions::*field,
                       std::string_view default_value, std::string_view help,
                       bool zero_allowed = false) {
  return {name,
          "SEC",
          default_value,
          "",
          zero_allowed ? ">= 0, e.g. 1 or 500ms (0: off)" : "> 0, e.g. 10 or 500ms",
          help,
          false,
          [=](Value value, MountOptions& o) -> std::string {
            if (!value || value->empty()) return kNeedsValue;
            auto d = parse_duration(*value);
            if (!d || (d->count() == 0 && !zero_allowed))
              return "expected a positive duration in seconds, e.g. 10 or 500ms";
            o.*field = std::chrono::ceil<Duration>(*d);
            return "";
          },
          [=](const MountOptions& o) { return format_duration(o.*field); }};
}

OptionRow count_row(std::string_view name, unsigned MountOptions::*field, unsigned low,
                    unsigned high, std::string_view default_value, std::string_view help) {
  return {name,
          "N",
          default_value,
          "",
          std::to_string(low) + ".." + std::to_string(high),
          help,
          false,
          [=](Value value, MountOptions& o) -> std::string {
            if (!value || value->empty()) return kNeedsValue;
            auto n = parse_uint(*value);
            if (!n || *n < low || *n > high)
              return "expected a count between " + std::to_string(low) + " and " +
                     std::to_string(high);
            o.*field = static_cast<unsigned>(*n);
            return "";
          },
          [=](const MountOptions& o) { return std::to_string(o.*field); }};
}

OptionRow text_row(std::string_view name, std::string_view value_name,
                   std::string MountOptions::*field, std::string_view default_note,
                   std::string_view help) {
  return {name,
          value_name,
          "",
          default_note,
          "a path",
          help,
          false,
          [=](Value value, MountOptions& o) -> std::string {
            if (!value || value->empty()) return kNeedsValue;
            o.*field = std::string(*value);
            return "";
          },
          [=](const MountOptions& o) { return (o.*field).empty() ? "(none)" : o.*field; }};
}

// "-o name=ON" or "-o name=OFF" (two words, given as string literals) sets a bool.
OptionRow choice_row(std::string_view name, bool MountOptions::*field, std::string_view on,
                     std::string_view off, bool default_on, std::string_view help) {
  return {name,
          "MODE",
          default_on ? on : off,
          "",
          std::string(on) + " " + std::string(off),
          help,
          false,
          [=](Value value, MountOptions& o) -> std::string {
            if (!value || (*value != on && *value != off))
              return "expected " + std::string(name) + "=" + std::string(on) + " or " +
                     std::string(name) + "=" + std::string(off);
            o.*field = *value == on;
            return "";
          },
          [=](const MountOptions& o) { return std::string(o.*field ? on : off); }};
}

// "-o name" with no value sets a bool; shown as yes/no.
OptionRow flag_row(std::string_view name, bool MountOptions::*field, std::string_view help) {
  return {name,
          "",
          "",
          "",
          "",
          help,
          false,
          [=](Value value, MountOptions& o) -> std::string {
            if (value) return "takes no value";
            o.*field = true;
            return "";
          },
          [=](const MountOptions& o) -> std::string { return o.*field ? "yes" : "no"; }};
}

OptionRow fuse_row(std::string_view name, bool takes_value, std::string_view help) {
  return {name,
          takes_value ? "NAME" : "",
          "",
          "",
          "",
          help,
          true,
          [=](Value value, MountOptions& o) -> std::string {
            if (takes_value && (!value || value->empty())) return kNeedsValue;
            if (!takes_value && value) return "takes no value";
            o.fuse_options.push_back(value ? std::string(name) + "=" + std::string(*value)
                                           : std::string(name));
            return "";
          },
          {}};
}

std::vector<OptionRow> make_option_table() {
  using MO = MountOptions;
  constexpr std::uint64_t K = 1 << 10, M = 1 << 20, G = 1 << 30;
  constexpr std::uint64_t T = std::uint64_t{1} << 40;
  std::vector<OptionRow> rows;
  rows.push_back(text_row("cache_dir", "DIR", &MO::cache_dir,
                          "~/.cache/kacheryfs; /var/cache/kacheryfs for root",
                          "local cache of fetched content"));
  rows.push_back(text_row("auth_file", "FILE", &MO::auth_file,
                          "$KACHERY_STORAGE_DIR/client-auth if it exists",
                          "file holding the daemon's client auth code; FILE1:FILE2 gives "
                          "one per node"));
  rows.push_back(
      text_row("auth_group", "GROUP", &MO::auth_group, "none: the mounting user only",
               "this group may read MOUNTPOINT/client-auth too (0440; with allow_other)"));
  rows.push_back(flag_row("hide_auth", &MO::hide_auth, "no MOUNTPOINT/client-auth"));
  rows.push_back(
      duration_row("timeout", &MO::timeout, "10", "first-byte and idle timeout of each request"));
  rows.push_back(duration_row("connect_timeout", &MO::connect_timeout, "5", "connect timeout"));
  rows.push_back(size_row("low_speed_limit", &MO::low_speed_limit, 0, G, "1K", "0..1G (0: off)",
                          "cut a transfer slower than this many bytes/s over low_speed_time"));
  rows.push_back(
      duration_row("low_speed_time", &MO::low_speed_time, "10", "the window of low_speed_limit"));
  rows.push_back(count_row("retries", &MO::retries, 0, 100, "2",
                           "retries of a range after a 5xx or a dropped connection"));
  rows.push_back(size_row("range_size", &MO::range_size, 4 * K, G, "4M", "4K..1G",
                          "bytes per download request of a whole file"));
  rows.push_back(duration_row("negative_timeout", &MO::negative_timeout, "0",
                              "how long a lookup's 'no node has X' is remembered (0: each "
                              "lookup asks again; never by the kernel)",
                              true));
  rows.push_back(duration_row("keep_warm", &MO::keep_warm, "600",
                              "how long after the last request one connection to each node "
                              "is kept open, so that the next request pays no connect (0: none)",
                              true));
  rows.push_back({"channel", "NAME", "", "none", "3-160 of a-z A-Z 0-9 . _ -",
                  "ask the node to load missing files through this channel (/loadFile)", false,
                  [](Value value, MountOptions& o) -> std::string {
                    if (!value || value->empty()) return kNeedsValue;
                    if (!is_channel_name(*value))
                      return "a channel name is 3-160 letters, digits, '.', '_' or '-'";
                    o.channel = std::string(*value);
                    return "";
                  },
                  [](const MountOptions& o) { return o.channel.empty() ? "(none)" : o.channel; }});
  rows.push_back(duration_row("load_timeout", &MO::load_timeout, "600",
                              "how long such a load may take, and stay silent"));
  rows.push_back({"log_level", "LEVEL", "info", "", "trace debug info warn error off",
                  "how much the mount logs", false,
                  [](Value value, MountOptions& o) -> std::string {
                    constexpr std::array kLevels = {"trace", "debug", "info",
                                                    "warn",  "error", "off"};
                    if (!value || value->empty()) return kNeedsValue;
                    if (!contains(kLevels, *value))
                      return "expected trace, debug, info, warn, error or off";
                    o.log_level = std::string(*value);
                    return "";
                  },
                  [](const MountOptions& o) { return o.log_level; }});
  rows.push_back(size_row("max_read", &MO::max_read, 4 * K, M, "256K", "4K..1M",
                          "largest read request from the kernel (replies fit a pipe: splice)"));
  rows.push_back(size_row("whole_max", &MO::whole_max, 0, T, "64M", "0..1T",
                          "once read, files up to SIZE are fetched whole in the background"));
  rows.push_back(size_row("block_size", &MO::block_size, 64 * K, 256 * M, "4M", "64K..256M",
                          "largest range request of a stream, and its prefetch unit"));
  rows.push_back(count_row("max_conns", &MO::max_conns, 1, 64, "4",
                           "range requests in flight for prefetching"));
  rows.push_back(size_row("max_readahead", &MO::max_readahead, 0, T, "64M", "0..1T",
                          "largest readahead window of a sequential reader"));
  rows.push_back(choice_row("verify", &MO::verify_strict, "strict", "normal", false,
                            "strict: serve no byte before it is verified"));
  rows.push_back(choice_row("passthrough", &MO::passthrough, "auto", "off", true,
                            "auto: the kernel reads complete cached files itself (FUSE "
                            "passthrough: Linux 6.9+, a root mount)"));
  rows.push_back({"cache_max", "SIZE", "", "a quarter of the cache's file system", ">= 1M",
                  "evict least recently used files beyond SIZE", false,
                  [](Value value, MountOptions& o) -> std::string {
                    if (!value || value->empty()) return kNeedsValue;
                    auto size = parse_size(*value);
                    if (!size || *size < M) return "expected a size of at least 1M, e.g. 20G";
                    o.cache_max = *size;
                    return "";
                  },
                  [](const MountOptions& o) -> std::string {
                    return o.cache_max == 0 ? "auto" : format_size(o.cache_max);
                  }});
  rows.push_back({"cache_min_free", "SIZE|PCT", "10%", "", "a size, or 0%..90%",
                  "keep this much of the cache's file system free", false,
                  [](Value value, MountOptions& o) -> std::string {
                    if (!value || value->empty()) return kNeedsValue;
                    if (value->ends_with('%')) {
                      auto percent = parse_uint(value->substr(0, value->size() - 1));
                      if (!percent || *percent > 90)
                        return "expected a size or a percentage up to 90%, e.g. 10%";
                      o.cache_min_free = 0;
                      o.cache_min_free_fraction = static_cast<double>(*percent) / 100.0;
                      return "";
                    }
                    auto size = parse_size(*value);
                    if (!size) return "expected a size or a percentage, e.g. 5G or 10%";
                    o.cache_min_free = *size;
                    o.cache_min_free_fraction = 0;
                    return "";
                  },
                  [](const MountOptions& o) -> std::string {
                    if (o.cache_min_free > 0) return format_size(o.cache_min_free);
                    return std::to_string(static_cast<int>(o.cache_min_free_fraction * 100 + 0.5)) +
                           "%";
                  }});
  rows.push_back(flag_row("require_daemon", &MO::require_daemon,
                          "fail the mount if the daemon is unreachable or rejects the auth code"));
  rows.push_back(flag_row("spread", &MO::spread,
                          "fetch the blocks of large files from every healthy node at once"));
  rows.push_back(text_row("metrics_file", "PATH", &MO::metrics_file, "none",
                          "write Prometheus metrics to PATH (atomically) every metrics_interval"));
  rows.push_back(duration_row("metrics_interval", &MO::metrics_interval, "15",
                              "how often metrics_file is written, each node probed first"));
  rows.push_back(text_row("log_file", "PATH", &MO::log_file,
                          "syslog (the journal) once daemonized; stderr with -f",
                          "append the log to PATH (reopened on SIGHUP, for logrotate)"));
  rows.push_back({"debug", "", "", "", "", "debug log (as -d, but without -f)", false,
                  [](Value, MountOptions& o) -> std::string {
                    o.debug = true;
                    return "";
                  },
                  [](const MountOptions& o) -> std::string { return o.debug ? "yes" : "no"; }});
  auto id_row = [](std::string_view name, std::optional<std::uint32_t> MountOptions::*field,
                   std::string_view help) {
    return OptionRow{name,
                     "N",
                     "",
                     "the mounting user's",
                     "0..4294967294",
                     help,
                     false,
                     [=](Value value, MountOptions& o) -> std::string {
                       if (!value || value->empty()) return kNeedsValue;
                       auto n = parse_uint(*value);
                       if (!n || *n >= 0xffffffffu) return "expected a numeric id";
                       o.*field = static_cast<std::uint32_t>(*n);
                       return "";
                     },
                     [=](const MountOptions& o) -> std::string {
                       return o.*field ? std::to_string(*(o.*field)) : "(own)";
                     }};
  };
  rows.push_back(id_row("uid", &MO::uid, "owner that files and directories show"));
  rows.push_back(id_row("gid", &MO::gid, "group that files and directories show"));
  rows.push_back({"umask", "OCTAL", "0", "", "0..0777",
                  "permission bits taken away from 0444 files and 0555 directories", false,
                  [](Value value, MountOptions& o) -> std::string {
                    if (!value || value->empty()) return kNeedsValue;
                    unsigned bits = 0;
                    auto [end, ec] =
                        std::from_chars(value->data(), value->data() + value->size(), bits, 8);
                    if (ec != std::errc() || end != value->data() + value->size() || bits > 0777)
                      return "expected octal permission bits, e.g. 027";
                    o.umask = bits;
                    return "";
                  },
                  [](const MountOptions& o) -> std::string {
                    char text[8];
                    std::snprintf(text, sizeof(text), "%03o", o.umask);
                    return text;
                  }});
  rows.push_back(fuse_row("allow_other", false,
                          "let other users read the mount (implies default_permissions)"));
  rows.push_back(fuse_row("allow_root", false, "let root read the mount"));
  rows.push_back(fuse_row("default_permissions", false, "let the kernel check permissions"));
  rows.push_back(fuse_row("auto_unmount", false, "unmount when the process ends"));
  rows.push_back(fuse_row("fsname", true, "the mount's source name (default: SOURCE as given)"));
  rows.push_back(fuse_row("subtype", true, "the mount's subtype (always kacheryfs)"));
  return rows;
}

void apply_option(std::string_view item, MountOptions& o, std::vector<std::string>& errors,
                  std::vector<std::string>& unknown) {
  std::size_t eq = item.find('=');
  std::string_view name = item.substr(0, eq);
  Value value;
  if (eq != std::string_view::npos) value = item.substr(eq + 1);
  if (name.empty()) return;
  if (contains(kIgnoredFstabOptions, name) || name.starts_with("x-") || name == "comment") return;
  for (const OptionRow& row : option_table()) {
    if (row.name != name) continue;
    std::string error = row.set(value, o);
    if (error == kNeedsValue) error += " (" + std::string(name) + "=...)";
    if (!error.empty()) errors.push_back("option '" + printable(item) + "': " + error);
    return;
  }
  unknown.push_back("option '" + printable(item) + "': unknown option (see kacheryfs -h)");
}

}  // namespace

std::optional<std::string> process_env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data()) return std::nullopt;
  std::string_view suffix(end, static_cast<std::size_t>(text.data() + text.size() - end));
  if (suffix.ends_with("iB"))
    suffix.remove_suffix(2);
  else if (suffix.size() == 2 && (suffix.ends_with('B') || suffix.ends_with('b')))
    suffix.remove_suffix(1);
  int shift = 0;
  if (suffix.empty())
    shift = 0;
  else if (suffix == "K" || suffix == "k")
    shift = 10;
  else if (suffix == "M" || suffix == "m")
    shift = 20;
  else if (suffix == "G" || suffix == "g")
    shift = 30;
  else if (suffix == "T" || suffix == "t")
    shift = 40;
  else
    return std::nullopt;
  if (shift > 0 && value > (~std::uint64_t{0} >> shift)) return std::nullopt;
  return value << shift;
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  bool millis = text.ends_with("ms");
  if (millis)
    text.remove_suffix(2);
  else if (text.ends_with('s'))
    text.remove_suffix(1);
  if (text.empty()) return std::nullopt;
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0 || value > 1e9) {
    return std::nullopt;
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(millis ? value : value * 1000));
}

const std::vector<OptionRow>& option_table() {
  static const std::vector<OptionRow> table = make_option_table();
  return table;
}

MountOptions default_mount_options() {
  MountOptions o;
  for (const OptionRow& row : option_table()) {
    if (!row.default_value.empty()) row.set(row.default_value, o);
  }
  return o;
}

namespace {

// Applies "a=1,b,c=2" through the option table.
void apply_option_list(std::string_view list, MountOptions& o, std::vector<std::string>& errors,
                       std::vector<std::string>& unknown) {
  std::size_t start = 0;
  while (start <= list.size()) {
    std::size_t comma = list.find(',', start);
    if (comma == std::string_view::npos) comma = list.size();
    apply_option(list.substr(start, comma - start), o, errors, unknown);
    start = comma + 1;
  }
}

// What follows from the options given: the nodes, the defaults that depend on the
// environment, the auth file per node and the FUSE options.
void complete_options(ParsedCommandLine& parsed, const EnvLookup& env);

}  // namespace

ParsedCommandLine parse_tool_options(const std::vector<std::string>& option_lists,
                                     const std::string& source, const EnvLookup& env) {
  ParsedCommandLine parsed;
  parsed.options = default_mount_options();
  std::vector<std::string> unknown;
  for (const std::string& list : option_lists)
    apply_option_list(list, parsed.options, parsed.errors, unknown);
  parsed.errors.insert(parsed.errors.end(), unknown.begin(), unknown.end());
  parsed.options.source = source;
  complete_options(parsed, env);
  return parsed;
}

ParsedCommandLine parse_command_line(const std::vector<std::string>& args, const EnvLookup& env) {
  ParsedCommandLine parsed;
  parsed.options = default_mount_options();
  MountOptions& o = parsed.options;
  std::vector<std::string>& errors = parsed.errors;
  std::vector<std::string> positional;
  std::vector<std::string> unknown;
  auto apply_list = [&](std::string_view list) { apply_option_list(list, o, errors, unknown); };
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-o") {
      if (i + 1 == args.size()) {
        errors.push_back("-o needs an argument");
        break;
      }
      apply_list(args[++i]);
    } else if (arg.starts_with("-o")) {
      apply_list(std::string_view(arg).substr(2));
    } else if (arg == "-f") {
      o.foreground = true;
    } else if (arg == "-d" || arg == "--debug") {
      o.debug = true;
      o.foreground = true;
    } else if (arg == "-s") {
      o.single_threaded = true;
    } else if (arg == "-h" || arg == "--help") {
      o.show_help = true;
    } else if (arg == "-V" || arg == "--version") {
      o.show_version = true;
    } else if (arg == "--sloppy") {
      o.sloppy = true;  // mount -s: unknown options are ignored with a warning
    } else if (arg.size() > 1 && arg[0] == '-') {
      errors.push_back("unknown flag '" + printable(arg) + "' (see kacheryfs -h)");
    } else {
      positional.push_back(arg);
    }
  }
  auto& unknown_to = o.sloppy ? parsed.warnings : errors;
  unknown_to.insert(unknown_to.end(), unknown.begin(), unknown.end());
  if (o.show_help || o.show_version) return parsed;

  if (positional.size() == 1) {
    o.mountpoint = positional[0];
  } else if (positional.size() == 2) {
    o.source = positional[0];
    o.mountpoint = positional[1];
  } else if (positional.empty()) {
    errors.push_back(
        "missing mount point (usage: kacheryfs [options] [NODE[,NODE...]] MOUNTPOINT)");
  } else {
    errors.push_back("too many arguments: expected [NODE[,NODE...]] MOUNTPOINT");
  }
  complete_options(parsed, env);
  return parsed;
}

namespace {

void complete_options(ParsedCommandLine& parsed, const EnvLookup& env) {
  MountOptions& o = parsed.options;
  std::vector<std::string>& errors = parsed.errors;
  auto nodes = parse_daemon_addresses(o.source, env("KACHERY_DAEMON_HOST").value_or(""),
                                      env("KACHERY_DAEMON_PORT").value_or(""));
  if (nodes) {
    o.nodes = std::move(*nodes);
    o.daemon = o.nodes.front();
  } else {
    errors.push_back("daemon address: " + nodes.detail());
  }

  if (o.cache_dir.empty()) o.cache_dir = default_cache_dir(env);
  // A daemonized mount runs in /: a relative metrics_file means the directory it was given in.
  if (!o.metrics_file.empty() && o.metrics_file.front() != '/') {
    std::error_code ec;
    auto absolute = std::filesystem::absolute(o.metrics_file, ec);
    if (!ec) o.metrics_file = absolute.string();
  }
  if (o.auth_file.empty()) {
    if (auto storage = env("KACHERY_STORAGE_DIR"); storage && !storage->empty()) {
      std::string candidate = *storage + "/client-auth";
      if (access(candidate.c_str(), F_OK) == 0) o.auth_file = candidate;
    }
  }
  // auth_file names one file for every node, or one per node separated by ':' (an empty
  // entry: that node takes no code).
  o.node_auth_files.clear();
  if (o.auth_file.find(':') == std::string::npos) {
    o.node_auth_files.assign(std::max<std::size_t>(1, o.nodes.size()), o.auth_file);
  } else {
    for (std::size_t begin = 0; begin <= o.auth_file.size();) {
      std::size_t colon = std::min(o.auth_file.find(':', begin), o.auth_file.size());
      o.node_auth_files.push_back(o.auth_file.substr(begin, colon - begin));
      begin = colon + 1;
    }
    if (!o.nodes.empty() && o.node_auth_files.size() != o.nodes.size()) {
      errors.push_back("auth_file: " + std::to_string(o.node_auth_files.size()) +
                       " files separated by ':' for " + std::to_string(o.nodes.size()) +
                       " nodes (give one file, or one per node in the order of the nodes)");
    }
  }
  bool has_fsname = std::any_of(o.fuse_options.begin(), o.fuse_options.end(),
                                [](const std::string& s) { return s.starts_with("fsname="); });
  // Other users on the mount: let the kernel check the permission bits as well.
  auto has = [&](std::string_view option) {
    return std::find(o.fuse_options.begin(), o.fuse_options.end(), option) != o.fuse_options.end();
  };
  if (has("allow_other") && !has("default_permissions"))
    o.fuse_options.push_back("default_permissions");
  // mount(8) records the source exactly as written (so a second `mount -a` sees the entry
  // as mounted); FUSE's option string needs its commas and backslashes escaped.
  if (!has_fsname) {
    std::string name = o.source.empty() ? o.daemon.to_string() : o.source;
    std::string escaped;
    for (char c : name) {
      if (c == ',' || c == '\\') escaped += '\\';
      escaped += c;
    }
    o.fuse_options.push_back("fsname=" + escaped);
  }
  o.fuse_options.push_back("subtype=kacheryfs");
}

}  // namespace

std::string usage_text(std::string_view program) {
  std::ostringstream out;
  out << "usage: " << program << " [options] [NODE[,NODE...]] MOUNTPOINT\n"
      << "\n"
      << "Mounts the content of kachery nodes read-only: MOUNTPOINT/sha1/<sha1>.\n"
      << "NODE is HOST[:PORT] or a URL; several nodes are tried in order (failover).\n"
      << "HOST and PORT default to $KACHERY_DAEMON_HOST and $KACHERY_DAEMON_PORT "
         "(localhost:20431).\n"
      << "\n"
      << "general options:\n"
      << "    -o opt,[opt...]        mount options\n"
      << "    -f                     stay in the foreground, log to stderr\n"
      << "    -d                     debug output (implies -f)\n"
      << "    -s                     single-threaded\n"
      << "    -h   --help            print this help\n"
      << "    -V   --version         print the version\n";
  for (bool fuse : {false, true}) {
    out << (fuse ? "\nFUSE options passed through:\n" : "\nkacheryfs options:\n");
    for (const OptionRow& row : option_table()) {
      if (row.to_fuse != fuse) continue;
      std::string left = "-o " + std::string(row.name);
      if (!row.value_name.empty()) left += "=" + std::string(row.value_name);
      std::string text = std::string(row.help);
      if (!row.default_value.empty())
        text += " (default " + std::string(row.default_value) + ")";
      else if (!row.default_note.empty())
        text += " (default " + std::string(row.default_note) + ")";
      // Wrapped at 100 columns, continued under the text's first column.
      constexpr std::size_t kIndent = 30, kWidth = 100;
      std::string line = "    " + left + std::string(left.size() < 26 ? 26 - left.size() : 1, ' ');
      std::istringstream words(text);
      bool first_word = true;
      for (std::string word; words >> word; first_word = false) {
        if (!first_word && line.size() + 1 + word.size() > kWidth) {
          out << line << "\n";
          line = std::string(kIndent, ' ') + word;
        } else {
          line += (first_word ? "" : " ") + word;
        }
      }
      out << line << "\n";
    }
  }
  out << "\nfstab options (_netdev, noauto, nofail, user, x-systemd.*, ...) are accepted and\n"
      << "ignored.\n";
  return out.str();
}

std::string describe(const MountOptions& o) {
  std::ostringstream out;
  out << "nodes=";
  for (std::size_t i = 0; i < o.nodes.size(); ++i)
    out << (i > 0 ? "," : "") << o.nodes[i].to_string();
  out << " mountpoint=" << o.mountpoint;
  for (const OptionRow& row : option_table()) {
    if (row.show) out << " " << row.name << "=" << row.show(o);
  }
  return out.str();
}

}  // namespace kacheryfs
