#include "fetch/blob_source.h"

namespace kacheryfs {

Status BlobSource::read_ranges(std::string_view sha1, const std::vector<ByteRange>& ranges,
                               std::vector<std::string>& answers, const StillWanted& wanted,
                               const CancelToken& cancel) {
  answers.assign(ranges.size(), {});
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    Status result = read_range(sha1, ranges[i].start, ranges[i].end, append_to(answers[i]), cancel);
    if (!result.ok()) return result;
    if (wanted && !wanted(i)) break;
  }
  return {};
}

}  // namespace kacheryfs
