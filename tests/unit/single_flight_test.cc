#include "fetch/single_flight.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace kacheryfs {
namespace {

TEST(SingleFlight, ConcurrentCallersShareOneRun) {
  SingleFlight<int> flights;
  std::atomic<int> runs{0};
  std::atomic<bool> release{false};
  std::vector<std::thread> threads;
  std::vector<int> results(8, 0);
  NeverCancelled never;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      results[i] = *flights.run(
          "key",
          [&] {
            ++runs;
            while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
            return 42;
          },
          never);
    });
  }
  // Released only once all seven others have joined the leader's run (observed, not timed).
  while (flights.followers("key") < 7) std::this_thread::yield();
  release = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(runs.load(), 1);
  EXPECT_EQ(results, std::vector<int>(8, 42));
}

TEST(SingleFlight, CancelledFollowerLeavesEarly) {
  SingleFlight<int> flights;
  std::atomic<bool> release{false};
  std::atomic<bool> started{false};
  NeverCancelled never;
  std::thread leader([&] {
    flights.run(
        "k",
        [&] {
          started = true;
          while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
          return 1;
        },
        never);
  });
  while (!started) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CancelSource token;
  token.cancel();
  EXPECT_FALSE(flights
                   .run(
                       "k", [] { return 2; }, token)
                   .has_value());
  release = true;
  leader.join();
  EXPECT_EQ(*flights.run(
                "k", [] { return 3; }, never),
            3)
      << "a finished key runs again";
}

}  // namespace
}  // namespace kacheryfs
