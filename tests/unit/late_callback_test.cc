// LateCallback: calls before attach and after detach do nothing, and detach waits for a
// call that is running (the FUSE session it writes to is closed right after).
#include "support/late_callback.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

namespace kacheryfs {
namespace {

TEST(LateCallback, CallsOnlyWhileAttached) {
  LateCallback<int> callback;
  int sum = 0;
  callback(1);
  callback.attach([&](int value) { sum += value; });
  callback(2);
  callback.detach();
  callback(4);
  EXPECT_EQ(sum, 2);
}

TEST(LateCallback, DetachWaitsForTheCallInProgress) {
  LateCallback<int> callback;
  std::promise<void> started;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> call_finished{false};
  callback.attach([&](int) {
    started.set_value();
    released.wait();
    call_finished = true;
  });
  std::thread caller([&] { callback(1); });
  started.get_future().wait();
  std::future<void> detached = std::async(std::launch::async, [&] { callback.detach(); });
  EXPECT_EQ(detached.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout)
      << "detach returned while the call was still running";
  release.set_value();
  detached.wait();
  EXPECT_TRUE(call_finished.load());
  caller.join();
}

}  // namespace
}  // namespace kacheryfs
