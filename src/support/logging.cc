#include "support/logging.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <syslog.h>

namespace kacheryfs {

namespace {
void install(std::shared_ptr<spdlog::logger> logger, const std::string& level) {
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
}
}  // namespace

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
