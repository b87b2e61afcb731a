// Whether the daemon answers, as seen by the content requests passing through: a
// BlobSource decorator notes each result, and a change (offline / back online) is logged
// once, not per request. The mount shows it as the root's user.kachery.online.
#pragma once

#include <atomic>
#include <string>

#include "fetch/blob_source.h"

namespace kacheryfs {

class DaemonState {
 public:
  explicit DaemonState(std::string daemon) : daemon_(std::move(daemon)) {}
  bool online() const { return online_.load(); }
  // Notes the outcome of any request to the daemon.
  void note(const FetchResult& result);

 private:
  std::string daemon_;
  std::atomic<bool> online_{true};
};

// Forwards to a BlobSource and tells a DaemonState how each request went.
class ObservedSource final : public BlobSource {
 public:
  ObservedSource(BlobSource& source, DaemonState& state) : source_(source), state_(state) {}
  FetchResult read_range(std::string_view sha1, std::uint64_t start, std::uint64_t end,
                         const ByteSink& sink, const CancelToken& cancel) override {
    FetchResult result = source_.read_range(sha1, start, end, sink, cancel);
    state_.note(result);
    return result;
  }
  FetchResult load_blob(std::string_view sha1, const CancelToken& cancel) override {
    FetchResult result = source_.load_blob(sha1, cancel);
    state_.note(result);
    return result;
  }

 private:
  BlobSource& source_;
  DaemonState& state_;
};

}  // namespace kacheryfs
