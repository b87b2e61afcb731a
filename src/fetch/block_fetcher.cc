#include "fetch/block_fetcher.h"

#include <algorithm>
#include <cerrno>

namespace kacheryfs {

BlockFetcher::BlockFetcher(BlobSource& source, ContentCache& cache, CacheAccounting& accounting,
                           Counters& counters, OpenObjects& in_use, BlockFetcherConfig config,
                           FailureCallback on_failure)
    : source_(source),
      cache_(cache),
      accounting_(accounting),
      in_use_(in_use),
      config_(config),
      download_(source, accounting, counters, config.block_size),
      verifier_(source, cache, accounting, counters, std::move(on_failure)),
      prefetcher_(download_, verifier_, config.max_conns) {}

BlockFetcher::~BlockFetcher() { stop(); }

void BlockFetcher::start() {
  prefetcher_.start();
  verifier_.start();
}

void BlockFetcher::stop() {
  // Prefetches under way are abandoned, not finished: an unmount (and the cache lock it
  // releases for the next mount) never waits for bytes nobody will read.
  prefetcher_.stop();
  verifier_.stop();
}

Result<std::shared_ptr<PartialFile>> BlockFetcher::partial(const std::string& sha1,
                                                           std::uint64_t size,
                                                           const std::optional<Manifest>& manifest,
                                                           const std::vector<KnownPiece>& known) {
  std::shared_ptr<PartialFile> file = usable(sha1);
  if (file) {
    for (const KnownPiece& piece : known) seed(file, piece.offset, piece.bytes);
  } else {
    // One reader makes the entry (opening its files and seeding it: disk I/O) with no lock
    // held; other readers of the same file wait for it, and the others go on.
    auto made = creations_.run(
        sha1, [&] { return create(sha1, size, manifest, known); }, NeverCancelled());
    if (!made) return fail(-EINTR, "interrupted");  // (a NeverCancelled follower waits)
    if (!made->ok()) return made->failure();
    file = **made;
  }
  // A later reader may bring the manifest of a file first opened without it.
  if (manifest) file->set_manifest_if_none(*manifest);
  verifier_.schedule(file);  // pages from an earlier mount are verified as they are found
  return file;
}

Result<std::shared_ptr<PartialFile>> BlockFetcher::create(const std::string& sha1,
                                                          std::uint64_t size,
                                                          const std::optional<Manifest>& manifest,
                                                          const std::vector<KnownPiece>& known) {
  if (auto file = usable(sha1)) return file;  // made by the flight before this one
  // Held before its files are opened: an eviction under way finishes first, and none
  // starts while someone streams it.
  OpenObjects::Hold hold = in_use_.hold(sha1);
  auto opened = PartialFile::open(cache_.layout(), sha1, size, config_.page_size);
  if (!opened.ok()) return opened.failure();
  std::shared_ptr<PartialFile> file = std::move(*opened);
  file->keep_in_use(std::move(hold));
  file->set_reported_bytes(file->cached_bytes());
  accounting_.partial(sha1, size, file->cached_bytes());
  if (manifest) file->set_manifest(*manifest);  // before anything can verify it
  for (const KnownPiece& piece : known)         // no other reader has it yet
    seed(file, piece.offset, piece.bytes);
  std::lock_guard lock(registry_mutex_);
  registry_[sha1] = file;
  return file;
}

std::shared_ptr<PartialFile> BlockFetcher::live(const std::string& sha1) {
  std::lock_guard lock(registry_mutex_);
  auto it = registry_.find(sha1);
  return it != registry_.end() ? it->second.lock() : nullptr;
}

std::shared_ptr<PartialFile> BlockFetcher::usable(const std::string& sha1) {
  std::shared_ptr<PartialFile> file = live(sha1);
  return file && !file->failed() ? file : nullptr;
}

std::uint64_t BlockFetcher::partial_bytes(const std::string& sha1, std::uint64_t size) {
  if (auto file = live(sha1)) return file->cached_bytes();
  std::string map = cache_.layout().read_file(cache_.layout().page_map(sha1)).value_or("");
  std::uint64_t bytes = 0;
  for (std::uint64_t page = 0; page < map.size(); ++page) {
    if (map[page] == 1)
      bytes +=
          std::min(size, (page + 1) * config_.page_size) - std::min(size, page * config_.page_size);
  }
  return bytes;
}

std::size_t BlockFetcher::verified_chunks(const std::string& sha1) {
  if (auto file = live(sha1)) return file->verified_chunk_count();
  std::string chunks =
      cache_.layout().read_file(cache_.layout().verified_chunks(sha1)).value_or("");
  return static_cast<std::size_t>(std::count(chunks.begin(), chunks.end(), 1));
}

namespace {
// What a reader of a file that failed verification, or a write, earlier gets (that
// failure was counted and logged when it happened).
Failure failed_earlier(const PartialFile& file) {
  return fail(Cause::kBadBytes, file.sha1() + " failed earlier in this mount (see the log)");
}
}  // namespace

void BlockFetcher::seed(const std::shared_ptr<PartialFile>& file, std::uint64_t offset,
                        const std::string& bytes) {
  if (download_.store(*file, offset, bytes)) verifier_.schedule(file);
}

Status BlockFetcher::ensure(const std::shared_ptr<PartialFile>& shared, std::uint64_t offset,
                            std::uint64_t length, bool verified_only, const CancelToken& cancel) {
  PartialFile& file = *shared;
  if (file.failed()) return failed_earlier(file);
  if (offset >= file.size() || length == 0) return {};
  std::uint64_t last_byte = std::min(file.size(), offset + length) - 1;
  const std::shared_ptr<const Manifest> manifest = verified_only ? file.manifest() : nullptr;
  if (manifest) {
    // Only whole chunks can be verified: fetch every page of the chunks the range touches.
    for (const ManifestChunk& chunk : manifest->chunks) {
      if (chunk.start <= offset && offset < chunk.end) offset = chunk.start;
      if (chunk.start <= last_byte && last_byte < chunk.end) last_byte = chunk.end - 1;
    }
  }
  std::uint64_t last_page = last_byte / file.page_size();
  bool fetched_any = false;
  for (std::uint64_t page = offset / file.page_size(); page <= last_page; ++page) {
    for (;;) {
      if (file.present(page)) break;
      if (file.claim(page)) {
        if (Status fetched =
                download_.fetch_run(file, page, last_page, cancel, BlockDownload::Purpose::kDemand);
            !fetched.ok())
          return fetched;
        fetched_any = true;
        break;
      }
      auto waited = file.wait(page, cancel);
      if (waited == PartialFile::WaitResult::kPresent) break;
      if (waited == PartialFile::WaitResult::kCancelled)
        return fail(Cause::kCancelled, "cancelled");
      if (waited == PartialFile::WaitResult::kFailed) return failed_earlier(file);
      // kAbsent: the other fetch failed; try it here, so the reader sees the real error.
    }
  }
  if (fetched_any) verifier_.schedule(shared);
  if (manifest) {
    const auto& chunks = manifest->chunks;
    for (std::size_t c = 0; c < chunks.size(); ++c) {
      if (chunks[c].end <= offset || chunks[c].start > last_byte) continue;
      if (!file.wait_chunk_verified(c, cancel))
        return file.failed() ? failed_earlier(file) : fail(Cause::kCancelled, "cancelled");
    }
  }
  if (file.failed()) return failed_earlier(file);
  return {};
}

std::uint64_t BlockFetcher::first_window() const {
  const LinkEstimate link = source_.link();
  if (link.bytes_per_second <= 0 || link.round_trip <= 0) return config_.block_size;
  double fills_the_link = 2 * link.bytes_per_second * link.round_trip;
  double amortizes_a_request = 4 * link.bytes_per_second * link.per_request;
  auto window = static_cast<std::uint64_t>(std::max(fills_the_link, amortizes_a_request));
  std::uint64_t smallest = std::min<std::uint64_t>(256 << 10, config_.block_size);
  window = std::clamp(window, smallest, config_.block_size);
  return (window + config_.page_size - 1) / config_.page_size * config_.page_size;
}

void BlockFetcher::prefetch(const std::shared_ptr<PartialFile>& file, std::uint64_t offset,
                            std::uint64_t length) {
  if (file->failed() || offset >= file->size() || length == 0) return;
  std::uint64_t pages_per_block =
      std::max<std::uint64_t>(1, config_.block_size / file->page_size());
  std::uint64_t first = offset / file->page_size();
  std::uint64_t last = (std::min(file->size(), offset + length) - 1) / file->page_size();
  last = std::min(file->page_count() - 1,
                  last / pages_per_block * pages_per_block + pages_per_block - 1);
  // Runs are aligned to block_size (so that readers of one file queue the same runs) and
  // start where the range does; a page claimed by one run is skipped by any other.
  std::vector<Prefetcher::Run> runs;
  for (std::uint64_t block = first / pages_per_block * pages_per_block; block <= last;
       block += pages_per_block) {
    std::uint64_t run_first = std::max(block, first);
    std::uint64_t run_last = std::min({block + pages_per_block - 1, last, file->page_count() - 1});
    bool missing = false;
    for (std::uint64_t page = run_first; page <= run_last && !missing; ++page) {
      missing = !file->present(page);
    }
    if (missing) runs.push_back({file, run_first, run_last});
  }
  prefetcher_.enqueue(std::move(runs));
}

Status BlockFetcher::fetch_all(const std::shared_ptr<PartialFile>& file,
                               const CancelToken& cancel) {
  prefetch(file, 0, file->size());
  if (Status fetched = ensure(file, 0, file->size(), false, cancel); !fetched.ok()) return fetched;
  verifier_.schedule(file);
  return file->wait_complete(cancel);
}

}  // namespace kacheryfs
