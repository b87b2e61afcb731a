#include "cache/cache_layout.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

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

}  // namespace kacheryfs
