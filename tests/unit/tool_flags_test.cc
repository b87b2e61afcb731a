// kacheryfs-cache's flags: parsed from the table, anywhere on the line, with usage errors.
#include "app/tool_flags.h"

#include <gtest/gtest.h>

namespace kacheryfs {
namespace {

TEST(ToolFlags, FlagsComeAnywhereAndTheRestIsTheCommand) {
  ToolArgs args = parse_tool_args({"--json", "pin", "-j", "4", "sha1://x", "-o", "cache_dir=/c",
                                   "--from", "list.txt", "--daemon=h:1", "-"});
  EXPECT_TRUE(args.errors.empty());
  EXPECT_TRUE(args.json);
  EXPECT_EQ(args.jobs, 4u);
  EXPECT_EQ(args.targets_from, "list.txt");
  EXPECT_EQ(args.daemon, "h:1");
  EXPECT_EQ(args.option_lists, std::vector<std::string>{"cache_dir=/c"});
  EXPECT_EQ(args.command, (std::vector<std::string>{"pin", "sha1://x", "-"}));
}

TEST(ToolFlags, AttachedValuesAndTheEndOfFlags) {
  ToolArgs args = parse_tool_args({"-ocache_max=1G", "-j8", "store", "--", "-odd-name", "--json"});
  EXPECT_TRUE(args.errors.empty());
  EXPECT_EQ(args.option_lists, std::vector<std::string>{"cache_max=1G"});
  EXPECT_EQ(args.jobs, 8u);
  EXPECT_FALSE(args.json);
  EXPECT_EQ(args.command, (std::vector<std::string>{"store", "-odd-name", "--json"}));
}

TEST(ToolFlags, UsageErrorsSayWhatIsWrong) {
  auto only_error = [](std::vector<std::string> line) {
    ToolArgs args = parse_tool_args(line);
    EXPECT_EQ(args.errors.size(), 1u);
    return args.errors.empty() ? std::string() : args.errors[0];
  };
  EXPECT_EQ(only_error({"status", "--frobnicate"}),
            "unknown flag '--frobnicate' (see kacheryfs-cache --help)");
  EXPECT_EQ(only_error({"pin", "-j"}), "-j needs a value: N");
  EXPECT_EQ(only_error({"pin", "-j", "0", "x"}),
            "-j takes a number of parallel fetches from 1 to 256, not '0'");
  EXPECT_EQ(only_error({"--json=yes", "ls"}), "--json takes no value");
  EXPECT_EQ(only_error({"-x", "ls"}), "unknown flag '-x' (see kacheryfs-cache --help)");
}

TEST(ToolFlags, HelpListsEveryFlagOnce) {
  std::string help = tool_flags_help();
  for (const char* flag : {"-o OPT", "--daemon NODE", "--json", "--create", "-j N", "--from FILE",
                           "-V, --version", "-h, --help"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  }
  for (std::size_t start = 0; start < help.size();) {
    std::size_t end = help.find('\n', start);
    EXPECT_LE(end - start, 100u) << help.substr(start, end - start);
    start = end + 1;
  }
}

}  // namespace
}  // namespace kacheryfs
