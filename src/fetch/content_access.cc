#include "fetch/content_access.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <future>

#include "fetch/fetch_errors.h"
#include "kachery/hash_name.h"

namespace kacheryfs {

ContentAccess::ContentAccess(ContentCache& cache, ContentFetcher& fetcher, BlockFetcher& blocks,
                             CacheAccounting& accounting, Counters& counters, OpenObjects& in_use,
                             StreamingConfig streaming)
    : cache_(cache),
      fetcher_(fetcher),
      blocks_(blocks),
      accounting_(accounting),
      counters_(counters),
      in_use_(in_use),
      streaming_(streaming) {}

void ContentAccess::note_manifest(const std::string& sha1, const std::string& manifest_sha1) {
  if (manifest_sha1.empty()) return;
  std::lock_guard lock(manifests_mutex_);
  manifest_names_[sha1] = manifest_sha1;
}

Status ContentAccess::open(const ContentRequest& request, OpenContent& out,
                           const CancelToken& cancel) {
  const std::string& sha1 = request.sha1;
  out.sha1 = sha1;
  if (sha1 == kEmptySha1) return {};  // no fd: reads return nothing
  out.in_use = in_use_.hold(sha1);
  if (auto fd = cache_.open_complete(sha1); fd.ok()) {
    if (!request.fetched_by_lookup) counters_.add(Counter::kHits);
    accounting_.accessed(sha1);
    struct stat st {};
    out.size = fstat(fd->get(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
    out.fd = std::move(*fd);
    return {};
  }
  Result<ContentSize> size = find_size(request, cancel);
  if (!size.ok()) return size.failure();
  out.size = size->size;
  if (auto fd = cache_.open_complete(sha1); fd.ok()) {  // small files arrive with their size
    out.fd = std::move(*fd);
    return {};
  }
  if (Status streamed = open_streamed(request, size->size, out, cancel);
      !streamed.ok() || out.partial) {
    return streamed;
  }
  auto fd = cache_.open_complete(sha1);
  if (!fd.ok()) return fd.failure();
  out.fd = std::move(*fd);
  return {};
}

Result<ContentSize> ContentAccess::find_size(const ContentRequest& request,
                                             const CancelToken& cancel) {
  Result<FoundSize> found = fetcher_.find_size(request.sha1, cancel);
  if (!found.ok()) return found.failure();
  if (!found->pieces.empty()) {
    // Kept now, not at the open: the bytes are in the cache whether or not one follows.
    auto kept = entry(request, found->size, found->pieces, cancel);
    if (!kept.ok())
      spdlog::debug("{}: the bytes size discovery brought are not kept: {}", request.sha1,
                    kept.detail());
  }
  return ContentSize{found->size, found->fetched_whole};
}

Result<std::shared_ptr<PartialFile>> ContentAccess::entry(const ContentRequest& request,
                                                          std::uint64_t size,
                                                          const std::vector<KnownPiece>& known,
                                                          const CancelToken& cancel) {
  return blocks_.partial(request.sha1, size, manifest_for(request, size, cancel), known);
}

Status ContentAccess::open_streamed(const ContentRequest& request, std::uint64_t size,
                                    OpenContent& out, const CancelToken& cancel) {
  auto partial = entry(request, size, {}, cancel);
  if (partial.error() == -EFBIG) {
    spdlog::warn("{}: {}", request.sha1, partial.detail());  // a size, not an EIO
    return partial.failure();
  }
  if (!partial.ok()) {
    return read_failure(
        counters_,
        {Cause::kLocalError, "cannot create the block cache entry: " + partial.detail() + ": " +
                                 std::strerror(-partial.error())},
        EioSite::kCacheWrite, request.sha1);
  }
  if (!(*partial)->all_present()) counters_.add(Counter::kMisses);  // bytes will be fetched
  bool fetch_everything =
      request.intent == Intent::kPin || (streaming_.strict && !(*partial)->manifest());
  if (fetch_everything) {
    // A pin wants it all; strict mode without a manifest can verify nothing before the
    // whole file is: fetch every block (in parallel) and wait for the whole-file check.
    if (request.on_stream) request.on_stream(*partial);
    return blocks_.fetch_all(*partial, cancel);
  }
  if (!(*partial)->complete()) out.partial = std::move(*partial);
  return {};
}

std::optional<Manifest> ContentAccess::load_manifest(const std::string& sha1,
                                                     const std::string& manifest_sha1,
                                                     const CancelToken& cancel) {
  if (!fetcher_.ensure_cached(manifest_sha1, cancel).ok()) {
    spdlog::warn("cannot fetch manifest {} of {}; verifying the whole file only", manifest_sha1,
                 sha1);
    return std::nullopt;
  }
  std::string text = cache_.layout().read_file(cache_.complete_path(manifest_sha1)).value_or("");
  auto manifest = parse_manifest(text);
  if (manifest && manifest->sha1 != sha1)
    manifest = fail(Cause::kProtocolError, "it describes another file");
  if (!manifest) {
    spdlog::warn("ignoring manifest {} of {}: {}", manifest_sha1, sha1, manifest.detail());
    return std::nullopt;
  }
  return std::move(*manifest);
}

std::optional<Manifest> ContentAccess::manifest_for(const ContentRequest& request,
                                                    std::uint64_t size, const CancelToken& cancel) {
  const std::string& sha1 = request.sha1;
  std::string manifest_sha1 = request.manifest_sha1;
  if (manifest_sha1.empty()) {
    std::lock_guard lock(manifests_mutex_);
    auto it = manifest_names_.find(sha1);
    if (it == manifest_names_.end()) return std::nullopt;
    manifest_sha1 = it->second;
  }
  auto manifest = load_manifest(sha1, manifest_sha1, cancel);
  if (manifest && manifest->size != size) {
    spdlog::warn("ignoring manifest {} of {}: it gives {} bytes, the file has {}", manifest_sha1,
                 sha1, manifest->size, size);
    return std::nullopt;
  }
  return manifest;
}

Result<ContentSize> ContentAccess::size(const std::string& sha1, const CancelToken& cancel) {
  std::string manifest_sha1;
  {
    std::lock_guard lock(manifests_mutex_);
    if (auto it = manifest_names_.find(sha1); it != manifest_names_.end())
      manifest_sha1 = it->second;
  }
  // A manifest's size is as good as a discovered one: a wrong one makes the download fail
  // its length or hash check, never serves wrong bytes.
  if (!manifest_sha1.empty() && !fetcher_.known_size(sha1)) {
    // While the manifest comes, so does the file's first page (the manifest is only written
    // for files too large to fetch whole): the first read, which nearly always follows,
    // then needs no request of its own.
    auto head = std::async(std::launch::async, [&] {
      return fetcher_.fetch_head(sha1, blocks_.config().page_size, cancel);
    });
    auto manifest = load_manifest(sha1, manifest_sha1, cancel);
    std::string first_page = head.get();
    if (manifest) {
      fetcher_.set_known_size(sha1, manifest->size);
      if (!first_page.empty()) {
        auto kept =
            blocks_.partial(sha1, manifest->size, manifest, {KnownPiece{0, std::move(first_page)}});
        if (!kept.ok()) spdlog::debug("{}: its first page is not kept: {}", sha1, kept.detail());
      }
    }
  }
  ContentRequest request;
  request.sha1 = sha1;
  return find_size(request, cancel);
}

Result<int> ContentAccess::prepare_read(OpenContent& file, std::uint64_t offset,
                                        std::uint64_t length, const CancelToken& cancel) {
  if (!file.partial) return file.fd.get();
  const std::shared_ptr<PartialFile>& partial = file.partial;
  std::uint64_t window = 0;
  bool queue_whole = false;
  {
    // A read continues the stream when it starts at most 1 MiB past its furthest end, and
    // not further behind it than the readahead window (or 1 MiB): the kernel's readahead,
    // served by several FUSE threads, delivers a stream's reads a few MiB out of order, and
    // an overtaken read is part of the stream, not a seek. The window opens at what fills
    // the link (BlockFetcher::first_window) and doubles up to max_readahead. A first read,
    // or any other jump, has none: it fetches only its pages (and the kernel's readahead),
    // so that a reader that reads a header and then seeks never waits behind bytes it did
    // not want.
    std::lock_guard lock(file.readahead_mutex);
    constexpr std::uint64_t kSlack = 1 << 20;
    bool continues = file.next_offset > 0 && offset <= file.next_offset + kSlack &&
                     offset + std::max(kSlack, file.window) >= file.next_offset;
    std::uint64_t opening = blocks_.first_window();
    file.window =
        continues ? std::min(streaming_.max_readahead, std::max(opening, 2 * file.window)) : 0;
    file.next_offset = continues ? std::max(file.next_offset, offset + length) : offset + length;
    window = file.window;
    queue_whole = partial->size() <= streaming_.whole_max && !file.whole_file_queued;
    file.whole_file_queued = file.whole_file_queued || queue_whole;
  }
  // The reader's own pages first, then the prefetch: queued before them, the prefetch's
  // ranges would share the node's bandwidth with the one the reader waits for.
  Status demand = blocks_.ensure(partial, offset, length, streaming_.strict, cancel);
  if (queue_whole) {
    // A file up to whole_max is fetched whole once read: in the background, behind the
    // reader's own pages. Room for all of it is made now, as the blocks' own checks,
    // racing each other while the index catches up, would each see too little.
    accounting_.make_room(partial->size() - std::min(partial->size(), partial->cached_bytes()));
    blocks_.prefetch(partial, offset + length, partial->size());
    blocks_.prefetch(partial, 0, offset);
  } else if (window > 0 && partial->size() > streaming_.whole_max) {
    blocks_.prefetch(partial, offset + length, window);
  }
  if (!demand.ok()) return demand.failure();
  // No reader reaches the end of a file on unverified bytes: the read that returns the last
  // bytes waits for the whole-file check (fetching what is still missing), so cat, cp and
  // sha1sum can never finish "successfully" on a corrupt file.
  // With a manifest, the chunk that holds the last bytes being verified is enough; without
  // one only the whole file can be checked (a footer-first reader of a large file without
  // a manifest pays for the whole download: give its manifest, or verify=strict).
  if (offset + length >= partial->size() && !partial->complete()) {
    Status verified = partial->manifest()
                          ? blocks_.ensure(partial, offset, length, /*verified_only=*/true, cancel)
                          : blocks_.fetch_all(partial, cancel);
    if (!verified.ok()) return verified.failure();
  }
  return partial->data_fd();
}

Result<std::uint64_t> ContentAccess::cached_bytes(const std::string& sha1,
                                                  const CancelToken& cancel) {
  bool complete = sha1 == kEmptySha1 || cache_.complete_size(sha1).has_value();
  ContentRequest request;
  request.sha1 = sha1;
  Result<ContentSize> size = find_size(request, cancel);
  if (!size.ok()) return size.failure();
  return complete ? size->size : blocks_.partial_bytes(sha1, size->size);
}

std::string ContentAccess::verified(const std::string& sha1) {
  if (sha1 == kEmptySha1 || cache_.complete_size(sha1).has_value()) return "yes";
  return blocks_.verified_chunks(sha1) > 0 ? "partial" : "no";
}

}  // namespace kacheryfs
