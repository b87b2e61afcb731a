#include "init_flags_fix.h"

#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>

namespace kacheryfs {

namespace {

// The INIT request's id, once read, and whether the kernel offered parallel dirops.
std::atomic<std::uint64_t> init_unique{0};
std::atomic<bool> kernel_offers_parallel_dirops{false};
std::atomic<bool> init_answered{false};

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
      init_unique = header.unique;
    }
  }
  return n;
}

ssize_t write_reply(int fd, iovec* iov, int count, void*) {
  if (!init_answered.load(std::memory_order_relaxed) && count >= 2 &&
      iov[0].iov_len == sizeof(fuse_out_header) &&
      iov[1].iov_len >= offsetof(fuse_init_out, flags) + sizeof(std::uint32_t)) {
    fuse_out_header header;
    std::memcpy(&header, iov[0].iov_base, sizeof(header));
    if (header.unique == init_unique.load() && header.error == 0) {
      init_answered = true;
      if (kernel_offers_parallel_dirops) {
        auto* flags = reinterpret_cast<std::uint32_t*>(static_cast<char*>(iov[1].iov_base) +
                                                       offsetof(fuse_init_out, flags));
        *flags |= FUSE_PARALLEL_DIROPS;
      }
    }
  }
  return ::writev(fd, iov, count);
}

ssize_t splice_through(int in, off_t* in_offset, int out, off_t* out_offset, size_t length,
                       unsigned int flags, void*) {
  return ::splice(in, in_offset, out, out_offset, length, flags);
}

}  // namespace

int install_parallel_dirops_fix(fuse_session* session) {
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

}  // namespace kacheryfs
