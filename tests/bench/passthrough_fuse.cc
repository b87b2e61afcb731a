// The smallest FUSE filesystem that serves the files of one directory, the way kacheryfs
// serves its cache: low-level API, keep_cache, replies spliced from the file's fd, the same
// max_read. The benchmark reads a file through it to show what the kernel allows a FUSE
// mount on warm (page cache) reads, next to kacheryfs and a native read.
//   passthrough-fuse SOURCE_DIR MOUNTPOINT        (foreground; unmount with fusermount3 -u)
#define FUSE_USE_VERSION 314
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace {

int source_dir = -1;
std::mutex names_mutex;
std::unordered_map<fuse_ino_t, std::string> names;  // ino -> name in SOURCE_DIR

void reply_attr_of(fuse_req_t req, const struct stat& st) { fuse_reply_attr(req, &st, 86400); }

// The name in SOURCE_DIR that a lookup gave this inode, or nullopt.
std::optional<std::string> name_of(fuse_ino_t ino) {
  std::lock_guard lock(names_mutex);
  auto it = names.find(ino);
  if (it == names.end()) return std::nullopt;
  return it->second;
}

void op_init(void*, fuse_conn_info* conn) {
  if (conn->capable & FUSE_CAP_SPLICE_WRITE) conn->want |= FUSE_CAP_SPLICE_WRITE;
  if (conn->capable & FUSE_CAP_SPLICE_MOVE) conn->want |= FUSE_CAP_SPLICE_MOVE;
  conn->want &= ~static_cast<unsigned>(FUSE_CAP_AUTO_INVAL_DATA);
  conn->max_read = 262144;  // as kacheryfs's default max_read
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  struct stat st {};
  if (parent != FUSE_ROOT_ID || fstatat(source_dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
      !S_ISREG(st.st_mode)) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  st.st_ino += 1;  // never FUSE_ROOT_ID
  {
    std::lock_guard lock(names_mutex);
    names[st.st_ino] = name;
  }
  fuse_entry_param entry{};
  entry.ino = st.st_ino;
  entry.attr = st;
  entry.attr_timeout = entry.entry_timeout = 86400;
  fuse_reply_entry(req, &entry);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  struct stat st {};
  if (ino == FUSE_ROOT_ID) {
    fstat(source_dir, &st);
    st.st_ino = FUSE_ROOT_ID;
    reply_attr_of(req, st);
    return;
  }
  std::optional<std::string> name = name_of(ino);
  if (!name) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  if (fstatat(source_dir, name->c_str(), &st, 0) != 0) {
    fuse_reply_err(req, errno);
    return;
  }
  st.st_ino = ino;
  reply_attr_of(req, st);
}

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  std::optional<std::string> name = name_of(ino);
  if (!name) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  int fd = openat(source_dir, name->c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  fi->fh = static_cast<std::uint64_t>(fd);
  fi->keep_cache = 1;
  if (fuse_reply_open(req, fi) != 0) close(fd);
}

void op_read(fuse_req_t req, fuse_ino_t, size_t size, off_t offset, fuse_file_info* fi) {
  fuse_bufvec buffer = FUSE_BUFVEC_INIT(size);
  buffer.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buffer.buf[0].fd = static_cast<int>(fi->fh);
  buffer.buf[0].pos = offset;
  fuse_reply_data(req, &buffer, FUSE_BUF_SPLICE_MOVE);
}

void op_release(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  close(static_cast<int>(fi->fh));
  fuse_reply_err(req, 0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: passthrough-fuse SOURCE_DIR MOUNTPOINT\n");
    return 2;
  }
  source_dir = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (source_dir < 0) {
    std::perror(argv[1]);
    return 1;
  }
  fuse_lowlevel_ops ops{};
  ops.init = op_init;
  ops.lookup = op_lookup;
  ops.getattr = op_getattr;
  ops.open = op_open;
  ops.read = op_read;
  ops.release = op_release;
  char program[] = "passthrough-fuse";
  char option_flag[] = "-o";
  char options[] = "ro,max_read=262144,fsname=passthrough";
  char* fuse_argv[] = {program, option_flag, options};
  fuse_args args = FUSE_ARGS_INIT(3, fuse_argv);
  fuse_session* session = fuse_session_new(&args, &ops, sizeof(ops), nullptr);
  if (session == nullptr) return 1;
  if (fuse_set_signal_handlers(session) != 0 || fuse_session_mount(session, argv[2]) != 0) {
    fuse_session_destroy(session);
    return 1;
  }
  fuse_loop_config* config = fuse_loop_cfg_create();
  int result = fuse_session_loop_mt(session, config);
  fuse_loop_cfg_destroy(config);
  fuse_session_unmount(session);
  fuse_remove_signal_handlers(session);
  fuse_session_destroy(session);
  return result == 0 ? 0 : 1;
}
