#include "options.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdlib>
#include <sstream>

#include "hash_name.h"

namespace kacheryfs {

namespace {

constexpr std::array kIgnoredFstabOptions = {
    "_netdev", "auto",    "noauto",   "user",       "users", "nouser", "nofail", "defaults",
    "ro",      "rw",      "exec",     "noexec",     "suid",  "nosuid", "dev",    "nodev",
    "atime",   "noatime", "relatime", "nodiratime", "sync",  "async"};
constexpr std::array kFuseFlagOptions = {"allow_other", "allow_root", "default_permissions",
                                         "auto_unmount"};
constexpr std::array kFuseValueOptions = {"fsname", "subtype"};

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

std::string default_cache_dir(const EnvLookup& env) {
  if (geteuid() == 0) return "/var/cache/kacheryfs";
  if (auto xdg = env("XDG_CACHE_HOME"); xdg && !xdg->empty()) return *xdg + "/kacheryfs";
  if (auto home = env("HOME"); home && !home->empty()) return *home + "/.cache/kacheryfs";
  return "/tmp/kacheryfs-cache-" + std::to_string(geteuid());
}

bool is_channel_name(std::string_view name) {
  return name.size() >= 3 && name.size() <= 160 &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
         });
}

void apply_option(std::string_view item, MountOptions& o, std::vector<std::string>& errors) {
  std::size_t eq = item.find('=');
  std::string_view name = item.substr(0, eq);
  std::optional<std::string_view> value;
  if (eq != std::string_view::npos) value = item.substr(eq + 1);
  auto bad = [&](std::string_view why) {
    errors.push_back("option '" + std::string(item) + "': " + std::string(why));
  };
  auto need_value = [&]() -> bool {
    if (value && !value->empty()) return true;
    bad("needs a value (" + std::string(name) + "=...)");
    return false;
  };
  auto duration_into = [&](auto& field) {
    if (!need_value()) return;
    auto d = parse_duration(*value);
    if (!d || d->count() == 0)
      return bad("expected a positive duration in seconds, e.g. 10 or 500ms");
    field = std::chrono::ceil<std::remove_reference_t<decltype(field)>>(*d);
  };

  if (name.empty()) return;
  if (contains(kIgnoredFstabOptions, name) || name.starts_with("x-") || name == "comment") return;
  if (contains(kFuseFlagOptions, name) && !value) {
    o.fuse_options.emplace_back(name);
  } else if (contains(kFuseValueOptions, name)) {
    if (need_value()) o.fuse_options.emplace_back(item);
  } else if (name == "cache_dir") {
    if (need_value()) o.cache_dir = std::string(*value);
  } else if (name == "auth_file") {
    if (need_value()) o.auth_file = std::string(*value);
  } else if (name == "timeout") {
    duration_into(o.timeout);
  } else if (name == "connect_timeout") {
    duration_into(o.connect_timeout);
  } else if (name == "negative_timeout") {
    duration_into(o.negative_timeout);
  } else if (name == "load_timeout") {
    duration_into(o.load_timeout);
  } else if (name == "range_size") {
    if (!need_value()) return;
    auto size = parse_size(*value);
    if (!size || *size < 4096 || *size > (std::uint64_t{1} << 30)) {
      return bad("expected a size between 4K and 1G, e.g. 4M");
    }
    o.range_size = *size;
  } else if (name == "max_read") {
    if (!need_value()) return;
    auto size = parse_size(*value);
    if (!size || *size < 4096 || *size > (1u << 20))
      return bad("expected a size between 4K and 1M");
    o.max_read = static_cast<std::uint32_t>(*size);
  } else if (name == "block_size" || name == "whole_max" || name == "max_readahead") {
    if (!need_value()) return;
    auto size = parse_size(*value);
    std::uint64_t low = name == "block_size" ? 64 << 10 : 0;
    std::uint64_t high = name == "block_size" ? std::uint64_t{256} << 20 : std::uint64_t{1} << 40;
    if (!size || *size < low || *size > high)
      return bad("expected a size, e.g. 4M (block_size: 64K to 256M)");
    (name == "block_size"  ? o.block_size
     : name == "whole_max" ? o.whole_max
                           : o.max_readahead) = *size;
  } else if (name == "cache_max") {
    if (!need_value()) return;
    auto size = parse_size(*value);
    if (!size || *size < (1u << 20)) return bad("expected a size of at least 1M, e.g. 20G");
    o.cache_max = *size;
  } else if (name == "cache_min_free") {
    if (!need_value()) return;
    if (value->ends_with('%')) {
      auto percent = parse_uint(value->substr(0, value->size() - 1));
      if (!percent || *percent > 90)
        return bad("expected a size or a percentage up to 90%, e.g. 10%");
      o.cache_min_free = 0;
      o.cache_min_free_fraction = static_cast<double>(*percent) / 100.0;
    } else {
      auto size = parse_size(*value);
      if (!size) return bad("expected a size or a percentage, e.g. 5G or 10%");
      o.cache_min_free = *size;
      if (*size == 0) o.cache_min_free_fraction = 0;
    }
  } else if (name == "max_conns") {
    if (!need_value()) return;
    auto n = parse_uint(*value);
    if (!n || *n < 1 || *n > 64) return bad("expected a count between 1 and 64");
    o.max_conns = static_cast<unsigned>(*n);
  } else if (name == "verify") {
    if (!need_value()) return;
    if (*value != "strict" && *value != "normal")
      return bad("expected verify=strict or verify=normal");
    o.verify_strict = *value == "strict";
  } else if (name == "retries") {
    if (!need_value()) return;
    auto n = parse_uint(*value);
    if (!n || *n > 100) return bad("expected a count between 0 and 100");
    o.retries = static_cast<unsigned>(*n);
  } else if (name == "channel") {
    if (!need_value()) return;
    if (!is_channel_name(*value))
      return bad("a channel name is 3-160 letters, digits, '.', '_' or '-'");
    o.channel = std::string(*value);
  } else if (name == "log_level") {
    constexpr std::array kLevels = {"trace", "debug", "info", "warn", "error", "off"};
    if (!need_value()) return;
    if (!contains(kLevels, *value)) return bad("expected trace, debug, info, warn, error or off");
    o.log_level = std::string(*value);
  } else if (name == "debug") {
    o.debug = true;
  } else {
    bad("unknown option (see kacheryfs -h)");
  }
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

ParsedCommandLine parse_command_line(const std::vector<std::string>& args, const EnvLookup& env) {
  ParsedCommandLine parsed;
  MountOptions& o = parsed.options;
  std::vector<std::string>& errors = parsed.errors;
  std::vector<std::string> positional;
  auto apply_list = [&](std::string_view list) {
    std::size_t start = 0;
    while (start <= list.size()) {
      std::size_t comma = list.find(',', start);
      if (comma == std::string_view::npos) comma = list.size();
      apply_option(list.substr(start, comma - start), o, errors);
      start = comma + 1;
    }
  };
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
    } else if (arg.size() > 1 && arg[0] == '-') {
      errors.push_back("unknown flag '" + arg + "' (see kacheryfs -h)");
    } else {
      positional.push_back(arg);
    }
  }
  if (o.show_help || o.show_version) return parsed;

  if (positional.size() == 1) {
    o.mountpoint = positional[0];
  } else if (positional.size() == 2) {
    o.source = positional[0];
    o.mountpoint = positional[1];
  } else if (positional.empty()) {
    errors.push_back(
        "missing mount point (usage: kacheryfs [options] [HOST[:PORT]|URL] MOUNTPOINT)");
  } else {
    errors.push_back("too many arguments: expected [HOST[:PORT]|URL] MOUNTPOINT");
  }

  std::string address_error;
  auto address = parse_daemon_address(o.source, env("KACHERY_DAEMON_HOST").value_or(""),
                                      env("KACHERY_DAEMON_PORT").value_or(""), &address_error);
  if (address)
    o.daemon = *address;
  else
    errors.push_back("daemon address: " + address_error);

  if (o.cache_dir.empty()) o.cache_dir = default_cache_dir(env);
  if (o.auth_file.empty()) {
    if (auto storage = env("KACHERY_STORAGE_DIR"); storage && !storage->empty()) {
      std::string candidate = *storage + "/client-auth";
      if (access(candidate.c_str(), F_OK) == 0) o.auth_file = candidate;
    }
  }
  bool has_fsname = std::any_of(o.fuse_options.begin(), o.fuse_options.end(),
                                [](const std::string& s) { return s.starts_with("fsname="); });
  if (!has_fsname) o.fuse_options.push_back("fsname=" + o.daemon.to_string());
  o.fuse_options.push_back("subtype=kacheryfs");
  return parsed;
}

std::string usage_text(std::string_view program) {
  std::ostringstream out;
  out << "usage: " << program << " [options] [HOST[:PORT]|URL] MOUNTPOINT\n"
      << "\n"
      << "Mounts the content of a kachery node read-only: MOUNTPOINT/sha1/<sha1>.\n"
      << "HOST and PORT default to $KACHERY_DAEMON_HOST and $KACHERY_DAEMON_PORT "
         "(localhost:20431).\n"
      << "\n"
      << "general options:\n"
      << "    -o opt,[opt...]        mount options\n"
      << "    -f                     stay in the foreground, log to stderr\n"
      << "    -d                     debug output (implies -f)\n"
      << "    -s                     single-threaded\n"
      << "    -h   --help            print this help\n"
      << "    -V   --version         print the version\n"
      << "\n"
      << "kacheryfs options:\n"
      << "    -o cache_dir=DIR       local cache (default ~/.cache/kacheryfs, /var/cache/kacheryfs "
         "for root)\n"
      << "    -o auth_file=FILE      file holding the client auth code\n"
      << "                           (default $KACHERY_STORAGE_DIR/client-auth if it exists)\n"
      << "    -o timeout=SEC         first-byte and idle timeout per request (default 10)\n"
      << "    -o connect_timeout=SEC connect timeout (default 5)\n"
      << "    -o retries=N           retries of a failed range request (default 2)\n"
      << "    -o range_size=SIZE     bytes per download request (default 4M)\n"
      << "    -o negative_timeout=SEC  remember 'the node lacks X' this long (default 10)\n"
      << "    -o channel=NAME        ask the node to load missing files through this channel\n"
      << "    -o load_timeout=SEC    how long such a load may take (default 600)\n"
      << "    -o log_level=LEVEL     trace, debug, info, warn, error, off (default info)\n"
      << "    -o max_read=SIZE       largest read request from the kernel (default 256K)\n"
      << "    -o whole_max=SIZE      files up to SIZE are fetched whole and verified at open "
         "(default 64M);\n"
      << "                           larger ones stream through the block cache\n"
      << "    -o block_size=SIZE     block of the block cache (default 4M)\n"
      << "    -o max_conns=N         range requests in flight for readahead (default 4)\n"
      << "    -o max_readahead=SIZE  largest readahead window of a sequential reader (default "
         "64M)\n"
      << "    -o cache_max=SIZE      evict least recently used files beyond SIZE (default: a "
         "quarter of\n"
      << "                           the cache's file system)\n"
      << "    -o cache_min_free=SIZE|PCT  keep this much of the file system free (default 10%)\n"
      << "    -o verify=strict       serve no byte before it is verified (by a manifest chunk or "
         "the\n"
      << "                           whole-file SHA-1); default verify=normal\n"
      << "\n"
      << "FUSE options passed through: allow_other, allow_root, default_permissions,\n"
      << "auto_unmount, fsname=NAME, subtype=NAME. fstab options (_netdev, noauto, nofail,\n"
      << "user, x-systemd.*, ...) are accepted and ignored.\n";
  return out.str();
}

std::string describe(const MountOptions& o) {
  std::ostringstream out;
  out << "daemon=" << o.daemon.to_string() << " mountpoint=" << o.mountpoint
      << " cache_dir=" << o.cache_dir
      << " auth_file=" << (o.auth_file.empty() ? "(none)" : o.auth_file)
      << " timeout=" << o.timeout.count() << "ms connect_timeout=" << o.connect_timeout.count()
      << "ms retries=" << o.retries << " range_size=" << o.range_size
      << " negative_timeout=" << o.negative_timeout.count() << "s"
      << " channel=" << (o.channel.empty() ? "(none)" : o.channel) << " max_read=" << o.max_read
      << " whole_max=" << o.whole_max << " block_size=" << o.block_size
      << " max_conns=" << o.max_conns << " max_readahead=" << o.max_readahead
      << " verify=" << (o.verify_strict ? "strict" : "normal");
  return out.str();
}

}  // namespace kacheryfs
