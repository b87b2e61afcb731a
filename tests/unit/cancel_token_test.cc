#include "support/cancel_token.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace kacheryfs {
namespace {

using Clock = std::chrono::steady_clock;

TEST(CancelToken, CancellingWakesAWaiterThatNothingElseWakes) {
  std::mutex mutex;
  std::condition_variable changed;
  CancelSource cancel;
  std::atomic<bool> waiting{false};
  std::thread canceller([&] {
    // Cancels once the waiter has checked and is about to sleep (or sleeps): the wake-up
    // takes the waiter's mutex, so it cannot slip in between the check and the sleep.
    while (!waiting) std::this_thread::yield();
    cancel.cancel();
  });
  bool done = wait_unless_cancelled(mutex, changed, cancel, [&] {
    waiting = true;
    return false;
  });
  canceller.join();
  EXPECT_FALSE(done);
  EXPECT_TRUE(cancel.cancelled());
}

TEST(CancelToken, AWaitThatIsSatisfiedReturnsTrueAndACancelledOneAtOnce) {
  std::mutex mutex;
  std::condition_variable changed;
  CancelSource cancel;
  bool ready = false;
  std::thread maker([&] {
    std::lock_guard lock(mutex);
    ready = true;
    changed.notify_all();
  });
  EXPECT_TRUE(wait_unless_cancelled(mutex, changed, cancel, [&] { return ready; }));
  maker.join();
  cancel.cancel();
  EXPECT_FALSE(wait_unless_cancelled(mutex, changed, cancel, [] { return false; }))
      << "cancelled before the wait began";
}

TEST(CancelToken, ADeadlineEndsTheWaitWithoutAnyoneCalling) {
  std::mutex mutex;
  std::condition_variable changed;
  NeverCancelled never;
  DeadlineToken token(never, Clock::now() + std::chrono::milliseconds(50));
  EXPECT_FALSE(wait_unless_cancelled(mutex, changed, token, [] { return false; }));
  EXPECT_GE(Clock::now(), *token.deadline());
  EXPECT_TRUE(token.cancelled());
  EXPECT_FALSE(sleep_unless_cancelled(std::chrono::milliseconds(1), token));
  EXPECT_TRUE(sleep_unless_cancelled(std::chrono::milliseconds(1), never));
}

TEST(CancelToken, AWakeUpRunsOnceAndNotAfterItsSubscriptionIsGone) {
  CancelSource first;
  int woken = 0;
  {
    CancelSubscription subscription = first.on_cancel([&] { ++woken; });
    first.cancel();
    first.cancel();
  }
  EXPECT_EQ(woken, 1);
  CancelSource second;
  {
    CancelSubscription gone = second.on_cancel([&] { ++woken; });
  }
  second.cancel();
  EXPECT_EQ(woken, 1);
  CancelSource third;  // a subscription never outlives its token
  CancelSubscription moved;
  moved = third.on_cancel([&] { ++woken; });
  third.cancel();
  EXPECT_EQ(woken, 2);
}

}  // namespace
}  // namespace kacheryfs
