// libFuzzer target: /loadFile's JsonSocket stream ("<length>#<json>..."), fed whole and
// then in two pieces split where the first byte says.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "jsonsocket_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  kacheryfs::JsonSocketParser whole;
  whole.feed(bytes);
  // An error is quoted in the log as one line, whatever the bytes.
  if (whole.error().find_first_of("\r\n") != std::string::npos) __builtin_trap();
  if (size > 0) {
    std::size_t split = data[0] % size;
    kacheryfs::JsonSocketParser pieces;
    pieces.feed(bytes.substr(0, split));
    pieces.feed(bytes.substr(split));
    // Framing does not depend on how the bytes were cut.
    if (pieces.error().empty() != whole.error().empty()) __builtin_trap();
  }
  return 0;
}
