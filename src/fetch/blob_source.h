// The contract between the core and wherever content bytes come from. The daemon client
// implements it over HTTP; unit tests implement it in memory. No HTTP or FUSE types here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "support/cancel_token.h"
#include "support/result.h"

namespace kacheryfs {

// Receives consecutive bytes of a range. Returns false to abort the transfer.
using ByteSink = std::function<bool(const char* data, std::size_t size)>;

// A sink that keeps the bytes of a range in `out`.
inline ByteSink append_to(std::string& out) {
  return [&out](const char* data, std::size_t size) {
    out.append(data, size);
    return true;
  };
}

struct ByteRange {
  std::uint64_t start = 0;
  std::uint64_t end = 0;  // > start
};

// What is known of the link to a source, from its recent requests (0 = not measured yet).
struct LinkEstimate {
  double round_trip = 0;        // seconds from a small request sent to its answer
  double per_request = 0;       // seconds the source spends on each of several sent at once
  double bytes_per_second = 0;  // throughput of its recent large ranges
};

class BlobSource {
 public:
  virtual ~BlobSource() = default;

  // Streams bytes [start, end) of the blob into sink, in order, without gaps or repeats
  // (the implementation resumes internally after a dropped connection). Fewer bytes than
  // asked means the blob ended. Requires end > start.
  virtual Status read_range(std::string_view sha1, std::uint64_t start, std::uint64_t end,
                            const ByteSink& sink, const CancelToken& cancel) = 0;

  // Several small ranges of one blob, asked at once (a round of size discovery): the source
  // may send them together, in one round trip. answers[i] gets the bytes of ranges[i]
  // (fewer at the blob's end, none past it). After each answer, wanted(i) says whether the
  // ones after it are still needed; the rest are then left unread. The default asks for
  // them one after another through read_range.
  using StillWanted = std::function<bool(std::size_t answered)>;
  virtual Status read_ranges(std::string_view sha1, const std::vector<ByteRange>& ranges,
                             std::vector<std::string>& answers, const StillWanted& wanted,
                             const CancelToken& cancel);

  virtual LinkEstimate link() const { return {}; }

  // Asks the source to obtain a blob it lacks (kachery: /loadFile through a channel).
  // Returns kOk once the blob can be read, kNotFound when it cannot be found.
  virtual Status load_blob(std::string_view sha1, const CancelToken& cancel) = 0;

  // Told that bytes [start, end) of sha1, as this source served them, failed verification.
  // Says who served them (for the error message) and whether another attempt may reach
  // other bytes (a different node).
  struct BadBytesVerdict {
    std::string served_by;  // "" when the source cannot tell
    bool worth_retrying = false;
  };
  virtual BadBytesVerdict report_bad_bytes(const std::string& sha1, std::uint64_t start,
                                           std::uint64_t end) {
    (void)sha1;
    (void)start;
    (void)end;
    return {};
  }
};

}  // namespace kacheryfs
