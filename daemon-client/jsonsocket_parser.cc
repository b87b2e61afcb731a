#include "jsonsocket_parser.h"

#include <charconv>

#include "support/printable.h"

namespace kacheryfs {

namespace {
constexpr std::size_t kMaxPrefixDigits = 20;
constexpr std::size_t kMaxMessage = 1 << 20;
}  // namespace

std::vector<nlohmann::json> JsonSocketParser::feed(std::string_view bytes) {
  std::vector<nlohmann::json> messages;
  if (!error_.empty()) return messages;
  pending_.append(bytes);
  std::size_t pos = 0;
  while (pos < pending_.size()) {
    std::size_t hash = pending_.find('#', pos);
    if (hash == std::string::npos) {
      if (pending_.size() - pos > kMaxPrefixDigits) error_ = "JsonSocket length prefix too long";
      break;
    }
    if (hash - pos > kMaxPrefixDigits) {
      error_ = "JsonSocket length prefix too long";
      break;
    }
    std::size_t length = 0;
    const char* first = pending_.data() + pos;
    const char* last = pending_.data() + hash;
    auto [end, ec] = std::from_chars(first, last, length);
    if (ec != std::errc() || end != last || first == last) {
      error_ = "bad JsonSocket length prefix '" +
               printable(std::string_view(pending_).substr(pos, hash - pos), 40) + "'";
      break;
    }
    if (length > kMaxMessage) {  // progress and finished messages are tiny: never buffer more
      error_ = "JsonSocket message of " + std::to_string(length) + " bytes (the limit is " +
               std::to_string(kMaxMessage) + ")";
      break;
    }
    if (pending_.size() - (hash + 1) < length) break;  // wait for more bytes
    auto message = nlohmann::json::parse(
        pending_.begin() + static_cast<std::ptrdiff_t>(hash + 1),
        pending_.begin() + static_cast<std::ptrdiff_t>(hash + 1 + length), nullptr, false);
    if (message.is_discarded()) {
      error_ = "JsonSocket message is not JSON";
      break;
    }
    messages.push_back(std::move(message));
    pos = hash + 1 + length;
  }
  pending_.erase(0, pos);
  return messages;
}

}  // namespace kacheryfs
