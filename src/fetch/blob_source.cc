#include "fetch/blob_source.h"

namespace kacheryfs {

const char* to_string(FetchStatus status) {
  switch (status) {
    case FetchStatus::kOk:
      return "ok";
    case FetchStatus::kNotFound:
      return "not found";
    case FetchStatus::kUnreachable:
      return "daemon unreachable";
    case FetchStatus::kTimeout:
      return "timeout";
    case FetchStatus::kCancelled:
      return "cancelled";
    case FetchStatus::kAuthRejected:
      return "auth code rejected";
    case FetchStatus::kServerError:
      return "server error";
    case FetchStatus::kProtocolError:
      return "protocol error";
    case FetchStatus::kLocalError:
      return "local cache write failed";
  }
  return "unknown";
}

FetchResult BlobSource::read_ranges(std::string_view sha1, const std::vector<ByteRange>& ranges,
                                    std::vector<std::string>& answers, const StillWanted& wanted,
                                    const CancelToken& cancel) {
  answers.assign(ranges.size(), {});
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    FetchResult result =
        read_range(sha1, ranges[i].start, ranges[i].end, append_to(answers[i]), cancel);
    if (!result.ok()) return result;
    if (wanted && !wanted(i)) break;
  }
  return {};
}

}  // namespace kacheryfs
