// A model of size discovery's cost across a link (not in CI; built on demand with
// `cmake --build build --target size-discovery-model`). It runs the real SizeDiscovery
// against a simulated node whose every round costs one network round trip, the node's time
// for each request sent (the daemon dispatches a whole pipelined round before it answers),
// and the transfer of the bytes read, and prints the mean, median and 90th percentile of
// the time to find a size, over sizes drawn log-uniformly from a few ranges, and the time
// for a few single sizes. Defaults: the benchmark's vpn link against kachery-daemon 1.2.1.
//
//   size-discovery-model [--round-trip-ms 20.4] [--request-ms 1.3] [--mb-per-s 25]
//                        [--assumed-request-ms 0] [--samples 3000]
//
// --assumed-request-ms is the per-request time the planner is told; 0 (the default) means
// not measured yet, as on a new mount's first lookup.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "fetch/size_discovery.h"
#include "support/cancel_token.h"

namespace {

using namespace kacheryfs;

class ModelledNode final : public BlobSource {
 public:
  std::uint64_t size = 0;
  double round_trip = 0.0204;
  double per_request = 0.0013;
  double bytes_per_second = 25e6;
  LinkEstimate told;  // what the planner is told of the link
  double elapsed = 0;

  Status read_range(std::string_view, std::uint64_t, std::uint64_t, const ByteSink&,
                    const CancelToken&) override {
    return {Cause::kLocalError, "the model answers rounds only"};
  }
  Status read_ranges(std::string_view, const std::vector<ByteRange>& ranges,
                     std::vector<std::string>& answers, const StillWanted& wanted,
                     const CancelToken&) override {
    constexpr double kHeaderBytes = 200;  // an answer's status line and headers
    answers.assign(ranges.size(), {});
    double took = round_trip + static_cast<double>(ranges.size()) * per_request;
    for (std::size_t i = 0; i < ranges.size(); ++i) {
      std::uint64_t stop = std::min(ranges[i].end, size);
      if (stop > ranges[i].start) answers[i].assign(stop - ranges[i].start, 'x');
      took += (static_cast<double>(answers[i].size()) + kHeaderBytes) / bytes_per_second;
      if (wanted && !wanted(i)) break;
    }
    elapsed += took;
    return {};
  }
  Status load_blob(std::string_view, const CancelToken&) override {
    return {Cause::kNotFound, "the model has every blob"};
  }
  LinkEstimate link() const override { return told; }
};

double flag(int argc, char** argv, const std::string& name, double fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == name) return std::atof(argv[i + 1]);
  return fallback;
}

// One discovery by a new SizeDiscovery (a new mount's), in seconds; exits on a wrong size.
double discovery_time(ModelledNode& node, std::uint64_t size, unsigned* rounds = nullptr,
                      unsigned* requests = nullptr) {
  node.size = size;
  node.elapsed = 0;
  SizeDiscovery discovery(node, SizeDiscoveryConfig{});
  DiscoveredSize found;
  NeverCancelled never;
  Status result = discovery.discover("model", found, never);
  if (!result.ok() || found.size != size) {
    std::fprintf(stderr, "size-discovery-model: %llu bytes came out as %llu (%s)\n",
                 static_cast<unsigned long long>(size), static_cast<unsigned long long>(found.size),
                 result.detail().c_str());
    std::exit(1);
  }
  if (rounds) *rounds = found.rounds;
  if (requests) *requests = found.requests;
  return node.elapsed;
}

}  // namespace

int main(int argc, char** argv) {
  ModelledNode node;
  node.round_trip = flag(argc, argv, "--round-trip-ms", 20.4) / 1e3;
  node.per_request = flag(argc, argv, "--request-ms", 1.3) / 1e3;
  node.bytes_per_second = flag(argc, argv, "--mb-per-s", 25) * 1e6;
  node.told = {node.round_trip + node.per_request,
               flag(argc, argv, "--assumed-request-ms", 0) / 1e3, node.bytes_per_second};
  const int samples = static_cast<int>(flag(argc, argv, "--samples", 3000));

  std::printf(
      "node: round trip %.1f ms, %.2f ms a request, %.0f MB/s; planner told %.2f ms a "
      "request\n",
      node.round_trip * 1e3, node.per_request * 1e3, node.bytes_per_second / 1e6,
      node.told.per_request * 1e3);
  struct Span {
    const char* label;
    double from;
    double to;
  };
  for (const Span& span : {Span{"2 MB to 10 GB", 2e6, 1e10}, Span{"30 to 70 MB", 30e6, 70e6},
                           Span{"0.7 to 1.5 GB", 0.7e9, 1.5e9}}) {
    std::mt19937_64 random(1);
    std::uniform_real_distribution<double> uniform(std::log(span.from), std::log(span.to));
    std::vector<double> times;
    for (int i = 0; i < samples; ++i)
      times.push_back(discovery_time(node, static_cast<std::uint64_t>(std::exp(uniform(random)))));
    std::sort(times.begin(), times.end());
    double mean = 0;
    for (double t : times) mean += t / static_cast<double>(times.size());
    std::printf("%-14s mean %6.1f ms  median %6.1f ms  p90 %6.1f ms\n", span.label, mean * 1e3,
                times[times.size() / 2] * 1e3, times[times.size() * 9 / 10] * 1e3);
  }
  for (std::uint64_t size : {std::uint64_t{45000000}, std::uint64_t{1} << 30}) {
    unsigned rounds = 0;
    unsigned requests = 0;
    double took = discovery_time(node, size, &rounds, &requests);
    std::printf("%llu bytes: %.1f ms, %u rounds, %u requests\n",
                static_cast<unsigned long long>(size), took * 1e3, rounds, requests);
  }
  return 0;
}
