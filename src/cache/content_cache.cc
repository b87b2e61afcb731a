#include "cache/content_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <system_error>

#include "kachery/hash_name.h"

namespace kacheryfs {
namespace fs = std::filesystem;

namespace {

std::vector<std::string> directory_names(const fs::path& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* e = readdir(d)) {
    std::string_view name = e->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  closedir(d);
  return names;
}

// A directory of the storage layout's levels: two lower-case hex digits.
bool is_level_name(const std::string& name) { return name.size() == 2 && is_lower_hex(name); }

// Temp files are named <sha1>.<pid>.<counter>.tmp, so a new process can tell which
// leftovers belong to processes that no longer run.
std::string temp_name(std::string_view sha1) {
  static std::atomic<std::uint64_t> counter{0};
  std::ostringstream name;
  name << sha1 << '.' << getpid() << '.' << counter.fetch_add(1) << ".tmp";
  return name.str();
}

}  // namespace

ContentCache::ContentCache(fs::path root_dir, bool read_only) : layout_(std::move(root_dir)) {
  if (read_only) {
    if (!fs::is_directory(layout_.root()))
      throw std::system_error(ENOENT, std::generic_category(), "cache dir " + root().string());
    layout_ = CacheLayout(layout_.root());
    return;
  }
  fs::create_directories(layout_.complete_dir());
  fs::create_directories(layout_.tmp_dir());
  fs::create_directories(layout_.meta_dir());
  layout_ = CacheLayout(layout_.root());  // the root exists now: keep it open
  if (access(root().c_str(), W_OK) != 0) {
    throw std::system_error(errno, std::generic_category(), "cache dir " + root().string());
  }
  remove_stale_temp_files();
  move_legacy_objects();
}

void ContentCache::move_legacy_objects() const {
  const fs::path legacy = layout_.legacy_complete_dir();
  std::error_code ec;
  if (!fs::is_directory(legacy, ec)) return;
  std::size_t moved = 0, left = 0;
  for (const std::string& a : directory_names(legacy)) {
    if (!is_level_name(a)) continue;
    for (const std::string& b : directory_names(legacy / a)) {
      if (!is_level_name(b)) continue;
      for (const std::string& c : directory_names(legacy / a / b)) {
        if (!is_level_name(c)) continue;
        fs::path dir = legacy / a / b / c;
        for (const std::string& name : directory_names(dir)) {
          if (!is_sha1_name(name) || !name.starts_with(a + b + c)) continue;
          fs::path target = complete_path(name);
          fs::create_directories(target.parent_path(), ec);
          if (layout_.rename_file(dir / name, target) == 0)
            ++moved;
          else
            ++left;
        }
        rmdir(dir.c_str());  // only when empty, as every rmdir here
      }
      rmdir((legacy / a / b).c_str());
    }
    rmdir((legacy / a).c_str());
  }
  if (rmdir(legacy.c_str()) != 0) ++left;
  if (moved > 0 || left > 0) {
    spdlog::info("cache {}: moved {} objects from sha1/ab/cd/ef/ to objects/ab/{}", root().string(),
                 moved, left > 0 ? "; " + legacy.string() + " still holds other files" : "");
  }
}

void ContentCache::remove_stale_temp_files() const {
  for (const std::string& name : directory_names(layout_.tmp_dir())) {
    // <sha1>.<pid>.<n>.tmp
    std::size_t first = name.find('.');
    std::size_t second = name.find('.', first + 1);
    bool stale = true;
    if (first != std::string::npos && second != std::string::npos) {
      pid_t pid = static_cast<pid_t>(
          std::strtol(name.substr(first + 1, second - first - 1).c_str(), nullptr, 10));
      stale = pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH);
    }
    if (stale) layout_.remove_file(layout_.tmp_dir() / name);
  }
}

bool ContentCache::lock_for_mount(const std::string& mountpoint, LockHolder* holder) {
  fs::path path = layout_.lock_path();
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    holder->pid = std::string("cannot open ") + path.string() + ": " + std::strerror(errno);
    holder->mountpoint.clear();
    return false;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char text[4200] = {};
    ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
    close(fd);
    std::istringstream lines(std::string(text, n > 0 ? static_cast<std::size_t>(n) : 0));
    std::getline(lines, holder->pid);
    std::getline(lines, holder->mountpoint);
    if (holder->pid.empty()) holder->pid = "?";
    return false;
  }
  std::string record = std::to_string(getpid()) + "\n" + mountpoint + "\n";
  if (ftruncate(fd, 0) != 0 || pwrite(fd, record.data(), record.size(), 0) < 0) {
    // The lock is what matters; the record is for the message of a second mount.
  }
  return true;  // fd stays open for the life of the process
}

void ContentCache::record_mount_pid(const std::string& mountpoint) const {
  fs::path path = layout_.lock_path();
  std::string record = std::to_string(getpid()) + "\n" + mountpoint + "\n";
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  if (ftruncate(fd, 0) != 0 || pwrite(fd, record.data(), record.size(), 0) < 0) {
  }
  close(fd);
}

bool ContentCache::mount_holds_lock() const {
  struct stat st {};
  if (stat(layout_.lock_path().c_str(), &st) != 0) return false;
  // Lines like "3: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; waiters have "->".
  std::ifstream locks("/proc/locks");
  for (std::string line; std::getline(locks, line);) {
    if (line.find("->") != std::string::npos || line.find(" FLOCK ") == std::string::npos) continue;
    std::istringstream words(line);
    for (std::string word; words >> word;) {
      unsigned major_number = 0, minor_number = 0;
      unsigned long long inode = 0;
      char end = 0;
      if (std::sscanf(word.c_str(), "%x:%x:%llu%c", &major_number, &minor_number, &inode, &end) ==
              3 &&
          major_number == major(st.st_dev) && minor_number == minor(st.st_dev) &&
          inode == st.st_ino)
        return true;
    }
  }
  return false;
}

std::optional<std::uint64_t> ContentCache::complete_size(std::string_view sha1) const {
  struct stat st {};
  if (!layout_.stat_file(complete_path(sha1), &st) || !S_ISREG(st.st_mode)) return std::nullopt;
  return static_cast<std::uint64_t>(st.st_size);
}

Result<UniqueFd> ContentCache::open_complete(std::string_view sha1) const {
  int fd = layout_.open_file(complete_path(sha1), O_RDONLY);
  if (fd < 0) return fail(fd);
  return UniqueFd(fd);
}

std::vector<std::string> ContentCache::list_level(std::string_view prefix) const {
  if (layout_.legacy()) {
    fs::path dir = layout_.legacy_complete_dir();
    for (std::size_t i = 0; i < prefix.size(); i += 2) dir /= std::string(prefix.substr(i, 2));
    std::vector<std::string> names;
    for (std::string& name : directory_names(dir)) {
      bool wanted =
          prefix.size() == 6 ? is_sha1_name(name) && name.starts_with(prefix) : is_level_name(name);
      if (wanted) names.push_back(std::move(name));
    }
    return names;
  }
  if (prefix.empty()) {
    std::vector<std::string> names = directory_names(layout_.complete_dir());
    std::erase_if(names, [&](const std::string& name) { return !is_level_name(name); });
    return names;
  }
  // The levels below the first are spans of the names in objects/<first two>/.
  std::set<std::string> names;
  for (std::string& name :
       directory_names(layout_.complete_dir() / std::string(prefix.substr(0, 2)))) {
    if (!is_sha1_name(name) || !name.starts_with(prefix)) continue;
    names.insert(prefix.size() == 6 ? std::move(name) : name.substr(prefix.size(), 2));
  }
  return {names.begin(), names.end()};
}

std::vector<std::string> ContentCache::list_all() const {
  std::vector<std::string> all;
  if (layout_.legacy()) {
    for (const std::string& a : list_level(""))
      for (const std::string& b : list_level(a))
        for (const std::string& c : list_level(a + b))
          for (std::string& name : list_level(a + b + c)) all.push_back(std::move(name));
    return all;
  }
  for (const std::string& a : list_level("")) {
    for (std::string& name : directory_names(layout_.complete_dir() / a))
      if (is_sha1_name(name) && name.starts_with(a)) all.push_back(std::move(name));
  }
  return all;
}

std::optional<std::string> ContentCache::read_meta(std::string_view key) const {
  return layout_.read_file(layout_.meta_dir() / std::string(key));
}

void ContentCache::write_meta(std::string_view key, std::string_view value) const {
  fs::path final_path = layout_.meta_dir() / std::string(key);
  fs::path temp_path = layout_.tmp_dir() / temp_name("meta");
  UniqueFd out(layout_.open_file(temp_path, O_WRONLY | O_CREAT | O_EXCL, 0644));
  if (out.get() < 0) return;
  bool written =
      ::write(out.get(), value.data(), value.size()) == static_cast<ssize_t>(value.size());
  out.reset();
  if (!written || layout_.rename_file(temp_path, final_path) != 0) layout_.remove_file(temp_path);
}

std::optional<std::uint64_t> ContentCache::partial_size(std::string_view sha1) const {
  struct stat st {};
  if (!layout_.stat_file(layout_.page_map(sha1), &st)) return std::nullopt;
  if (!layout_.stat_file(layout_.partial_data(sha1), &st) || !S_ISREG(st.st_mode))
    return std::nullopt;
  return static_cast<std::uint64_t>(st.st_size);
}

int ContentCache::adopt(std::string_view sha1, const fs::path& verified_file) const {
  fs::path final_path = complete_path(sha1);
  std::error_code ec;
  fs::create_directories(final_path.parent_path(), ec);
  if (ec) return -ec.value();
  return layout_.rename_file(verified_file, final_path);
}

Result<std::unique_ptr<ContentCache::Transaction>> ContentCache::begin(
    std::string_view sha1) const {
  fs::path temp_path = layout_.tmp_dir() / temp_name(sha1);
  int fd = layout_.open_file(temp_path, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) return fail(fd, "cannot create a temp file in " + layout_.tmp_dir().string());
  return std::unique_ptr<Transaction>(new Transaction(layout_, fd, temp_path, complete_path(sha1)));
}

ContentCache::Transaction::Transaction(const CacheLayout& layout, int fd, fs::path temp_path,
                                       fs::path final_path)
    : layout_(layout),
      fd_(fd),
      temp_path_(std::move(temp_path)),
      final_path_(std::move(final_path)) {}

ContentCache::Transaction::~Transaction() {
  if (fd_ >= 0) close(fd_);
  if (!committed_) layout_.remove_file(temp_path_);
}

int ContentCache::Transaction::append(const char* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = write(fd_, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
    size_ += static_cast<std::uint64_t>(n);
  }
  return 0;
}

int ContentCache::Transaction::commit_as(std::string_view sha1, const CacheLayout& layout) {
  final_path_ = layout.complete_path(sha1);
  return commit();
}

int ContentCache::Transaction::commit() {
  if (fdatasync(fd_) != 0) return -errno;
  if (close(fd_) != 0) {
    fd_ = -1;
    return -errno;
  }
  fd_ = -1;
  std::error_code ec;
  fs::create_directories(final_path_.parent_path(), ec);
  if (ec) return -ec.value();
  if (int error = layout_.rename_file(temp_path_, final_path_); error != 0) return error;
  committed_ = true;
  return 0;
}

}  // namespace kacheryfs
