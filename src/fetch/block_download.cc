#include "fetch/block_download.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "fetch/fetch_errors.h"

namespace kacheryfs {

BlockDownload::BlockDownload(BlobSource& source, CacheAccounting& accounting, Counters& counters,
                             std::uint64_t block_size)
    : source_(source), accounting_(accounting), counters_(counters), block_size_(block_size) {}

Status BlockDownload::fetch_run(PartialFile& file, std::uint64_t first, std::uint64_t limit,
                                const CancelToken& cancel, Purpose purpose) {
  std::uint64_t pages_per_block = std::max<std::uint64_t>(1, block_size_ / file.page_size());
  limit = std::min({limit, first + pages_per_block - 1, file.page_count() - 1});
  std::uint64_t last = first;
  while (last < limit && file.claim(last + 1)) ++last;
  std::uint64_t start = file.page_start(first);
  std::uint64_t end = file.page_end(last);
  std::uint64_t position = start;
  std::uint64_t next_page = first;  // the first page not yet recorded as present
  int write_error = 0;
  accounting_.make_room(end - start);
  Status result = source_.read_range(
      file.sha1(), start, end,
      [&](const char* data, std::size_t size) {
        while (size > 0) {
          ssize_t n = pwrite(file.data_fd(), data, size, static_cast<off_t>(position));
          if (n < 0) {
            if (errno == EINTR) continue;
            // A full disk: evicting beats failing the read (once per write).
            if (errno == ENOSPC && write_error != ENOSPC &&
                accounting_.make_room_after_enospc(end - position) > 0) {
              write_error = ENOSPC;
              continue;
            }
            write_error = errno;
            return false;
          }
          data += n;
          size -= static_cast<std::size_t>(n);
          position += static_cast<std::uint64_t>(n);
        }
        std::uint64_t done = next_page;  // pages [next_page, done) arrived whole
        while (done <= last && file.page_end(done) <= position) ++done;
        if (done > next_page) file.finish(next_page, done - 1, true);
        next_page = done;
        return true;
      },
      cancel);
  if (next_page <= last) file.finish(next_page, last, false);  // whatever did not arrive
  if (result.ok() && position != end) {
    result = {Cause::kProtocolError, "range [" + std::to_string(start) + ", " +
                                         std::to_string(end) + "): got " +
                                         std::to_string(position - start) + " bytes"};
  }
  if (result.cause() == Cause::kLocalError && write_error != 0) {
    result = fail(Cause::kLocalError, -write_error,
                  std::string("writing the block cache: ") + std::strerror(write_error));
  }
  counters_.add(Counter::kBytesFetched, position - start);
  if (!result.ok()) {
    if (purpose == Purpose::kPrefetch) {
      // Nobody waits for these bytes: no EIO is given or counted. A reader that needs them
      // fetches them itself and meets (and reports) whatever is wrong.
      if (result.cause() != Cause::kCancelled) {  // cancelled: the mount is stopping
        spdlog::info("prefetch of {} [{}, {}) stopped: {}: {}", file.sha1(), start, end,
                     to_string(result.cause()), result.detail());
      }
      return result;
    }
    EioSite site = write_error != 0 ? EioSite::kCacheWrite : EioSite::kBlockFetch;
    return read_failure(counters_, result, site, file.sha1());
  }
  // Tell the index about every block's worth of new bytes, not every page.
  std::uint64_t held = file.cached_bytes();
  if (file.report_held_bytes(held, block_size_))
    accounting_.partial(file.sha1(), file.size(), held);
  return {};
}

bool BlockDownload::store(PartialFile& file, std::uint64_t offset, const std::string& bytes) {
  std::uint64_t end = std::min(file.size(), offset + bytes.size());
  if (file.failed() || offset >= end) return false;
  std::uint64_t first = (offset + file.page_size() - 1) / file.page_size();
  accounting_.make_room(end - offset);
  bool stored = false;
  for (std::uint64_t page = first; page < file.page_count() && file.page_end(page) <= end; ++page) {
    if (!file.claim(page)) continue;
    std::uint64_t start = file.page_start(page);
    std::uint64_t length = file.page_end(page) - start;
    const char* data = bytes.data() + (start - offset);
    bool written = true;
    for (std::uint64_t done = 0; done < length && written;) {
      ssize_t n =
          pwrite(file.data_fd(), data + done, length - done, static_cast<off_t>(start + done));
      if (n < 0 && errno == EINTR) continue;
      written = n > 0;
      if (written) done += static_cast<std::uint64_t>(n);
    }
    file.finish(page, page, written);  // a page not written is fetched later
    stored = stored || written;
  }
  if (!stored) return false;
  std::uint64_t held = file.cached_bytes();
  if (file.report_held_bytes(held, 0)) accounting_.partial(file.sha1(), file.size(), held);
  return true;
}

}  // namespace kacheryfs
