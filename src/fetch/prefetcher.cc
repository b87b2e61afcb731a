#include "fetch/prefetcher.h"

namespace kacheryfs {

namespace {
constexpr std::size_t kMaxQueuedRuns = 1024;
}  // namespace

Prefetcher::Prefetcher(BlockDownload& download, Verifier& verifier, unsigned workers)
    : download_(download), verifier_(verifier), workers_(workers) {}

Prefetcher::~Prefetcher() { stop(); }

void Prefetcher::start() {
  std::call_once(started_, [this] {
    std::lock_guard lock(queue_mutex_);
    if (stopping_) return;
    for (unsigned i = 0; i < workers_; ++i) threads_.emplace_back([this] { loop(); });
  });
}

void Prefetcher::stop() {
  {
    std::lock_guard lock(queue_mutex_);
    stopping_ = true;
    queue_.clear();
  }
  queue_changed_.notify_all();
  stopped_.cancel();
  for (auto& thread : threads_) thread.join();
  threads_.clear();
}

void Prefetcher::enqueue(std::vector<Run> runs) {
  if (runs.empty()) return;
  start();
  {
    std::lock_guard lock(queue_mutex_);
    if (stopping_) return;
    for (Run& run : runs) {
      if (queue_.size() >= kMaxQueuedRuns) break;
      queue_.push_back(std::move(run));
    }
  }
  queue_changed_.notify_all();
}

void Prefetcher::loop() {
  for (;;) {
    Run run;
    {
      std::unique_lock lock(queue_mutex_);
      queue_changed_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      run = std::move(queue_.front());
      queue_.pop_front();
    }
    bool fetched = false;
    for (std::uint64_t page = run.first_page; page <= run.last_page; ++page) {
      if (!run.file->claim(page)) continue;
      if (!download_
               .fetch_run(*run.file, page, run.last_page, stopped_,
                          BlockDownload::Purpose::kPrefetch)
               .ok())
        break;
      fetched = true;
    }
    if (fetched) verifier_.schedule(run.file);
  }
}

}  // namespace kacheryfs
