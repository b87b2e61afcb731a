// Where the kachery daemon is: parsed from HOST[:PORT] or an http(s):// URL, with the
// conventions of the kachery tools (default port 20431; a port ending in 443 speaks HTTPS).
// Plain data, so the options layer can validate it and the daemon client can use it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/result.h"

namespace kacheryfs {

inline constexpr std::uint16_t kDefaultDaemonPort = 20431;

struct DaemonAddress {
  bool tls = false;
  std::string host;
  std::uint16_t port = kDefaultDaemonPort;
  std::string base_path;  // URL path prefix without trailing '/', usually empty

  std::string to_string() const;  // e.g. "http://127.0.0.1:20431"
};

// Parses "HOST", "HOST:PORT", "[v6]:PORT", "http://HOST[:PORT][/prefix]", "https://...".
// An empty source means KACHERY_DAEMON_HOST / KACHERY_DAEMON_PORT (given here as
// default_host / default_port, either may be empty). A failure is -EINVAL with a one-line
// reason.
Result<DaemonAddress> parse_daemon_address(std::string_view source, std::string_view default_host,
                                           std::string_view default_port);

// Parses a comma-separated list of nodes ("host1:20431,http://host2:20431"), each as
// parse_daemon_address does; an empty source is the one node of the environment. A failure
// is -EINVAL with a one-line reason naming the entry.
Result<std::vector<DaemonAddress>> parse_daemon_addresses(std::string_view source,
                                                          std::string_view default_host,
                                                          std::string_view default_port);

}  // namespace kacheryfs
