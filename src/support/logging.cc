#include "support/logging.h"

#include <signal.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <syslog.h>

#include <atomic>
#include <cstdio>
#include <mutex>

namespace kacheryfs {

namespace {
void install(std::shared_ptr<spdlog::logger> logger, const std::string& level) {
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
}
std::atomic<bool> reopen_requested{false};
void on_hangup(int) { reopen_requested = true; }

// Appends lines to a file, and reopens it (by name) on the first line after a SIGHUP, so
// that logrotate can move the old file away.
class ReopeningFileSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit ReopeningFileSink(std::string path) : path_(std::move(path)) { open(); }
  ~ReopeningFileSink() override {
    if (file_ != nullptr) std::fclose(file_);
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& message) override {
    if (reopen_requested.exchange(false)) open();
    if (file_ == nullptr) return;
    spdlog::memory_buf_t formatted;
    formatter_->format(message, formatted);
    std::fwrite(formatted.data(), 1, formatted.size(), file_);
  }
  void flush_() override {
    if (file_ != nullptr) std::fflush(file_);
  }

 private:
  void open() {
    if (file_ != nullptr) std::fclose(file_);
    file_ = std::fopen(path_.c_str(), "a");
  }
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace

void log_to_file(const std::string& path, const std::string& level) {
  auto logger =
      std::make_shared<spdlog::logger>("kacheryfs-file", std::make_shared<ReopeningFileSink>(path));
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e kacheryfs[%P]: %l: %v");
  install(std::move(logger), level);
  signal(SIGHUP, on_hangup);
}

void log_to_stderr(const std::string& level) {
  auto logger = spdlog::stderr_logger_mt("kacheryfs-stderr");
  logger->set_pattern("kacheryfs: %^%l%$: %v");
  install(std::move(logger), level);
}

void log_to_syslog(const std::string& level) {
  auto logger = spdlog::syslog_logger_mt("kacheryfs-syslog", "kacheryfs", LOG_PID, LOG_DAEMON);
  logger->set_pattern("%l: %v");
  install(std::move(logger), level);
}

}  // namespace kacheryfs
