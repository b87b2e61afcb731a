// DaemonClient against a real kachery-daemon-emulator process, including its faults.
#include "daemon_client.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "emulator_process.h"
#include "kachery/sha1_hasher.h"

namespace kacheryfs {
namespace {

using testing::EmulatorProcess;
using Clock = std::chrono::steady_clock;

std::string pattern(std::size_t size, unsigned seed) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 131 + seed) ^ (i >> 10));
  return s;
}

DaemonClientConfig config_for(const EmulatorProcess& emulator, unsigned timeout_ms = 5000) {
  DaemonClientConfig config;
  config.address.host = "127.0.0.1";
  config.address.port = emulator.port();
  config.auth_file = emulator.auth_file().string();
  config.timeouts = {std::chrono::milliseconds(2000), std::chrono::milliseconds(timeout_ms),
                     std::chrono::milliseconds(timeout_ms)};
  config.retries = 2;
  return config;
}

struct Collected {
  Status result;
  std::string bytes;
};

Collected read(DaemonClient& client, const std::string& sha1, std::uint64_t start,
               std::uint64_t end, const CancelToken& cancel = NeverCancelled()) {
  Collected c;
  c.result = client.read_range(
      sha1, start, end,
      [&](const char* d, std::size_t n) {
        c.bytes.append(d, n);
        return true;
      },
      cancel);
  return c;
}

std::uint64_t connections(DaemonClient& client, const EmulatorProcess& emulator) {
  (void)client;
  DaemonClient other(config_for(emulator));
  std::string body;
  // /stats is an authenticated GET; use a raw read through load of the JSON.
  HttpConnection connection(other.config().address);
  HttpRequest request{"GET", "/stats", {}, {}, {}, 0};
  std::ifstream code_file(emulator.auth_file());
  std::string code((std::istreambuf_iterator<char>(code_file)), {});
  request.headers.emplace_back("KACHERY-CLIENT-AUTH-CODE", code);
  HttpOutcome outcome = connection.exchange(
      request,
      [&](const char* d, std::size_t n) {
        body.append(d, n);
        return true;
      },
      other.config().timeouts, NeverCancelled());
  EXPECT_EQ(outcome.status, 200u);
  return nlohmann::json::parse(body)["stats"]["connections"].get<std::uint64_t>() -
         1;  // minus this one
}

TEST(DaemonClient, ProbeGivesTheNodeId) {
  EmulatorProcess emulator;
  DaemonClient client(config_for(emulator));
  ProbeInfo info;
  ASSERT_TRUE(client.probe(&info, NeverCancelled()).ok());
  std::ifstream id_file(emulator.storage() / "kachery-node-id");
  std::string id((std::istreambuf_iterator<char>(id_file)), {});
  EXPECT_EQ(info.node_id, id);
  EXPECT_EQ(info.daemon_version, "kachery-daemon-1.2.1");
}

TEST(DaemonClient, RangesAreExactAndShortAtEndOfFile) {
  EmulatorProcess emulator;
  std::string data = pattern(1'000'000, 1);
  std::string sha1 = emulator.put(data);
  DaemonClient client(config_for(emulator));
  auto whole = read(client, sha1, 0, 2'000'000);
  ASSERT_TRUE(whole.result.ok()) << whole.result.detail();
  EXPECT_EQ(whole.bytes, data);
  auto middle = read(client, sha1, 12345, 54321);
  EXPECT_EQ(middle.bytes, data.substr(12345, 54321 - 12345));
  auto past = read(client, sha1, 1'000'000, 1'000'010);
  EXPECT_TRUE(past.result.ok());
  EXPECT_EQ(past.bytes, "");
}

TEST(DaemonClient, KeepAliveReusesOneConnection) {
  EmulatorProcess emulator;
  std::string sha1 = emulator.put(pattern(10000, 2));
  DaemonClient client(config_for(emulator));
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(read(client, sha1, i, i + 100).result.ok());
  EXPECT_EQ(read(client, std::string(40, '1'), 0, 10).result.cause(), Cause::kNotFound);
  EXPECT_TRUE(read(client, sha1, 0, 1).result.ok());
  EXPECT_EQ(connections(client, emulator), 1u);
}

TEST(DaemonClient, APipelinedRoundCutShortSharesItsTimeAmongAllItsRequests) {
  // As the real daemon does, the emulator dispatches the whole round before its first
  // answer: 10 requests at 10 ms each. The round stops reading at its second answer (the
  // first past EOF), yet its time is the work of all 10, so the node's time per request is
  // about 10 ms, not the 90 ms that dividing by the answers read would give.
  EmulatorProcess emulator({"--batch-pipelined", "--request-cost-ms", "10"});
  std::string sha1 = emulator.put(pattern(1000, 9));
  DaemonClient client(config_for(emulator));
  ASSERT_TRUE(read(client, sha1, 0, 10).result.ok());  // connects
  ASSERT_TRUE(read(client, sha1, 0, 10).result.ok());  // a round trip on the open connection
  ASSERT_GT(client.link().round_trip, 0.0);
  std::vector<ByteRange> ranges{{0, 1}};
  for (std::uint64_t i = 1; i < 10; ++i) ranges.push_back({1000 * i + 5, 1000 * i + 6});
  std::vector<std::string> answers;
  ASSERT_TRUE(client
                  .read_ranges(
                      sha1, ranges, answers, [&](std::size_t i) { return !answers[i].empty(); },
                      NeverCancelled())
                  .ok());
  EXPECT_EQ(answers[0], pattern(1000, 9).substr(0, 1));
  double per_request = client.link().per_request;
  EXPECT_GT(per_request, 0.005);
  EXPECT_LT(per_request, 0.030);
}

TEST(DaemonClient, WideAnswersLeftUnreadCloseTheConnectionNarrowOnesDoNot) {
  // Size discovery's last round: windows from the top down, read up to the one that
  // brings bytes. Reading and dropping the full windows below it before the connection's
  // next exchange would cost more than a new connection; a probe round's unread answers
  // (a byte each) cost nothing.
  EmulatorProcess emulator;
  const std::string data = pattern(3'000'000, 11);
  std::string sha1 = emulator.put(data);
  DaemonClient client(config_for(emulator));
  ASSERT_TRUE(read(client, sha1, 0, 10).result.ok());  // connects
  auto round = [&](const std::vector<ByteRange>& ranges) {
    std::vector<std::string> answers;
    EXPECT_TRUE(client
                    .read_ranges(
                        sha1, ranges, answers, [&](std::size_t i) { return answers[i].empty(); },
                        NeverCancelled())
                    .ok());
    return answers;
  };
  std::vector<std::string> probes =
      round({{5'000'000, 5'000'001}, {2'000'000, 2'000'001}, {1'000'000, 1'000'001}, {10, 11}});
  EXPECT_EQ(probes[1], data.substr(2'000'000, 1));
  ASSERT_TRUE(read(client, sha1, 0, 10).result.ok());
  EXPECT_EQ(connections(client, emulator), 1u) << "three unread bytes are drained";
  std::vector<std::string> windows = round(
      {{3'000'000, 4'000'000}, {2'000'000, 3'000'000}, {1'000'000, 2'000'000}, {0, 1'000'000}});
  EXPECT_EQ(windows[1], data.substr(2'000'000));
  ASSERT_TRUE(read(client, sha1, 0, 10).result.ok());
  // Two of the client's, and the one the first count made.
  EXPECT_EQ(connections(client, emulator), 3u) << "2 MB unread: a new connection";
}

TEST(DaemonClient, KeepWarmCorrectsARoundTripTakenWhileTheNodeWasBusy) {
  // A mount adopts the round trip its probe measured; a node busy at that moment makes the
  // link look far away, and size discovery would then plan for a slow link. keep_warm
  // times small requests on its spare connection until the round trip has a few samples,
  // and the estimate falls to what the link really costs.
  EmulatorProcess emulator;
  DaemonClient client(config_for(emulator));
  client.adopt_link({0.5, 0, 0});
  ASSERT_DOUBLE_EQ(client.link().round_trip, 0.5);
  for (int i = 0; i < 4; ++i) client.keep_warm(std::chrono::seconds(60), NeverCancelled());
  EXPECT_LT(client.link().round_trip, 0.1);
  EXPECT_EQ(connections(client, emulator), 1u) << "the samples use the spare connection";
}

TEST(DaemonClient, StaleKeepAliveConnectionIsReplaced) {
  EmulatorProcess emulator;
  std::string data = pattern(5000, 3);
  std::string sha1 = emulator.put(data);
  DaemonClient client(config_for(emulator));
  ASSERT_TRUE(read(client, sha1, 0, 10).result.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(5600));  // the daemon's keep-alive is 5 s
  auto again = read(client, sha1, 0, 5000);
  ASSERT_TRUE(again.result.ok()) << again.result.detail();
  EXPECT_EQ(again.bytes, data);
}

TEST(DaemonClient, NotFoundIsTyped) {
  EmulatorProcess emulator;
  DaemonClient client(config_for(emulator));
  auto missing = read(client, sha1_hex_of("absent"), 0, 100);
  EXPECT_EQ(missing.result.cause(), Cause::kNotFound);
}

TEST(DaemonClient, WrongAuthCodeIsRejectedAfterOneReread) {
  EmulatorProcess emulator;
  std::string sha1 = emulator.put("x");
  auto bad = emulator.dir() / "bad-auth";
  std::ofstream(bad) << "WRONGWRONGXX";
  DaemonClientConfig config = config_for(emulator);
  config.auth_file = bad.string();
  DaemonClient client(config);
  EXPECT_EQ(read(client, sha1, 0, 1).result.cause(), Cause::kAuthRejected);
  DaemonClientConfig none = config_for(emulator);
  none.auth_file = "";
  DaemonClient anonymous(none);
  EXPECT_EQ(read(anonymous, sha1, 0, 1).result.cause(), Cause::kAuthRejected);
}

TEST(DaemonClient, AuthRotationIsFollowed) {
  EmulatorProcess emulator({"--auth-period", "0.3"});
  std::string data = pattern(200000, 4);
  std::string sha1 = emulator.put(data);
  DaemonClient client(config_for(emulator));
  auto until = Clock::now() + std::chrono::seconds(3);
  int reads = 0;
  while (Clock::now() < until) {
    auto r = read(client, sha1, 0, 200000);
    ASSERT_TRUE(r.result.ok()) << r.result.detail();
    ASSERT_EQ(r.bytes, data);
    ++reads;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  EXPECT_GE(reads, 5);
}

TEST(DaemonClient, A500IsRetried) {
  EmulatorProcess emulator({"--fail-500", "2"});
  std::string data = pattern(3000, 5);
  std::string sha1 = emulator.put(data);
  DaemonClient client(config_for(emulator));
  auto r = read(client, sha1, 0, 3000);
  ASSERT_TRUE(r.result.ok()) << r.result.detail();
  EXPECT_EQ(r.bytes, data);
  emulator.restart({"--fail-500", "100"});
  DaemonClient again(config_for(emulator));
  EXPECT_EQ(read(again, sha1, 0, 3000).result.cause(), Cause::kServerError);
}

TEST(DaemonClient, DroppedBodyIsResumedWithoutGapsOrRepeats) {
  EmulatorProcess emulator({"--drop-after-bytes", "300000"});
  std::string data = pattern(2'000'000, 6);
  std::string sha1 = emulator.put(data);
  DaemonClient client(config_for(emulator));
  auto r = read(client, sha1, 0, 2'000'000);
  ASSERT_TRUE(r.result.ok()) << r.result.detail();
  EXPECT_EQ(r.bytes, data);
}

TEST(DaemonClient, TimeoutsAreTyped) {
  EmulatorProcess emulator({"--first-byte-delay-ms", "3000"});
  std::string sha1 = emulator.put(pattern(1000, 7));
  DaemonClient client(config_for(emulator, 500));
  auto started = Clock::now();
  EXPECT_EQ(read(client, sha1, 0, 1000).result.cause(), Cause::kTimeout);
  EXPECT_LT(Clock::now() - started, std::chrono::milliseconds(2900))
      << "gave up before the delay ended";
  emulator.restart({"--stall-after-bytes", "100", "--stall-ms", "3000"});
  DaemonClient stalled(config_for(emulator, 500));
  EXPECT_EQ(read(stalled, sha1, 0, 1000).result.cause(), Cause::kTimeout);
}

TEST(DaemonClient, ConnectionRefusedIsUnreachable) {
  EmulatorProcess emulator;
  DaemonClientConfig config = config_for(emulator);
  emulator.stop();
  DaemonClient client(config);
  auto r = read(client, std::string(40, 'a'), 0, 1);
  EXPECT_EQ(r.result.cause(), Cause::kUnreachable);
  EXPECT_NE(r.result.detail().find("refused"), std::string::npos) << r.result.detail();
  ProbeInfo info;
  EXPECT_EQ(client.probe(&info, NeverCancelled()).cause(), Cause::kUnreachable);
}

TEST(DaemonClient, CancellationAbandonsAStalledTransfer) {
  EmulatorProcess emulator({"--stall-after-bytes", "100", "--stall-ms", "20000"});
  std::string sha1 = emulator.put(pattern(5000, 8));
  DaemonClient client(config_for(emulator, 30000));
  // Cancelled by another thread once the first bytes are in and the rest has stalled.
  CancelSource cancel;
  std::thread interrupter;
  auto started = Clock::now();
  Status result = client.read_range(
      sha1, 0, 5000,
      [&](const char*, std::size_t) {
        if (!interrupter.joinable()) interrupter = std::thread([&] { cancel.cancel(); });
        return true;
      },
      cancel);
  EXPECT_EQ(result.cause(), Cause::kCancelled);
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(5));
  interrupter.join();
}

TEST(DaemonClient, ADeadlineTokenAbandonsAStalledTransferAtItsDeadline) {
  EmulatorProcess emulator({"--stall-after-bytes", "100", "--stall-ms", "20000"});
  std::string sha1 = emulator.put(pattern(5000, 8));
  DaemonClient client(config_for(emulator, 30000));
  NeverCancelled never;
  DeadlineToken token(never, Clock::now() + std::chrono::milliseconds(300));
  auto started = Clock::now();
  EXPECT_EQ(read(client, sha1, 0, 5000, token).result.cause(), Cause::kCancelled);
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(5));
}

TEST(DaemonClient, LoadFileStoredMissingAndFromTheNetwork) {
  EmulatorProcess emulator;
  std::string stored = emulator.put("stored");
  // a second storage dir plays the kachery network
  std::string remote_data = pattern(100000, 9);
  std::string remote = sha1_hex_of(remote_data);
  auto network = emulator.dir() / "network";
  auto path =
      network / "sha1" / remote.substr(0, 2) / remote.substr(2, 2) / remote.substr(4, 2) / remote;
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << remote_data;
  emulator.restart({"--network-dir", network.string(), "--load-delay-ms", "300"});

  DaemonClient client(config_for(emulator));
  std::vector<LoadProgress> progress;
  auto note = [&](const LoadProgress& p) { progress.push_back(p); };
  EXPECT_TRUE(client.load_file(stored, "", note, NeverCancelled()).ok());
  EXPECT_EQ(client.load_file(remote, "", note, NeverCancelled()).cause(), Cause::kNotFound);
  progress.clear();
  Status loaded = client.load_file(remote, "testchannel", note, NeverCancelled());
  ASSERT_TRUE(loaded.ok()) << loaded.detail();
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back().bytes_total, remote_data.size());
  EXPECT_EQ(read(client, remote, 0, 200000).bytes, remote_data);
  EXPECT_EQ(client.load_file(sha1_hex_of("nowhere"), "testchannel", note, NeverCancelled()).cause(),
            Cause::kNotFound);
}

// A client whose every connection reads `response` and then end-of-file: the node's bytes
// without a node process, for answers no emulator mode sends.
struct CannedNode {
  explicit CannedNode(std::string reply) : response(std::move(reply)) {}
  ~CannedNode() {
    for (int fd : peers) ::close(fd);
  }
  DaemonClient client() {
    DaemonClientConfig config;
    config.address.host = "127.0.0.1";
    config.address.port = 1;
    config.retries = 0;
    config.connector = [this] {
      int pair[2];
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return -1;
      peers.push_back(pair[1]);
      EXPECT_EQ(::send(pair[1], response.data(), response.size(), MSG_NOSIGNAL),
                static_cast<ssize_t>(response.size()));
      ::shutdown(pair[1], SHUT_WR);
      return pair[0];
    };
    return DaemonClient(config);
  }
  std::string response;
  std::vector<int> peers;
};

std::string json_reply(const std::string& body) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

TEST(DaemonClient, JsonFieldsOfTheWrongTypeAreProtocolErrorsNotThrows) {
  std::string node_id(64, 'a');
  for (std::string body : std::vector<std::string>{
           R"({"success":"/s"})", R"({"success":1,"nodeId":"x"})", R"({"success":true,"nodeId":7})",
           R"([true])", R"({"success":true,"nodeId":")" + node_id + R"(","daemonVersion":[1]})"}) {
    CannedNode node(json_reply(body));
    DaemonClient client = node.client();
    ProbeInfo info;
    Status result = client.probe(&info, NeverCancelled());
    if (body.find("daemonVersion") != std::string::npos) {
      ASSERT_TRUE(result.ok()) << body << ": " << result.detail();
      EXPECT_EQ(info.node_id, node_id);
      EXPECT_EQ(info.daemon_version, "");
    } else {
      EXPECT_EQ(result.cause(), Cause::kProtocolError) << body;
    }
  }
  for (std::string body : std::vector<std::string>{R"({"success":"yes","sha1":"x"})",
                                                   R"({"success":true,"sha1":5})"}) {
    CannedNode node(json_reply(body));
    DaemonClient client = node.client();
    StoreAnswer answer;
    Status result = client.store(
        1, [](char* into, std::size_t) -> long { return (into[0] = 'x', 1); }, &answer,
        NeverCancelled());
    EXPECT_FALSE(result.ok()) << body;
  }
}

TEST(DaemonClient, LoadFileMessagesOfTheWrongTypeAreIgnored) {
  // JsonSocket framing: "<length>#<json>" per message; the last one says finished.
  std::string stream;
  for (std::string message : std::vector<std::string>{
           R"({"type":7})", R"({"type":"progress","bytesLoaded":"x"})",
           R"({"type":"progress","bytesLoaded":-1,"bytesTotal":2.5})",
           R"({"type":"error","error":{}})", R"("progress")", R"({"type":"finished"})"})
    stream += std::to_string(message.size()) + "#" + message;
  CannedNode node("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(stream.size()) +
                  "\r\n\r\n" + stream);
  DaemonClient client = node.client();
  std::vector<LoadProgress> progress;
  Status result = client.load_file(
      std::string(40, 'b'), "", [&](const LoadProgress& p) { progress.push_back(p); },
      NeverCancelled());
  // The error message without a text ends the load as a server error, before "finished".
  EXPECT_EQ(result.cause(), Cause::kServerError) << result.detail();
  ASSERT_EQ(progress.size(), 2u);
  EXPECT_EQ(progress[0].bytes_loaded, 0u);
  EXPECT_EQ(progress[1].bytes_total, 0u);
}

}  // namespace
}  // namespace kacheryfs
