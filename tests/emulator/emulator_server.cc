#include "emulator_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cmath>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <thread>
#include <vector>

#include "kachery/hash_name.h"
#include "rate_pacer.h"

namespace kachery_emulator {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using json = nlohmann::json;
using Request = http::request<http::string_body>;

namespace {

constexpr const char* kHtml = "text/html; charset=utf-8";
constexpr const char* kJson = "application/json; charset=utf-8";
const std::string kMissingCode =
    "Missing client auth code in daemon request. You probably need to upgrade kachery-daemon or "
    "kachery.";
const std::string kWrongCode = "Incorrect or invalid client authorization code.";
const std::string kNotFound = "Error downloading file: Unable get data read stream for local file.";
const std::string kInvalidDownload =
    "Error downloading file: Invalid request in _apiDownloadFileData";
constexpr double kMaxSafeInteger = 9007199254740991.0;
// Node's fs.createReadStream reads 64 KiB at a time and the daemon writes each read as one
// chunk: the body arrives in 65,536-byte chunks (conformance check 4.2b).
constexpr std::size_t kChunk = 64 * 1024;
constexpr auto kKeepAliveTimeout = std::chrono::seconds(5);

bool is_hex40_any_case(const json& value) {
  static const std::regex pattern("^[0-9a-fA-F]{40}$");
  return value.is_string() && std::regex_match(value.get<std::string>(), pattern);
}

bool is_channel_name(const json& value) {
  static const std::regex pattern("^[0-9a-zA-Z_\\-.]{3,160}$");
  return value.is_string() && std::regex_match(value.get<std::string>(), pattern);
}

bool only_keys(const json& object, std::initializer_list<const char*> allowed) {
  if (!object.is_object()) return false;
  for (const auto& item : object.items()) {
    bool ok = false;
    for (const char* name : allowed) ok = ok || item.key() == name;
    if (!ok) return false;
  }
  return true;
}

bool valid_file_key(const json& key) {
  if (!only_keys(key, {"sha1", "manifestSha1", "chunkOf"}) ||
      !is_hex40_any_case(key.value("sha1", json()))) {
    return false;
  }
  if (key.contains("manifestSha1") && !is_hex40_any_case(key["manifestSha1"])) return false;
  if (key.contains("chunkOf")) {
    const json& chunk = key["chunkOf"];
    if (!only_keys(chunk, {"fileKey", "startByte", "endByte"}) || !chunk.contains("fileKey") ||
        !valid_file_key(chunk["fileKey"]) || !chunk.contains("startByte") ||
        !chunk.contains("endByte") || !chunk["startByte"].is_number() ||
        !chunk["endByte"].is_number()) {
      return false;
    }
  }
  return true;
}

// How Node prints a number in an ERR_OUT_OF_RANGE message (with _ separators past 2^32).
std::string node_number(double value) {
  if (value != std::floor(value)) {
    std::ostringstream out;
    out << value;
    return out.str();
  }
  std::string digits =
      std::to_string(static_cast<long long>(std::llabs(static_cast<long long>(value))));
  if (std::fabs(value) > 4294967296.0) {
    std::string grouped;
    int count = 0;
    for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
      if (count > 0 && count % 3 == 0) grouped.insert(grouped.begin(), '_');
      grouped.insert(grouped.begin(), *it);
      ++count;
    }
    digits = grouped;
  }
  return (value < 0 ? "-" : "") + digits;
}

// Node's createReadStream({start, end}) validation, with end inclusive. "" when valid.
std::string read_stream_range_error(std::optional<double> start, double end_inclusive) {
  auto out_of_range = [](const char* name, const std::string& range, double received) {
    return std::string("The value of \"") + name + "\" is out of range. It must be " + range +
           ". Received " + node_number(received);
  };
  if (start) {
    if (*start != std::floor(*start)) return out_of_range("start", "an integer", *start);
    if (*start < 0 || *start > kMaxSafeInteger)
      return out_of_range("start", ">= 0 && <= 9007199254740991", *start);
  }
  if (end_inclusive != std::floor(end_inclusive))
    return out_of_range("end", "an integer", end_inclusive);
  if (end_inclusive < 0 || end_inclusive > kMaxSafeInteger) {
    return out_of_range("end", ">= 0 && <= 9007199254740991", end_inclusive);
  }
  if (start && *start > end_inclusive) {
    return out_of_range("start", "<= \"end\" (here: " + node_number(end_inclusive) + ")", *start);
  }
  return "";
}

std::string express_error_page(const std::string& message) {
  return "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta "
         "charset=\"utf-8\">\n<title>Error</title>\n"
         "</head>\n<body>\n<pre>" +
         message + "</pre>\n</body>\n</html>\n";
}

std::string frame(const nlohmann::ordered_json& message) {
  std::string text = message.dump();
  return std::to_string(text.size()) + "#" + text;
}

}  // namespace

struct EmulatorServer::Impl {
  Impl(EmulatorConfig c, Faults& f)
      : config(std::move(c)),
        faults(f),
        storage(config.storage_dir),
        codes(storage.root(), config.auth_period),
        acceptor(ioc),
        daemon_thread(config.total_rate) {}

  EmulatorConfig config;
  Faults& faults;
  Storage storage;
  AuthCodes codes;
  net::io_context ioc;
  tcp::acceptor acceptor;
  // The daemon's one thread: every request's fixed cost and every body byte of every
  // connection pass through it (--total-rate, --request-cost-ms).
  RatePacer daemon_thread;
  std::mutex chaos_mutex;  // guards chaos_random
  std::mt19937_64 chaos_random{faults.chaos_seed};
  std::mutex log_mutex;
  std::atomic<std::uint64_t> requests{0};  // counted as they arrive
  std::atomic<std::uint64_t> answered{0};  // ... and once their answer is written (or dropped)
  std::atomic<std::uint64_t> downloads_arrived{0};  // /downloadFileData requests, as they arrive
  std::atomic<std::uint64_t> bytes_sent{0};
  std::atomic<std::uint64_t> connections{0};

  // Whether the request this connection's thread is serving came pipelined behind another.
  static thread_local bool sent_with_previous;
  // Requests of this connection's current pipelined batch whose request_cost was paid
  // with the batch's first (--batch-pipelined).
  static thread_local std::size_t prepaid_requests;

  // Complete requests in `buffer` (bytes read but not yet parsed), without consuming them.
  static std::size_t complete_requests(const beast::flat_buffer& buffer) {
    std::size_t count = 0;
    net::const_buffer rest = buffer.data();
    while (rest.size() > 0) {
      http::request_parser<http::string_body> parser;
      parser.eager(true);
      parser.body_limit(std::uint64_t{4} << 30);
      beast::error_code ec;
      while (!parser.is_done() && rest.size() > 0) {
        std::size_t used = parser.put(rest, ec);
        if (ec || used == 0) return count;
        rest += used;
      }
      if (!parser.is_done()) return count;
      ++count;
    }
    return count;
  }

  void log_request(const std::string& line) {
    if (config.request_log.empty()) return;
    std::lock_guard lock(log_mutex);
    std::ofstream(config.request_log, std::ios::app) << line << "\n";
  }

  const std::filesystem::path& reported_root() const {
    return config.reported_storage_dir.empty() ? storage.root() : config.reported_storage_dir;
  }

  // ---------------------------------------------------------------- responses
  // Each returns false when the connection must be closed.
  static bool send_simple(tcp::socket& socket, const Request& request, unsigned status,
                          const std::string& body, const char* content_type) {
    http::response<http::string_body> response{static_cast<http::status>(status), 11};
    response.set("X-Powered-By", "Express");
    if (content_type != nullptr) response.set(http::field::content_type, content_type);
    response.set(http::field::connection, "keep-alive");
    response.set("Keep-Alive", "timeout=5");
    response.body() = body;
    response.prepare_payload();
    response.keep_alive(request.keep_alive());
    beast::error_code ec;
    http::write(socket, response, ec);
    return !ec && request.keep_alive();
  }

  static bool send_chunked_header(tcp::socket& socket, unsigned status) {
    http::response<http::empty_body> response{static_cast<http::status>(status), 11};
    response.set("X-Powered-By", "Express");
    response.set(http::field::connection, "keep-alive");
    response.set("Keep-Alive", "timeout=5");
    response.chunked(true);
    http::response_serializer<http::empty_body> serializer{response};
    beast::error_code ec;
    http::write_header(socket, serializer, ec);
    return !ec;
  }

  static bool send_chunk(tcp::socket& socket, const char* data, std::size_t size) {
    beast::error_code ec;
    net::write(socket, http::make_chunk(net::const_buffer(data, size)), ec);
    return !ec;
  }

  static bool send_last_chunk(tcp::socket& socket) {
    beast::error_code ec;
    net::write(socket, http::make_chunk_last(), ec);
    return !ec;
  }

  // ---------------------------------------------------------------- auth
  // Returns true when the request may go on; otherwise has answered 403.
  bool authorized(tcp::socket& socket, const Request& request, bool browser_route, bool& keep) {
    auto it = request.find("KACHERY-CLIENT-AUTH-CODE");
    std::string code = it == request.end() ? "" : std::string(it->value());
    if (code.empty()) {
      keep = send_simple(socket, request, 403, kMissingCode, kHtml);
      return false;
    }
    if (codes.accepts(code)) return true;
    if (browser_route) {
      auto others = storage.mutable_get("_other_client_auth_codes");
      if (others && others->is_array()) {
        for (const auto& other : *others)
          if (other.is_string() && other.get<std::string>() == code) return true;
      }
    }
    keep = send_simple(socket, request, 403, kWrongCode, kHtml);
    return false;
  }

  // ---------------------------------------------------------------- routes
  bool handle(tcp::socket& socket, const Request& request) {
    ++requests;
    if (prepaid_requests > 0)
      --prepaid_requests;
    else
      daemon_thread.pace(0, config.request_cost, config.cpu_bound);
    std::string target(request.target());
    bool post = request.method() == http::verb::post;
    bool get = request.method() == http::verb::get;
    bool keep = request.keep_alive();

    if (get && target == "/probe") return probe(socket, request);
    if (post && target == "/probe") {
      if (!authorized(socket, request, true, keep)) return keep;
      return probe(socket, request);
    }
    if (get && target == "/stats") {
      if (!authorized(socket, request, false, keep)) return keep;
      json body = {{"success", true},
                   {"format", "json"},
                   {"stats",
                    {{"requests", requests.load()},
                     {"answered", answered.load()},
                     {"downloadsArrived", downloads_arrived.load()},
                     {"bytesSent", bytes_sent.load()},
                     {"connections", connections.load()}}}};
      return send_simple(socket, request, 200, body.dump(), kJson);
    }
    if (post && target == "/store") {
      if (!authorized(socket, request, false, keep)) return keep;
      return store(socket, request);
    }
    static const std::set<std::string> json_routes = {"/downloadFileData", "/loadFile",
                                                      "/storeFile",        "/linkFile",
                                                      "/mutable/get",      "/mutable/set"};
    if (post && json_routes.count(target)) {
      bool browser = target != "/storeFile" && target != "/linkFile";
      if (!authorized(socket, request, browser, keep)) return keep;
      json body =
          request.body().empty() ? json::object() : json::parse(request.body(), nullptr, false);
      if (body.is_discarded()) {
        return send_simple(socket, request, 400,
                           express_error_page("SyntaxError: Unexpected token in JSON"), kHtml);
      }
      if (target == "/downloadFileData") {
        ++downloads_arrived;
        return download(socket, request, body);
      }
      if (target == "/loadFile") return load_file(socket, request, body);
      if (target == "/storeFile") return store_file(socket, request, body);
      if (target == "/linkFile") return link_file(socket, request, body);
      return mutable_route(socket, request, body, target == "/mutable/set");
    }
    std::string method(request.method_string());
    return send_simple(socket, request, 404, express_error_page("Cannot " + method + " " + target),
                       kHtml);
  }

  bool probe(tcp::socket& socket, const Request& request) {
    nlohmann::ordered_json body;
    body["success"] = true;
    body["daemonVersion"] = "kachery-daemon-1.2.1";
    body["nodeId"] = storage.node_id();
    body["kacheryStorageDir"] = reported_root().string();
    return send_simple(socket, request, 200, body.dump(4), kJson);
  }

  static std::string store_json(const StoreResult& result) {
    nlohmann::ordered_json body;
    body["success"] = true;
    body["error"] = nullptr;
    body["sha1"] = result.sha1;
    body["manifestSha1"] = result.manifest_sha1 ? nlohmann::ordered_json(*result.manifest_sha1)
                                                : nlohmann::ordered_json(nullptr);
    return body.dump();
  }

  bool store(tcp::socket& socket, const Request& request) {
    if (request.find(http::field::content_length) == request.end()) {
      return send_simple(socket, request, 403, "Missing Content-Length in header", kHtml);
    }
    StoreResult result = storage.store_bytes(request.body());
    log_request("POST /store sha1=" + result.sha1 + " status=200");
    return send_simple(socket, request, 200, store_json(result), kJson);
  }

  bool store_file(tcp::socket& socket, const Request& request, const json& body) {
    if (!only_keys(body, {"localFilePath"}) || !body.contains("localFilePath") ||
        !body["localFilePath"].is_string()) {
      return send_simple(socket, request, 500, "Unexpected request data for storeFile.", kHtml);
    }
    std::string path = body["localFilePath"];
    struct stat st {};
    if (stat(path.c_str(), &st) != 0 || access(path.c_str(), R_OK) != 0) {
      return send_simple(socket, request, 500,
                         "Unable to stat file. Perhaps the kachery daemon does not have permission "
                         "to read this file: " +
                             path,
                         kHtml);
    }
    if (st.st_size == 0) {
      return send_simple(socket, request, 500, read_stream_range_error(std::nullopt, -1), kHtml);
    }
    auto result = storage.store_file(path);
    if (!result) return send_simple(socket, request, 500, "Unable to read file: " + path, kHtml);
    return send_simple(socket, request, 200, store_json(*result), kJson);
  }

  bool link_file(tcp::socket& socket, const Request& request, const json& body) {
    if (!only_keys(body, {"localFilePath", "size", "mtime"}) || !body.contains("localFilePath") ||
        !body["localFilePath"].is_string() || !body.contains("size") || !body["size"].is_number() ||
        !body.contains("mtime") || !body["mtime"].is_number()) {
      return send_simple(socket, request, 500, "Unexpected request data for linkFile.", kHtml);
    }
    std::string path = body["localFilePath"];
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
      return send_simple(socket, request, 500,
                         "Unable to stat file. Perhaps the kachery daemon does not have permission "
                         "to read this file: " +
                             path,
                         kHtml);
    }
    double given = body["size"].get<double>();
    if (static_cast<double>(st.st_size) != given) {
      return send_simple(socket, request, 500,
                         "Mismatch of file size in linkLocalFile: " + path + " " +
                             std::to_string(st.st_size) + " <> " + node_number(given),
                         kHtml);
    }
    auto result = storage.link_file(path, body["mtime"].get<double>());
    if (!result) return send_simple(socket, request, 500, "Unable to read file: " + path, kHtml);
    return send_simple(socket, request, 200, store_json(*result), kJson);
  }

  bool mutable_route(tcp::socket& socket, const Request& request, const json& body, bool set) {
    if (!body.contains("key") || (set && !body.contains("value"))) {
      return send_simple(socket, request, 500, "Invalid request in mutable", kHtml);
    }
    std::string key = body["key"].is_string() ? body["key"].get<std::string>() : body["key"].dump();
    if (set) {
      storage.mutable_set(key, body["value"]);
      return send_simple(socket, request, 200, json({{"success", true}}).dump(), kJson);
    }
    auto value = storage.mutable_get(key);
    nlohmann::ordered_json answer;
    answer["success"] = true;
    answer["found"] = value.has_value();
    answer["value"] =
        value ? nlohmann::ordered_json::parse(value->dump()) : nlohmann::ordered_json(nullptr);
    return send_simple(socket, request, 200, answer.dump(), kJson);
  }

  bool load_file(tcp::socket& socket, const Request& request, const json& body) {
    auto finish_with = [&](const std::vector<nlohmann::ordered_json>& messages) {
      if (!send_chunked_header(socket, 200)) return false;
      for (const auto& message : messages) {
        std::string framed = frame(message);
        if (!send_chunk(socket, framed.data(), framed.size())) return false;
      }
      return send_last_chunk(socket) && request.keep_alive();
    };
    bool valid = only_keys(body, {"fileKey", "channelName"}) && body.contains("fileKey") &&
                 valid_file_key(body["fileKey"]) &&
                 (!body.contains("channelName") || is_channel_name(body["channelName"]));
    if (!valid)
      return finish_with({{{"type", "error"}, {"error", "Invalid api load file request"}}});
    std::string sha1 = body["fileKey"]["sha1"];
    nlohmann::ordered_json progress0 =
        nlohmann::ordered_json{{"type", "progress"}, {"bytesLoaded", 0}, {"bytesTotal", 0}};
    auto finished = [&] {
      nlohmann::ordered_json message;
      message["type"] = "finished";
      message["localFilePath"] =
          (reported_root() / storage.content_path(sha1).lexically_relative(storage.root()))
              .string();
      return message;
    };
    if (storage.find(sha1)) {
      log_request("POST /loadFile sha1=" + sha1 + " status=200 result=stored");
      return finish_with({progress0, finished()});
    }
    if (body["fileKey"].contains("chunkOf")) {
      return finish_with({progress0,
                          {{"type", "error"},
                           {"error", "Unexpected: load completed, but localFilePath is null."}}});
    }
    if (!body.contains("channelName")) {
      return finish_with(
          {{{"type", "error"}, {"error", "Unable to find file. No channelName specified."}}});
    }
    std::filesystem::path remote;
    if (!config.network_dir.empty() && kacheryfs::is_sha1_name(sha1)) {
      remote = config.network_dir / kacheryfs::storage_relpath(sha1);
    }
    std::error_code ec;
    if (remote.empty() || !std::filesystem::is_regular_file(remote, ec)) {
      log_request("POST /loadFile sha1=" + sha1 + " status=200 result=not-found");
      return finish_with({{{"type", "error"}, {"error", "Unable to find file"}}});
    }
    // Simulated network fetch: progress at most every 2 s (here: a few steps), then the copy.
    std::uint64_t total = std::filesystem::file_size(remote);
    if (!send_chunked_header(socket, 200)) return false;
    const int steps = 4;
    for (int step = 0; step < steps; ++step) {
      nlohmann::ordered_json progress;
      progress["type"] = "progress";
      progress["bytesLoaded"] = total * static_cast<std::uint64_t>(step) / steps;
      progress["bytesTotal"] = total;
      std::string framed = frame(progress);
      if (!send_chunk(socket, framed.data(), framed.size())) return false;  // closing cancels
      std::this_thread::sleep_for(config.load_delay / steps);
    }
    storage.store_file(remote);
    log_request("POST /loadFile sha1=" + sha1 + " status=200 result=loaded");
    std::string framed = frame(finished());
    return send_chunk(socket, framed.data(), framed.size()) && send_last_chunk(socket) &&
           request.keep_alive();
  }

  bool download(tcp::socket& socket, const Request& request, const json& body) {
    std::string sha1 = body.is_object() && body.contains("fileKey") && body["fileKey"].is_object()
                           ? body["fileKey"].value("sha1", "")
                           : "";
    auto log = [&](unsigned status, std::uint64_t sent, const std::string& note) {
      std::string range = "start=" + (body.contains("startByte") ? body["startByte"].dump() : "-") +
                          " end=" + (body.contains("endByte") ? body["endByte"].dump() : "-");
      log_request("POST /downloadFileData sha1=" + sha1 + " " + range +
                  " status=" + std::to_string(status) + " bytes=" + std::to_string(sent) +
                  (note.empty() ? "" : " " + note) + (sent_with_previous ? " pipelined" : ""));
    };
    auto fail = [&](const std::string& text) {
      log(500, 0, "");
      return send_simple(socket, request, 500, text, kHtml);
    };
    auto number_ok = [&](const char* name) {
      return !body.contains(name) || (body[name].is_number() && body[name].get<double>() >= 0);
    };
    if (!only_keys(body, {"fileKey", "startByte", "endByte"}) || !body.contains("fileKey") ||
        !valid_file_key(body["fileKey"]) || !number_ok("startByte") || !number_ok("endByte")) {
      return fail(kInvalidDownload);
    }
    const json& key = body["fileKey"];
    bool faulted = faults.only_sha1.empty() || faults.only_sha1 == sha1;
    if (faulted && faults.fail_500_remaining.load() > 0 &&
        faults.fail_500_remaining.fetch_sub(1) > 0) {
      return fail("Error downloading file: injected fault (emulator --fail-500)");
    }
    // This request's stall and drop: the fixed faults, or (--chaos) one drawn at random.
    std::uint64_t stall_after = faulted ? faults.stall_after_bytes : 0;
    std::chrono::milliseconds stall_duration = faults.stall_duration;
    std::uint64_t drop_after = faulted ? faults.drop_after_bytes : 0;
    if (faults.chaos_percent > 0) {
      std::lock_guard lock(chaos_mutex);
      if (std::uniform_int_distribution<int>(0, 99)(chaos_random) < faults.chaos_percent) {
        switch (std::uniform_int_distribution<int>(0, 2)(chaos_random)) {
          case 0:
            return fail("Error downloading file: injected fault (emulator --chaos)");
          case 1:
            drop_after = 1 + std::uniform_int_distribution<std::uint64_t>(0, 1 << 20)(chaos_random);
            break;
          default:
            stall_after =
                1 + std::uniform_int_distribution<std::uint64_t>(0, 1 << 20)(chaos_random);
            stall_duration = std::chrono::milliseconds(
                std::uniform_int_distribution<int>(500, 4000)(chaos_random));
            break;
        }
      }
    }

    std::optional<StoredFile> file = storage.find(sha1);
    std::uint64_t base = 0;
    std::uint64_t length = 0;
    if (file) {
      length = file->size;
    } else if (key.contains("chunkOf")) {
      const json& chunk = key["chunkOf"];
      file = storage.find(chunk["fileKey"]["sha1"]);
      if (!file) return fail(kNotFound);
      base = static_cast<std::uint64_t>(chunk["startByte"].get<double>());
      std::uint64_t chunk_end = std::min<std::uint64_t>(
          file->size, static_cast<std::uint64_t>(chunk["endByte"].get<double>()));
      length = chunk_end > base ? chunk_end - base : 0;
    } else {
      return fail(kNotFound);
    }

    // The daemon passes {start, end: endByte - 1} to createReadStream, or the whole file
    // when either bound is missing.
    std::optional<double> start;
    double end_inclusive = static_cast<double>(length) - 1;
    if (body.contains("startByte") && body.contains("endByte")) {
      start = body["startByte"].get<double>();
      end_inclusive = body["endByte"].get<double>() - 1;
    }
    if (std::string error = read_stream_range_error(start, end_inclusive); !error.empty()) {
      return fail("Error downloading file: " + error);
    }
    std::uint64_t from = start ? static_cast<std::uint64_t>(*start) : 0;
    std::uint64_t to =
        std::min<std::uint64_t>(length, static_cast<std::uint64_t>(end_inclusive) + 1);

    if (faulted && faults.first_byte_delay.count() > 0)
      std::this_thread::sleep_for(faults.first_byte_delay);
    if (from >= to) {
      log(200, 0, "");
      return send_simple(socket, request, 200, "", nullptr);
    }
    int fd = open(file->data_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(kNotFound);
    bool corrupt = faults.wrong_bytes.count(sha1) > 0;
    bool ok = send_chunked_header(socket, 200);
    std::vector<char> buffer(kChunk);
    RatePacer connection(config.connection_rate);
    std::uint64_t sent = 0;
    bool stalled = false;
    std::string note;
    while (ok && from + sent < to) {
      std::size_t want =
          static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, to - from - sent));
      if (stall_after > 0 && !stalled && sent + want > stall_after) {
        want = static_cast<std::size_t>(stall_after - sent);
        if (want == 0) {
          stalled = true;
          note = "stalled";
          std::this_thread::sleep_for(stall_duration);
          continue;
        }
      }
      if (drop_after > 0 && sent + want > drop_after) {
        want = static_cast<std::size_t>(drop_after - sent);
        if (want == 0) {
          note = "dropped";
          ok = false;
          break;
        }
      }
      ssize_t n = pread(fd, buffer.data(), want, static_cast<off_t>(base + from + sent));
      if (n <= 0) {
        ok = false;
        break;
      }
      if (corrupt) {
        std::uint64_t at = base + from + sent;
        for (ssize_t i = 0; i < n; ++i) {
          if (faults.corrupt_offset < 0 || at + static_cast<std::uint64_t>(i) ==
                                               static_cast<std::uint64_t>(faults.corrupt_offset)) {
            buffer[static_cast<std::size_t>(i)] ^= 0x5a;
          }
        }
      }
      // The chunk leaves when both the daemon's thread and this connection have had time.
      if (daemon_thread.limited() || connection.limited()) {
        auto own_turn = connection.book(static_cast<std::uint64_t>(n));
        RatePacer::perform(daemon_thread.book_interval(static_cast<std::uint64_t>(n)),
                           config.cpu_bound && daemon_thread.limited());
        std::this_thread::sleep_until(own_turn);
      }
      ok = send_chunk(socket, buffer.data(), static_cast<std::size_t>(n));
      if (ok) sent += static_cast<std::uint64_t>(n);
    }
    close(fd);
    bytes_sent += sent;
    if (corrupt) note += note.empty() ? "corrupted" : " corrupted";
    log(200, sent, note);
    if (!ok) return false;  // drop: close without the last chunk
    return send_last_chunk(socket) && request.keep_alive();
  }

  // ---------------------------------------------------------------- connections
  void serve(tcp::socket socket) {
    ++connections;
    beast::error_code option_error;
    socket.set_option(tcp::no_delay(true), option_error);  // as Node's http server does
    beast::flat_buffer buffer;
    for (;;) {
      if (buffer.size() == 0) {
        pollfd waiting{socket.native_handle(), POLLIN, 0};
        int ready = poll(&waiting, 1,
                         static_cast<int>(std::chrono::milliseconds(kKeepAliveTimeout).count()));
        if (ready <= 0) break;  // keep-alive timeout, as the daemon's
      }
      // A request whose bytes were already read with the one before was sent with it
      // (HTTP/1.1 pipelining): the request log marks it, so that tests count round trips.
      sent_with_previous = buffer.size() > 0;
      http::request_parser<http::string_body> parser;
      parser.body_limit(std::uint64_t{4} << 30);
      beast::error_code ec;
      http::read(socket, buffer, parser, ec);
      if (ec) break;
      if (config.batch_pipelined && !sent_with_previous && prepaid_requests == 0) {
        // Node reads what has arrived (up to 64 KiB) and dispatches every request in it
        // before answering any.
        beast::error_code unread_error;
        std::size_t unread = std::min<std::size_t>(socket.available(unread_error), 64 << 10);
        if (!unread_error && unread > 0) {
          std::size_t got = socket.read_some(buffer.prepare(unread), unread_error);
          if (!unread_error) buffer.commit(got);
        }
        std::size_t batch = 1 + complete_requests(buffer);
        daemon_thread.pace(0, config.request_cost * static_cast<long>(batch), config.cpu_bound);
        prepaid_requests = batch;
      }
      bool keep_going = handle(socket, parser.get());
      ++answered;
      if (!keep_going) break;
    }
    beast::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }
};

thread_local bool EmulatorServer::Impl::sent_with_previous = false;
thread_local std::size_t EmulatorServer::Impl::prepaid_requests = 0;

EmulatorServer::EmulatorServer(EmulatorConfig config, Faults& faults)
    : impl_(new Impl(std::move(config), faults)) {}

std::uint16_t EmulatorServer::bind(std::uint16_t port) {
  tcp::endpoint endpoint(net::ip::make_address("127.0.0.1"), port);
  impl_->acceptor.open(endpoint.protocol());
  impl_->acceptor.set_option(net::socket_base::reuse_address(true));
  impl_->acceptor.bind(endpoint);
  impl_->acceptor.listen(net::socket_base::max_listen_connections);
  return impl_->acceptor.local_endpoint().port();
}

void EmulatorServer::run() {
  for (;;) {
    beast::error_code ec;
    tcp::socket socket(impl_->ioc);
    impl_->acceptor.accept(socket, ec);
    if (ec) continue;
    std::thread([this, s = std::move(socket)]() mutable { impl_->serve(std::move(s)); }).detach();
  }
}

}  // namespace kachery_emulator
