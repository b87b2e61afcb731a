#include "emulator_process.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "kachery/hash_name.h"
#include "kachery/sha1_hasher.h"

namespace kacheryfs::testing {

namespace fs = std::filesystem;

EmulatorProcess::EmulatorProcess(std::vector<std::string> flags) : flags_(std::move(flags)) {
  char name[] = "/tmp/kfs-client-test-XXXXXX";
  dir_ = mkdtemp(name);
  storage_ = dir_ / "storage";
  fs::create_directories(storage_);
  start();
}

EmulatorProcess::~EmulatorProcess() {
  stop();
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

void EmulatorProcess::start() {
  fs::path port_file = dir_ / "port";
  fs::remove(port_file);
  std::vector<std::string> args = {
      KACHERY_EMULATOR_BIN,  "--storage-dir", storage_.string(), "--port",
      std::to_string(port_), "--port-file",   port_file.string()};
  args.insert(args.end(), flags_.begin(), flags_.end());
  pid_ = fork();
  if (pid_ == 0) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (std::freopen("/dev/null", "w", stdout) == nullptr) _exit(126);
    execv(argv[0], argv.data());
    _exit(127);
  }
  for (int i = 0; i < 500; ++i) {
    std::ifstream in(port_file);
    unsigned port = 0;
    if (in >> port && port != 0) {
      port_ = static_cast<std::uint16_t>(port);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  throw std::runtime_error("the emulator did not start");
}

void EmulatorProcess::stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void EmulatorProcess::restart(std::vector<std::string> flags) {
  stop();
  flags_ = std::move(flags);
  start();
}

std::string EmulatorProcess::put(const std::string& bytes) const {
  std::string sha1 = sha1_hex_of(bytes);
  fs::path path = storage_ / storage_relpath(sha1);
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
  return sha1;
}

}  // namespace kacheryfs::testing
