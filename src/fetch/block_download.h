// The download stage of the block cache: one range request for a run of claimed pages of a
// partial file, its bytes written into the file's data file as they arrive and each page
// marked present once it is written whole; and bytes already in hand (what size discovery
// brought) stored as the whole pages they cover. Makes room in the cache before it writes,
// and evicts once more on ENOSPC. Thread-safe (a page is written by the one who claimed it).
#pragma once

#include <cstdint>
#include <string>

#include "cache/cache_accounting.h"
#include "cache/partial_file.h"
#include "fetch/blob_source.h"
#include "support/cancel_token.h"
#include "support/counters.h"
#include "support/result.h"

namespace kacheryfs {

class BlockDownload {
 public:
  // A reader waits for a demand fetch, and its failure is the reader's EIO (counted and
  // logged); a prefetch's failure is only logged, as nobody waits for those bytes.
  enum class Purpose { kDemand, kPrefetch };

  BlockDownload(BlobSource& source, CacheAccounting& accounting, Counters& counters,
                std::uint64_t block_size);

  std::uint64_t block_size() const { return block_size_; }

  // Fetches page `first` (claimed by the caller) and the claimable pages after it, up to
  // page `limit` and at most block_size bytes, in one range request. Pages that did not
  // arrive are released for another fetch.
  Status fetch_run(PartialFile& file, std::uint64_t first, std::uint64_t limit,
                   const CancelToken& cancel, Purpose purpose);
  // Stores bytes [offset, offset + bytes.size()) of the file as the pages they cover whole
  // (those no one else claimed). True if any page was stored: it then needs verifying.
  bool store(PartialFile& file, std::uint64_t offset, const std::string& bytes);

 private:
  BlobSource& source_;
  CacheAccounting& accounting_;
  Counters& counters_;
  std::uint64_t block_size_;
};

}  // namespace kacheryfs
