// libFuzzer target: the mount's source (HOST[:PORT] or URL) and the environment's host and
// port, split at the first two NULs.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "support/daemon_address.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view all(reinterpret_cast<const char*>(data), size);
  std::string_view parts[3];
  for (auto& part : parts) {
    std::size_t nul = all.find('\0');
    part = all.substr(0, nul);
    all = nul == std::string_view::npos ? std::string_view() : all.substr(nul + 1);
  }
  auto address =
      kacheryfs::parse_daemon_address(parts[0], std::string(parts[1]), std::string(parts[2]));
  if (address) {
    if (address->port == 0) __builtin_trap();
    (void)address->to_string();
  } else if (address.detail().empty() || address.detail().find('\n') != std::string::npos) {
    __builtin_trap();  // a refusal always says why, in one line
  }
  return 0;
}
