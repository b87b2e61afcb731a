#include "fuse_session_runner.h"

#include <spdlog/spdlog.h>

#include <csignal>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include "session_io_hook.h"
#include "support/mount_table.h"

namespace kacheryfs {

namespace {

// The kernel gives a FUSE mount 128 KiB of readahead and its INIT reply can only lower it;
// raise it through the mount's backing device info once that reply is in force (needs
// root; best effort).
void raise_readahead(const std::string& device, std::uint32_t kib) {
  std::string path = "/sys/class/bdi/" + device + "/read_ahead_kb";
  std::ofstream out(path);
  out << kib;
  out.flush();
  if (out) {
    spdlog::info("readahead raised to {} KiB", kib);
  } else {
    spdlog::debug("cannot raise readahead through {} (not root?)", path);
  }
}

}  // namespace

int run_fuse_session(const FuseMountConfig& config, FuseContext& context,
                     const std::function<void(bool daemonized)>& after_daemonize) {
  std::vector<std::string> args = {"kacheryfs", "-o",
                                   "ro,max_read=" + std::to_string(context.max_read)};
  for (const std::string& option : config.options) {
    args.push_back("-o");
    args.push_back(option);
  }
  if (config.debug) args.push_back("-d");
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  fuse_args fuse_arguments = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  // fuse_session_new may copy the arguments (fuse_opt_add_arg): free them on every path.
  std::unique_ptr<fuse_args, decltype(&fuse_opt_free_args)> arguments_guard(&fuse_arguments,
                                                                            fuse_opt_free_args);

  const fuse_lowlevel_ops& ops = kacheryfs_operations();
  fuse_session* session = fuse_session_new(&fuse_arguments, &ops, sizeof(ops), &context);
  if (session == nullptr) {
    spdlog::error("cannot create the FUSE session (see the message above)");
    return 1;
  }
  std::unique_ptr<fuse_session, decltype(&fuse_session_destroy)> session_guard(
      session, fuse_session_destroy);
  // Content that failed verification may already sit in the kernel's page cache: drop it.
  // The core's threads may ask until the session ends: detach before the session is
  // unmounted or destroyed (on every path), which also waits for a call in progress.
  if (context.invalidate_inode != nullptr) {
    context.invalidate_inode->attach([session](std::uint64_t ino) {
      int error = fuse_lowlevel_notify_inval_inode(session, static_cast<fuse_ino_t>(ino), 0, 0);
      spdlog::debug("dropped the kernel's cache of inode {} ({})", ino, error);
    });
  }
  struct DetachAtExit {
    LateCallback<std::uint64_t>* callback;
    void operator()() const {
      if (callback != nullptr) callback->detach();
    }
    ~DetachAtExit() { (*this)(); }
  } detach_invalidation{context.invalidate_inode};
  if (fuse_set_signal_handlers(session) != 0) {
    spdlog::error("cannot install signal handlers");
    return 1;
  }
  // Resolved before the mount: afterwards a lookup of the path would enter the mount.
  const std::string mountpoint = canonical_mountpoint(config.mountpoint);
  if (fuse_session_mount(session, config.mountpoint.c_str()) != 0) {
    fuse_remove_signal_handlers(session);
    spdlog::error("cannot mount on {} (see the message above)", config.mountpoint);
    return 1;
  }
  if (context.passthrough != nullptr)
    context.passthrough->attach_session_fd(fuse_session_fd(session));
  if (int error = install_session_io_hook(session); error != 0) {
    spdlog::warn(
        "lookups in one directory stay serialized and readahead at the kernel's "
        "128 KiB (custom FUSE I/O: {})",
        error);
  } else if (config.readahead_kib > 0) {
    if (std::optional<std::string> device = mounted_device(mountpoint))
      call_after_init_reply(
          [device = *device, kib = config.readahead_kib] { raise_readahead(device, kib); });
    else
      spdlog::debug("readahead stays at 128 KiB: {} is not in mountinfo", mountpoint);
  }
  if (fuse_daemonize(config.foreground ? 1 : 0) != 0) {
    detach_invalidation();
    fuse_session_unmount(session);
    fuse_remove_signal_handlers(session);
    return 1;
  }
  after_daemonize(!config.foreground);
  spdlog::info("mounted on {}", config.mountpoint);

  int result = 0;
  if (config.single_threaded) {
    result = fuse_session_loop(session);
  } else {
    fuse_loop_config* loop_config = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(loop_config, 0);
    fuse_loop_cfg_set_max_threads(loop_config, 16);
    fuse_loop_cfg_set_idle_threads(loop_config, 10);
    result = fuse_session_loop_mt(session, loop_config);
    fuse_loop_cfg_destroy(loop_config);
  }
  // The loop's threads are gone. Opens the kernel never released (it drops a RELEASE still
  // on its way at unmount, and every request of an aborted connection) are freed here:
  // their cache files are closed and their objects no longer held.
  if (std::size_t abandoned = context.open_handles.free_all(); abandoned > 0)
    spdlog::info("freed {} open handles the kernel did not release before the session ended",
                 abandoned);
  detach_invalidation();
  fuse_session_unmount(session);
  fuse_remove_signal_handlers(session);
  spdlog::info("unmounted {}", config.mountpoint);
  // libfuse's signal handlers end the loop with the signal's number as its result: a stop
  // asked for (SIGTERM, SIGINT, SIGHUP) is a clean exit, as for any daemon.
  if (result == SIGTERM || result == SIGINT || result == SIGHUP) {
    spdlog::info("stopped by signal {}", result);
    return 0;
  }
  return result == 0 ? 0 : 1;
}

}  // namespace kacheryfs
