#include "support/daemon_address.h"

#include <gtest/gtest.h>

namespace kacheryfs {
namespace {

DaemonAddress parse_ok(std::string_view source, std::string_view host = "",
                       std::string_view port = "") {
  auto address = parse_daemon_address(source, host, port);
  EXPECT_TRUE(address) << source << ": " << address.detail();
  return address ? *address : DaemonAddress{};
}

std::string parse_error(std::string_view source) {
  auto address = parse_daemon_address(source, "", "");
  EXPECT_FALSE(address) << source;
  EXPECT_EQ(address.error(), -EINVAL) << source;
  return address.detail();
}

TEST(DaemonAddress, HostAndPort) {
  auto a = parse_ok("kacherybox:20431");
  EXPECT_EQ(a.host, "kacherybox");
  EXPECT_EQ(a.port, 20431);
  EXPECT_FALSE(a.tls);
  EXPECT_EQ(parse_ok("kacherybox").port, kDefaultDaemonPort);
  EXPECT_EQ(parse_ok("[::1]:8080").host, "::1");
  EXPECT_EQ(parse_ok("[::1]:8080").to_string(), "http://[::1]:8080");
}

TEST(DaemonAddress, Urls) {
  auto a = parse_ok("https://proxy.example.org/kachery/");
  EXPECT_TRUE(a.tls);
  EXPECT_EQ(a.port, 443);
  EXPECT_EQ(a.base_path, "/kachery");
  EXPECT_EQ(parse_ok("http://h").port, 80);
  EXPECT_EQ(parse_ok("http://h:1234").port, 1234);
}

TEST(DaemonAddress, PortEndingIn443SpeaksHttps) {
  EXPECT_TRUE(parse_ok("h:20443").tls);
  EXPECT_FALSE(parse_ok("http://h:20443").tls) << "an explicit scheme wins";
}

TEST(DaemonAddress, EmptySourceUsesEnvironmentDefaults) {
  auto a = parse_ok("", "nodehost", "3000");
  EXPECT_EQ(a.host, "nodehost");
  EXPECT_EQ(a.port, 3000);
  auto b = parse_ok("", "", "");
  EXPECT_EQ(b.host, "localhost");
  EXPECT_EQ(b.port, kDefaultDaemonPort);
  EXPECT_EQ(parse_ok("other", "", "3000").port, 3000)
      << "KACHERY_DAEMON_PORT when no port is given";
}

TEST(DaemonAddress, Errors) {
  EXPECT_NE(parse_error("h:0").find("bad port"), std::string::npos);
  EXPECT_NE(parse_error("h:65536").find("bad port"), std::string::npos);
  EXPECT_NE(parse_error("h:x").find("bad port"), std::string::npos);
  EXPECT_NE(parse_error("ftp://h").find("scheme"), std::string::npos);
  EXPECT_NE(parse_error("h/path").find("not HOST"), std::string::npos);
  EXPECT_NE(parse_error("[::1").find("unbalanced"), std::string::npos);
  EXPECT_NE(parse_error(":80").find("no host"), std::string::npos);
  // Control bytes in a host (found by fuzz_options) are refused, in one printable line.
  std::string error = parse_error("http://who\nle\x98:80");
  EXPECT_NE(error.find("is not a host name or address"), std::string::npos);
  EXPECT_EQ(error.find('\n'), std::string::npos);
  EXPECT_EQ(parse_ok("[fe80::1%eth0]:20431").host, "fe80::1%eth0");
  EXPECT_EQ(parse_ok("lab_box-2.example.org").host, "lab_box-2.example.org");
}

TEST(DaemonAddresses, ACommaSeparatedListKeepsItsOrder) {
  auto nodes = parse_daemon_addresses("box1:20431,https://box2/kachery,[::1]:9000", "", "");
  ASSERT_TRUE(nodes) << nodes.detail();
  ASSERT_EQ(nodes->size(), 3u);
  EXPECT_EQ((*nodes)[0].to_string(), "http://box1:20431");
  EXPECT_EQ((*nodes)[1].to_string(), "https://box2:443/kachery");
  EXPECT_EQ((*nodes)[2].to_string(), "http://[::1]:9000");
  auto one = parse_daemon_addresses("", "envhost", "4000");
  ASSERT_TRUE(one && one->size() == 1u);
  EXPECT_EQ(one->front().to_string(), "http://envhost:4000");
}

TEST(DaemonAddresses, ErrorsNameTheEntry) {
  auto error_of = [](const std::string& source) {
    auto nodes = parse_daemon_addresses(source, "", "");
    EXPECT_FALSE(nodes) << source;
    return nodes.detail();
  };
  std::string error;
  error = error_of("a:1,,b:2");
  EXPECT_NE(error.find("empty node"), std::string::npos) << error;
  error = error_of("a:1,b:0");
  EXPECT_NE(error.find("node 2: bad port"), std::string::npos) << error;
  error = error_of("a:1,");
  error = error_of("a:1,http://a:1");
  EXPECT_NE(error.find("listed twice"), std::string::npos) << error;
  std::string many;
  for (int i = 1; i <= 17; ++i) many += (i > 1 ? "," : "") + std::string("h:") + std::to_string(i);
  error = error_of(many);
  EXPECT_NE(error.find("more than 16 nodes"), std::string::npos) << error;
}

}  // namespace
}  // namespace kacheryfs
