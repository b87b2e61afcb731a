#include "app/tool_flags.h"

#include <cstdlib>
#include <optional>
#include <sstream>
#include <string_view>

#include "support/printable.h"

namespace kacheryfs {

namespace {

struct ToolFlag {
  std::string_view short_name;  // "" if none
  std::string_view long_name;   // "" if none
  std::string_view value;       // the value's name in help; "" = takes no value
  std::string_view help;
  // Applies the flag; returns an error line, or nullopt.
  std::optional<std::string> (*apply)(ToolArgs&, const std::string& value);
};

std::optional<std::string> parse_jobs(ToolArgs& args, const std::string& value) {
  char* end = nullptr;
  unsigned long n = std::strtoul(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || n < 1 || n > 256)
    return "-j takes a number of parallel fetches from 1 to 256, not '" + printable(value) + "'";
  args.jobs = static_cast<unsigned>(n);
  return std::nullopt;
}

// A flag that only sets a field, to true or to its value.
template <bool ToolArgs::*field>
std::optional<std::string> set_true(ToolArgs& args, const std::string&) {
  args.*field = true;
  return std::nullopt;
}
template <std::string ToolArgs::*field>
std::optional<std::string> set_value(ToolArgs& args, const std::string& value) {
  args.*field = value;
  return std::nullopt;
}

constexpr ToolFlag kFlags[] = {
    {"-o", "", "OPT[,OPT...]",
     "the mount's options: cache_dir=, auth_file=, cache_max=, timeout=, ...",
     [](ToolArgs& a, const std::string& v) -> std::optional<std::string> {
       a.option_lists.push_back(v);
       return std::nullopt;
     }},
    {"", "--daemon", "NODE[,NODE...]",
     "the nodes to ask (default: those the cache dir's mount last used)",
     set_value<&ToolArgs::daemon>},
    {"", "--json", "", "print JSON for scripts", set_true<&ToolArgs::json>},
    {"", "--create", "", "make a missing cache dir (else it is an error)",
     set_true<&ToolArgs::create>},
    {"-j", "", "N", "pin: fetch N at once (1 to 256; default 1)", parse_jobs},
    {"", "--from", "FILE", "pin, unpin: read URIs or hashes from FILE, one per line (- is stdin)",
     set_value<&ToolArgs::targets_from>},
    {"-V", "--version", "", "print the version", set_true<&ToolArgs::version>},
    {"-h", "--help", "", "this help", set_true<&ToolArgs::help>},
};

const ToolFlag* find_flag(std::string_view name) {
  for (const ToolFlag& flag : kFlags)
    if (name == flag.short_name || name == flag.long_name) return &flag;
  return nullptr;
}

}  // namespace

ToolArgs parse_tool_args(const std::vector<std::string>& args) {
  ToolArgs parsed;
  bool flags_ended = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (flags_ended || arg == "-" || arg.empty() || arg[0] != '-') {
      parsed.command.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_ended = true;
      continue;
    }
    // --name=value and -ovalue, as getopt takes them.
    std::string name = arg, value;
    bool value_attached = false;
    if (std::size_t equals = arg.find('='); arg.starts_with("--") && equals != std::string::npos) {
      name = arg.substr(0, equals);
      value = arg.substr(equals + 1);
      value_attached = true;
    } else if (!arg.starts_with("--") && arg.size() > 2) {
      name = arg.substr(0, 2);
      value = arg.substr(2);
      value_attached = true;
    }
    const ToolFlag* flag = find_flag(name);
    if (flag == nullptr) {
      parsed.errors.push_back("unknown flag '" + printable(arg) + "' (see kacheryfs-cache --help)");
      continue;
    }
    if (flag->value.empty()) {
      if (value_attached) {
        parsed.errors.push_back(std::string(name) + " takes no value");
        continue;
      }
    } else if (!value_attached) {
      if (i + 1 == args.size()) {
        parsed.errors.push_back(std::string(name) + " needs a value: " + std::string(flag->value));
        continue;
      }
      value = args[++i];
    }
    if (auto error = flag->apply(parsed, value)) parsed.errors.push_back(*error);
  }
  return parsed;
}

std::string tool_flags_help() {
  std::ostringstream out;
  for (const ToolFlag& flag : kFlags) {
    std::string names;
    if (!flag.short_name.empty()) names += flag.short_name;
    if (!flag.short_name.empty() && !flag.long_name.empty()) names += ", ";
    names += flag.long_name;
    if (!flag.value.empty()) names += " " + std::string(flag.value);
    out << "  " << names;
    if (names.size() < 23)
      out << std::string(23 - names.size(), ' ');
    else
      out << "\n" << std::string(25, ' ');
    out << flag.help << "\n";
  }
  return out.str();
}

}  // namespace kacheryfs
