#include "app/client_config.h"

namespace kacheryfs {

DaemonClientConfig client_config_from(const MountOptions& options, std::size_t node) {
  DaemonClientConfig config;
  config.address = node < options.nodes.size() ? options.nodes[node] : options.daemon;
  config.auth_file =
      node < options.node_auth_files.size() ? options.node_auth_files[node] : options.auth_file;
  config.timeouts = {options.connect_timeout, options.timeout, options.timeout,
                     options.low_speed_limit, options.low_speed_time};
  config.retries = options.retries;
  config.channel = options.channel;
  config.load_timeout = options.load_timeout;
  return config;
}

}  // namespace kacheryfs
