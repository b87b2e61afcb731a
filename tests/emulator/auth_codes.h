// The daemon's client auth codes: a 12-letter code written to STORAGE/client-auth (mode
// 0640), replaced every period by temp file + unlink + rename, with exactly one previous
// code still accepted. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>

namespace kachery_emulator {

class AuthCodes {
 public:
  AuthCodes(std::filesystem::path storage_root, std::chrono::milliseconds period);
  ~AuthCodes();

  bool accepts(const std::string& code) const;

 private:
  void rotate();
  void rotation_loop();

  std::filesystem::path file_;
  std::chrono::milliseconds period_;
  mutable std::mutex mutex_;
  std::string current_;
  std::string previous_;
  bool stopping_ = false;
  std::condition_variable stop_;
  std::thread rotator_;
};

}  // namespace kachery_emulator
