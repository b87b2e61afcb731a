// Starts kachery-daemon-emulator as a child process on a free loopback port for the
// client tests, and kills exactly that process (by PID) when done.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace kacheryfs::testing {

class EmulatorProcess {
 public:
  explicit EmulatorProcess(std::vector<std::string> flags = {});
  ~EmulatorProcess();
  EmulatorProcess(const EmulatorProcess&) = delete;
  EmulatorProcess& operator=(const EmulatorProcess&) = delete;

  // Stores bytes straight into the storage dir; returns their sha1.
  std::string put(const std::string& bytes) const;
  void stop();
  void restart(std::vector<std::string> flags);

  std::uint16_t port() const { return port_; }
  const std::filesystem::path& storage() const { return storage_; }
  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path auth_file() const { return storage_ / "client-auth"; }

 private:
  void start();
  std::filesystem::path dir_;
  std::filesystem::path storage_;
  std::vector<std::string> flags_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

}  // namespace kacheryfs::testing
