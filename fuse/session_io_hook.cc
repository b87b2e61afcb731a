#include "session_io_hook.h"

#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <utility>

namespace kacheryfs {

namespace {

// The kernel ABI of passthrough (protocol 7.40, Linux 6.9), which Debian 12's headers
// predate: bit 37 of the INIT flags (bit 5 of flags2), the stack depth that follows flags2
// in fuse_init_out, and in fuse_open_out the open flag and the backing id after open_flags.
constexpr std::uint32_t kPassthroughFlags2Bit = 1u << 5;
constexpr std::size_t kInitOutFlags2Offset = 32;
constexpr std::size_t kInitOutMaxStackDepthOffset = 36;
constexpr std::uint32_t kOpenPassthrough = 1u << 7;  // FOPEN_PASSTHROUGH
constexpr std::size_t kOpenOutFlagsOffset = 8;
constexpr std::size_t kOpenOutBackingIdOffset = 12;
constexpr std::size_t kOpenOutSize = 16;
// Backing files are plain files of the cache's file system, not of another stacked one;
// kacheryfs itself can then still be a lower layer of an overlay.
constexpr std::uint32_t kMaxStackDepth = 1;

// The INIT request's id, once read, and what the kernel offered.
std::atomic<std::uint64_t> init_unique{0};
std::atomic<bool> kernel_offers_parallel_dirops{false};
std::atomic<bool> kernel_offers_passthrough{false};
std::atomic<bool> passthrough_requested{false};
std::atomic<bool> init_answered{false};

// The backing id of the OPEN reply this thread is about to send; 0: none.
thread_local std::int32_t pending_backing_id = 0;

template <class T>
T load_at(const void* base, std::size_t offset) {
  T value;
  std::memcpy(&value, static_cast<const char*>(base) + offset, sizeof(value));
  return value;
}

template <class T>
void store_at(void* base, std::size_t offset, T value) {
  std::memcpy(static_cast<char*>(base) + offset, &value, sizeof(value));
}

ssize_t read_request(int fd, void* buffer, size_t length, void*) {
  ssize_t n = ::read(fd, buffer, length);
  if (!init_answered.load(std::memory_order_relaxed) &&
      n >= static_cast<ssize_t>(sizeof(fuse_in_header) + sizeof(fuse_init_in))) {
    fuse_in_header header;
    std::memcpy(&header, buffer, sizeof(header));
    if (header.opcode == FUSE_INIT) {
      fuse_init_in init;
      std::memcpy(&init, static_cast<const char*>(buffer) + sizeof(header), sizeof(init));
      kernel_offers_parallel_dirops = (init.flags & FUSE_PARALLEL_DIROPS) != 0;
      kernel_offers_passthrough =
          (init.flags & FUSE_INIT_EXT) != 0 && (init.flags2 & kPassthroughFlags2Bit) != 0;
      init_unique = header.unique;
    }
  }
  return n;
}

void edit_init_reply(void* reply, std::size_t length) {
  auto flags = load_at<std::uint32_t>(reply, offsetof(fuse_init_out, flags));
  if (kernel_offers_parallel_dirops) flags |= FUSE_PARALLEL_DIROPS;
  if (passthrough_requested && kernel_offers_passthrough &&
      length >= kInitOutMaxStackDepthOffset + sizeof(std::uint32_t)) {
    flags |= FUSE_INIT_EXT;
    store_at(reply, kInitOutFlags2Offset,
             load_at<std::uint32_t>(reply, kInitOutFlags2Offset) | kPassthroughFlags2Bit);
    store_at(reply, kInitOutMaxStackDepthOffset, kMaxStackDepth);
  }
  store_at(reply, offsetof(fuse_init_out, flags), flags);
}

// (The caller cleared keep_cache and direct_io, which the kernel refuses beside it.)
void edit_open_reply(void* reply) {
  store_at(reply, kOpenOutFlagsOffset,
           load_at<std::uint32_t>(reply, kOpenOutFlagsOffset) | kOpenPassthrough);
  store_at(reply, kOpenOutBackingIdOffset, pending_backing_id);
}

// Set before the session loop starts, called by the thread that wrote the INIT reply.
std::function<void()> after_init_reply;

ssize_t write_reply(int fd, iovec* iov, int count, void*) {
  bool init_reply = false;
  if (count >= 2 && iov[0].iov_len == sizeof(fuse_out_header)) {
    fuse_out_header header;
    std::memcpy(&header, iov[0].iov_base, sizeof(header));
    if (header.error == 0) {
      if (pending_backing_id != 0 && iov[1].iov_len == kOpenOutSize) {
        edit_open_reply(iov[1].iov_base);
        pending_backing_id = 0;
      } else if (!init_answered.load(std::memory_order_relaxed) &&
                 header.unique == init_unique.load() &&
                 iov[1].iov_len >= offsetof(fuse_init_out, flags) + sizeof(std::uint32_t)) {
        init_answered = true;
        init_reply = true;
        edit_init_reply(iov[1].iov_base, iov[1].iov_len);
      }
    }
  }
  ssize_t written = ::writev(fd, iov, count);
  // The kernel applies an INIT reply while it is written: it is in force now.
  if (init_reply && written >= 0 && after_init_reply) after_init_reply();
  return written;
}

ssize_t splice_through(int in, off_t* in_offset, int out, off_t* out_offset, size_t length,
                       unsigned int flags, void*) {
  return ::splice(in, in_offset, out, out_offset, length, flags);
}

}  // namespace

int install_session_io_hook(fuse_session* session) {
  // By field name, value-initialized: libfuse 3.17 added clone_fd (left null: libfuse then
  // clones /dev/fuse itself for its worker threads).
  static const fuse_custom_io io = [] {
    fuse_custom_io hooks{};
    hooks.writev = write_reply;
    hooks.read = read_request;
    hooks.splice_receive = splice_through;
    hooks.splice_send = splice_through;
    return hooks;
  }();
  return fuse_session_custom_io(session, &io, fuse_session_fd(session));
}

void call_after_init_reply(std::function<void()> action) { after_init_reply = std::move(action); }

bool kernel_offered_passthrough() { return kernel_offers_passthrough.load(); }

void request_passthrough_in_init() { passthrough_requested = true; }

PassthroughOpenReply::PassthroughOpenReply(std::int32_t backing_id) {
  pending_backing_id = backing_id;
}

PassthroughOpenReply::~PassthroughOpenReply() { pending_backing_id = 0; }

}  // namespace kacheryfs
