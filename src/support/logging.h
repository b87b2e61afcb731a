// spdlog set-up for kacheryfs: "kacheryfs: ..." lines on stderr in the foreground, syslog
// (daemon facility) once daemonized, or a file (-o log_file=, or when there is no syslog
// socket) that is reopened on SIGHUP, for logrotate.
#pragma once

#include <string>

namespace kacheryfs {

void log_to_stderr(const std::string& level);
void log_to_syslog(const std::string& level);
// Appends to path; installs a SIGHUP handler after which the next log line reopens it.
void log_to_file(const std::string& path, const std::string& level);

}  // namespace kacheryfs
