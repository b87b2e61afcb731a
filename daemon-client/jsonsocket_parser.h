// Incremental parser for the daemon's JsonSocket framing used by /loadFile: a stream of
// "<decimal byte length>#<compact JSON>" messages with no separator. Bytes may arrive
// split anywhere. Used by DaemonClient::load_blob.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kacheryfs {

class JsonSocketParser {
 public:
  // Appends bytes and returns the messages completed by them. On malformed framing or
  // JSON, error() becomes non-empty and no further messages are produced.
  std::vector<nlohmann::json> feed(std::string_view bytes);
  const std::string& error() const { return error_; }
  // True when no partial message is pending.
  bool at_boundary() const { return pending_.empty(); }

 private:
  std::string pending_;
  std::string error_;
};

}  // namespace kacheryfs
