// Mounts the filesystem and runs the libfuse session loop until unmount or a signal:
// builds the FUSE arguments, mounts read-only, daemonizes unless in the foreground, and
// runs the multi-threaded loop. Returns the process exit code.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "fuse_operations.h"

namespace kacheryfs {

struct FuseMountConfig {
  std::string mountpoint;
  std::vector<std::string> options;  // -o options for libfuse (fsname=, allow_other, ...)
  bool foreground = false;
  bool debug = false;
  bool single_threaded = false;
  std::uint32_t readahead_kib = 1024;  // 0 = leave the kernel's default
};

// after_daemonize runs once the process is in its final form (forked or not), before the
// loop starts: the place to switch logging to syslog.
int run_fuse_session(const FuseMountConfig& config, FuseContext& context,
                     const std::function<void(bool daemonized)>& after_daemonize);

}  // namespace kacheryfs
