// The block cache's front: the registry of partial files being streamed (one entry per
// file, shared by its readers) and what a read asks of it. Two units: a *page* (64 KiB) is
// what the map records and what a random read fetches at least; a *block* (block_size,
// 4 MiB) is the largest single range request and the prefetch unit. A read's missing pages
// are fetched by the reader itself (each page once, whoever asks first; contiguous ones in
// one range of at most a block), through the stages it is built of:
//   BlockDownload (fetch/block_download.h)  one range request written into the data file;
//   Prefetcher    (fetch/prefetcher.h)      max_conns workers fetching runs ahead of
//                                           sequential readers and whole small files;
//   Verifier      (fetch/verifier.h)        hashes pages in order as they arrive, and moves
//                                           a verified file into the complete layout.
// Threads start at start() or on first use, whichever comes first (after the mount has
// daemonized). Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache/cache_accounting.h"
#include "cache/content_cache.h"
#include "cache/open_objects.h"
#include "cache/partial_file.h"
#include "fetch/blob_source.h"
#include "fetch/block_download.h"
#include "fetch/prefetcher.h"
#include "fetch/single_flight.h"
#include "fetch/size_discovery.h"
#include "fetch/verifier.h"
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
  using FailureCallback = Verifier::FailureCallback;

  BlockFetcher(BlobSource& source, ContentCache& cache, CacheAccounting& accounting,
               Counters& counters, OpenObjects& in_use, BlockFetcherConfig config,
               FailureCallback on_failure = {});
  ~BlockFetcher();
  BlockFetcher(const BlockFetcher&) = delete;
  BlockFetcher& operator=(const BlockFetcher&) = delete;

  const BlockFetcherConfig& config() const { return config_; }
  // Starts the prefetch workers and the verifier now rather than at the first large read.
  // Call it after the mount has daemonized (threads do not survive the fork).
  void start();
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
  // Queues the missing pages of [offset, offset + length), extended to the end of the block
  // it ends in, for the prefetch workers, in runs of at most a block: a readahead window
  // that moves on by a read at a time then queues a whole block each time it enters one,
  // not a range as small as the read.
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
  // The entry of sha1 some reader holds now, or nullptr (then its files are read instead).
  std::shared_ptr<PartialFile> live(const std::string& sha1);
  // The same, unless it has failed (a new one then replaces it).
  std::shared_ptr<PartialFile> usable(const std::string& sha1);
  // Makes and registers a new entry (partial's single flight).
  Result<std::shared_ptr<PartialFile>> create(const std::string& sha1, std::uint64_t size,
                                              const std::optional<Manifest>& manifest,
                                              const std::vector<KnownPiece>& known);

  BlobSource& source_;
  ContentCache& cache_;
  CacheAccounting& accounting_;
  OpenObjects& in_use_;
  BlockFetcherConfig config_;

  // Destroyed in reverse: the prefetcher's workers end before the stages they use.
  BlockDownload download_;
  Verifier verifier_;
  Prefetcher prefetcher_;

  // Held only to look an entry up or to insert one, never while bytes are fetched.
  std::mutex registry_mutex_;
  std::unordered_map<std::string, std::weak_ptr<PartialFile>> registry_;
  SingleFlight<Result<std::shared_ptr<PartialFile>>> creations_;
};

}  // namespace kacheryfs
