// The persistent accounting of the cache: one row per object (complete or partial) with
// its size, bytes held, pinned flag and last access, plus counters (hits, misses, bytes
// fetched) and the objects the running mount has open. Kept in CACHE/index.sqlite (SQLite,
// WAL), so a mount starts without scanning the cache and the kacheryfs-cache tool can read
// and change it while a mount runs. Thread-safe.
// Writes on the hot paths (record, remove, touch, set_open) are queued in memory and reach
// SQLite in one transaction at flush(): the mount flushes every 200 ms, every read of the
// index flushes first, and so does the destructor. An object opened and closed between two
// flushes costs no write at all. After a crash, what was queued is lost, which is safe: an
// unindexed cache file is adopted at the next start, and open objects are cleared anyway.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "cache/cache_layout.h"
#include "support/result.h"

struct sqlite3;

namespace kacheryfs {

struct IndexEntry {
  std::string sha1;
  std::uint64_t size = 0;
  std::uint64_t bytes = 0;  // bytes held (== size when complete)
  bool complete = false;
  bool pinned = false;
  std::int64_t last_access = 0;  // unix seconds
};

struct IndexTotals {
  std::uint64_t bytes = 0;
  std::uint64_t objects = 0;
  std::uint64_t pinned = 0;
  std::uint64_t partial = 0;
  std::uint64_t pinned_bytes = 0;
};

class CacheIndex {
 public:
  // Opens (creating) the layout's index.sqlite.
  // read_only: opens an existing index of a cache that cannot be written (SQLite's
  // immutable mode: nothing else may change it meanwhile, as on a read-only file system).
  static Result<std::unique_ptr<CacheIndex>> open(const CacheLayout& layout,
                                                  bool read_only = false);
  ~CacheIndex();
  CacheIndex(const CacheIndex&) = delete;
  CacheIndex& operator=(const CacheIndex&) = delete;

  // Inserts or updates an object and marks it used now.
  void record(const std::string& sha1, std::uint64_t size, std::uint64_t bytes, bool complete);
  void touch(const std::string& sha1);
  void remove(const std::string& sha1);
  // Sets the pinned flag; false when the object is not in the index.
  bool set_pinned(const std::string& sha1, bool pinned);
  std::optional<IndexEntry> get(const std::string& sha1);
  IndexTotals totals();
  std::vector<IndexEntry> entries();
  // Unpinned objects that no mount has open, least recently used first.
  std::vector<IndexEntry> eviction_candidates();

  // Persistent totals of the Counters registry, by its names (see support/counters.h).
  void add_counter(const std::string& name, std::int64_t delta);
  std::uint64_t counter(const std::string& name);
  std::vector<std::pair<std::string, std::uint64_t>> counters();

  // Objects the mount has open (so that nobody evicts them); cleared when a mount starts.
  void set_open(const std::string& sha1, bool open);
  void clear_open();

  // Sizes found by size discovery (which costs round trips), whether or not any bytes of
  // the object are held: a later lookup, in this mount or the next, needs no discovery.
  void remember_size(const std::string& sha1, std::uint64_t size);
  std::optional<std::uint64_t> remembered_size(const std::string& sha1);

  bool empty();
  // Writes what is queued, in one transaction.
  void flush();

 private:
  struct PendingObject {
    bool removed = false;
    std::uint64_t size = 0;
    std::uint64_t bytes = 0;
    bool complete = false;
    std::int64_t last_access = 0;
  };

  explicit CacheIndex(sqlite3* db);
  bool exec(const char* sql);
  void flush_locked();

  std::mutex mutex_;  // a leaf: nothing else is locked while it is held
  sqlite3* db_;
  std::unordered_map<std::string, PendingObject> pending_objects_;
  std::unordered_map<std::string, std::int64_t> pending_touches_;
  std::unordered_map<std::string, std::uint64_t> pending_sizes_;
  std::unordered_map<std::string, bool> pending_open_;  // the latest state of each
  std::unordered_set<std::string> open_written_;        // rows of open_objects we wrote
};

}  // namespace kacheryfs
