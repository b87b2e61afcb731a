#include "fuse_operations.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuse_cancel_token.h"

namespace kacheryfs {

namespace {

FuseContext& context(fuse_req_t req) { return *static_cast<FuseContext*>(fuse_req_userdata(req)); }

// Runs call with a token that the request's interrupt fires. The token is gone when this
// returns, before the caller answers the request (which frees it).
template <class Call>
int interruptible(fuse_req_t req, Call call) {
  FuseRequestCancelToken cancel(req);
  return call(static_cast<const CancelToken&>(cancel));
}

const std::time_t kMountTime = std::time(nullptr);

struct stat to_stat(const FuseContext& ctx, const Attributes& attributes) {
  struct stat st {};
  st.st_ino = attributes.ino;
  std::uint32_t permissions =
      attributes.mode != 0 ? attributes.mode : (attributes.directory ? 0555u : 0444u) & ~ctx.umask;
  st.st_mode = (attributes.directory ? S_IFDIR : S_IFREG) | permissions;
  st.st_nlink = attributes.directory ? 2 : 1;
  // client-auth (its mode set) always shows the mounting user: only it may read it.
  bool restricted = attributes.mode != 0;
  st.st_uid = restricted ? getuid() : ctx.uid.value_or(getuid());
  st.st_gid = attributes.gid.value_or(restricted ? getgid() : ctx.gid.value_or(getgid()));
  st.st_size = static_cast<off_t>(attributes.size);
  st.st_blksize = 1 << 20;
  st.st_blocks = static_cast<blkcnt_t>((attributes.size + 511) / 512);
  st.st_atime = st.st_mtime = st.st_ctime = kMountTime;
  return st;
}

double timeout_for(const FuseContext& ctx, const Attributes& attributes) {
  if (attributes.changing) return 0;
  return attributes.directory ? ctx.timeouts.directory
                              : (attributes.content ? ctx.timeouts.content : 60.0);
}

// The caller of a request, for the files that are not for everyone (client-auth).
Caller caller_of(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  Caller caller;
  caller.uid = ctx->uid;
  caller.groups.push_back(ctx->gid);
  gid_t groups[64];
  int count = fuse_req_getgroups(req, 64, groups);
  for (int i = 0; i < count && i < 64; ++i) caller.groups.push_back(groups[i]);
  return caller;
}

void op_init(void* userdata, fuse_conn_info* conn) {
  auto* ctx = static_cast<FuseContext*>(userdata);
  if (conn->capable & FUSE_CAP_SPLICE_WRITE) conn->want |= FUSE_CAP_SPLICE_WRITE;
  if (conn->capable & FUSE_CAP_SPLICE_MOVE) conn->want |= FUSE_CAP_SPLICE_MOVE;
  conn->want &= ~static_cast<unsigned>(FUSE_CAP_AUTO_INVAL_DATA);  // content never changes
  conn->max_read = ctx->max_read;
  // Lookups and readdirs of one directory (sha1/) run in parallel in the kernel.
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  if (ctx->passthrough != nullptr) ctx->passthrough->negotiate(conn);
  spdlog::info(
      "FUSE protocol {}.{}: max_read={} max_readahead={} splice_write={} parallel_dirops={} "
      "max_background={}",
      conn->proto_major, conn->proto_minor, conn->max_read, conn->max_readahead,
      (conn->want & FUSE_CAP_SPLICE_WRITE) != 0, (conn->want & FUSE_CAP_PARALLEL_DIROPS) != 0,
      conn->max_background);
}

void reply_entry_or_error(fuse_req_t req, int error, const Attributes& attributes) {
  const FuseContext& ctx = context(req);
  // A miss is never cached by the kernel: a hash stored on the node a moment later must be
  // found by the next lookup (the core remembers misses for negative_timeout only).
  if (error != 0) {
    fuse_reply_err(req, -error);
    return;
  }
  fuse_entry_param entry{};
  entry.ino = attributes.ino;
  entry.generation = 1;
  entry.attr = to_stat(ctx, attributes);
  entry.attr_timeout = entry.entry_timeout = timeout_for(ctx, attributes);
  fuse_reply_entry(req, &entry);
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Attributes attributes;
  int error = interruptible(req, [&](const CancelToken& cancel) {
    return context(req).filesystem->lookup(parent, name, attributes, cancel);
  });
  reply_entry_or_error(req, error, attributes);
}

// The kernel dropped nlookup references: the tree forgets an inode at 0 (bounded memory).
void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  context(req).filesystem->forget(ino, nlookup);
  fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  Filesystem* filesystem = context(req).filesystem;
  for (size_t i = 0; i < count; ++i) filesystem->forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Attributes attributes;
  int error = interruptible(req, [&](const CancelToken& cancel) {
    return context(req).filesystem->getattr(ino, attributes, cancel);
  });
  if (error != 0) {
    fuse_reply_err(req, -error);
    return;
  }
  struct stat st = to_stat(context(req), attributes);
  fuse_reply_attr(req, &st, timeout_for(context(req), attributes));
}

struct DirHandle {
  std::vector<DirEntry> entries;
};

void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto handle = std::make_unique<DirHandle>();
  int error = context(req).filesystem->list(ino, handle->entries);
  if (error != 0) {
    fuse_reply_err(req, -error);
    return;
  }
  fi->fh = reinterpret_cast<std::uint64_t>(handle.get());
  fi->cache_readdir = 0;
  // Registered before the reply: the release may come on another thread right after it.
  OpenHandles& handles = context(req).open_handles;
  handles.add(handle.get(), [held = handle.get()] { delete held; });
  if (fuse_reply_open(req, fi) == 0) {
    handle.release();
  } else {
    handles.remove(handle.get());
  }
}

void op_readdir(fuse_req_t req, fuse_ino_t, size_t size, off_t offset, fuse_file_info* fi) {
  auto* handle = reinterpret_cast<DirHandle*>(fi->fh);
  std::vector<char> buffer(size);
  std::size_t used = 0;
  for (auto i = static_cast<std::size_t>(offset); i < handle->entries.size(); ++i) {
    const DirEntry& entry = handle->entries[i];
    struct stat st {};
    st.st_ino = entry.ino;
    st.st_mode = entry.directory ? S_IFDIR : S_IFREG;
    std::size_t needed = fuse_add_direntry(req, buffer.data() + used, size - used,
                                           entry.name.c_str(), &st, static_cast<off_t>(i + 1));
    if (needed > size - used) break;
    used += needed;
  }
  fuse_reply_buf(req, buffer.data(), used);
}

void op_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  auto* handle = reinterpret_cast<DirHandle*>(fi->fh);
  context(req).open_handles.remove(handle);
  delete handle;
  fuse_reply_err(req, 0);
}

void read_from(fuse_req_t req, OpenedFile& opened, size_t size, off_t offset);

// An open file as the kernel's fh. A reader killed by SIGKILL abandons its read in the
// kernel, which may then send RELEASE while op_read is still replying from the handle: the
// handle lives until the last of the open and its reads in progress lets go of it.
struct FileHandle {
  OpenedFile file;
  std::atomic<int> users{1};  // the open itself, plus each op_read in progress

  static FileHandle* acquire(fuse_file_info* fi) {
    auto* handle = reinterpret_cast<FileHandle*>(fi->fh);
    handle->users.fetch_add(1, std::memory_order_acq_rel);
    return handle;
  }
  void let_go() {
    if (users.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
};

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
    fuse_reply_err(req, EROFS);
    return;
  }
  auto handle = std::make_unique<FileHandle>();
  OpenedFile* file = &handle->file;
  int error = interruptible(req, [&](const CancelToken& cancel) {
    return context(req).filesystem->open(ino, *file, cancel,
                                         ino == Tree::kClientAuthIno ? caller_of(req) : Caller{});
  });
  if (error != 0) {
    fuse_reply_err(req, -error);
    return;
  }
  if (file->direct) {
    fi->direct_io = 1;  // changing bytes: never from (or into) the page cache
  } else {
    fi->keep_cache = 1;  // content is immutable: keep the page cache across opens
  }
  fi->noflush = 1;  // nothing to flush in a read-only tree: a close sends no FLUSH
  fi->fh = reinterpret_cast<std::uint64_t>(handle.get());
  Passthrough* passthrough = context(req).passthrough;
  std::int32_t backing_id = 0;
  if (passthrough != nullptr) {
    // Only a complete, verified cache file can back an open: the kernel never asks for a
    // page it lacks.
    const OpenContent& content = file->content;
    int backing_fd = !file->direct && !content.partial ? content.fd.get() : -1;
    backing_id = passthrough->begin_open(req, ino, backing_fd, content.size);
  }
  // Registered before the reply: the release may come on another thread right after it.
  OpenHandles& handles = context(req).open_handles;
  handles.add(handle.get(), [held = handle.get()] { held->let_go(); });
  if (Passthrough::reply_open(req, fi, backing_id) == 0) {
    handle.release();
    return;
  }
  handles.remove(handle.get());
  if (passthrough != nullptr) passthrough->end_open(req, ino);  // the opener went away
}

void op_read(fuse_req_t req, fuse_ino_t, size_t size, off_t offset, fuse_file_info* fi) {
  FileHandle* handle = FileHandle::acquire(fi);
  read_from(req, handle->file, size, offset);
  handle->let_go();
}

void read_from(fuse_req_t req, OpenedFile& opened, size_t size, off_t offset) {
  OpenedFile* file = &opened;
  int fd = -1;
  int error = interruptible(req, [&](const CancelToken& cancel) {
    return context(req).filesystem->prepare_read(*file, static_cast<std::uint64_t>(offset), size,
                                                 &fd, cancel);
  });
  if (error != 0) {
    fuse_reply_err(req, -error);
    return;
  }
  if (fd < 0) {
    const std::string& bytes = file->bytes;  // synthetic files; the empty file has none
    auto start = std::min(static_cast<std::size_t>(offset), bytes.size());
    fuse_reply_buf(req, bytes.data() + start, std::min(size, bytes.size() - start));
    return;
  }
  fuse_bufvec buffer = FUSE_BUFVEC_INIT(size);
  buffer.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buffer.buf[0].fd = fd;
  buffer.buf[0].pos = offset;
  fuse_reply_data(req, &buffer, FUSE_BUF_SPLICE_MOVE);
}

// getxattr/listxattr protocol: size 0 asks for the length; too small a buffer is ERANGE.
void reply_xattr_value(fuse_req_t req, const std::string& value, size_t size) {
  if (size == 0) {
    fuse_reply_xattr(req, value.size());
  } else if (size < value.size()) {
    fuse_reply_err(req, ERANGE);
  } else {
    fuse_reply_buf(req, value.data(), value.size());
  }
}

// Root xattrs that the FUSE layer answers: the passthrough mode in force, the backing files
// registered now, and the opens not yet released.
constexpr const char* kPassthroughXattr = "user.kachery.passthrough";
constexpr const char* kBackingFilesXattr = "user.kachery.backing_files";
constexpr const char* kOpenFilesXattr = "user.kachery.open_files";

// Without a Passthrough (never in the kacheryfs binary) the three do not exist.
std::optional<std::string> fuse_root_xattr(fuse_req_t req, std::string_view name) {
  const Passthrough* passthrough = context(req).passthrough;
  if (passthrough == nullptr) return std::nullopt;
  if (name == kPassthroughXattr) return passthrough->status();
  if (name == kBackingFilesXattr) return std::to_string(passthrough->backing_files());
  if (name == kOpenFilesXattr) return std::to_string(passthrough->open_files());
  return std::nullopt;
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  if (ino == FUSE_ROOT_ID) {
    if (std::optional<std::string> value = fuse_root_xattr(req, name)) {
      reply_xattr_value(req, *value, size);
      return;
    }
  }
  std::string value;
  int error = interruptible(req, [&](const CancelToken& cancel) {
    return context(req).filesystem->get_xattr(ino, name, value, cancel);
  });
  if (error != 0) {
    fuse_reply_err(req, -error);
    return;
  }
  reply_xattr_value(req, value, size);
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  std::vector<std::string> names;
  int error = context(req).filesystem->list_xattrs(ino, names);
  if (error != 0) {
    fuse_reply_err(req, -error);
    return;
  }
  if (ino == FUSE_ROOT_ID && context(req).passthrough != nullptr) {
    for (const char* name : {kPassthroughXattr, kBackingFilesXattr, kOpenFilesXattr})
      names.emplace_back(name);
  }
  std::string list;
  for (const std::string& name : names) list.append(name).push_back('\0');
  reply_xattr_value(req, list, size);
}

void op_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if (Passthrough* passthrough = context(req).passthrough) passthrough->end_open(req, ino);
  // The last user closes its cache file and ends its hold on the object.
  auto* handle = reinterpret_cast<FileHandle*>(fi->fh);
  context(req).open_handles.remove(handle);
  handle->let_go();
  fuse_reply_err(req, 0);
}

void op_statfs(fuse_req_t req, fuse_ino_t) {
  // df shows the cache: its limit as the size, what it holds as used.
  Filesystem::Space space = context(req).filesystem->space();
  struct statvfs st {};
  st.f_bsize = st.f_frsize = 4096;
  std::uint64_t total = std::max(space.total, space.used);
  st.f_blocks = total / 4096;
  st.f_bfree = st.f_bavail = (total - space.used) / 4096;
  st.f_namemax = 255;
  st.f_flag = ST_RDONLY;
  fuse_reply_statfs(req, &st);
}

// Every write operation: the tree is read-only.
void erofs_mknod(fuse_req_t req, fuse_ino_t, const char*, mode_t, dev_t) {
  fuse_reply_err(req, EROFS);
}
void erofs_mkdir(fuse_req_t req, fuse_ino_t, const char*, mode_t) { fuse_reply_err(req, EROFS); }
void erofs_unlink(fuse_req_t req, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void erofs_symlink(fuse_req_t req, const char*, fuse_ino_t, const char*) {
  fuse_reply_err(req, EROFS);
}
void erofs_rename(fuse_req_t req, fuse_ino_t, const char*, fuse_ino_t, const char*, unsigned) {
  fuse_reply_err(req, EROFS);
}
void erofs_link(fuse_req_t req, fuse_ino_t, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void erofs_setattr(fuse_req_t req, fuse_ino_t, struct stat*, int, fuse_file_info*) {
  fuse_reply_err(req, EROFS);
}
void erofs_create(fuse_req_t req, fuse_ino_t, const char*, mode_t, fuse_file_info*) {
  fuse_reply_err(req, EROFS);
}
void erofs_write(fuse_req_t req, fuse_ino_t, const char*, size_t, off_t, fuse_file_info*) {
  fuse_reply_err(req, EROFS);
}
void erofs_setxattr(fuse_req_t req, fuse_ino_t, const char*, const char*, size_t, int) {
  fuse_reply_err(req, EROFS);
}
void erofs_removexattr(fuse_req_t req, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }

fuse_lowlevel_ops make_operations() {
  fuse_lowlevel_ops ops{};
  ops.init = op_init;
  ops.lookup = op_lookup;
  ops.getattr = op_getattr;
  ops.forget = op_forget;
  ops.forget_multi = op_forget_multi;
  ops.opendir = op_opendir;
  ops.readdir = op_readdir;
  ops.releasedir = op_releasedir;
  ops.open = op_open;
  ops.read = op_read;
  ops.release = op_release;
  ops.statfs = op_statfs;
  ops.getxattr = op_getxattr;
  ops.listxattr = op_listxattr;
  ops.mknod = erofs_mknod;
  ops.mkdir = erofs_mkdir;
  ops.unlink = erofs_unlink;
  ops.rmdir = erofs_unlink;
  ops.symlink = erofs_symlink;
  ops.rename = erofs_rename;
  ops.link = erofs_link;
  ops.setattr = erofs_setattr;
  ops.create = erofs_create;
  ops.write = erofs_write;
  ops.setxattr = erofs_setxattr;
  ops.removexattr = erofs_removexattr;
  return ops;
}

}  // namespace

const fuse_lowlevel_ops& kacheryfs_operations() {
  static const fuse_lowlevel_ops ops = make_operations();
  return ops;
}

}  // namespace kacheryfs
