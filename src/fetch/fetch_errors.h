// The one place where a failed fetch becomes the errno a reader sees: not found is
// ENOENT, cancelled is EINTR, and everything else is EIO, counted at its numbered site
// (Counters) and logged once with its number and cause.
#pragma once

#include <string_view>

#include "fetch/blob_source.h"
#include "support/counters.h"

namespace kacheryfs {

// The failure a reader gets for a fetch that failed: the errno above, with the fetch's
// cause and detail. `result` must have failed.
Failure read_failure(Counters& counters, const Status& result, EioSite site, std::string_view sha1);
// The same as an errno, 0 for an ok result (for the FUSE layer).
int fetch_errno(Counters& counters, const Status& result, EioSite site, std::string_view sha1);

// Counts and logs a checksum mismatch ("sha1 mismatch for <sha1>: <why>"); returns its
// kBadBytes failure (-EIO).
Failure report_eio(Counters& counters, EioSite site, std::string_view sha1, std::string_view why);
// The log line of a mismatch counted already as the n-th EIO (for a caller that must count
// it before its readers wake, and log it after they can no longer get the bad bytes).
void log_checksum_eio(std::uint64_t n, EioSite site, std::string_view sha1, std::string_view why);

}  // namespace kacheryfs
