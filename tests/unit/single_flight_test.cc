#include "fetch/single_flight.h"

#include <gtest/gtest.h>

#include <atomic>
#include <optional>
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

// A value that counts its copies (moves are free).
struct CopyCounted {
  static inline std::atomic<int> copies{0};
  int value = 0;
  explicit CopyCounted(int v) : value(v) {}
  CopyCounted(const CopyCounted& other) : value(other.value) { ++copies; }
  CopyCounted(CopyCounted&&) noexcept = default;
  CopyCounted& operator=(const CopyCounted& other) {
    value = other.value;
    ++copies;
    return *this;
  }
  CopyCounted& operator=(CopyCounted&&) noexcept = default;
};

TEST(SingleFlight, ALeaderAloneKeepsItsResultUncopied) {
  SingleFlight<CopyCounted> flights;
  NeverCancelled never;
  CopyCounted::copies = 0;
  std::optional<CopyCounted> result = flights.run(
      "k", [] { return CopyCounted(7); }, never);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->value, 7);
  EXPECT_EQ(CopyCounted::copies.load(), 0);
}

TEST(SingleFlight, AFollowerGetsACopyOfTheLeadersResult) {
  SingleFlight<CopyCounted> flights;
  NeverCancelled never;
  std::atomic<bool> started{false};
  std::atomic<bool> release{false};
  std::optional<CopyCounted> led;
  std::thread leader([&] {
    led = flights.run(
        "k",
        [&] {
          started = true;
          while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
          return CopyCounted(9);
        },
        never);
  });
  while (!started) std::this_thread::yield();
  std::optional<CopyCounted> followed;
  std::thread follower([&] {
    followed = flights.run(
        "k", [] { return CopyCounted(8); }, never);
  });
  while (flights.followers("k") < 1) std::this_thread::yield();
  release = true;
  leader.join();
  follower.join();
  ASSERT_TRUE(led && followed);
  EXPECT_EQ(led->value, 9);
  EXPECT_EQ(followed->value, 9) << "the leader's result, not a run of its own";
}

}  // namespace
}  // namespace kacheryfs
