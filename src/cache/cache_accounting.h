// CacheAccounting: what the fetchers tell whoever keeps the cache within its limits (the
// CacheKeeper): objects completed or partly held, accessed, room needed for a write.
// NoQuota is the null object for a cache without limits or index (unit tests, one-shot
// tools), so no caller ever checks for "no keeper". Implementations are thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace kacheryfs {

class CacheAccounting {
 public:
  virtual ~CacheAccounting() = default;
  virtual void complete(const std::string& sha1, std::uint64_t size) = 0;
  virtual void partial(const std::string& sha1, std::uint64_t size, std::uint64_t bytes) = 0;
  virtual void accessed(const std::string& sha1) = 0;
  // Evicts until `incoming` more bytes fit; returns the bytes freed.
  virtual std::uint64_t make_room(std::uint64_t incoming) = 0;
  // After a write failed with ENOSPC: evicts at least `needed` bytes whatever the limits say.
  virtual std::uint64_t make_room_after_enospc(std::uint64_t needed) = 0;
  // Deletes one object's files (a failed verification) and forgets it.
  virtual void forget(const std::string& sha1) = 0;
  virtual std::uint64_t cached_bytes() const = 0;
  // The most the cache may hold (0: no limit known).
  virtual std::uint64_t capacity() const = 0;
  // Sizes that took size discovery to find, kept for later mounts (none by default).
  virtual void size_found(const std::string& sha1, std::uint64_t size) {
    (void)sha1;
    (void)size;
  }
  virtual std::optional<std::uint64_t> found_size(const std::string& sha1) {
    (void)sha1;
    return std::nullopt;
  }
};

class NoQuota final : public CacheAccounting {
 public:
  void complete(const std::string&, std::uint64_t) override {}
  void partial(const std::string&, std::uint64_t, std::uint64_t) override {}
  void accessed(const std::string&) override {}
  std::uint64_t make_room(std::uint64_t) override { return 0; }
  std::uint64_t make_room_after_enospc(std::uint64_t) override { return 0; }
  void forget(const std::string&) override {}
  std::uint64_t cached_bytes() const override { return 0; }
  std::uint64_t capacity() const override { return 0; }
};

}  // namespace kacheryfs
