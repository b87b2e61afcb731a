#include "cache/cache_layout.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "kachery/hash_name.h"

namespace kacheryfs {

std::filesystem::path CacheLayout::complete_path(std::string_view sha1) const {
  if (legacy_) return legacy_complete_path(sha1);
  return complete_dir() / std::string(sha1.substr(0, 2)) / std::string(sha1);
}

std::filesystem::path CacheLayout::legacy_complete_path(std::string_view sha1) const {
  return root_ / storage_relpath(sha1);
}

std::string CacheLayout::sha1_of_partial_data(std::string_view file_name) {
  if (file_name.size() != 40 + kDataSuffix.size() || !file_name.ends_with(kDataSuffix)) return "";
  std::string_view sha1 = file_name.substr(0, 40);
  return is_sha1_name(sha1) ? std::string(sha1) : "";
}

CacheLayout::CacheLayout(std::filesystem::path root)
    : root_(std::move(root)),
      legacy_([this] {
        std::error_code ec;
        return !std::filesystem::exists(complete_dir(), ec) &&
               std::filesystem::is_directory(legacy_complete_dir(), ec);
      }()),
      root_fd_(std::make_shared<const UniqueFd>(
          ::open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC))) {}

int CacheLayout::open_file(const std::filesystem::path& path, int flags, unsigned mode) const {
  std::filesystem::path relative = path.lexically_relative(root_);
  if (relative.empty() || *relative.begin() == "..") return -EXDEV;
  UniqueFd opened_now;  // only when the root did not exist at construction
  int root_fd = root_fd_->get();
  if (root_fd < 0) {
    opened_now = UniqueFd(::open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (opened_now.get() < 0) return -errno;
    root_fd = opened_now.get();
  }
  open_how how{};
  how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & O_CREAT) != 0 ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  long fd = syscall(SYS_openat2, root_fd, relative.c_str(), &how, sizeof(how));
  return fd >= 0 ? static_cast<int>(fd) : -errno;
}

bool CacheLayout::stat_file(const std::filesystem::path& path, struct stat* st) const {
  int fd = open_file(path, O_PATH);
  if (fd < 0) return false;
  bool ok = fstat(fd, st) == 0;
  ::close(fd);
  return ok;
}

std::optional<std::string> CacheLayout::read_file(const std::filesystem::path& path) const {
  UniqueFd fd(open_file(path, O_RDONLY));
  if (fd.get() < 0) return std::nullopt;
  std::string content;
  char buffer[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;
    if (n == 0) return content;
    content.append(buffer, static_cast<std::size_t>(n));
  }
}

int CacheLayout::remove_file(const std::filesystem::path& path) const {
  UniqueFd dir(open_file(path.parent_path(), O_PATH | O_DIRECTORY));
  if (dir.get() < 0) return dir.get();
  return unlinkat(dir.get(), path.filename().c_str(), 0) == 0 ? 0 : -errno;
}

int CacheLayout::rename_file(const std::filesystem::path& from,
                             const std::filesystem::path& to) const {
  UniqueFd from_dir(open_file(from.parent_path(), O_PATH | O_DIRECTORY));
  if (from_dir.get() < 0) return from_dir.get();
  UniqueFd to_dir(open_file(to.parent_path(), O_PATH | O_DIRECTORY));
  if (to_dir.get() < 0) return to_dir.get();
  return renameat(from_dir.get(), from.filename().c_str(), to_dir.get(), to.filename().c_str()) == 0
             ? 0
             : -errno;
}

}  // namespace kacheryfs
