// kacheryfs: mounts a kachery node's content read-only, addressed by SHA-1.
// Parses the command line, has MountAssembly build the mount, and runs the FUSE session.
#include <malloc.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "app/mount_assembly.h"
#include "fuse_session_runner.h"
#include "support/logging.h"
#include "support/options.h"

namespace {

using namespace kacheryfs;

// True when path is already the mount point of a kacheryfs (mounts do not stack).
bool is_kacheryfs_mount(const std::string& path) {
  char resolved[PATH_MAX];
  if (realpath(path.c_str(), resolved) == nullptr) return false;
  std::ifstream mounts("/proc/self/mounts");
  std::string source, target, type;
  std::string rest;
  while (mounts >> source >> target >> type && std::getline(mounts, rest)) {
    if (target == resolved && type == "fuse.kacheryfs") return true;
  }
  return false;
}

bool check_mountpoint(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    if (errno == ENOTCONN) {
      std::cerr << "kacheryfs: bad mount point '" << path
                << "': Transport endpoint is not connected (a kacheryfs that ended without "
                   "unmounting left it; run: fusermount3 -u "
                << path << ")\n";
      return false;
    }
    std::cerr << "kacheryfs: bad mount point '" << path << "': " << std::strerror(errno) << "\n";
    return false;
  }
  if (is_kacheryfs_mount(path)) {
    std::cerr << "kacheryfs: '" << path
              << "' is already a kacheryfs mount; unmount it first (fusermount3 -u " << path
              << ")\n";
    return false;
  }
  if (!S_ISDIR(st.st_mode)) {
    std::cerr << "kacheryfs: bad mount point '" << path << "': not a directory\n";
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  // Bounded memory while streaming: few malloc arenas, and large buffers always mmapped
  // (and so returned to the system when freed) instead of kept in per-thread heaps.
  mallopt(M_ARENA_MAX, 2);
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  std::vector<std::string> args(argv, argv + argc);
  ParsedCommandLine parsed = parse_command_line(args, process_env);
  const MountOptions& options = parsed.options;
  if (options.show_help) {
    std::cout << usage_text("kacheryfs");
    return 0;
  }
  if (options.show_version) {
    std::cout << "kacheryfs " KACHERYFS_VERSION "\n";
    return 0;
  }
  for (const std::string& warning : parsed.warnings)
    std::cerr << "kacheryfs: warning: " << warning << " (ignored: sloppy)\n";
  if (!parsed.errors.empty()) {
    for (const std::string& error : parsed.errors) std::cerr << "kacheryfs: " << error << "\n";
    return 1;
  }
  if (!check_mountpoint(options.mountpoint)) return 1;
  std::string level = options.debug ? "debug" : options.log_level;
  // A mount that daemonizes tells the terminal only what needs action (warnings and
  // errors); the rest goes to its log once that is set up. With -f, stderr is the log.
  log_to_stderr(options.foreground || level == "error" || level == "off" ? level : "warn");

  // The cache is private to the mounting user (0700/0600), or readable by auth_group.
  umask(options.auth_group.empty() ? 077 : 027);
  auto built = MountAssembly::build(options, AssemblyRole::kMount);
  if (!built.ok()) {
    std::cerr << "kacheryfs: " << built.detail() << "\n";
    return 1;
  }
  MountAssembly& mount = **built;
  mount.keeper().make_room(0);
  // The daemon being down is not fatal (cached content stays readable) unless the mount
  // requires it; either way the terminal hears of it once, before daemonizing.
  if (Status daemon = mount.probe_daemon(); !daemon.ok()) {
    if (options.require_daemon) {
      std::cerr << "kacheryfs: " << daemon.detail() << " (require_daemon)\n";
      return 1;
    }
    if (daemon.error() == -EACCES)
      spdlog::warn("{}; reads of uncached files fail until the code is right", daemon.detail());
    else if (daemon.error() == -EPROTO)
      spdlog::warn("{}; serving cached files only", daemon.detail());
  }
  std::string log_file = options.log_file;
  if (log_file.empty() && !options.foreground && access("/dev/log", W_OK) != 0) {
    log_file = (std::filesystem::path(options.cache_dir) / "kacheryfs.log").string();
    std::cerr << "kacheryfs: no syslog socket (/dev/log); logging to " << log_file << "\n";
  }

  FuseContext context;
  context.filesystem = &mount.filesystem();
  context.max_read = options.max_read;
  context.uid = options.uid;
  context.gid = options.gid;
  context.umask = options.umask;
  context.invalidate_inode = &mount.invalidate_inode();
  Passthrough passthrough(
      options.passthrough ? Passthrough::Setting::kAuto : Passthrough::Setting::kOff,
      kPassthroughMinSize);
  context.passthrough = &passthrough;
  FuseMountConfig config{options.mountpoint, options.fuse_options, options.foreground,
                         options.debug, options.single_threaded};
  int result = run_fuse_session(config, context, [&](bool daemonized) {
    if (!log_file.empty()) {
      log_to_file(log_file, level);
    } else if (daemonized) {
      log_to_syslog(level);
    }
    if (daemonized) {
      std::error_code ec;
      auto mountpoint = std::filesystem::canonical(options.mountpoint, ec);
      mount.cache().record_mount_pid(ec ? options.mountpoint : mountpoint.string());
    }
    spdlog::debug("{}", describe(options));
    spdlog::info("cache: {} bytes in {} objects, limit {} bytes, keeping {} bytes free",
                 mount.keeper().cached_bytes(), mount.index().totals().objects,
                 mount.keeper().max_bytes(), mount.keeper().min_free_bytes());
    mount.start_background();
  });
  mount.stop_background();
  return result;
}
