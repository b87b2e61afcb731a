#include "fetch/size_discovery.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <limits>

namespace kacheryfs {

namespace {

// The daemon accepts byte indexes up to 2^53: no size is larger.
constexpr std::uint64_t kLargestSize = std::uint64_t{1} << 53;
constexpr unsigned kMaxProbesPerRound = 63;
constexpr unsigned kMaxWindows = 63;
constexpr unsigned kMaxFirstRoundProbes = 24;
constexpr unsigned kMaxRounds = 64;
// The far end of the first round's probes (1 TiB); later rounds go on up to 2^53.
constexpr double kFirstRoundReach = 1099511627776.0;

// What the plan assumes of a link it has not measured yet.
constexpr double kDefaultPerRequest = 0.001;       // the daemon's time for one request
constexpr double kDefaultBytesPerSecond = 12.5e6;  // a link's throughput: 100 Mbit/s

double per_request(const LinkEstimate& link) {
  return link.per_request > 0 ? link.per_request : kDefaultPerRequest;
}

// The network's share of a small request's round trip.
double network_round_trip(const LinkEstimate& link) {
  return std::max(0.0, link.round_trip - per_request(link));
}

double bytes_per_second(const LinkEstimate& link) {
  return link.bytes_per_second > 0 ? link.bytes_per_second : kDefaultBytesPerSecond;
}

}  // namespace

std::uint64_t DiscoveryPlan::head_size(const LinkEstimate& link,
                                       const SizeDiscoveryConfig& config) {
  // Across a link with latency the head's transfer is what a first read waits for: what
  // the kernel asks for first (its readahead from offset 0). Where the round trip costs less than a
  // millisecond, the node's time per request dominates, and a larger head answers more files in one
  // request.
  return DiscoveryPlan::rounds_are_costly(link) ? config.first_read : config.max_head;
}

unsigned DiscoveryPlan::first_round_probes(const LinkEstimate& link) {
  // The node dispatches every request of a round before it answers the first (Node's HTTP
  // server does), so each probe delays the head's answer by the node's time per request.
  // Up to a round trip's worth of them: a round at most twice as long, which settles the
  // size's order of magnitude that ladder rounds would take one or two round trips for.
  // (Modelled over sizes from 2 MB to 2 TB across a 20 ms link, the mean time of a search
  // varies by under 5% between a half and all of a round trip's worth.)
  double r = network_round_trip(link);
  double c = per_request(link);
  if (r < 2 * c) return 0;
  return static_cast<unsigned>(std::min<double>(kMaxFirstRoundProbes, std::floor(r / c)));
}

bool DiscoveryPlan::rounds_are_costly(const LinkEstimate& link) {
  return network_round_trip(link) >= 0.001;
}

unsigned DiscoveryPlan::probes_per_round(const LinkEstimate& link, double bits) {
  double r = network_round_trip(link);
  double c = per_request(link);
  if (bits <= 0) return 1;
  unsigned best = 1;
  double best_cost = 0;
  for (unsigned n = 1; n <= 64; ++n) {
    double k = std::ceil(std::exp2(bits / n)) - 1;
    if (k > kMaxProbesPerRound) continue;
    double cost = n * (r + k * c);
    if (best_cost == 0 || cost < best_cost) {
      best_cost = cost;
      best = static_cast<unsigned>(std::max(1.0, k));
    }
    if (k <= 1) break;
  }
  return best;
}

DiscoveryPlan::Round DiscoveryPlan::next_round(const LinkEstimate& link, std::uint64_t interval,
                                               unsigned rounds_left,
                                               const SizeDiscoveryConfig& config) {
  const double r = network_round_trip(link);
  const double c = per_request(link);
  const double bandwidth = bytes_per_second(link);
  const auto page = static_cast<double>(config.page_size);
  const auto width = static_cast<double>(interval);
  const unsigned max_windows = rounds_are_costly(link) ? kMaxWindows : 1;
  struct Plan {
    Round round{kMaxProbesPerRound, 0, 1};  // when no plan fits: the widest round
    double cost = std::numeric_limits<double>::infinity();
  };
  // The cheapest plan of at most max_rounds probe rounds.
  auto cheapest = [&](unsigned max_rounds) {
    Plan best;
    best.round.window = config.max_window;
    // `rounds` rounds of `probes` probes leave `left` bytes, which the last round's windows
    // tile. Every plan ends with that round's round trip and first request, so neither is
    // counted: each further window costs a request, and the one that straddles EOF brings
    // half its width on average. The windows below it cost no wait, but the node sends
    // them until the closed connection stops it: across a link with latency that is about
    // what is in flight, while on a fast one the node's whole time for them, which delays
    // the requests after. So a fast link's last round is one window.
    auto consider = [&](unsigned rounds, unsigned probes, double left) {
      for (unsigned windows = 1; windows <= max_windows; ++windows) {
        double window = std::ceil(std::max(page, left / windows) / page) * page;
        if (window > static_cast<double>(config.max_window)) continue;
        if (windows > 1 && windows * window > static_cast<double>(config.max_last_span)) break;
        double cost = rounds * (r + probes * c) + (windows - 1) * c + window / (2 * bandwidth);
        if (cost < best.cost) best = {{probes, static_cast<std::uint64_t>(window), windows}, cost};
        if (window <= page) break;
      }
    };
    consider(0, 0, width);
    // A plan of n rounds of k probes costs at least n * (r + k * c), which grows with both:
    // once that reaches the best cost found, no larger plan can beat it. Nor can more
    // probes per round once the window left is down to a page.
    for (unsigned n = 1; n <= max_rounds && n * (r + c) < best.cost; ++n) {
      for (unsigned k = 1; k <= kMaxProbesPerRound && n * (r + k * c) < best.cost; ++k) {
        double left = width / std::pow(k + 1.0, n);
        consider(n, k, left);
        if (left <= page) break;
      }
    }
    return best;
  };
  Plan free = cheapest(kMaxRounds);
  if (rounds_left >= kMaxRounds) return free.round;
  // The budget holds across a link where a round trip costs a millisecond or more (a
  // VPN): each round trip there brings its own jitter. On a LAN, where a round trip is
  // worth a request or two, it holds only where it costs at most a quarter more than the
  // cheapest plan.
  Plan budgeted = cheapest(rounds_left);
  bool binding = rounds_are_costly(link) && std::isfinite(budgeted.cost);
  return binding || budgeted.cost <= 1.25 * free.cost ? budgeted.round : free.round;
}

SizeDiscovery::SizeDiscovery(BlobSource& source, SizeDiscoveryConfig config)
    : source_(source), config_(config) {}

bool SizeDiscovery::probes_likely_to_pay() const {
  return std::popcount(recent_large_.load(std::memory_order_relaxed) & 0xffffu) >= 8;
}

void SizeDiscovery::remember_outcome(bool large) {
  std::uint32_t seen = recent_large_.load(std::memory_order_relaxed);
  while (!recent_large_.compare_exchange_weak(seen, ((seen << 1) | (large ? 1u : 0u)) & 0xffffu,
                                              std::memory_order_relaxed)) {
  }
}

Status SizeDiscovery::discover(const std::string& sha1, DiscoveredSize& out,
                               const CancelToken& cancel) {
  out = {};
  const LinkEstimate link = source_.link();
  const std::uint64_t head = DiscoveryPlan::head_size(link, config_);
  // Probes beside the head are free only for a discovery that has the node to itself: the
  // node serves requests one after another, and those of other discoveries would wait.
  struct InFlight {
    std::atomic<unsigned>& count;
    unsigned others;
    explicit InFlight(std::atomic<unsigned>& c) : count(c), others(c.fetch_add(1)) {}
    ~InFlight() { count.fetch_sub(1); }
  } in_flight(in_flight_);
  // The size is in [lo, hi]: a byte at index x exists iff size > x.
  std::uint64_t lo = head;
  std::uint64_t hi = kLargestSize;
  std::vector<std::string> answers;

  auto contradiction = [&] {
    return Status{Cause::kProtocolError,
                  "the node's answers about the file's size contradict each other"};
  };
  std::vector<ByteRange> ranges;
  // A probe round's ranges ascend, so the first answer shorter than its range settles the
  // round: the file ends there, and every later range lies past EOF. The round ends
  // there too (its other answers are left unread, and the connection drops them while
  // the next round is on its way), so the next round starts as soon as it can be planned.
  auto until_short = [&](std::size_t i) {
    return answers[i].size() >= ranges[i].end - ranges[i].start;
  };
  // Narrows [lo, hi] from a round's answers, up to the first empty one (those after it
  // may be unread).
  auto settle = [&](std::size_t first_probe) {
    for (std::size_t i = first_probe; i < ranges.size() && i < answers.size(); ++i) {
      if (answers[i].size() > 1) return contradiction();
      if (answers[i].empty()) {
        hi = std::min(hi, ranges[i].start);
        break;
      }
      lo = std::max(lo, ranges[i].start + 1);
    }
    return lo <= hi ? Status{} : contradiction();
  };
  auto probe_at = [](std::uint64_t x) { return ByteRange{x, x + 1}; };
  // One round: its ranges at once, and a debug line of what it cost and settled.
  auto send_round = [&](const BlobSource::StillWanted& wanted) {
    auto began = std::chrono::steady_clock::now();
    Status sent = source_.read_ranges(sha1, ranges, answers, wanted, cancel);
    ++out.rounds;
    out.requests += static_cast<unsigned>(ranges.size());
    const bool descending = ranges.front().start > ranges.back().start;
    spdlog::debug(
        "{}: size round {}: {} ranges{}, {} to {}, {:.2f} ms", sha1, out.rounds, ranges.size(),
        descending ? " from the top down" : "", std::min(ranges.front().start, ranges.back().start),
        std::max(ranges.front().end, ranges.back().end),
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - began)
            .count());
    return sent;
  };

  // Round 1: the head, and probes at geometric offsets from twice the head to 1 TiB.
  ranges = {{0, head}};
  unsigned probes =
      in_flight.others == 0 && probes_likely_to_pay() ? DiscoveryPlan::first_round_probes(link) : 0;
  for (unsigned i = 0; i < probes; ++i) {
    double from = 2.0 * static_cast<double>(head);
    double x = probes == 1 ? from : from * std::pow(kFirstRoundReach / from, i / (probes - 1.0));
    auto at = static_cast<std::uint64_t>(x);
    if (at > ranges.back().start) ranges.push_back(probe_at(at));
  }
  Status result = send_round(until_short);
  // A blob the node lacks counts as a small file: probes beside its head would only delay
  // the answer (a client that asks for names which may not exist, as the stock client
  // does, soon sends none).
  if (result.cause() == Cause::kNotFound) remember_outcome(false);
  if (!result.ok()) return result;
  if (answers.empty() || answers[0].size() > head) return contradiction();
  remember_outcome(answers[0].size() >= head);
  if (answers[0].size() < head) {
    out.size = answers[0].size();
    out.pieces.push_back({0, std::move(answers[0])});
    return {};
  }
  out.pieces.push_back({0, std::move(answers[0])});
  if (Status settled = settle(1); !settled.ok()) return settled;

  for (unsigned round = 0; round < kMaxRounds; ++round) {
    // Checked first: a ladder's last probe, at 2^53 - 1, can leave lo == hi == 2^53.
    if (hi == kLargestSize && lo >= kLargestSize / 2) {
      return {Cause::kProtocolError,
              "size discovery found no end: the node has a byte at every index probed, up to " +
                  std::to_string(lo)};
    }
    if (lo == hi) {
      out.size = lo;
      return {};
    }
    // Rounds left within the budget, the window's included.
    const LinkEstimate now = source_.link();
    unsigned rounds_left =
        out.rounds + 1 < config_.round_budget ? config_.round_budget - out.rounds - 1 : 0;
    DiscoveryPlan::Round plan{8, 0};
    if (hi != kLargestSize) plan = DiscoveryPlan::next_round(now, hi - lo, rounds_left, config_);
    if (plan.probes == 0) {
      // Windows that tile [start, hi + 1), which straddles EOF, sent highest first. They
      // start on a page, so that the one that brings the file's end covers its last pages
      // whole. Those past EOF come back empty; the first that brings bytes straddles EOF,
      // or ends at it (the one above it was empty): the file ends where its bytes do.
      const std::uint64_t page = config_.page_size;
      const std::uint64_t start = lo / page * page;
      const std::uint64_t pages = (hi + 1 - start + page - 1) / page;
      const std::uint64_t width = (pages + plan.windows - 1) / plan.windows * page;
      ranges.clear();
      for (std::uint64_t from = start; from <= hi; from += width)
        ranges.push_back({from, std::min(from + width, hi + 1)});
      std::reverse(ranges.begin(), ranges.end());
      result = send_round([&](std::size_t i) { return answers[i].empty(); });
      if (!result.ok()) return result;
      std::size_t first = 0;
      while (first < answers.size() && answers[first].empty()) ++first;
      std::uint64_t size =
          first < answers.size() ? ranges[first].start + answers[first].size() : start;
      if (size < lo || size > hi) return contradiction();
      out.size = size;
      if (first < answers.size())
        out.pieces.push_back({ranges[first].start, std::move(answers[first])});
      return {};
    }
    unsigned k = hi == kLargestSize ? DiscoveryPlan::probes_per_round(now, 8.0) : plan.probes;
    ranges.clear();
    if (hi == kLargestSize) {
      // No end seen yet: a ladder from lo, each rung 8 times the last, which the ratio
      // splits below then narrow. (Over sizes from 1 MiB to 64 GiB, rounds of one probe
      // then take 13.3 requests on average against 16.9 for a ladder of doublings, and
      // 6.9 against 7.1 for the sizes under 64 MiB.)
      for (unsigned i = 1; i <= k && (lo << 3 * i) < hi; ++i)
        ranges.push_back(probe_at(lo << 3 * i));
    } else {
      // Split [lo, hi) into k + 1 parts: by ratio while hi is far above lo, else evenly.
      bool by_ratio = hi / 4 > lo;
      for (unsigned i = 1; i <= k; ++i) {
        double part = static_cast<double>(i) / (k + 1);
        double x = by_ratio ? static_cast<double>(lo) *
                                  std::pow(static_cast<double>(hi) / static_cast<double>(lo), part)
                            : static_cast<double>(lo) + static_cast<double>(hi - lo) * part;
        auto at = std::clamp(static_cast<std::uint64_t>(x), lo, hi - 1);
        if (ranges.empty() || at > ranges.back().start) ranges.push_back(probe_at(at));
      }
    }
    if (ranges.empty()) ranges.push_back(probe_at(hi - 1));
    result = send_round(until_short);
    if (!result.ok()) return result;
    if (Status settled = settle(0); !settled.ok()) return settled;
  }
  return {Cause::kProtocolError, "size discovery did not converge"};
}

}  // namespace kacheryfs
