#include "auth_codes.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <random>

namespace kachery_emulator {

namespace {
std::string random_letters(std::size_t length) {
  static std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kLetters[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string s;
  for (std::size_t i = 0; i < length; ++i) s.push_back(kLetters[rng() % 52]);
  return s;
}
}  // namespace

AuthCodes::AuthCodes(std::filesystem::path storage_root, std::chrono::milliseconds period)
    : file_(storage_root / "client-auth"), period_(period) {
  rotate();
  rotator_ = std::thread([this] { rotation_loop(); });
}

AuthCodes::~AuthCodes() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  stop_.notify_all();
  rotator_.join();
}

bool AuthCodes::accepts(const std::string& code) const {
  std::lock_guard lock(mutex_);
  return code == current_ || (!previous_.empty() && code == previous_);
}

void AuthCodes::rotate() {
  std::string code = random_letters(12);
  std::filesystem::path temp = file_.string() + ".tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out << code;
  }
  chmod(temp.c_str(), 0640);
  {
    std::lock_guard lock(mutex_);
    previous_ = current_;
    current_ = code;
  }
  // As the daemon does: the file is briefly missing and its inode changes.
  unlink(file_.c_str());
  rename(temp.c_str(), file_.c_str());
}

void AuthCodes::rotation_loop() {
  std::unique_lock lock(mutex_);
  while (!stop_.wait_for(lock, period_, [this] { return stopping_; })) {
    lock.unlock();
    rotate();
    lock.lock();
  }
}

}  // namespace kachery_emulator
