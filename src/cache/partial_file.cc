#include "cache/partial_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace kacheryfs {

namespace fs = std::filesystem;

PartialFile::PartialFile(std::string sha1, std::uint64_t size, std::uint64_t page_size)
    : sha1_(std::move(sha1)), size_(size), page_size_(page_size) {}

PartialFile::~PartialFile() = default;

Result<std::shared_ptr<PartialFile>> PartialFile::open(const CacheLayout& layout,
                                                       const std::string& sha1, std::uint64_t size,
                                                       std::uint64_t page_size) {
  std::shared_ptr<PartialFile> file(new PartialFile(sha1, size, page_size));
  std::error_code ec;
  fs::create_directories(layout.partial_dir(), ec);
  file->data_path_ = layout.partial_data(sha1);
  file->map_path_ = layout.page_map(sha1);
  file->chunks_path_ = layout.verified_chunks(sha1);
  file->layout_ = &layout;
  std::uint64_t pages = (size + page_size - 1) / page_size;
  if (pages > kMaxPages) {
    // The page maps are held in memory, a byte a page: a node that claims petabytes must
    // not make the mount allocate gigabytes.
    return kacheryfs::fail(-EFBIG, "a file of " + std::to_string(size) + " bytes has " +
                                       std::to_string(pages) + " pages, more than the " +
                                       std::to_string(kMaxPages) + " kacheryfs streams");
  }
  file->present_.assign(pages, 0);
  file->in_flight_.assign(pages, 0);

  // A map that does not match this geometry (another page size) is started afresh.
  struct stat st {};
  bool reuse =
      layout.stat_file(file->map_path_, &st) && static_cast<std::uint64_t>(st.st_size) == pages &&
      layout.stat_file(file->data_path_, &st) && static_cast<std::uint64_t>(st.st_size) == size;
  int flags = O_RDWR | O_CREAT | (reuse ? 0 : O_TRUNC);
  int data_fd = layout.open_file(file->data_path_, flags, 0644);
  if (data_fd < 0) return kacheryfs::fail(data_fd, "cannot open " + file->data_path_.string());
  file->data_fd_.reset(data_fd);
  int map_fd = layout.open_file(file->map_path_, flags, 0644);
  if (map_fd < 0) return kacheryfs::fail(map_fd, "cannot open " + file->map_path_.string());
  file->map_fd_.reset(map_fd);
  if (!reuse) {
    if (ftruncate(file->data_fd_.get(), static_cast<off_t>(size)) != 0 ||
        ftruncate(file->map_fd_.get(), static_cast<off_t>(pages)) != 0) {
      return kacheryfs::fail(-errno, "cannot size " + file->data_path_.string());
    }
  } else if (pread(file->map_fd_.get(), file->present_.data(), pages, 0) !=
             static_cast<ssize_t>(pages)) {
    file->present_.assign(pages, 0);
  }
  for (std::uint64_t page = 0; page < pages; ++page) {
    auto& p = file->present_[page];
    p = p == 1 ? 1 : 0;
    file->present_count_ += p;
    if (p) file->present_bytes_ += file->page_end(page) - file->page_start(page);
  }
  return file;
}

bool PartialFile::present(std::uint64_t page) const {
  std::lock_guard lock(mutex_);
  return present_[page] != 0;
}

bool PartialFile::all_present() const {
  std::lock_guard lock(mutex_);
  return present_count_ == present_.size();
}

std::uint64_t PartialFile::cached_bytes() const {
  std::lock_guard lock(mutex_);
  return present_bytes_;
}

std::uint64_t PartialFile::present_run(std::uint64_t first, std::uint64_t limit) const {
  std::lock_guard lock(mutex_);
  std::uint64_t run = 0;
  while (run < limit && first + run < present_.size() && present_[first + run]) ++run;
  return run;
}

bool PartialFile::claim(std::uint64_t page) {
  std::lock_guard lock(mutex_);
  if (failed_ || present_[page] || in_flight_[page]) return false;
  in_flight_[page] = 1;
  return true;
}

void PartialFile::finish(std::uint64_t first, std::uint64_t last, bool fetched) {
  // The pages are claimed by the caller, so their map bytes are its to write, and that
  // write needs no lock. The data was written before this point; only now does the map
  // say so.
  std::uint64_t count = last - first + 1;
  if (fetched) {
    std::vector<std::uint8_t> ones(count, 1);
    fetched = pwrite(map_fd_.get(), ones.data(), count, static_cast<off_t>(first)) ==
              static_cast<ssize_t>(count);
  }
  {
    std::lock_guard lock(mutex_);
    for (std::uint64_t page = first; page <= last; ++page) {
      in_flight_[page] = 0;
      if (fetched && !failed_) {
        present_[page] = 1;
        ++present_count_;
        present_bytes_ += page_end(page) - page_start(page);
      }
    }
  }
  std::uint64_t stripes = std::min<std::uint64_t>(count, page_changed_.size());
  for (std::uint64_t page = first; page < first + stripes; ++page) page_changed(page).notify_all();
}

PartialFile::WaitResult PartialFile::wait(std::uint64_t page, const CancelToken& cancel) {
  WaitResult result = WaitResult::kCancelled;
  wait_unless_cancelled(mutex_, page_changed(page), cancel, [&] {
    if (failed_)
      result = WaitResult::kFailed;
    else if (present_[page])
      result = WaitResult::kPresent;
    else if (!in_flight_[page])
      result = WaitResult::kAbsent;
    else
      return false;
    return true;
  });
  return result;
}

void PartialFile::set_manifest(Manifest manifest) {
  std::lock_guard lock(mutex_);
  set_manifest_locked(std::move(manifest));
}

void PartialFile::set_manifest_if_none(const Manifest& manifest) {
  std::lock_guard lock(mutex_);
  if (!manifest_) set_manifest_locked(manifest);
}

void PartialFile::set_manifest_locked(Manifest manifest) {
  std::size_t count = manifest.chunks.size();
  chunk_verified_.assign(count, 0);
  int chunks_fd = layout_->open_file(chunks_path_, O_RDWR | O_CREAT, 0644);
  chunks_fd_.reset(chunks_fd >= 0 ? chunks_fd : -1);
  struct stat st {};
  if (chunks_fd_.valid() && fstat(chunks_fd_.get(), &st) == 0) {
    if (static_cast<std::size_t>(st.st_size) == count) {
      if (pread(chunks_fd_.get(), chunk_verified_.data(), count, 0) != static_cast<ssize_t>(count))
        chunk_verified_.assign(count, 0);
      for (auto& v : chunk_verified_) v = v == 1 ? 1 : 0;
    } else if (ftruncate(chunks_fd_.get(), 0) != 0 ||
               ftruncate(chunks_fd_.get(), static_cast<off_t>(count)) != 0) {
      chunks_fd_.reset();
    }
  }
  manifest_ = std::make_shared<const Manifest>(std::move(manifest));
}

bool PartialFile::chunk_verified(std::size_t chunk) const {
  std::lock_guard lock(mutex_);
  return complete_ || (chunk < chunk_verified_.size() && chunk_verified_[chunk]);
}

void PartialFile::set_chunk_verified(std::size_t chunk) {
  {
    std::lock_guard lock(mutex_);
    if (chunk < chunk_verified_.size()) {
      chunk_verified_[chunk] = 1;
      std::uint8_t one = 1;
      if (chunks_fd_.valid() && pwrite(chunks_fd_.get(), &one, 1, static_cast<off_t>(chunk)) != 1) {
        // Not recorded: it is simply verified again after a remount.
      }
    }
  }
  changed_.notify_all();
}

std::size_t PartialFile::verified_chunk_count() const {
  std::lock_guard lock(mutex_);
  std::size_t n = 0;
  for (auto v : chunk_verified_) n += v;
  return n;
}

bool PartialFile::wait_chunk_verified(std::size_t chunk, const CancelToken& cancel) {
  bool verified = false;
  wait_unless_cancelled(mutex_, changed_, cancel, [&] {
    verified = complete_ || (chunk < chunk_verified_.size() && chunk_verified_[chunk]);
    return failed_ || verified;
  });
  return verified && !failed_;
}

Status PartialFile::wait_complete(const CancelToken& cancel) {
  Status outcome = kacheryfs::fail(Cause::kCancelled, "cancelled");
  wait_unless_cancelled(mutex_, changed_, cancel, [&] {
    if (failed_)
      outcome = kacheryfs::fail(Cause::kBadBytes, sha1_ + " failed verification or a write");
    else if (complete_)
      outcome = Status{};
    return failed_ || complete_;
  });
  return outcome;
}

void PartialFile::set_complete() {
  {
    std::lock_guard lock(mutex_);
    complete_ = true;
    layout_->remove_file(map_path_);
    layout_->remove_file(chunks_path_);
  }
  changed_.notify_all();
}

void PartialFile::fail() {
  {
    std::lock_guard lock(mutex_);
    failed_ = true;
    present_.assign(present_.size(), 0);
    present_count_ = 0;
    present_bytes_ = 0;
    layout_->remove_file(map_path_);
    layout_->remove_file(chunks_path_);
    layout_->remove_file(data_path_);
  }
  changed_.notify_all();
  for (auto& waiters : page_changed_) waiters.notify_all();
}

}  // namespace kacheryfs

namespace kacheryfs {

bool PartialFile::hash_present_pages(const PageHasher& hash_range) {
  // Hash each run of present pages from the cursor (at most 256 pages) in one pass.
  while (std::uint64_t run = present_run(hashed_pages_, 256)) {
    std::uint64_t last = hashed_pages_ + run - 1;
    if (!hash_range(page_start(hashed_pages_), page_end(last), whole_file_hasher_)) return false;
    hashed_pages_ = last + 1;
  }
  return true;
}

bool PartialFile::report_held_bytes(std::uint64_t held, std::uint64_t step) {
  std::uint64_t told = indexed_bytes_.load();
  while (held >= told + step) {
    if (indexed_bytes_.compare_exchange_weak(told, held)) return true;
  }
  return false;
}

}  // namespace kacheryfs
