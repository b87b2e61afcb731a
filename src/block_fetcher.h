// Streams large files through the sparse block cache (PartialFile): fetches the pages a
// read needs (each page once, whoever asks first; contiguous missing pages in one range
// request of at most run_size), prefetches run_size blocks ahead of sequential readers
// on a pool of max_conns workers, and verifies in the background: manifest chunks as soon
// as their blocks are present, and the whole-file SHA-1 with a cursor that hashes blocks in
// order as they arrive. A verified file is moved into the complete layout; a mismatch
// drops the file's blocks and fails its readers with EIO. Threads start on first use (after
// the mount has daemonized). Thread-safe.
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

#include "blob_source.h"
#include "cache_keeper.h"
#include "content_cache.h"
#include "content_fetcher.h"
#include "partial_file.h"

namespace kacheryfs {

struct BlockFetcherConfig {
  std::uint64_t page_size = 64 << 10;  // granularity of the page map: what a random read fetches
  std::uint64_t run_size = 4 << 20;    // largest single range request (block_size), prefetch unit
  unsigned max_conns = 4;              // prefetch workers, i.e. range requests in flight per mount
};

class BlockFetcher {
 public:
  BlockFetcher(BlobSource& source, ContentCache& cache, ContentFetcher& errors,
               BlockFetcherConfig config);
  ~BlockFetcher();
  BlockFetcher(const BlockFetcher&) = delete;
  BlockFetcher& operator=(const BlockFetcher&) = delete;

  const BlockFetcherConfig& config() const { return config_; }
  void set_keeper(CacheKeeper* keeper) { keeper_ = keeper; }
  // True while some reader holds the partial entry of sha1.
  bool streaming(const std::string& sha1);
  // Called (from the verifier thread) with the sha1 of a file that failed verification,
  // so that what the kernel cached of it can be dropped.
  void on_failure(std::function<void(const std::string& sha1)> callback) {
    on_failure_ = std::move(callback);
  }

  // The partial entry of sha1 shared by its readers; a failed one is replaced by a fresh
  // one (the file is fetched again). nullptr with *error on failure.
  std::shared_ptr<PartialFile> partial(const std::string& sha1, std::uint64_t size,
                                       const std::optional<Manifest>& manifest, int* error);

  // Makes [offset, offset + length) of the file readable from its data fd. With
  // verified_only, also waits until the manifest chunks covering the range are verified.
  int ensure(const std::shared_ptr<PartialFile>& file, std::uint64_t offset, std::uint64_t length,
             bool verified_only, const CancelToken& cancel);
  // Queues the missing blocks of [offset, offset + length) for the prefetch workers.
  void prefetch(const std::shared_ptr<PartialFile>& file, std::uint64_t offset,
                std::uint64_t length);
  // Fetches every block (in parallel) and waits until the whole file is verified and
  // complete in the cache: 0, -EIO or -EINTR.
  int fetch_all(const std::shared_ptr<PartialFile>& file, const CancelToken& cancel);

  // Bytes of sha1 held as blocks (0 when there is no partial entry).
  std::uint64_t partial_bytes(const std::string& sha1, std::uint64_t size);
  // Manifest chunks of sha1 verified so far by this mount.
  std::size_t verified_chunks(const std::string& sha1);

 private:
  // Fetches page `first` (already claimed) and the claimable pages after it, up to `limit`
  // and at most run_size bytes, in one range request; pages become present as bytes land.
  int fetch_run(PartialFile& file, std::uint64_t first, std::uint64_t limit,
                const CancelToken& cancel);
  void schedule_verify(const std::shared_ptr<PartialFile>& file);
  void verify(PartialFile& file);
  void start_threads();
  void worker_loop();
  void verifier_loop();

  BlobSource& source_;
  ContentCache& cache_;
  ContentFetcher& errors_;
  BlockFetcherConfig config_;
  CacheKeeper* keeper_ = nullptr;
  std::function<void(const std::string&)> on_failure_;

  std::mutex registry_mutex_;
  std::unordered_map<std::string, std::weak_ptr<PartialFile>> registry_;

  std::once_flag started_;
  std::mutex queue_mutex_;
  std::condition_variable queue_changed_;
  struct Run {
    std::shared_ptr<PartialFile> file;
    std::uint64_t first_page;
    std::uint64_t last_page;
  };
  std::deque<Run> runs_to_fetch_;
  std::deque<std::shared_ptr<PartialFile>> files_to_verify_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace kacheryfs
