#include "auth_code_file.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

namespace kacheryfs {

AuthCodeFile::AuthCodeFile(std::string path) : path_(std::move(path)) {}

bool AuthCodeFile::read_locked() {
  struct stat st {};
  if (stat(path_.c_str(), &st) != 0) return false;
  std::ifstream in(path_, std::ios::binary);
  if (!in) return false;
  std::ostringstream text;
  text << in.rdbuf();
  std::string code = text.str();
  while (!code.empty() && (code.back() == '\n' || code.back() == '\r' || code.back() == ' ')) {
    code.pop_back();
  }
  if (code.empty()) return false;  // caught between truncate and write
  code_ = std::move(code);
  inode_ = st.st_ino;
  mtime_ = st.st_mtim;
  return true;
}

std::string AuthCodeFile::current() {
  if (!enabled()) return {};
  std::lock_guard lock(mutex_);
  struct stat st {};
  bool changed =
      stat(path_.c_str(), &st) == 0 && (st.st_ino != inode_ || st.st_mtim.tv_sec != mtime_.tv_sec ||
                                        st.st_mtim.tv_nsec != mtime_.tv_nsec);
  if (code_.empty() || changed) read_locked();
  return code_;
}

std::string AuthCodeFile::refresh() {
  if (!enabled()) return {};
  std::lock_guard lock(mutex_);
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (read_locked()) return code_;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  spdlog::warn("cannot read the auth code from {}", path_);
  return code_;
}

}  // namespace kacheryfs
