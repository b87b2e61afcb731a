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

  // When a piece of booked work runs: [start, end).
  struct Interval {
    Clock::time_point start;
    Clock::time_point end;
  };

  // Books `bytes` of transfer plus `fixed` of other work on this pacer, after all the work
  // booked before, and returns when it will run. Idle time is not saved up for later.
  Interval book_interval(std::uint64_t bytes, std::chrono::microseconds fixed = {}) {
    std::chrono::nanoseconds cost = fixed;
    if (bytes_per_second_ > 0)
      cost += std::chrono::nanoseconds(static_cast<std::int64_t>(bytes * 1e9 / bytes_per_second_));
    std::lock_guard lock(mutex_);
    Clock::time_point now = Clock::now();
    if (next_free_ < now) next_free_ = now;
    Interval interval{next_free_, next_free_ + cost};
    next_free_ = interval.end;
    return interval;
  }
  Clock::time_point book(std::uint64_t bytes, std::chrono::microseconds fixed = {}) {
    return book_interval(bytes, fixed).end;
  }

  // Waits for the work's turn, then spends its interval: busy on a CPU when `burn` (a
  // daemon whose one thread computes, as Node's does, competes with its clients for the
  // cores), or asleep.
  static void perform(const Interval& interval, bool burn) {
    std::this_thread::sleep_until(interval.start);
    if (!burn) {
      std::this_thread::sleep_until(interval.end);
      return;
    }
    while (Clock::now() < interval.end) {
    }
  }

  // Books the work and spends it.
  void pace(std::uint64_t bytes, std::chrono::microseconds fixed = {}, bool burn = false) {
    if (bytes_per_second_ <= 0 && fixed.count() == 0) return;
    perform(book_interval(bytes, fixed), burn);
  }

  bool limited() const { return bytes_per_second_ > 0; }

 private:
  const double bytes_per_second_;
  std::mutex mutex_;
  Clock::time_point next_free_{};
};

}  // namespace kachery_emulator
