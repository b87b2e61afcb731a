#include "passthrough.h"

#include <linux/capability.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "session_io_hook.h"

// libfuse 3.17 negotiates passthrough and registers backing files itself.
#if FUSE_MAJOR_VERSION > 3 || (FUSE_MAJOR_VERSION == 3 && FUSE_MINOR_VERSION >= 17)
#define KACHERYFS_LIBFUSE_PASSTHROUGH 1
#else
#define KACHERYFS_LIBFUSE_PASSTHROUGH 0
#endif

namespace kacheryfs {

namespace {

#if !KACHERYFS_LIBFUSE_PASSTHROUGH
// The backing-file ioctls of /dev/fuse (Linux 6.9), newer than Debian 12's headers.
struct BackingMap {
  std::int32_t fd;
  std::uint32_t flags;
  std::uint64_t padding;
};
constexpr unsigned long kBackingOpen = _IOW(229, 1, BackingMap);
constexpr unsigned long kBackingClose = _IOW(229, 2, std::uint32_t);
#endif

// CAP_SYS_ADMIN in the effective set (the kernel asks for it in the initial user namespace;
// a mount in another one finds out at its first backing file).
bool has_sys_admin() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &header, data) != 0) return false;
  return (data[CAP_SYS_ADMIN / 32].effective & (1u << (CAP_SYS_ADMIN % 32))) != 0;
}

// Errors of a backing ioctl that hold for every file, not only this one (every cache file
// is on the cache dir's file system): "" for one that may be this file's alone.
std::string refusal_for_every_file(int error) {
  if (error == ELOOP) return "the cache dir is on a stacked file system (such as overlayfs)";
  if (error == EPERM || error == ENOTTY || error == EOPNOTSUPP || error == EINVAL ||
      error == ENOSYS)
    return std::string("the kernel refused a backing file: ") + std::strerror(error);
  return "";
}

}  // namespace

Passthrough::Passthrough(Setting setting, std::uint64_t min_size) : min_size_(min_size) {
  if (setting == Setting::kOff) off_reason_ = "passthrough=off";
}

void Passthrough::negotiate(fuse_conn_info* conn) {
  std::lock_guard lock(mutex_);
  if (off_reason_.empty()) {
#if KACHERYFS_LIBFUSE_PASSTHROUGH
    // Through the 32-bit fields, like the other flags of the init operation: libfuse
    // refuses an init that changed both want and want_ext.
    bool offered = (conn->capable & FUSE_CAP_PASSTHROUGH) != 0;
#else
    (void)conn;
    bool offered = kernel_offered_passthrough();
#endif
    if (!offered) {
      off_reason_ = "the kernel does not offer it (Linux 6.9+, CONFIG_FUSE_PASSTHROUGH)";
    } else if (!has_sys_admin()) {
      off_reason_ = "it needs CAP_SYS_ADMIN (a root mount)";
    } else {
#if KACHERYFS_LIBFUSE_PASSTHROUGH
      conn->want |= FUSE_CAP_PASSTHROUGH;
      conn->max_backing_stack_depth = FUSE_BACKING_STACKED_UNDER;  // on a plain file system
#else
      request_passthrough_in_init();
#endif
      on_ = true;
    }
  }
  if (on_) {
    spdlog::info("passthrough: on for complete cached files of at least {} bytes", min_size_);
  } else {
    spdlog::info("passthrough: off: {}", off_reason_);
  }
}

std::int32_t Passthrough::begin_open(fuse_req_t req, fuse_ino_t ino, int backing_fd,
                                     std::uint64_t size) {
  std::lock_guard lock(mutex_);
  InodeOpens& inode = inodes_[ino];
  if (inode.opens == 0) {
    inode.backing_id = 0;
    if (on_ && backing_fd >= 0 && size >= min_size_)
      inode.backing_id = register_backing(req, backing_fd);
  }
  ++inode.opens;
  ++open_files_;
  return inode.backing_id;
}

void Passthrough::end_open(fuse_req_t req, fuse_ino_t ino) {
  std::int32_t closing = 0;
  {
    std::lock_guard lock(mutex_);
    auto it = inodes_.find(ino);
    if (it == inodes_.end()) return;
    --open_files_;
    if (--it->second.opens > 0) return;
    closing = it->second.backing_id;
    inodes_.erase(it);
    if (closing != 0) --backing_files_;
  }
  if (closing != 0) close_backing(req, closing);
}

int Passthrough::reply_open(fuse_req_t req, fuse_file_info* fi, std::int32_t backing_id) {
  if (backing_id == 0) return fuse_reply_open(req, fi);
  fi->keep_cache = 0;  // the kernel refuses either beside passthrough
  fi->direct_io = 0;
#if KACHERYFS_LIBFUSE_PASSTHROUGH
  fi->backing_id = backing_id;
  return fuse_reply_open(req, fi);
#else
  PassthroughOpenReply passthrough(backing_id);
  return fuse_reply_open(req, fi);
#endif
}

std::int32_t Passthrough::register_backing(fuse_req_t req, int fd) {
#if KACHERYFS_LIBFUSE_PASSTHROUGH
  int id = fuse_passthrough_open(req, fd);
  int error = id > 0 ? 0 : (id < 0 ? -id : (errno != 0 ? errno : EIO));
#else
  (void)req;
  BackingMap map{fd, 0, 0};
  int id = ::ioctl(session_fd_, kBackingOpen, &map);
  int error = id > 0 ? 0 : errno;
#endif
  if (id > 0) {
    ++backing_files_;
    return id;
  }
  if (std::string why = refusal_for_every_file(error); !why.empty()) {
    turn_off(std::move(why));
  } else {
    spdlog::debug("passthrough: a backing file was refused ({}); this open is a normal one",
                  std::strerror(error));
  }
  return 0;
}

void Passthrough::close_backing(fuse_req_t req, std::int32_t backing_id) {
#if KACHERYFS_LIBFUSE_PASSTHROUGH
  int result = fuse_passthrough_close(req, backing_id);
#else
  (void)req;
  auto id = static_cast<std::uint32_t>(backing_id);
  int result = ::ioctl(session_fd_, kBackingClose, &id);
#endif
  if (result < 0) spdlog::warn("passthrough: cannot close backing id {}", backing_id);
}

void Passthrough::turn_off(std::string why) {
  if (!on_) return;
  on_ = false;
  off_reason_ = std::move(why);
  spdlog::warn("passthrough: off: {}", off_reason_);
}

std::string Passthrough::status() const {
  std::lock_guard lock(mutex_);
  return on_ ? "on" : "off: " + off_reason_;
}

std::size_t Passthrough::backing_files() const {
  std::lock_guard lock(mutex_);
  return backing_files_;
}

std::size_t Passthrough::open_files() const {
  std::lock_guard lock(mutex_);
  return open_files_;
}

}  // namespace kacheryfs
