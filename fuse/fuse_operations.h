// The libfuse low-level operations of kacheryfs: each is a small function that makes one
// call into the core Filesystem and sends exactly one reply. Writes of any kind: EROFS.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <chrono>
#include <cstdint>
#include <optional>

#include "open_handles.h"
#include "passthrough.h"
#include "support/late_callback.h"
#include "tree/filesystem.h"

namespace kacheryfs {

struct FuseTimeouts {
  double content = 86400.0;   // entry/attr timeout of immutable content (seconds)
  double directory = 3600.0;  // entry/attr timeout of directories (their shape never changes)
};

struct FuseContext {
  Filesystem* filesystem = nullptr;
  FuseTimeouts timeouts;
  std::uint32_t max_read = 0;  // from the max_read option (its default lives in the table)
  // Owner and permission bits that files and directories show (-o uid=, gid=, umask=).
  std::optional<std::uint32_t> uid;
  std::optional<std::uint32_t> gid;
  std::uint32_t umask = 0;
  // Attached by the session runner: drops the kernel's cached pages of an inode.
  LateCallback<std::uint64_t>* invalidate_inode = nullptr;
  // Kernel passthrough of complete cache files; nullptr: never.
  Passthrough* passthrough = nullptr;
  // The file and directory handles the kernel holds; the runner frees what is left of them.
  OpenHandles open_handles;
};

const fuse_lowlevel_ops& kacheryfs_operations();

}  // namespace kacheryfs
