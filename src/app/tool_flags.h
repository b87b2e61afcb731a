// kacheryfs-cache's command line, from one table of its flags (name, value, help line): the
// parse and the flags part of --help both come from it. The mount's -o options are not
// read here; they go through the mount's option table (parse_tool_options).
#pragma once

#include <string>
#include <vector>

namespace kacheryfs {

struct ToolArgs {
  bool help = false;
  bool version = false;
  bool create = false;
  bool json = false;
  unsigned jobs = 1;
  std::string targets_from;               // --from FILE
  std::string daemon;                     // --daemon NODE[,NODE...]
  std::vector<std::string> option_lists;  // each -o's value
  std::vector<std::string> command;       // COMMAND [ARGS...]; flags may come anywhere
  std::vector<std::string> errors;        // one line each; usage errors (exit 2)
};

// Flags may come before or after the command; "--" ends them (a file named "-x" after it
// is an argument); "-" alone is an argument (standard input).
ToolArgs parse_tool_args(const std::vector<std::string>& args);

// The flags' help lines, aligned as the commands' are, for --help.
std::string tool_flags_help();

}  // namespace kacheryfs
