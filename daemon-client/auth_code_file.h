// The daemon's client auth code, read from a file (the daemon's client-auth, or a file
// holding a stable read code). The daemon rotates its file every 180 s by unlink+rename,
// so the file is re-read whenever it changed, on demand after a 403, and a brief
// ENOENT is waited out. Thread-safe. Used by DaemonClient.
#pragma once

#include <sys/types.h>

#include <ctime>
#include <mutex>
#include <string>

namespace kacheryfs {

class AuthCodeFile {
 public:
  explicit AuthCodeFile(std::string path);  // "" means: send no auth code

  bool enabled() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  // The current code, re-read if the file changed since the last read.
  std::string current();
  // Re-reads the file now (after a 403); waits up to ~1 s for a file that is briefly gone.
  std::string refresh();

 private:
  bool read_locked();
  std::string path_;
  std::mutex mutex_;
  std::string code_;
  ino_t inode_ = 0;
  timespec mtime_{};
};

}  // namespace kacheryfs
