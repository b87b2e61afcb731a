// The wiring from a mount's parsed options to the daemon client's configuration, one per
// node: the one place where support/options meets daemon-client/ (for kacheryfs and
// kacheryfs-cache alike).
#pragma once

#include <cstddef>

#include "daemon_client.h"
#include "support/options.h"

namespace kacheryfs {

// The client configuration that the options describe for one of the nodes; node 0 is the
// first.
DaemonClientConfig client_config_from(const MountOptions& options, std::size_t node = 0);

}  // namespace kacheryfs
