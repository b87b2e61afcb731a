// The verify stage of the block cache: one thread that hashes a streamed file's pages in
// order as they arrive (and each manifest chunk as soon as its pages are all present), moves
// a file whose whole SHA-1 matches into the complete layout, and fails one that does not:
// its pages are dropped, the kernel's copy is dropped through the failure callback, its
// readers get EIO and the source is told who sent the bad bytes. Thread-safe.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "cache/cache_accounting.h"
#include "cache/content_cache.h"
#include "cache/partial_file.h"
#include "fetch/blob_source.h"
#include "support/counters.h"

namespace kacheryfs {

class Verifier {
 public:
  // Called (from the verifier's thread) with the sha1 of a file that failed verification,
  // so that what the kernel cached of it can be dropped.
  using FailureCallback = std::function<void(const std::string& sha1)>;

  Verifier(BlobSource& source, ContentCache& cache, CacheAccounting& accounting, Counters& counters,
           FailureCallback on_failure);
  ~Verifier();
  Verifier(const Verifier&) = delete;
  Verifier& operator=(const Verifier&) = delete;

  // Starts the thread (once); schedule() starts it too.
  void start();
  // Ends the thread after the pass under way; files still queued are left as they are
  // (their pages stay, and a later mount verifies them).
  void stop();
  // Queues a pass over file, unless one is queued and not yet begun: pages that arrive
  // after a pass has begun queue the next one.
  void schedule(const std::shared_ptr<PartialFile>& file);

 private:
  void loop();
  void verify(PartialFile& file);

  BlobSource& source_;
  ContentCache& cache_;
  CacheAccounting& accounting_;
  Counters& counters_;
  FailureCallback on_failure_;

  std::once_flag started_;
  std::mutex queue_mutex_;
  std::condition_variable queue_changed_;
  std::deque<std::shared_ptr<PartialFile>> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace kacheryfs
