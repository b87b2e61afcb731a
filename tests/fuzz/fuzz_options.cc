// libFuzzer target: the command line (any bytes, split into arguments at NUL), with a
// fixed environment.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "support/options.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> args = {"kacheryfs"};
  std::string current;
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      args.push_back(current);
      current.clear();
    } else {
      current.push_back(static_cast<char>(data[i]));
    }
  }
  args.push_back(current);
  auto env = [](const char* name) -> std::optional<std::string> {
    if (std::string(name) == "HOME") return std::string("/nonexistent");
    return std::nullopt;
  };
  auto parsed = kacheryfs::parse_command_line(args, env);
  for (const auto& error : parsed.errors) {
    if (error.find('\n') != std::string::npos) __builtin_trap();  // one line each
  }
  if (parsed.errors.empty()) (void)kacheryfs::describe(parsed.options);
  return 0;
}
