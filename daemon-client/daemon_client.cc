#include "daemon_client.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "jsonsocket_parser.h"
#include "kachery/hash_name.h"
#include "support/printable.h"

namespace kacheryfs {

namespace {

constexpr std::string_view kNotFoundBody = "Unable get data read stream for local file.";
constexpr unsigned kMaxResumes = 64;  // resumptions after mid-body drops, per range
// A range this small measures the round trip (its transfer takes next to nothing).
constexpr std::uint64_t kSmallRange = 64 << 10;
constexpr double kAssumedBytesPerSecond = 12.5e6;  // 100 Mbit/s
// keep_warm times a small request on its spare connection until the round trip has this
// many samples (the mount's first one may have met a busy node), then once a minute.
constexpr unsigned kRoundTripSamplesAtStart = 3;
constexpr auto kRoundTripRefresh = std::chrono::seconds(60);
// keep_warm's pause after a connect or a timed request that failed (the node's health is
// the prober's to judge).
constexpr auto kWarmRetryPause = std::chrono::seconds(30);

// The daemon streams every non-empty range chunked; a Content-Length framing of bytes
// could end the body early and pass for end of file.
std::optional<Status> misframed_download(const HttpOutcome& outcome) {
  if (!outcome.had_content_length || outcome.body_bytes == 0) return std::nullopt;
  return Status{Cause::kProtocolError,
                "a download reply framed by Content-Length (the daemon sends chunked bodies)"};
}

// What the node said, fit for one log line: control bytes escaped, long text cut.
std::string one_line(const std::string& text) { return printable(text, 200); }

// A field of the node's JSON, read only when it has the expected type: nlohmann's value()
// throws on `"success": "yes"` or `"type": 7`, and whatever the node sends may be wrong.
const nlohmann::json* json_field(const nlohmann::json& json, const char* key) {
  if (!json.is_object()) return nullptr;
  auto it = json.find(key);
  return it == json.end() ? nullptr : &*it;
}

bool json_true(const nlohmann::json& json, const char* key) {
  const nlohmann::json* field = json_field(json, key);
  return field && field->is_boolean() && field->get<bool>();
}

std::string json_text(const nlohmann::json& json, const char* key) {
  const nlohmann::json* field = json_field(json, key);
  return field && field->is_string() ? field->get<std::string>() : std::string();
}

std::uint64_t json_count(const nlohmann::json& json, const char* key) {
  const nlohmann::json* field = json_field(json, key);
  return field && field->is_number_unsigned() ? field->get<std::uint64_t>() : 0;
}

}  // namespace

Status classify_failure(const HttpOutcome& outcome) {
  switch (outcome.error) {
    case TransportError::kNone:
      break;
    case TransportError::kConnect:
      return {Cause::kUnreachable, outcome.detail};
    case TransportError::kTimeout:
      return {Cause::kTimeout, outcome.detail};
    case TransportError::kCancelled:
      return {Cause::kCancelled, outcome.detail};
    case TransportError::kBroken:
      return {Cause::kServerError, outcome.detail};
    case TransportError::kProtocol:
      return {Cause::kProtocolError, outcome.detail};
    case TransportError::kSinkRefused:
      return {Cause::kLocalError, outcome.detail};
  }
  if (outcome.status == 403) return {Cause::kAuthRejected, "403 " + one_line(outcome.error_body)};
  if (outcome.status == 500 && outcome.error_body.find(kNotFoundBody) != std::string::npos) {
    return {Cause::kNotFound, "not on the node"};
  }
  if (outcome.status >= 500) {
    return {Cause::kServerError,
            std::to_string(outcome.status) + " " + one_line(outcome.error_body)};
  }
  return {Cause::kProtocolError,
          "unexpected HTTP " + std::to_string(outcome.status) + " " + one_line(outcome.error_body)};
}

DaemonClient::DaemonClient(DaemonClientConfig config)
    : config_(std::move(config)),
      auth_(config_.auth_file),
      last_used_(std::chrono::steady_clock::now().time_since_epoch().count()) {}

DaemonClient::~DaemonClient() = default;

namespace {
// Shorter than the daemon's keep-alive timeout (5 s), so that a pooled connection is not
// reused just as the daemon closes it.
constexpr std::chrono::seconds kIdleLimit{4};
}  // namespace

std::unique_ptr<HttpConnection> DaemonClient::acquire() {
  prune_idle();
  {
    std::lock_guard lock(pool_mutex_);
    ++in_use_;
    if (!idle_.empty()) {
      auto connection = std::move(idle_.back().connection);
      idle_.pop_back();
      return connection;
    }
  }
  return std::make_unique<HttpConnection>(config_.address, config_.connector);
}

void DaemonClient::release(std::unique_ptr<HttpConnection> connection) {
  std::lock_guard lock(pool_mutex_);
  --in_use_;
  if (connection->is_open() && idle_.size() < config_.max_idle_connections)
    idle_.push_back({std::move(connection), std::chrono::steady_clock::now()});
}

void DaemonClient::prune_idle() {
  std::vector<IdleConnection> expired;  // closed outside the lock
  {
    std::lock_guard lock(pool_mutex_);
    auto now = std::chrono::steady_clock::now();
    auto first_fresh = std::find_if(idle_.begin(), idle_.end(), [&](const IdleConnection& idle) {
      return now - idle.since < kIdleLimit;
    });
    std::move(idle_.begin(), first_fresh, std::back_inserter(expired));
    idle_.erase(idle_.begin(), first_fresh);
  }
}

void DaemonClient::note_used() {
  last_used_.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                   std::memory_order_relaxed);
}

void DaemonClient::keep_warm(std::chrono::steady_clock::duration window,
                             const CancelToken& cancel) {
  using Clock = std::chrono::steady_clock;
  auto now = Clock::now();
  Clock::time_point last_used{Clock::duration(last_used_.load(std::memory_order_relaxed))};
  if (window <= Clock::duration::zero() || now - last_used > window || now < warm_again_at_) return;
  prune_idle();
  bool spare_ready = false;
  {
    // A connection in use comes back to the pool when its exchange ends.
    std::lock_guard lock(pool_mutex_);
    if (in_use_ > 0) return;
    spare_ready = !idle_.empty();
  }
  if (!spare_ready) {
    auto connection = std::make_unique<HttpConnection>(config_.address, config_.connector);
    HttpOutcome connected = connection->connect(config_.timeouts, cancel);
    if (connected.error != TransportError::kNone) {
      warm_again_at_ = Clock::now() + kWarmRetryPause;
      return;
    }
    std::lock_guard lock(pool_mutex_);
    if (idle_.empty()) idle_.push_back({std::move(connection), Clock::now()});
    return;
  }
  // Small requests on the spare (not on the tick that opened it: a new connection's first
  // request may wait for the node to accept it), so that the round trip size discovery
  // plans by stays current, although a mount's own requests are mostly rounds of several
  // and large ranges: back to back until there are kRoundTripSamplesAtStart, the lowest
  // kept, then one each kRoundTripRefresh.
  unsigned due = 0;
  {
    std::lock_guard lock(link_mutex_);
    if (round_trip_samples_ < kRoundTripSamplesAtStart)
      due = kRoundTripSamplesAtStart - round_trip_samples_;
    else if (Clock::now() - round_trip_sampled_at_ > kRoundTripRefresh)
      due = 1;
  }
  for (unsigned i = 0; i < due && !cancel.cancelled(); ++i) {
    if (!check_auth(cancel).ok()) {
      warm_again_at_ = Clock::now() + kWarmRetryPause;
      return;
    }
  }
}

std::vector<std::pair<std::string, std::string>> DaemonClient::headers(bool refresh_code) {
  std::vector<std::pair<std::string, std::string>> out;
  out.emplace_back("Content-Type", "application/json");
  if (auth_.enabled())
    out.emplace_back("KACHERY-CLIENT-AUTH-CODE", refresh_code ? auth_.refresh() : auth_.current());
  return out;
}

void DaemonClient::observe(std::chrono::steady_clock::time_point began) const {
  if (config_.on_request) config_.on_request(std::chrono::steady_clock::now() - began);
}

void DaemonClient::measured(std::chrono::steady_clock::duration took, std::size_t count) {
  double seconds = std::chrono::duration<double>(took).count();
  std::lock_guard lock(link_mutex_);
  if (count <= 1) {
    // The newest small request weighs most, but a single slow answer (a busy node) should
    // not make the link look far away: falls fast, rises slowly.
    double& rtt = link_.round_trip;
    rtt = rtt == 0 || seconds < rtt ? seconds : 0.8 * rtt + 0.2 * seconds;
    ++round_trip_samples_;
    round_trip_sampled_at_ = std::chrono::steady_clock::now();
    return;
  }
  if (link_.round_trip == 0) return;
  double each = std::max(0.0, seconds - link_.round_trip) / static_cast<double>(count - 1);
  double& per = link_.per_request;
  per = per == 0 ? each : 0.7 * per + 0.3 * each;
}

void DaemonClient::adopt_link(const LinkEstimate& measured_elsewhere) {
  std::lock_guard lock(link_mutex_);
  if (link_.round_trip != 0 || measured_elsewhere.round_trip == 0) return;
  link_.round_trip = measured_elsewhere.round_trip;
  ++round_trip_samples_;
  round_trip_sampled_at_ = std::chrono::steady_clock::now();
}

LinkEstimate DaemonClient::link() const {
  std::lock_guard lock(link_mutex_);
  return link_;
}

bool DaemonClient::unread_outlast_a_connect(const std::vector<ByteRange>& ranges,
                                            std::size_t answered) const {
  // The answers left unread are read and dropped before the connection's next exchange:
  // wide ones (size discovery's windows below EOF) would delay it by more than a new
  // connection's handshake costs, and cross the link for nothing.
  std::uint64_t unread = 0;
  for (std::size_t i = answered; i < ranges.size(); ++i) unread += ranges[i].end - ranges[i].start;
  // This client measures no throughput (the node set does): 100 Mbit/s, a VPN's. Before
  // a round trip is measured, a millisecond.
  const double round_trip = link().round_trip > 0 ? link().round_trip : 0.001;
  return static_cast<double>(unread) / kAssumedBytesPerSecond > round_trip;
}

Status DaemonClient::read_ranges(std::string_view sha1, const std::vector<ByteRange>& ranges,
                                 std::vector<std::string>& answers, const StillWanted& wanted,
                                 const CancelToken& cancel) {
  note_used();
  answers.assign(ranges.size(), {});
  std::vector<HttpRequest> requests;
  const auto round_headers = headers(false);  // one look at the auth file for the round
  for (const ByteRange& range : ranges) {
    nlohmann::json body = {{"fileKey", {{"sha1", std::string(sha1)}}},
                           {"startByte", range.start},
                           {"endByte", range.end}};
    requests.push_back({"POST", "/downloadFileData", round_headers, body.dump(), {}, 0});
  }
  Status result;
  std::size_t answered = 0;
  bool over_long = false;
  auto began = std::chrono::steady_clock::now();
  auto connection = acquire();
  // Answers owed by an earlier round come first, and a new connection's handshake: a round
  // behind either is no measure of the link.
  const bool timed = connection->is_idle_and_open();
  connection->exchange_pipelined(
      requests,
      [&](std::size_t i) -> BodySink {
        return [&, i](const char* data, std::size_t size) {
          if (answers[i].size() + size > ranges[i].end - ranges[i].start) {
            over_long = true;
            return false;
          }
          answers[i].append(data, size);
          return true;
        };
      },
      [&](std::size_t i, const HttpOutcome& outcome) {
        if (over_long) {
          result = {Cause::kProtocolError, "the node sent more than the range asked for"};
          return false;
        }
        if (outcome.error == TransportError::kNone && outcome.status == 200) {
          if (auto wrong = misframed_download(outcome)) {
            result = *wrong;
            return false;
          }
          answered = i + 1;
          return !wanted || wanted(i);
        }
        result = classify_failure(outcome);
        return false;
      },
      config_.timeouts, cancel);
  if (result.ok() && answered < ranges.size() && unread_outlast_a_connect(ranges, answered))
    connection->close();
  release(std::move(connection));
  observe(began);
  if (result.ok()) {
    // The node dispatches every request of a pipelined round before it answers the first
    // (Node's HTTP server does): the time to any answer holds the whole round's work, so
    // the round's cost is shared by all its requests, not by the answers read.
    // A lone range is a round trip only when small, as in read_range; a round of large
    // ranges (size discovery's last windows) holds transfer time too. The first range may
    // be large: a head, whose transfer the round's probes share.
    auto large = [](const ByteRange& range) { return range.end - range.start > kSmallRange; };
    bool holds_transfer = ranges.size() == 1 ? large(ranges[0])
                                             : std::any_of(ranges.begin() + 1, ranges.end(), large);
    if (timed && answered > 0 && !holds_transfer)
      measured(std::chrono::steady_clock::now() - began, requests.size());
    return result;
  }
  if (result.cause() == Cause::kAuthRejected || result.cause() == Cause::kServerError ||
      (result.cause() == Cause::kProtocolError && !over_long)) {
    // A 403 (the code rotated), a 5xx or a broken pipeline: one after another, with
    // read_range's re-authentication, resumption and retries.
    return BlobSource::read_ranges(sha1, ranges, answers, wanted, cancel);
  }
  return with_auth_hint(result);
}

HttpOutcome DaemonClient::send(HttpRequest request, const BodySink& sink,
                               const HttpTimeouts& timeouts, const CancelToken& cancel,
                               bool* timed) {
  HttpOutcome outcome;
  for (int round = 0; round < 2; ++round) {
    request.headers = headers(round > 0);
    auto connection = acquire();
    if (timed) *timed = round == 0 && connection->is_idle_and_open();
    auto began = std::chrono::steady_clock::now();
    outcome = connection->exchange(request, sink, timeouts, cancel);
    release(std::move(connection));
    observe(began);
    if (outcome.error != TransportError::kNone || outcome.status != 403 || !auth_.enabled()) break;
    spdlog::debug("403 from the daemon; re-reading the auth code from {}", auth_.path());
  }
  return outcome;
}

Status DaemonClient::store(std::uint64_t length, const BodyProducer& produce, StoreAnswer* answer,
                           const CancelToken& cancel) {
  HttpRequest request{"POST", "/store", {}, {}, produce, length};
  if (auth_.enabled()) request.headers.emplace_back("KACHERY-CLIENT-AUTH-CODE", auth_.current());
  std::string body;
  HttpConnection connection(config_.address,
                            config_.connector);  // fresh: a streamed body is never replayed
  HttpTimeouts timeouts = config_.timeouts;
  timeouts.first_byte = std::max(timeouts.first_byte, std::chrono::milliseconds(120000));
  auto began = std::chrono::steady_clock::now();
  HttpOutcome outcome = connection.exchange(
      request,
      [&](const char* data, std::size_t size) {
        body.append(data, size);
        return body.size() < (1 << 20);
      },
      timeouts, cancel);
  observe(began);
  if (outcome.status == 403) auth_.refresh();  // the caller's retry uses the new code
  if (outcome.error != TransportError::kNone || outcome.status != 200)
    return classify_failure(outcome);
  auto json = nlohmann::json::parse(body, nullptr, false);
  auto text = [&](const char* key) { return json_text(json, key); };
  if (json.is_discarded() || !json_true(json, "success") || !is_sha1_name(text("sha1"))) {
    std::string error = text("error");
    return {Cause::kServerError,
            "/store did not store the file: " + (error.empty() ? one_line(body) : error)};
  }
  answer->sha1 = text("sha1");
  answer->manifest_sha1 = is_sha1_name(text("manifestSha1")) ? text("manifestSha1") : "";
  return {};
}

Status DaemonClient::check_auth(const CancelToken& cancel) {
  auto began = std::chrono::steady_clock::now();
  bool timed = false;
  HttpOutcome outcome = send(
      {"POST", "/probe", {}, "{}", {}, 0}, [](const char*, std::size_t) { return true; },
      config_.timeouts, cancel, &timed);
  if (outcome.error == TransportError::kNone && outcome.status == 200) {
    if (timed) measured(std::chrono::steady_clock::now() - began, 1);  // the probe's connection
    return {};
  }
  return with_auth_hint(classify_failure(outcome));
}

Status DaemonClient::with_auth_hint(Status result) const {
  if (result.cause() == Cause::kAuthRejected) {
    std::string& detail = result.failure().detail;
    detail = config_.auth_file.empty()
                 ? "no auth code given (no auth_file): " + detail
                 : "the auth code in " + config_.auth_file + " is wrong: " + detail;
  }
  return result;
}

Status DaemonClient::probe(ProbeInfo* info, const CancelToken& cancel) {
  std::string body;
  HttpRequest request{"GET", "/probe", {}, {}, {}, 0};
  auto began = std::chrono::steady_clock::now();
  auto connection = acquire();
  bool reused = connection->is_open();
  HttpOutcome outcome = connection->exchange(
      request,
      [&](const char* data, std::size_t size) {
        body.append(data, size);
        return body.size() < (1 << 20);
      },
      config_.timeouts, cancel);
  release(std::move(connection));
  observe(began);
  // The round trip, from a connection already open (a new one adds its handshake).
  if (outcome.error == TransportError::kNone && reused)
    measured(std::chrono::steady_clock::now() - began, 1);
  if (outcome.error == TransportError::kSinkRefused)
    return {Cause::kProtocolError, "/probe answered more than 1 MiB: not a kachery daemon"};
  if (outcome.error != TransportError::kNone || outcome.status != 200)
    return classify_failure(outcome);
  auto json = nlohmann::json::parse(body, nullptr, false);
  std::string node_id = json_text(json, "nodeId");
  if (json.is_discarded() || !json_true(json, "success") || node_id.empty()) {
    return {Cause::kProtocolError, "/probe answered something that is not a kachery daemon's JSON"};
  }
  // Whatever the node says goes into logs, the cache's metadata and kachery-node-id: accept
  // only what a kachery daemon sends (a 64-hex node id, a short printable version).
  bool hex64 = node_id.size() == 64 && is_lower_hex(node_id);
  if (!hex64) {
    return {Cause::kProtocolError,
            "/probe answered a node id that is not 64 lower-case hex characters"};
  }
  info->node_id = node_id;
  std::string version = json_text(json, "daemonVersion");
  bool printable = version.size() <= 100 && std::all_of(version.begin(), version.end(), [](char c) {
                     return c >= 0x20 && c < 0x7f;
                   });
  info->daemon_version = printable ? version : "(unprintable version)";
  info->storage_dir = json_text(json, "kacheryStorageDir");
  return {};
}

Status DaemonClient::read_range(std::string_view sha1, std::uint64_t start, std::uint64_t end,
                                const ByteSink& sink, const CancelToken& cancel) {
  note_used();
  std::uint64_t position = start;
  unsigned failures = 0;
  unsigned resumes = 0;
  auto began = std::chrono::steady_clock::now();
  for (;;) {
    nlohmann::json body = {
        {"fileKey", {{"sha1", std::string(sha1)}}}, {"startByte", position}, {"endByte", end}};
    std::uint64_t before = position;
    bool over_long = false;
    bool timed = false;
    HttpOutcome outcome = send(
        {"POST", "/downloadFileData", {}, body.dump(), {}, 0},
        [&](const char* data, std::size_t size) {
          if (size > end - position) {  // more than the range asked: a broken or hostile node
            over_long = true;
            return false;
          }
          position += size;
          return sink(data, size);
        },
        config_.timeouts, cancel, &timed);
    if (over_long) {
      return {Cause::kProtocolError, "the node sent more than the " + std::to_string(end - before) +
                                         " bytes asked for [" + std::to_string(before) + ", " +
                                         std::to_string(end) + ")"};
    }
    if (outcome.error == TransportError::kNone && outcome.status == 200) {
      if (auto wrong = misframed_download(outcome)) return *wrong;
      if (timed && end - start <= kSmallRange && failures == 0 && resumes == 0)
        measured(std::chrono::steady_clock::now() - began, 1);
      return {};
    }
    Status failure = with_auth_hint(classify_failure(outcome));
    bool progressed = position > before;
    bool retriable = failure.cause() == Cause::kServerError;
    if (!retriable) return failure;
    if (progressed && ++resumes <= kMaxResumes) {
      spdlog::debug("{}: connection broke at byte {}; resuming", sha1, position);
      continue;
    }
    if (++failures > config_.retries) return failure;
    spdlog::debug("{}: {} (attempt {}); retrying", sha1, failure.detail(), failures);
    if (!sleep_unless_cancelled(std::chrono::milliseconds(100 << failures), cancel)) {
      return {Cause::kCancelled, "cancelled"};
    }
  }
}

Status DaemonClient::load_blob(std::string_view sha1, const CancelToken& cancel) {
  return load_file(
      sha1, config_.channel,
      [&](const LoadProgress& p) {
        spdlog::info("node loading {}: {} of {} bytes", sha1, p.bytes_loaded, p.bytes_total);
      },
      cancel);
}

Status DaemonClient::load_file(std::string_view sha1, const std::string& channel,
                               const std::function<void(const LoadProgress&)>& on_progress,
                               const CancelToken& cancel) {
  note_used();
  nlohmann::json body = {{"fileKey", {{"sha1", std::string(sha1)}}}};
  if (!channel.empty()) body["channelName"] = channel;
  JsonSocketParser parser;
  std::optional<Status> final_result;
  HttpTimeouts timeouts = config_.timeouts;
  timeouts.idle = config_.load_timeout;  // the node may be silent while it searches
  timeouts.low_speed_limit = 0;          // ...or send a progress line now and then
  // The whole load has a deadline too: a node that reports progress forever cannot hold
  // a reader forever.
  DeadlineToken deadline(cancel, std::chrono::steady_clock::now() + config_.load_timeout);
  HttpOutcome outcome = send(
      {"POST", "/loadFile", {}, body.dump(), {}, 0},
      [&](const char* data, std::size_t size) {
        for (const auto& message : parser.feed(std::string_view(data, size))) {
          if (final_result) break;  // the first "finished" or "error" decides
          std::string type = json_text(message, "type");
          if (type == "progress") {
            on_progress({json_count(message, "bytesLoaded"), json_count(message, "bytesTotal")});
          } else if (type == "finished") {
            final_result.emplace();
          } else if (type == "error") {
            std::string text = json_text(message, "error");
            final_result.emplace(
                text.starts_with("Unable to find file") ? Cause::kNotFound : Cause::kServerError,
                "/loadFile: " + one_line(text));
          }
        }
        return parser.error().empty();
      },
      timeouts, deadline);
  if (!parser.error().empty()) return {Cause::kProtocolError, "/loadFile: " + parser.error()};
  if (deadline.expired() && !final_result && !cancel.cancelled()) {
    return {Cause::kTimeout, "/loadFile did not finish within load_timeout (" +
                                 std::to_string(config_.load_timeout.count() / 1000) + " s)"};
  }
  if (outcome.error != TransportError::kNone || outcome.status != 200)
    return with_auth_hint(classify_failure(outcome));
  if (!final_result) return {Cause::kProtocolError, "/loadFile ended without finished or error"};
  return *final_result;
}

}  // namespace kacheryfs
