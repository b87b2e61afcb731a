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

std::optional<DaemonAddress> parse_daemon_address(std::string_view source,
                                                  std::string_view default_host,
                                                  std::string_view default_port,
                                                  std::string* error) {
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
    *error = "unsupported URL scheme in '" + printable(source) + "' (use http:// or https://)";
    return std::nullopt;
  }
  if (std::size_t slash = rest.find('/'); slash != std::string_view::npos) {
    if (!scheme_given) {
      *error = "'" + printable(source) + "' is not HOST[:PORT] or an http(s):// URL";
      return std::nullopt;
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
      *error = "unbalanced '[' in '" + printable(source) + "'";
      return std::nullopt;
    }
    std::string_view after = host.substr(close + 1);
    if (after.starts_with(':'))
      port_text = after.substr(1);
    else if (!after.empty()) {
      *error = "unexpected text after ']' in '" + printable(source) + "'";
      return std::nullopt;
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
    *error = "no host in '" + printable(source) + "'";
    return std::nullopt;
  }
  // A host name, an IPv4 address or an IPv6 one (with its zone): letters, digits and
  // - . _ : % only.
  if (!std::all_of(address.host.begin(), address.host.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == ':' || c == '%';
      })) {
    *error = "'" + printable(address.host) + "' is not a host name or address";
    return std::nullopt;
  }
  if (!port_text.empty()) {
    auto port = parse_port(port_text);
    if (!port) {
      *error = "bad port '" + printable(port_text) + "' (expected 1-65535)";
      return std::nullopt;
    }
    address.port = *port;
  } else if (scheme_given) {
    address.port = address.tls ? 443 : 80;
  }
  // The daemon speaks HTTPS on any port whose number ends in 443.
  if (!scheme_given && address.port % 1000 == 443) address.tls = true;
  return address;
}

std::vector<DaemonAddress> parse_daemon_addresses(std::string_view source,
                                                  std::string_view default_host,
                                                  std::string_view default_port,
                                                  std::string* error) {
  std::vector<DaemonAddress> nodes;
  if (source.empty()) {
    if (auto address = parse_daemon_address(source, default_host, default_port, error))
      nodes.push_back(*address);
    return nodes;
  }
  constexpr std::size_t kMaxNodes = 16;
  for (std::size_t begin = 0; begin <= source.size();) {
    std::size_t comma = std::min(source.find(',', begin), source.size());
    std::string_view entry = source.substr(begin, comma - begin);
    begin = comma + 1;
    if (entry.empty()) {
      *error = "empty node in '" + printable(source) + "' (nodes are separated by one comma)";
      return {};
    }
    std::string entry_error;
    auto address = parse_daemon_address(entry, default_host, default_port, &entry_error);
    if (!address) {
      *error = nodes.empty() && comma == source.size()
                   ? entry_error
                   : "node " + std::to_string(nodes.size() + 1) + ": " + entry_error;
      return {};
    }
    if (std::any_of(nodes.begin(), nodes.end(), [&](const DaemonAddress& known) {
          return known.to_string() == address->to_string();
        })) {
      *error = "node " + printable(address->to_string()) + " is listed twice";
      return {};
    }
    nodes.push_back(*address);
    if (nodes.size() > kMaxNodes) {
      *error = "more than " + std::to_string(kMaxNodes) + " nodes in the source";
      return {};
    }
  }
  return nodes;
}

}  // namespace kacheryfs
