// The readahead stage of the block cache: a pool of workers (max_conns: range requests in
// flight per mount) that fetch queued runs of pages nobody waits for yet, each run through
// the download stage and then to the verifier. A run's pages that another fetch claimed
// first are skipped. At stop, queued runs are dropped and those under way abandoned: an
// unmount never waits for bytes nobody will read. Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "cache/partial_file.h"
#include "fetch/block_download.h"
#include "fetch/verifier.h"
#include "support/cancel_token.h"

namespace kacheryfs {

class Prefetcher {
 public:
  // Pages [first_page, last_page] of a file, fetched in ranges of at most a block.
  struct Run {
    std::shared_ptr<PartialFile> file;
    std::uint64_t first_page = 0;
    std::uint64_t last_page = 0;
  };

  Prefetcher(BlockDownload& download, Verifier& verifier, unsigned workers);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // Starts the workers (once); enqueue() starts them too.
  void start();
  void stop();
  // Queues runs in order, up to a bound on the queue (a run beyond it is dropped: the
  // reader that needs its pages fetches them, or queues it again).
  void enqueue(std::vector<Run> runs);

 private:
  void loop();

  BlockDownload& download_;
  Verifier& verifier_;
  unsigned workers_;

  std::once_flag started_;
  std::mutex queue_mutex_;
  std::condition_variable queue_changed_;
  std::deque<Run> queue_;
  bool stopping_ = false;
  CancelSource stopped_;  // cancelled at stop: abandons the transfers under way
  std::vector<std::thread> threads_;
};

}  // namespace kacheryfs
