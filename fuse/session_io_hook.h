// libfuse 3.14 (Debian 12) never passes FUSE_PARALLEL_DIROPS to the kernel, whatever the
// filesystem asks for (fixed upstream after 3.14: "Pass FUSE_PARALLEL_DIROPS to kernel").
// Without it the kernel serializes every lookup in a directory, so 32 readers opening
// different uncached files in sha1/ wait for each other's downloads. This installs a
// pass-through custom I/O on a mounted session (the same fd, the same splice calls) whose
// only change is to add the flag to the INIT reply when the kernel offered it. A libfuse
// that already sends the flag is left as it is. Call after fuse_session_mount.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

namespace kacheryfs {

// 0, or a negative errno from fuse_session_custom_io (the session then runs unchanged).
int install_parallel_dirops_fix(fuse_session* session);

}  // namespace kacheryfs
