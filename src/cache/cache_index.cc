#include "cache/cache_index.h"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>

namespace kacheryfs {

namespace {

// A prepared statement that finalizes itself.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) { sqlite3_prepare_v2(db, sql, -1, &statement_, nullptr); }
  ~Statement() { sqlite3_finalize(statement_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement& bind(int index, const std::string& text) {
    sqlite3_bind_text(statement_, index, text.c_str(), static_cast<int>(text.size()),
                      SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind(int index, std::int64_t value) {
    sqlite3_bind_int64(statement_, index, value);
    return *this;
  }
  bool step() { return statement_ != nullptr && sqlite3_step(statement_) == SQLITE_ROW; }
  void run() {
    if (statement_ == nullptr) return;
    int rc = sqlite3_step(statement_);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
      spdlog::warn("cache index: {}", sqlite3_errmsg(sqlite3_db_handle(statement_)));
    }
  }
  std::int64_t integer(int column) { return sqlite3_column_int64(statement_, column); }
  std::string text(int column) {
    const unsigned char* value = sqlite3_column_text(statement_, column);
    return value ? reinterpret_cast<const char*>(value) : "";
  }

 private:
  sqlite3_stmt* statement_ = nullptr;
};

std::int64_t now() { return static_cast<std::int64_t>(std::time(nullptr)); }

IndexEntry entry_from(Statement& row) {
  return {row.text(0),
          static_cast<std::uint64_t>(row.integer(1)),
          static_cast<std::uint64_t>(row.integer(2)),
          row.integer(3) != 0,
          row.integer(4) != 0,
          row.integer(5)};
}

constexpr const char* kColumns = "sha1, size, bytes, complete, pinned, last_access";

}  // namespace

Result<std::unique_ptr<CacheIndex>> CacheIndex::open(const CacheLayout& layout, bool read_only) {
  sqlite3* db = nullptr;
  std::string path = layout.index_path().string();
  // (A path for a URI: '%', '?' and '#' escaped.)
  std::string uri = "file:";
  for (char c : path) {
    if (c == '%' || c == '?' || c == '#') {
      char escaped[4];
      std::snprintf(escaped, sizeof(escaped), "%%%02X", static_cast<unsigned char>(c));
      uri += escaped;
    } else {
      uri += c;
    }
  }
  uri += "?immutable=1";
  int opened =
      read_only
          ? sqlite3_open_v2(uri.c_str(), &db,
                            SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_FULLMUTEX, nullptr)
          : sqlite3_open_v2(path.c_str(), &db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                            nullptr);
  if (opened != SQLITE_OK) {
    std::string error = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return fail(-EIO, path + ": " + error);
  }
  std::unique_ptr<CacheIndex> index(new CacheIndex(db));
  if (read_only) {
    Statement check(db, "SELECT COUNT(*) FROM objects");
    if (!check.step()) return fail(-EIO, path + ": " + sqlite3_errmsg(db));
    return index;
  }
  sqlite3_busy_timeout(db, 10000);  // the tool and the mount take turns
  bool ok =
      index->exec("PRAGMA journal_mode=WAL") && index->exec("PRAGMA synchronous=NORMAL") &&
      index->exec(
          "CREATE TABLE IF NOT EXISTS objects (sha1 TEXT PRIMARY KEY, size INTEGER NOT NULL, "
          "bytes INTEGER NOT NULL, complete INTEGER NOT NULL, pinned INTEGER NOT NULL DEFAULT 0, "
          "last_access INTEGER NOT NULL)") &&
      index->exec(
          "CREATE INDEX IF NOT EXISTS objects_by_access ON objects (pinned, last_access)") &&
      index->exec(
          "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)") &&
      index->exec("CREATE TABLE IF NOT EXISTS open_objects (sha1 TEXT PRIMARY KEY)") &&
      index->exec(
          "CREATE TABLE IF NOT EXISTS sizes (sha1 TEXT PRIMARY KEY, size INTEGER NOT NULL)");
  if (!ok) return fail(-EIO, path + ": " + sqlite3_errmsg(db));
  return index;
}

CacheIndex::CacheIndex(sqlite3* db) : db_(db) {}
CacheIndex::~CacheIndex() {
  {
    std::lock_guard lock(mutex_);
    flush_locked();
  }
  sqlite3_close(db_);
}

bool CacheIndex::exec(const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) == SQLITE_OK) return true;
  spdlog::warn("cache index: {}: {}", sql, message ? message : "?");
  sqlite3_free(message);
  return false;
}

void CacheIndex::record(const std::string& sha1, std::uint64_t size, std::uint64_t bytes,
                        bool complete) {
  std::lock_guard lock(mutex_);
  pending_objects_[sha1] = {false, size, bytes, complete, now()};
}

void CacheIndex::touch(const std::string& sha1) {
  std::lock_guard lock(mutex_);
  pending_touches_[sha1] = now();
}

void CacheIndex::remove(const std::string& sha1) {
  std::lock_guard lock(mutex_);
  pending_objects_[sha1] = {true};
  pending_touches_.erase(sha1);
}

void CacheIndex::flush() {
  std::lock_guard lock(mutex_);
  flush_locked();
}

void CacheIndex::flush_locked() {
  bool opens_changed = false;
  for (const auto& [sha1, open] : pending_open_) {
    if (open != open_written_.contains(sha1)) opens_changed = true;
  }
  if (pending_objects_.empty() && pending_touches_.empty() && pending_sizes_.empty() &&
      !opens_changed) {
    pending_open_.clear();
    return;
  }
  exec("BEGIN");
  for (const auto& [sha1, object] : pending_objects_) {
    if (object.removed) {
      Statement(db_, "DELETE FROM objects WHERE sha1 = ?1").bind(1, sha1).run();
      continue;
    }
    Statement(db_,
              "INSERT INTO objects (sha1, size, bytes, complete, last_access) VALUES (?1, ?2, ?3, "
              "?4, ?5) ON CONFLICT(sha1) DO UPDATE SET size = ?2, bytes = ?3, complete = ?4, "
              "last_access = ?5")
        .bind(1, sha1)
        .bind(2, static_cast<std::int64_t>(object.size))
        .bind(3, static_cast<std::int64_t>(object.bytes))
        .bind(4, std::int64_t{object.complete})
        .bind(5, object.last_access)
        .run();
  }
  for (const auto& [sha1, size] : pending_sizes_) {
    Statement(db_, "INSERT OR REPLACE INTO sizes (sha1, size) VALUES (?1, ?2)")
        .bind(1, sha1)
        .bind(2, static_cast<std::int64_t>(size))
        .run();
  }
  for (const auto& [sha1, when] : pending_touches_) {
    Statement(db_, "UPDATE objects SET last_access = MAX(last_access, ?2) WHERE sha1 = ?1")
        .bind(1, sha1)
        .bind(2, when)
        .run();
  }
  for (const auto& [sha1, open] : pending_open_) {
    if (open == open_written_.contains(sha1)) continue;
    Statement(db_, open ? "INSERT OR IGNORE INTO open_objects (sha1) VALUES (?1)"
                        : "DELETE FROM open_objects WHERE sha1 = ?1")
        .bind(1, sha1)
        .run();
  }
  if (!exec("COMMIT")) {
    // A full disk, typically: everything stays queued for the next flush (eviction still
    // sees it, through eviction_candidates), and nothing of this attempt is kept.
    exec("ROLLBACK");
    return;
  }
  for (const auto& [sha1, open] : pending_open_) {
    if (open)
      open_written_.insert(sha1);
    else
      open_written_.erase(sha1);
  }
  pending_objects_.clear();
  pending_touches_.clear();
  pending_sizes_.clear();
  pending_open_.clear();
}

void CacheIndex::remember_size(const std::string& sha1, std::uint64_t size) {
  std::lock_guard lock(mutex_);
  pending_sizes_[sha1] = size;
}

std::optional<std::uint64_t> CacheIndex::remembered_size(const std::string& sha1) {
  std::lock_guard lock(mutex_);
  if (auto it = pending_sizes_.find(sha1); it != pending_sizes_.end()) return it->second;
  Statement row(db_, "SELECT size FROM sizes WHERE sha1 = ?1");
  row.bind(1, sha1);
  if (!row.step()) return std::nullopt;
  return static_cast<std::uint64_t>(row.integer(0));
}

bool CacheIndex::set_pinned(const std::string& sha1, bool pinned) {
  std::lock_guard lock(mutex_);
  flush_locked();
  Statement(db_, "UPDATE objects SET pinned = ?2 WHERE sha1 = ?1")
      .bind(1, sha1)
      .bind(2, std::int64_t{pinned})
      .run();
  return sqlite3_changes(db_) > 0;
}

std::optional<IndexEntry> CacheIndex::get(const std::string& sha1) {
  // The stored row with what is queued for it laid over: no flush, so that each object a
  // mount completes costs one read here, not a transaction.
  std::lock_guard lock(mutex_);
  std::optional<IndexEntry> entry;
  Statement row(db_, (std::string("SELECT ") + kColumns + " FROM objects WHERE sha1 = ?1").c_str());
  row.bind(1, sha1);
  if (row.step()) entry = entry_from(row);
  if (auto queued = pending_objects_.find(sha1); queued != pending_objects_.end()) {
    const PendingObject& object = queued->second;
    if (object.removed) return std::nullopt;
    bool pinned = entry && entry->pinned;  // record() keeps the stored flag
    entry = IndexEntry{sha1,         object.size,
                       object.bytes, object.complete,
                       pinned,       std::max(object.last_access, entry ? entry->last_access : 0)};
  }
  if (auto touched = pending_touches_.find(sha1); entry && touched != pending_touches_.end())
    entry->last_access = std::max(entry->last_access, touched->second);
  return entry;
}

IndexTotals CacheIndex::totals() {
  std::lock_guard lock(mutex_);
  flush_locked();
  Statement row(db_,
                "SELECT COALESCE(SUM(bytes), 0), COUNT(*), COALESCE(SUM(pinned), 0), "
                "COALESCE(SUM(1 - complete), 0), COALESCE(SUM(bytes * pinned), 0) FROM objects");
  if (!row.step()) return {};
  auto column = [&](int i) { return static_cast<std::uint64_t>(row.integer(i)); };
  return {column(0), column(1), column(2), column(3), column(4)};
}

std::vector<IndexEntry> CacheIndex::entries() {
  std::lock_guard lock(mutex_);
  flush_locked();
  std::vector<IndexEntry> all;
  Statement row(
      db_, (std::string("SELECT ") + kColumns + " FROM objects ORDER BY last_access DESC").c_str());
  while (row.step()) all.push_back(entry_from(row));
  return all;
}

std::vector<IndexEntry> CacheIndex::eviction_candidates() {
  std::lock_guard lock(mutex_);
  flush_locked();
  std::vector<IndexEntry> all;
  Statement row(db_,
                (std::string("SELECT ") + kColumns +
                 " FROM objects WHERE pinned = 0 AND sha1 NOT IN (SELECT sha1 FROM open_objects) "
                 "ORDER BY last_access ASC")
                    .c_str());
  while (row.step()) all.push_back(entry_from(row));
  if (pending_objects_.empty()) return all;
  // A flush that failed (a full disk) left records queued: lay them over the rows, so that
  // eviction can free the very files whose records could not be written.
  std::unordered_map<std::string, std::size_t> at;
  for (std::size_t i = 0; i < all.size(); ++i) at[all[i].sha1] = i;
  std::vector<IndexEntry> queued;
  std::unordered_set<std::string> removed;
  for (const auto& [sha1, object] : pending_objects_) {
    auto it = at.find(sha1);
    if (object.removed) {
      removed.insert(sha1);
      continue;
    }
    if (it != at.end()) {
      all[it->second] = {sha1,  object.size,       object.bytes, object.complete,
                         false, object.last_access};
      continue;
    }
    // Not among the rows: either pinned or open (then it stays so), or not written yet.
    bool open =
        pending_open_.contains(sha1) ? pending_open_.at(sha1) : open_written_.contains(sha1);
    Statement existing(db_, "SELECT 1 FROM objects WHERE sha1 = ?1");
    existing.bind(1, sha1);
    if (!open && !existing.step())
      queued.push_back(
          {sha1, object.size, object.bytes, object.complete, false, object.last_access});
  }
  all.insert(all.end(), queued.begin(), queued.end());
  std::erase_if(all, [&](const IndexEntry& e) { return removed.contains(e.sha1); });
  std::stable_sort(all.begin(), all.end(), [](const IndexEntry& a, const IndexEntry& b) {
    return a.last_access < b.last_access;
  });
  return all;
}

void CacheIndex::add_counter(const std::string& name, std::int64_t delta) {
  std::lock_guard lock(mutex_);
  Statement(db_,
            "INSERT INTO counters (name, value) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET "
            "value = value + ?2")
      .bind(1, name)
      .bind(2, delta)
      .run();
}

std::uint64_t CacheIndex::counter(const std::string& name) {
  std::lock_guard lock(mutex_);
  Statement row(db_, "SELECT value FROM counters WHERE name = ?1");
  row.bind(1, name);
  return row.step() ? static_cast<std::uint64_t>(row.integer(0)) : 0;
}

std::vector<std::pair<std::string, std::uint64_t>> CacheIndex::counters() {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, std::uint64_t>> out;
  Statement row(db_, "SELECT name, value FROM counters ORDER BY name");
  while (row.step()) out.emplace_back(row.text(0), static_cast<std::uint64_t>(row.integer(1)));
  return out;
}

void CacheIndex::set_open(const std::string& sha1, bool open) {
  std::lock_guard lock(mutex_);
  pending_open_[sha1] = open;
}

void CacheIndex::clear_open() {
  std::lock_guard lock(mutex_);
  pending_open_.clear();
  open_written_.clear();
  exec("DELETE FROM open_objects");
}

bool CacheIndex::empty() {
  std::lock_guard lock(mutex_);
  flush_locked();
  Statement row(db_, "SELECT COUNT(*) FROM objects");
  return !row.step() || row.integer(0) == 0;
}

}  // namespace kacheryfs
