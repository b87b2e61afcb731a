// RatePacer: makes a stream of work take the time a slower server would need for it.
// The emulator uses one per connection (--rate) and one shared by all connections
// (--total-rate, --request-cost-ms), so that it answers like the real Node.js daemon,
// which does all its work on one thread. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>

namespace kachery_emulator {

class RatePacer {
 public:
  using Clock = std::chrono::steady_clock;

  // bytes_per_second <= 0 means unlimited.
  explicit RatePacer(double bytes_per_second) : bytes_per_second_(bytes_per_second) {}

  // Books `bytes` of transfer plus `fixed` of other work on this pacer, after all the work
  // booked before, and returns when it will be done. Idle time is not saved up for later.
  Clock::time_point book(std::uint64_t bytes, std::chrono::microseconds fixed = {}) {
    std::chrono::nanoseconds cost = fixed;
    if (bytes_per_second_ > 0)
      cost += std::chrono::nanoseconds(static_cast<std::int64_t>(bytes * 1e9 / bytes_per_second_));
    std::lock_guard lock(mutex_);
    Clock::time_point now = Clock::now();
    if (next_free_ < now) next_free_ = now;
    next_free_ += cost;
    return next_free_;
  }

  // Books the work and sleeps until it is done.
  void pace(std::uint64_t bytes, std::chrono::microseconds fixed = {}) {
    if (bytes_per_second_ <= 0 && fixed.count() == 0) return;
    std::this_thread::sleep_until(book(bytes, fixed));
  }

  bool limited() const { return bytes_per_second_ > 0; }

 private:
  const double bytes_per_second_;
  std::mutex mutex_;
  Clock::time_point next_free_{};
};

}  // namespace kachery_emulator
