// A pass-through custom I/O on a mounted session (the same fd, the same read, writev and
// splice calls) that edits two replies libfuse 3.14 (Debian 12) cannot write itself:
//   - INIT: 3.14 never passes FUSE_PARALLEL_DIROPS to the kernel, whatever the filesystem
//     asks for (fixed upstream after 3.14). Without it the kernel serializes every lookup in
//     a directory, so 32 readers opening different uncached files in sha1/ wait for each
//     other's downloads. The hook adds the flag when the kernel offered it; a libfuse that
//     already sends it is left as it is. When asked to (request_passthrough_in_init, before
//     3.17 only), it also asks for FUSE_PASSTHROUGH with a backing stack depth of 1.
//   - OPEN (before 3.17): a reply sent inside a PassthroughOpenReply scope becomes a
//     passthrough open of that backing id (FOPEN_PASSTHROUGH, backing_id in fuse_open_out).
// It can also run an action once the INIT reply is written (the kernel has applied it).
// Call install_session_io_hook after fuse_session_mount and before the session loop.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <cstdint>
#include <functional>

namespace kacheryfs {

// 0, or a negative errno from fuse_session_custom_io (the session then runs unchanged).
int install_session_io_hook(fuse_session* session);

// Runs `action` on the thread that wrote the INIT reply, right after the write (when the
// hook is installed). Set it before the session loop starts.
void call_after_init_reply(std::function<void()> action);

// What the kernel's INIT request offered; valid from the init operation on.
bool kernel_offered_passthrough();
// Makes the INIT reply ask for passthrough (from the init operation, which runs before the
// reply is written). libfuse >= 3.17 asks through its own API instead.
void request_passthrough_in_init();

// While alive on a thread, the OPEN reply that thread sends becomes a passthrough open of
// backing_id. The reply is sent by the thread that calls fuse_reply_open, synchronously;
// its fuse_file_info must ask for neither keep_cache nor direct_io (Passthrough::reply_open
// clears both).
class PassthroughOpenReply {
 public:
  explicit PassthroughOpenReply(std::int32_t backing_id);
  ~PassthroughOpenReply();
  PassthroughOpenReply(const PassthroughOpenReply&) = delete;
  PassthroughOpenReply& operator=(const PassthroughOpenReply&) = delete;
};

}  // namespace kacheryfs
