#include "support/daemon_address.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "support/printable.h"

namespace kacheryfs {

namespace {

std::optional<std::uint16_t> parse_port(std::string_view text) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value == 0 || value > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(value);
}

}  // namespace

std::string DaemonAddress::to_string() const {
  bool v6 = host.find(':') != std::string::npos;
  return std::string(tls ? "https://" : "http://") + (v6 ? "[" + host + "]" : host) + ":" +
         std::to_string(port) + base_path;
}

Result<DaemonAddress> parse_daemon_address(std::string_view source, std::string_view default_host,
                                           std::string_view default_port) {
  DaemonAddress address;
  std::string_view rest = source;
  bool scheme_given = false;
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
    scheme_given = true;
  } else if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
    address.tls = true;
    scheme_given = true;
  } else if (rest.find("://") != std::string_view::npos) {
    return fail(-EINVAL,
                "unsupported URL scheme in '" + printable(source) + "' (use http:// or https://)");
  }
  if (std::size_t slash = rest.find('/'); slash != std::string_view::npos) {
    if (!scheme_given) {
      return fail(-EINVAL, "'" + printable(source) + "' is not HOST[:PORT] or an http(s):// URL");
    }
    std::string_view path = rest.substr(slash);
    while (path.ends_with('/')) path.remove_suffix(1);
    address.base_path = std::string(path);
    rest = rest.substr(0, slash);
  }
  std::string_view host = rest;
  std::string_view port_text;
  if (host.starts_with('[')) {
    std::size_t close = host.find(']');
    if (close == std::string_view::npos) {
      return fail(-EINVAL, "unbalanced '[' in '" + printable(source) + "'");
    }
    std::string_view after = host.substr(close + 1);
    if (after.starts_with(':'))
      port_text = after.substr(1);
    else if (!after.empty()) {
      return fail(-EINVAL, "unexpected text after ']' in '" + printable(source) + "'");
    }
    host = host.substr(1, close - 1);
  } else if (std::size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    port_text = host.substr(colon + 1);
    host = host.substr(0, colon);
  }
  if (source.empty()) host = default_host.empty() ? std::string_view("localhost") : default_host;
  if (port_text.empty() && !scheme_given) port_text = default_port;
  address.host = std::string(host);
  if (address.host.empty()) {
    return fail(-EINVAL, "no host in '" + printable(source) + "'");
  }
  // A host name, an IPv4 address or an IPv6 one (with its zone): letters, digits and
  // - . _ : % only.
  if (!std::all_of(address.host.begin(), address.host.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == ':' || c == '%';
      })) {
    return fail(-EINVAL, "'" + printable(address.host) + "' is not a host name or address");
  }
  if (!port_text.empty()) {
    auto port = parse_port(port_text);
    if (!port) {
      return fail(-EINVAL, "bad port '" + printable(port_text) + "' (expected 1-65535)");
    }
    address.port = *port;
  } else if (scheme_given) {
    address.port = address.tls ? 443 : 80;
  }
  // The daemon speaks HTTPS on any port whose number ends in 443.
  if (!scheme_given && address.port % 1000 == 443) address.tls = true;
  return address;
}

Result<std::vector<DaemonAddress>> parse_daemon_addresses(std::string_view source,
                                                          std::string_view default_host,
                                                          std::string_view default_port) {
  std::vector<DaemonAddress> nodes;
  if (source.empty()) {
    auto address = parse_daemon_address(source, default_host, default_port);
    if (!address) return address.failure();
    nodes.push_back(*address);
    return nodes;
  }
  constexpr std::size_t kMaxNodes = 16;
  for (std::size_t begin = 0; begin <= source.size();) {
    std::size_t comma = std::min(source.find(',', begin), source.size());
    std::string_view entry = source.substr(begin, comma - begin);
    begin = comma + 1;
    if (entry.empty()) {
      return fail(-EINVAL,
                  "empty node in '" + printable(source) + "' (nodes are separated by one comma)");
    }
    auto address = parse_daemon_address(entry, default_host, default_port);
    if (!address) {
      const std::string& why = address.detail();
      return fail(-EINVAL, nodes.empty() && comma == source.size()
                               ? why
                               : "node " + std::to_string(nodes.size() + 1) + ": " + why);
    }
    if (std::any_of(nodes.begin(), nodes.end(), [&](const DaemonAddress& known) {
          return known.to_string() == address->to_string();
        })) {
      return fail(-EINVAL, "node " + printable(address->to_string()) + " is listed twice");
    }
    nodes.push_back(*address);
    if (nodes.size() > kMaxNodes) {
      return fail(-EINVAL, "more than " + std::to_string(kMaxNodes) + " nodes in the source");
    }
  }
  return nodes;
}

}  // namespace kacheryfs
