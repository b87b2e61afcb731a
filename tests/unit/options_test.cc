#include "support/options.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

namespace kacheryfs {
namespace {

ParsedCommandLine parse(std::vector<std::string> args,
                        std::map<std::string, std::string> env = {}) {
  args.insert(args.begin(), "kacheryfs");
  return parse_command_line(args, [env](const char* name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  });
}

TEST(ParseSize, SuffixesAndErrors) {
  EXPECT_EQ(parse_size("4096"), 4096u);
  EXPECT_EQ(parse_size("64K"), 65536u);
  EXPECT_EQ(parse_size("4M"), 4u << 20);
  EXPECT_EQ(parse_size("4MiB"), 4u << 20);
  EXPECT_EQ(parse_size("1G"), 1u << 30);
  EXPECT_EQ(parse_size("2T"), std::uint64_t{2} << 40);
  EXPECT_FALSE(parse_size(""));
  EXPECT_FALSE(parse_size("M"));
  EXPECT_FALSE(parse_size("12Q"));
  EXPECT_FALSE(parse_size("-1"));
  EXPECT_FALSE(parse_size("99999999999999T"));
}

TEST(ParseDuration, SecondsAndMilliseconds) {
  EXPECT_EQ(parse_duration("10")->count(), 10000);
  EXPECT_EQ(parse_duration("2.5")->count(), 2500);
  EXPECT_EQ(parse_duration("3s")->count(), 3000);
  EXPECT_EQ(parse_duration("500ms")->count(), 500);
  EXPECT_FALSE(parse_duration("soon"));
  EXPECT_FALSE(parse_duration("-1"));
  EXPECT_FALSE(parse_duration(""));
}

TEST(CommandLine, SourceMountpointAndDefaults) {
  auto p = parse({"kacherybox:20431", "/kachery"});
  ASSERT_TRUE(p.errors.empty());
  EXPECT_EQ(p.options.daemon.host, "kacherybox");
  EXPECT_EQ(p.options.mountpoint, "/kachery");
  EXPECT_EQ(p.options.range_size, 4u << 20);
  EXPECT_EQ(p.options.timeout.count(), 10000);
  EXPECT_FALSE(p.options.foreground);
  EXPECT_FALSE(p.options.cache_dir.empty());
}

TEST(CommandLine, SeveralNodesWithAnAuthFileEach) {
  auto p = parse({"-o", "auth_file=/a:/b,spread", "n1:20431,n2:20431", "/kachery"});
  ASSERT_TRUE(p.errors.empty()) << p.errors[0];
  ASSERT_EQ(p.options.nodes.size(), 2u);
  EXPECT_EQ(p.options.daemon.host, "n1");
  EXPECT_EQ(p.options.nodes[1].host, "n2");
  EXPECT_EQ(p.options.node_auth_files, (std::vector<std::string>{"/a", "/b"}));
  EXPECT_TRUE(p.options.spread);

  auto shared = parse({"-o", "auth_file=/code", "n1,n2,n3", "/kachery"});
  ASSERT_TRUE(shared.errors.empty());
  EXPECT_EQ(shared.options.node_auth_files, (std::vector<std::string>(3, "/code")));
  auto none_for_second = parse({"-o", "auth_file=/a:", "n1,n2", "/kachery"});
  ASSERT_TRUE(none_for_second.errors.empty());
  EXPECT_EQ(none_for_second.options.node_auth_files, (std::vector<std::string>{"/a", ""}));

  auto mismatch = parse({"-o", "auth_file=/a:/b:/c", "n1,n2", "/kachery"});
  ASSERT_EQ(mismatch.errors.size(), 1u);
  EXPECT_NE(mismatch.errors[0].find("3 files separated by ':' for 2 nodes"), std::string::npos);
  // The source, commas included, is the mount's fsname, escaped for FUSE's option string.
  EXPECT_NE(std::find(p.options.fuse_options.begin(), p.options.fuse_options.end(),
                      "fsname=n1:20431\\,n2:20431"),
            p.options.fuse_options.end());
}

TEST(CommandLine, MountpointAloneUsesEnvironment) {
  auto p =
      parse({"/kachery"}, {{"KACHERY_DAEMON_HOST", "nodehost"}, {"KACHERY_DAEMON_PORT", "4000"}});
  ASSERT_TRUE(p.errors.empty());
  EXPECT_EQ(p.options.daemon.host, "nodehost");
  EXPECT_EQ(p.options.daemon.port, 4000);
}

TEST(CommandLine, KacheryfsOptions) {
  auto p = parse({"-f", "-o", "cache_dir=/c,auth_file=/a,timeout=2.5,connect_timeout=500ms",
                  "-orange_size=1M,retries=5,negative_timeout=3,channel=my-channel,log_level=debug",
                  "h", "/m"});
  ASSERT_TRUE(p.errors.empty()) << p.errors[0];
  const MountOptions& o = p.options;
  EXPECT_TRUE(o.foreground);
  EXPECT_EQ(o.cache_dir, "/c");
  EXPECT_EQ(o.auth_file, "/a");
  EXPECT_EQ(o.timeout.count(), 2500);
  EXPECT_EQ(o.connect_timeout.count(), 500);
  EXPECT_EQ(o.range_size, 1u << 20);
  EXPECT_EQ(o.retries, 5u);
  EXPECT_EQ(o.negative_timeout.count(), 3);
  EXPECT_EQ(o.channel, "my-channel");
  EXPECT_EQ(o.log_level, "debug");
}

TEST(CommandLine, FstabOptionsAreIgnoredAndFuseOptionsPassed) {
  auto p = parse(
      {"-o", "_netdev,noauto,nofail,user,rw,defaults,x-systemd.automount,allow_other,fsname=lab",
       "h", "/m"});
  ASSERT_TRUE(p.errors.empty()) << p.errors[0];
  const auto& fuse = p.options.fuse_options;
  EXPECT_NE(std::find(fuse.begin(), fuse.end(), "allow_other"), fuse.end());
  EXPECT_NE(std::find(fuse.begin(), fuse.end(), "fsname=lab"), fuse.end());
  EXPECT_NE(std::find(fuse.begin(), fuse.end(), "subtype=kacheryfs"), fuse.end());
  EXPECT_EQ(
      std::count_if(fuse.begin(), fuse.end(), [](auto& s) { return s.starts_with("fsname="); }), 1);
}

TEST(CommandLine, DefaultFsnameIsTheSourceAsWritten) {
  auto p = parse({"h:5", "/m"});
  const auto& fuse = p.options.fuse_options;
  EXPECT_NE(std::find(fuse.begin(), fuse.end(), "fsname=h:5"), fuse.end());
  auto commas = parse({"http://h:5/a,b", "/m"});
  const auto& escaped = commas.options.fuse_options;
  EXPECT_NE(std::find(escaped.begin(), escaped.end(), "fsname=http://h:5/a\\,b"), escaped.end())
      << "a comma in the source does not split FUSE's options";
}

TEST(CommandLine, ErrorsQuoteTheirInputOnOneLine) {
  // Found by fuzz_options: a flag with a newline made a two-line error.
  auto p = parse({"-x\nINJECTED", "-o", "bad\x1b[31m\nname", "h:5", "/m"});
  ASSERT_EQ(p.errors.size(), 2u);
  for (const auto& e : p.errors) {
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    EXPECT_EQ(e.find('\x1b'), std::string::npos) << e;
  }
  EXPECT_NE(p.errors[0].find("-x\\nINJECTED"), std::string::npos) << p.errors[0];
}

TEST(CommandLine, SloppyTurnsUnknownOptionsIntoWarnings) {
  auto p = parse({"--sloppy", "-o", "no_such,timeout=3", "h", "/m"});
  EXPECT_TRUE(p.errors.empty());
  ASSERT_EQ(p.warnings.size(), 1u);
  EXPECT_NE(p.warnings[0].find("no_such"), std::string::npos);
  EXPECT_EQ(p.options.timeout.count(), 3000);
}

TEST(CommandLine, AllErrorsAreReportedTogether) {
  auto p = parse({"-o", "bogus,timeout=x,range_size=1,channel=a b,retries=-1,cache_dir", "--wat",
                  "h", "/m", "extra"});
  EXPECT_EQ(p.errors.size(), 8u);
  for (const auto& e : p.errors) EXPECT_EQ(e.find('\n'), std::string::npos) << e;
}

TEST(CommandLine, CacheAndStreamingOptions) {
  auto p = parse(
      {"-o",
       "cache_max=20G,cache_min_free=15%,whole_max=128M,block_size=1M,max_conns=8,verify=strict",
       "h", "/m"});
  ASSERT_TRUE(p.errors.empty()) << p.errors[0];
  EXPECT_EQ(p.options.cache_max, std::uint64_t{20} << 30);
  EXPECT_DOUBLE_EQ(p.options.cache_min_free_fraction, 0.15);
  EXPECT_EQ(p.options.whole_max, 128u << 20);
  EXPECT_EQ(p.options.block_size, 1u << 20);
  EXPECT_EQ(p.options.max_conns, 8u);
  EXPECT_TRUE(p.options.verify_strict);
  EXPECT_EQ(parse({"-o", "cache_min_free=5G", "h", "/m"}).options.cache_min_free,
            std::uint64_t{5} << 30);
  auto bad =
      parse({"-o", "cache_max=1K,cache_min_free=95%,max_conns=0,verify=sometimes,block_size=1K",
             "h", "/m"});
  EXPECT_EQ(bad.errors.size(), 5u);
}

TEST(CommandLine, MissingMountpoint) {
  auto p = parse({});
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_NE(p.errors[0].find("missing mount point"), std::string::npos);
}

TEST(CommandLine, HelpAndVersionNeedNothingElse) {
  EXPECT_TRUE(parse({"-h"}).options.show_help);
  EXPECT_TRUE(parse({"-h"}).errors.empty());
  EXPECT_TRUE(parse({"--version"}).options.show_version);
}

TEST(CommandLine, AuthFileDefaultsToStorageDirClientAuth) {
  auto dir = std::filesystem::temp_directory_path() / ("kfs-options-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  EXPECT_EQ(parse({"/m"}, {{"KACHERY_STORAGE_DIR", dir.string()}}).options.auth_file, "")
      << "only when the file exists";
  std::ofstream(dir / "client-auth") << "ABCDEFGHIJKL";
  EXPECT_EQ(parse({"/m"}, {{"KACHERY_STORAGE_DIR", dir.string()}}).options.auth_file,
            (dir / "client-auth").string());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kacheryfs
