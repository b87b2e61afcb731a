// The kachery daemon's HTTP API as kacheryfs uses it (see kachery-daemon-protocol.md):
// GET /probe, bounded ranges from POST /downloadFileData streamed into a sink (resumed
// after a dropped connection, retried after a 5xx, re-authenticated once after a 403),
// and POST /loadFile with its JsonSocket progress stream. Connections are pooled and kept
// alive. Every failure comes back as a Status with its Cause. Implements the core's
// BlobSource; thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "auth_code_file.h"
#include "fetch/blob_source.h"
#include "http_connection.h"
#include "support/daemon_address.h"

namespace kacheryfs {

struct DaemonClientConfig {
  DaemonAddress address;
  std::string auth_file;  // "" = no auth header
  HttpTimeouts timeouts;
  unsigned retries = 2;  // extra attempts after a 5xx or a broken connection
  std::string channel;   // for /loadFile; "" = none
  std::chrono::milliseconds load_timeout{600000};
  std::size_t max_idle_connections = 8;
  // Told how long each HTTP exchange took (a pipelined round counts once); may be empty.
  std::function<void(std::chrono::steady_clock::duration)> on_request;
  // Opens each connection's socket instead of connecting to address; empty = TCP.
  StreamConnector connector;
};

struct ProbeInfo {
  std::string node_id;
  std::string daemon_version;
  std::string storage_dir;
};

struct StoreAnswer {
  std::string sha1;
  std::string manifest_sha1;  // "" for files of 20,000,000 bytes or less
};

struct LoadProgress {
  std::uint64_t bytes_loaded = 0;
  std::uint64_t bytes_total = 0;
};

class DaemonClient final : public BlobSource {
 public:
  explicit DaemonClient(DaemonClientConfig config);
  ~DaemonClient() override;

  Status probe(ProbeInfo* info, const CancelToken& cancel);
  // POST /probe with the auth code: kAuthRejected when the daemon refuses the code.
  Status check_auth(const CancelToken& cancel);

  Status read_range(std::string_view sha1, std::uint64_t start, std::uint64_t end,
                    const ByteSink& sink, const CancelToken& cancel) override;

  // Pipelined on one connection: one round trip for all of them.
  Status read_ranges(std::string_view sha1, const std::vector<ByteRange>& ranges,
                     std::vector<std::string>& answers, const StillWanted& wanted,
                     const CancelToken& cancel) override;
  // Round trip and per-request time, measured on small requests (throughput is the node
  // set's to measure).
  LinkEstimate link() const override;
  // Takes the round trip another client measured to the same node (the mount-time probe's),
  // until this one has measured its own.
  void adopt_link(const LinkEstimate& measured_elsewhere);

  Status load_blob(std::string_view sha1, const CancelToken& cancel) override;
  // As load_blob, for a given channel ("" = none), reporting each progress message.
  Status load_file(std::string_view sha1, const std::string& channel,
                   const std::function<void(const LoadProgress&)>& on_progress,
                   const CancelToken& cancel);

  // POST /store: streams `length` bytes from produce (raw, with Content-Length and no
  // Content-Type, as the daemon needs) on a fresh connection and returns the daemon's sha1
  // and manifest sha1. Not retried here: the caller replays the body if it wants to.
  Status store(std::uint64_t length, const BodyProducer& produce, StoreAnswer* answer,
               const CancelToken& cancel);

  const DaemonClientConfig& config() const { return config_; }

  // Closes pooled connections idle for longer than the daemon keeps them (it closes them
  // after 5 s): they would only fail at their next use, and hold an fd until then.
  void prune_idle();

  // Keeps one connection open in the pool while content was asked for within `window`
  // (the client's creation counts): opens one when none is idle. The next request then
  // pays no connect, a round trip across a link, as sshfs's and NFS's standing connections
  // pay none. None is opened while one is in use (it comes back to the pool). The daemon
  // closes an idle connection after 5 s, so the spare is renewed every few seconds while
  // the window lasts. After a failed connect, waits 30 s before the next. It also times a
  // small request (POST /probe) on the spare until the round trip has a few samples, and
  // then once a minute. Called from the mount's background thread; window 0 does nothing.
  void keep_warm(std::chrono::steady_clock::duration window, const CancelToken& cancel);

 private:
  std::unique_ptr<HttpConnection> acquire();
  // Names the auth file in the detail of a 403.
  Status with_auth_hint(Status result) const;
  void release(std::unique_ptr<HttpConnection> connection);
  // Whether reading and dropping the answers to ranges[answered..] before the connection's
  // next exchange would take longer than a round trip (a new connection's handshake).
  bool unread_outlast_a_connect(const std::vector<ByteRange>& ranges, std::size_t answered) const;
  // Folds the time of a small request, or of a pipelined round of `count` requests sent
  // at once (however many of their answers were read), into link_.
  void measured(std::chrono::steady_clock::duration took, std::size_t count);
  // Reports an exchange that began at `began` to config_.on_request.
  void observe(std::chrono::steady_clock::time_point began) const;
  // Notes that content was asked for (keep_warm's window starts again).
  void note_used();
  // The auth header of a request (empty when there is no auth file).
  std::vector<std::pair<std::string, std::string>> headers(bool refresh_code);
  // Sends request with the auth header; on a 403 re-reads the auth code and tries once more.
  // *timed says whether the answer's time was a round trip: it came on a connection that was
  // open and owed no earlier answers (no handshake, no queue in front of it).
  HttpOutcome send(HttpRequest request, const BodySink& sink, const HttpTimeouts& timeouts,
                   const CancelToken& cancel, bool* timed = nullptr);

  DaemonClientConfig config_;
  AuthCodeFile auth_;
  std::mutex pool_mutex_;
  struct IdleConnection {
    std::unique_ptr<HttpConnection> connection;
    std::chrono::steady_clock::time_point since;
  };
  std::vector<IdleConnection> idle_;  // oldest first
  std::size_t in_use_ = 0;            // connections acquired and not yet released
  std::atomic<std::chrono::steady_clock::rep> last_used_;
  std::chrono::steady_clock::time_point warm_again_at_{};  // keep_warm's thread only
  mutable std::mutex link_mutex_;                          // a leaf
  LinkEstimate link_;
  unsigned round_trip_samples_ = 0;  // small requests timed, under link_mutex_
  std::chrono::steady_clock::time_point round_trip_sampled_at_{};
};

// Maps an HTTP exchange that did not succeed to a Status (shared by the routes).
Status classify_failure(const HttpOutcome& outcome);

}  // namespace kacheryfs
