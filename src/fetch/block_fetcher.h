// Streams large files through the sparse block cache (PartialFile). Two units: a *page*
// (64 KiB) is what the map records and what a random read fetches at least; a *block*
// (block_size, 4 MiB) is the largest single range request and the prefetch unit.
// Fetches the pages a read needs (each page once, whoever asks first; contiguous missing
// pages in one range request of at most a block), prefetches blocks ahead of sequential readers
// on a pool of max_conns workers, and verifies in the background: manifest chunks as soon
// as their blocks are present, and the whole-file SHA-1 with a cursor that hashes blocks in
// order as they arrive. A verified file is moved into the complete layout; a mismatch
// drops the file's blocks and fails its readers with EIO. Threads start at start() or on
// first use, whichever comes first (after the mount has daemonized). Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cache/cache_accounting.h"
#include "cache/content_cache.h"
#include "cache/open_objects.h"
#include "cache/partial_file.h"
#include "fetch/blob_source.h"
#include "fetch/single_flight.h"
#include "fetch/size_discovery.h"
#include "support/cancel_token.h"
#include "support/counters.h"
#include "support/result.h"

namespace kacheryfs {

struct BlockFetcherConfig {
  std::uint64_t page_size = 64 << 10;  // granularity of the page map: what a random read fetches
  std::uint64_t block_size = 4 << 20;  // largest single range request, the prefetch unit
  unsigned max_conns = 4;              // prefetch workers, i.e. range requests in flight per mount
};

class BlockFetcher {
 public:
  // Called (from the verifier thread) with the sha1 of a file that failed verification,
  // so that what the kernel cached of it can be dropped.
  using FailureCallback = std::function<void(const std::string& sha1)>;

  BlockFetcher(BlobSource& source, ContentCache& cache, CacheAccounting& accounting,
               Counters& counters, OpenObjects& in_use, BlockFetcherConfig config,
               FailureCallback on_failure = {});
  ~BlockFetcher();
  BlockFetcher(const BlockFetcher&) = delete;
  BlockFetcher& operator=(const BlockFetcher&) = delete;

  const BlockFetcherConfig& config() const { return config_; }
  // Starts the prefetch workers and the verifier now rather than at the first large read.
  // Call it after the mount has daemonized (threads do not survive the fork).
  void start() { start_threads(); }
  // Ends the workers: queued prefetches are dropped and those under way abandoned (their
  // bytes so far are counted). Called at unmount, before the counters are written for the
  // last time; the destructor calls it too.
  void stop();

  // The partial entry of sha1 shared by its readers (held in OpenObjects while it lives); a
  // failed one is replaced by a fresh one (the file is fetched again). Bytes already in
  // hand (`known`: what size discovery brought) become its pages, in a new entry before
  // any other reader can see it: one reader makes it, with no lock held, while the other
  // readers of that file wait.
  Result<std::shared_ptr<PartialFile>> partial(const std::string& sha1, std::uint64_t size,
                                               const std::optional<Manifest>& manifest,
                                               const std::vector<KnownPiece>& known = {});

  // Makes [offset, offset + length) of the file readable from its data fd. With
  // verified_only, also waits until the manifest chunks covering the range are verified.
  Status ensure(const std::shared_ptr<PartialFile>& file, std::uint64_t offset,
                std::uint64_t length, bool verified_only, const CancelToken& cancel);
  // The readahead window a sequential reader opens with: what keeps the link busy, from
  // the source's measured link (twice its bandwidth-delay product, and ranges long enough
  // that the node's time per request costs a quarter of their transfer at most), between
  // 256 KiB and one block. One block while the link is unmeasured.
  std::uint64_t first_window() const;
  // Queues the missing pages of [offset, offset + length) for the prefetch workers, in runs
  // of at most a block.
  void prefetch(const std::shared_ptr<PartialFile>& file, std::uint64_t offset,
                std::uint64_t length);
  // Fetches every block (in parallel) and waits until the whole file is verified and
  // complete in the cache (a failure: -EIO or -EINTR).
  Status fetch_all(const std::shared_ptr<PartialFile>& file, const CancelToken& cancel);

  // Stores bytes already in hand (size discovery's head and tail) as the pages they cover
  // whole, so that no reader fetches them again. They are verified like fetched pages.
  void seed(const std::shared_ptr<PartialFile>& file, std::uint64_t offset,
            const std::string& bytes);

  // Bytes of sha1 held as blocks (0 when there is no partial entry).
  std::uint64_t partial_bytes(const std::string& sha1, std::uint64_t size);
  // Manifest chunks of sha1 verified so far by this mount.
  std::size_t verified_chunks(const std::string& sha1);

 private:
  // Fetches page `first` (already claimed) and the claimable pages after it, up to `limit`
  // and at most block_size bytes, in one range request; pages become present as bytes land.
  // A reader waits for a demand fetch; a prefetch's failure is only logged.
  enum class Purpose { kDemand, kPrefetch };
  Status fetch_block(PartialFile& file, std::uint64_t first, std::uint64_t limit,
                     const CancelToken& cancel, Purpose purpose);
  void schedule_verify(const std::shared_ptr<PartialFile>& file);
  // The entry of sha1 some reader holds now, or nullptr (then its files are read instead).
  std::shared_ptr<PartialFile> live(const std::string& sha1);
  // The same, unless it has failed (a new one then replaces it).
  std::shared_ptr<PartialFile> usable(const std::string& sha1);
  // Makes and registers a new entry (partial's single flight).
  Result<std::shared_ptr<PartialFile>> create(const std::string& sha1, std::uint64_t size,
                                              const std::optional<Manifest>& manifest,
                                              const std::vector<KnownPiece>& known);
  void verify(PartialFile& file);
  void start_threads();
  void worker_loop();
  void verifier_loop();

  BlobSource& source_;
  ContentCache& cache_;
  CacheAccounting& accounting_;
  Counters& counters_;
  OpenObjects& in_use_;
  BlockFetcherConfig config_;
  FailureCallback on_failure_;

  // Lock order: registry_mutex_, then queue_mutex_, then a PartialFile's own locks; none is
  // held while bytes are fetched, and the registry's is held only to look up or insert.
  std::mutex registry_mutex_;
  std::unordered_map<std::string, std::weak_ptr<PartialFile>> registry_;
  SingleFlight<Result<std::shared_ptr<PartialFile>>> creations_;

  std::once_flag started_;
  std::mutex queue_mutex_;
  std::condition_variable queue_changed_;
  struct Block {
    std::shared_ptr<PartialFile> file;
    std::uint64_t first_page;
    std::uint64_t last_page;
  };
  std::deque<Block> blocks_to_fetch_;
  std::deque<std::shared_ptr<PartialFile>> files_to_verify_;
  bool stopping_ = false;
  CancelSource stop_prefetches_;  // cancelled when the fetcher stops
  std::vector<std::thread> threads_;
};

}  // namespace kacheryfs
