// Shared support for the core's unit tests: a fixture with a fresh temp dir per test, an
// in-memory BlobSource that counts requests and can lack, corrupt, slow down or "load from
// the network" blobs, a cancel token to fire by hand, and deterministic test bytes.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cache/cache_layout.h"
#include "fetch/blob_source.h"
#include "kachery/sha1_hasher.h"
#include "support/cancel_token.h"

namespace kacheryfs::testing {

// A fresh, empty directory for each test (root_), removed afterwards.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = std::filesystem::temp_directory_path() /
            (std::string("kfs-unit-") + info->test_suite_name() + "-" + info->name() + "-" +
             std::to_string(getpid()));
    std::filesystem::remove_all(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  // Polls for up to 5 s.
  template <class Predicate>
  static bool eventually(Predicate predicate) {
    for (int i = 0; i < 1000 && !predicate(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return predicate();
  }

  std::filesystem::path root_;
};

// A TempDirTest whose root exists, with the CacheLayout of it (layout_).
class CacheDirTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    std::filesystem::create_directories(root_);
    layout_ = std::make_unique<CacheLayout>(root_);
  }
  std::unique_ptr<CacheLayout> layout_;
};

class MemorySource final : public BlobSource {
 public:
  // Stores bytes; returns their sha1.
  std::string add(std::string bytes) {
    std::string sha1 = sha1_hex_of(bytes);
    std::lock_guard lock(mutex);
    blobs[sha1] = std::move(bytes);
    return sha1;
  }

  Status read_range(std::string_view sha1, std::uint64_t start, std::uint64_t end,
                    const ByteSink& sink, const CancelToken& cancel) override {
    ++requests;
    std::string bytes;
    {
      std::lock_guard lock(mutex);
      ranges.emplace_back(start, end);
      auto it = blobs.find(std::string(sha1));
      if (it == blobs.end()) return {Cause::kNotFound, "no such blob"};
      bytes = it->second;
    }
    auto until = std::chrono::steady_clock::now() + delay;
    while (std::chrono::steady_clock::now() < until) {
      if (cancel.cancelled()) return {Cause::kCancelled, "cancelled"};
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (start >= bytes.size()) return {};
    std::string piece = bytes.substr(start, end - start);
    served += piece.size();
    if (corrupt) piece[0] ^= 1;
    if (corrupt_at >= start && corrupt_at < start + piece.size()) piece[corrupt_at - start] ^= 1;
    if (!sink(piece.data(), piece.size())) return {Cause::kLocalError, "sink"};
    return {};
  }

  Status load_blob(std::string_view sha1, const CancelToken&) override {
    ++loads;
    std::lock_guard lock(mutex);
    auto it = network.find(std::string(sha1));
    if (it == network.end()) return {Cause::kNotFound, "Unable to find file"};
    blobs[it->first] = it->second;
    return {};
  }

  // Body bytes served so far.
  std::uint64_t fetched_bytes() const { return served.load(); }
  LinkEstimate link() const override { return estimate; }
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges_asked() {
    std::lock_guard lock(mutex);
    return ranges;
  }

  std::mutex mutex;
  std::map<std::string, std::string> blobs;
  std::map<std::string, std::string> network;  // what load_blob can bring in
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  std::atomic<int> requests{0};
  std::atomic<int> loads{0};
  std::atomic<std::uint64_t> served{0};
  std::atomic<bool> corrupt{false};              // flip the first byte of every range
  std::uint64_t corrupt_at = ~std::uint64_t{0};  // flip the byte at this offset
  std::chrono::milliseconds delay{0};
  LinkEstimate estimate;  // what link() reports (unmeasured by default)
};

using FlagToken = CancelSource;

// Deterministic bytes that differ with the seed.
inline std::string pattern(std::size_t size, unsigned seed = 0) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i)
    s[i] = static_cast<char>(((i * 2654435761u) >> 13) + seed * 7 + (i >> 8));
  return s;
}

}  // namespace kacheryfs::testing
