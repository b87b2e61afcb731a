// spdlog set-up for kacheryfs: "kacheryfs: ..." lines on stderr in the foreground, syslog
// (daemon facility) once daemonized.
#pragma once

#include <string>

namespace kacheryfs {

void log_to_stderr(const std::string& level);
void log_to_syslog(const std::string& level);

}  // namespace kacheryfs
