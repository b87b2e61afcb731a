// printable(): user or network text made safe to quote in a one-line message: control
// characters and bytes outside printable ASCII become \n, \t or \xNN, and long text is cut.
// Used wherever an error or log line repeats what it was given.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace kacheryfs {

inline std::string printable(std::string_view text, std::size_t limit = 200) {
  std::string out;
  for (std::size_t i = 0; i < text.size() && out.size() < limit; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c >= 0x7f) {
      char escaped[5];
      std::snprintf(escaped, sizeof(escaped), "\\x%02x", c);
      out += escaped;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (out.size() >= limit) out += "...";
  return out;
}

}  // namespace kacheryfs
