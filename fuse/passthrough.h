// Kernel FUSE passthrough (Linux 6.9+ with CONFIG_FUSE_PASSTHROUGH) for complete cache
// files: an open is answered with a backing id naming the cache file, and the kernel then
// reads, splices and maps that file itself, from the cache file's own page cache (no FUSE
// round trip per read, and one copy of the bytes in memory instead of two). Partial files,
// synthetic files and files below min_size keep the normal path.
//
// Owns the mode in force (negotiated at INIT, turned off for good when the kernel refuses a
// backing file for a reason that holds for every file) and the per-inode rule the kernel
// imposes: the live opens of one inode are all passthrough, sharing one backing id, or all
// normal. An inode's kind is chosen at its first live open and kept until its last release,
// which closes the backing id. Registering needs CAP_SYS_ADMIN, so a plain user's mount
// (fusermount3) stays on the normal path. libfuse >= 3.17 is driven through its API; older
// ones through the session I/O hook. Thread-safe.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace kacheryfs {

// Smaller complete files keep the normal path: registering and closing a backing file costs
// more than the FUSE reads it saves below about 16-32 KiB (measured, README "Passthrough").
inline constexpr std::uint64_t kPassthroughMinSize = 32 << 10;

class Passthrough {
 public:
  enum class Setting { kOff, kAuto };
  Passthrough(Setting setting, std::uint64_t min_size);

  // The session's /dev/fuse fd (the backing ioctls go to it); before the session loop.
  void attach_session_fd(int fd) { session_fd_ = fd; }
  // From the init operation: asks the kernel for passthrough where it can work, and logs
  // the mode in force.
  void negotiate(fuse_conn_info* conn);

  // An open of ino, whose complete cache file is backing_fd of `size` bytes (-1: it has none,
  // the normal path). Returns the backing id the reply must carry, or 0 for a normal open.
  // Every begin_open is matched by one end_open: at its release, or when its reply failed.
  std::int32_t begin_open(fuse_req_t req, fuse_ino_t ino, int backing_fd, std::uint64_t size);
  void end_open(fuse_req_t req, fuse_ino_t ino);
  // Answers an open: a passthrough one for a backing id from begin_open, else as fi says.
  // fuse_reply_open's result.
  static int reply_open(fuse_req_t req, fuse_file_info* fi, std::int32_t backing_id);

  // "on", or "off: <why>" (the root xattr user.kachery.passthrough).
  std::string status() const;
  // Backing ids registered now: one per inode with live passthrough opens.
  std::size_t backing_files() const;
  // Opens not yet released, of either kind.
  std::size_t open_files() const;

 private:
  struct InodeOpens {
    std::uint32_t opens = 0;
    std::int32_t backing_id = 0;  // 0: its live opens are normal ones
  };
  std::int32_t register_backing(fuse_req_t req, int fd);  // under mutex_; 0 on failure
  void close_backing(fuse_req_t req, std::int32_t backing_id);
  void turn_off(std::string why);  // under mutex_

  const std::uint64_t min_size_;
  int session_fd_ = -1;
  mutable std::mutex mutex_;  // a leaf
  bool on_ = false;
  std::string off_reason_;
  std::unordered_map<fuse_ino_t, InodeOpens> inodes_;  // inodes with live opens
  std::size_t backing_files_ = 0;
  std::size_t open_files_ = 0;
};

}  // namespace kacheryfs
