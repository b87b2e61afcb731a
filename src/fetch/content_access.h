// ContentAccess: the one entry point that makes content present for an intent, used by the
// mount (open, read) and by `kacheryfs-cache pin` alike, so manifests, channels and strict
// mode behave the same in both:
//   - kRead: an open returns once the size is known (a file no larger than size
//     discovery's head arrives whole with it). Every other file streams through the block
//     cache: each read waits only for its own pages (prepare_read), and bytes are verified
//     in the background (strict: only verified bytes are served; without a manifest that
//     means fetching the whole file at open). Once read, a file up to whole_max is fetched
//     whole in the background; a larger one is read ahead of a sequential reader;
//   - kPin: fetched whole and verified, whatever its size.
// Finding a size (a lookup) keeps what it fetched at once: a small file is cached whole,
// and a larger file's head (and last window) become the pages of its block-cache entry.
// A manifest named by a URI (`?manifest=`) or by a lookup name verifies chunks as they
// arrive. Counts hits (opens served from the complete cache, unless their lookup fetched
// it) and misses (opens that stream, and whole files fetched by a lookup). Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "cache/cache_accounting.h"
#include "cache/content_cache.h"
#include "cache/open_objects.h"
#include "cache/partial_file.h"
#include "fetch/block_fetcher.h"
#include "fetch/content_fetcher.h"
#include "support/counters.h"
#include "support/result.h"
#include "support/unique_fd.h"

namespace kacheryfs {

struct StreamingConfig {
  std::uint64_t whole_max = 64 << 20;      // files up to this size are fetched whole once read
  std::uint64_t max_readahead = 64 << 20;  // largest readahead window of a sequential reader
  bool strict = false;                     // serve no byte before it is verified
};

enum class Intent { kRead, kPin };

struct ContentRequest {
  std::string sha1;
  std::string manifest_sha1;  // "" = the one a lookup name gave, if any
  Intent intent = Intent::kRead;
  // kPin of a streamed file: called with its entry before its blocks are fetched (the
  // tool's progress bar watches cached_bytes()).
  std::function<void(std::shared_ptr<const PartialFile> file)> on_stream;
  // The lookup before this open fetched the whole file (ContentSize::fetched): the miss
  // was counted there, so the open is not a hit.
  bool fetched_by_lookup = false;
};

// What an open of content holds: the complete cache file, or the stream of a large file.
struct OpenContent {
  std::string sha1;
  std::uint64_t size = 0;
  UniqueFd fd;                           // complete, verified content
  std::shared_ptr<PartialFile> partial;  // a large file streamed through the block cache
  OpenObjects::Hold in_use;              // not evicted while open
  // Sequential-read detection for readahead, per open handle.
  std::mutex readahead_mutex;
  std::uint64_t next_offset = 0;   // the furthest end of the reads of the current stream
  std::uint64_t window = 0;        // its readahead window
  bool whole_file_queued = false;  // a file up to whole_max: its whole fetch is queued
};

struct ContentSize {
  std::uint64_t size = 0;
  bool fetched = false;  // finding it fetched the whole file (a miss)
};

class ContentAccess {
 public:
  ContentAccess(ContentCache& cache, ContentFetcher& fetcher, BlockFetcher& blocks,
                CacheAccounting& accounting, Counters& counters, OpenObjects& in_use,
                StreamingConfig streaming);

  // Remembers the manifest that a name (sha1/<sha1>?manifest=<m>) gave for sha1.
  void note_manifest(const std::string& sha1, const std::string& manifest_sha1);

  // The blob's size; with a known manifest (named as ?manifest=), the manifest states it
  // and no size discovery is needed.
  Result<ContentSize> size(const std::string& sha1, const CancelToken& cancel);

  // Makes the content present for the request's intent and fills `out`.
  Status open(const ContentRequest& request, OpenContent& out, const CancelToken& cancel);

  // Makes [offset, offset + length) of an open file readable (fetching the pages it needs
  // and reading ahead for sequential readers) and returns the fd to read it from.
  Result<int> prepare_read(OpenContent& file, std::uint64_t offset, std::uint64_t length,
                           const CancelToken& cancel);

  // Bytes of sha1 held in the cache, and whether they are verified ("yes", "partial", "no").
  Result<std::uint64_t> cached_bytes(const std::string& sha1, const CancelToken& cancel);
  std::string verified(const std::string& sha1);

 private:
  // The size, from the fetcher; bytes its discovery brought of a file larger than its head
  // go into the file's block-cache entry (with the request's manifest) before it returns.
  Result<ContentSize> find_size(const ContentRequest& request, const CancelToken& cancel);
  // The block-cache entry of a file, with the request's manifest and the bytes in hand.
  Result<std::shared_ptr<PartialFile>> entry(const ContentRequest& request, std::uint64_t size,
                                             const std::vector<KnownPiece>& known,
                                             const CancelToken& cancel);
  Status open_streamed(const ContentRequest& request, std::uint64_t size, OpenContent& out,
                       const CancelToken& cancel);
  // The manifest manifest_sha1, fetched (whole, verified) and checked to describe sha1.
  std::optional<Manifest> load_manifest(const std::string& sha1, const std::string& manifest_sha1,
                                        const CancelToken& cancel);
  std::optional<Manifest> manifest_for(const ContentRequest& request, std::uint64_t size,
                                       const CancelToken& cancel);

  ContentCache& cache_;
  ContentFetcher& fetcher_;
  BlockFetcher& blocks_;
  CacheAccounting& accounting_;
  Counters& counters_;
  OpenObjects& in_use_;
  StreamingConfig streaming_;
  std::mutex manifests_mutex_;                                   // a leaf
  std::unordered_map<std::string, std::string> manifest_names_;  // sha1 -> manifest sha1
};

}  // namespace kacheryfs
