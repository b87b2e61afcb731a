// Size discovery, the first stage of the read path. No daemon route reports a blob's size,
// so it is found from ranges: one that crosses EOF returns the bytes up to it, one that
// starts past it returns nothing. Requests go in rounds, each sent at once
// (BlobSource::read_ranges: pipelined, one round trip), and a round costs a round trip
// plus all its requests' time on the node (the daemon dispatches a whole pipelined round
// before it answers the first of it):
//   1. the head [0, head) (the kernel's first read on a link with latency; 1 MiB where
//      requests cost more than bytes) and, where the round trip is worth several requests,
//      no other discovery is under way and most recent files were larger than their head
//      (a blob the node lacks counts as a small one),
//      1-byte probes at geometric offsets, which find the size's order of magnitude in the
//      same round;
//   2. rounds of 1-byte probes that split what is left, as many as the link makes worth it;
//   3. windows that tile what is left, sent highest first: those past EOF come back empty
//      (a request's time on the node each), and the first that brings bytes straddles EOF:
//      the exact size, with the file's last bytes. The round ends there, so the full
//      windows below it are never waited for (the daemon client closes a connection that
//      owes answers that wide). More windows cost requests, wider ones cost transfer; the
//      plan weighs the two, and bounds the bytes they cover, which the node may send below
//      EOF before the close reaches it. Where a round trip costs little, this is one
//      window.
// The search fits a budget of rounds (4) across a link where a round trip costs a
// millisecond or more, and on a faster one wherever that costs at most a quarter more than
// the cheapest plan: each round trip of a real link brings its own jitter, so fewer,
// fuller rounds bound the tail, at a few percent of the mean (the cheapest plan for 1 GiB
// at 20 ms is one round longer).
// A probe round's ranges ascend, so its first answer shorter than its range settles it: the
// round ends there and the next goes out at once (the connection drops the rest while it
// travels). A small file is answered by its head alone, with its bytes. Every whole range
// a round brought is handed back, so that those pages are never fetched again.
// Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "fetch/blob_source.h"

namespace kacheryfs {

struct SizeDiscoveryConfig {
  std::uint64_t page_size = 64 << 10;     // the block cache's page: windows start on one
  std::uint64_t first_read = 128 << 10;   // the head on a link with latency: the kernel's
                                          // first read of a file (its readahead)
  std::uint64_t max_head = 1 << 20;       // the head on a fast link
  std::uint64_t max_window = 4 << 20;     // the widest last window (a bounded range)
  std::uint64_t max_last_span = 4 << 20;  // the most bytes the last round's windows cover
  unsigned round_budget = 4;              // rounds of a search across a link with latency
};

// Bytes of a blob already in hand: [offset, offset + bytes.size()).
struct KnownPiece {
  std::uint64_t offset = 0;
  std::string bytes;
};

struct DiscoveredSize {
  std::uint64_t size = 0;
  std::vector<KnownPiece> pieces;  // the head first, then the last window (if one was read)
  unsigned rounds = 0;
  unsigned requests = 0;
};

// The plan, from what is known of the link. Pure functions (unit-tested).
struct DiscoveryPlan {
  // The head's length.
  static std::uint64_t head_size(const LinkEstimate& link, const SizeDiscoveryConfig& config);
  // 1-byte probes to send beside the head (0 on a link where a round trip costs little).
  static unsigned first_round_probes(const LinkEstimate& link);
  // Probes for a ladder round (no end seen yet) that must settle `bits` more bits: of the
  // plans of n equal rounds (n round trips, n * k requests, 2^(bits / n) = k + 1), the
  // cheapest one's k.
  static unsigned probes_per_round(const LinkEstimate& link, double bits);
  // The next round once the size is known to lie in an interval of `interval` bytes: of
  // the plans of n <= rounds_left rounds of k probes each, then m windows that tile the
  // interval left (n round trips, n * k + m - 1 requests, half a window's transfer on
  // average), the cheapest within the budget where rounds are costly or where it costs at
  // most a quarter more than the cheapest of all; else that one.
  // `probes` 0 means: read the windows now.
  struct Round {
    unsigned probes = 0;
    std::uint64_t window = 0;  // each window's width (whole pages)
    unsigned windows = 1;      // how many the last round holds
  };
  static Round next_round(const LinkEstimate& link, std::uint64_t interval, unsigned rounds_left,
                          const SizeDiscoveryConfig& config);
  // Whether a round trip costs more than a millisecond: the head is then the kernel's
  // first read.
  static bool rounds_are_costly(const LinkEstimate& link);
};

class SizeDiscovery {
 public:
  SizeDiscovery(BlobSource& source, SizeDiscoveryConfig config);

  // The blob's size. A failure of the source comes back as it is (kNotFound included); a
  // node whose answers contradict each other, or that claims a byte at every index up to
  // 2^53, gives kProtocolError.
  Status discover(const std::string& sha1, DiscoveredSize& out, const CancelToken& cancel);

 private:
  // Whether probes beside the head are likely to pay: they save a large file a round
  // trip, and delay a small one's (which the head answers) by the node's time for them.
  // So they go out while most of the files discovered lately were large.
  bool probes_likely_to_pay() const;
  void remember_outcome(bool large);

  BlobSource& source_;
  SizeDiscoveryConfig config_;
  std::atomic<unsigned> in_flight_{0};  // discoveries under way
  // The last 16 discoveries, one bit each (1: larger than its head), oldest shifted out;
  // it starts as 9 large ones, the oldest, so that a new mount probes until its first two
  // small files.
  std::atomic<std::uint32_t> recent_large_{0xff80};
};

}  // namespace kacheryfs
