#include "fetch/daemon_state.h"

#include <spdlog/spdlog.h>

namespace kacheryfs {

void DaemonState::note(const FetchResult& result) {
  bool unreachable =
      result.status == FetchStatus::kUnreachable || result.status == FetchStatus::kTimeout;
  if (result.status == FetchStatus::kCancelled || result.status == FetchStatus::kLocalError) return;
  bool was_online = online_.exchange(!unreachable);
  if (was_online && unreachable) {
    spdlog::warn(
        "daemon {} is offline ({}); cached files stay readable, others fail with EIO until it is "
        "back",
        daemon_, result.detail);
  } else if (!was_online && !unreachable) {
    spdlog::info("daemon {} is back online", daemon_);
  }
}

}  // namespace kacheryfs
