#include "support/mount_table.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>
#include <system_error>

namespace kacheryfs {

namespace {

// A mount point as mountinfo writes it: space, tab, newline and backslash as octal escapes.
std::string unescape_mountinfo(std::string_view field) {
  std::string out;
  auto octal = [&](std::size_t at) { return field[at] >= '0' && field[at] <= '7'; };
  for (std::size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() && octal(i + 1) && octal(i + 2) && octal(i + 3)) {
      out += static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                               (field[i + 3] - '0'));
      i += 3;
    } else {
      out += field[i];
    }
  }
  return out;
}

}  // namespace

std::string canonical_mountpoint(const std::string& path) {
  std::error_code ec;
  auto canonical = std::filesystem::canonical(path, ec);
  return ec ? path : canonical.string();
}

std::optional<std::string> mounted_device(const std::string& canonical_path) {
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::optional<std::string> device;
  for (std::string line; std::getline(mountinfo, line);) {
    // mount id, parent id, major:minor, root, mount point, ...
    std::istringstream fields(line);
    std::string id, parent, major_minor, root, point;
    if (fields >> id >> parent >> major_minor >> root >> point &&
        unescape_mountinfo(point) == canonical_path)
      device = major_minor;  // a later line is a mount on top of an earlier one
  }
  return device;
}

}  // namespace kacheryfs
