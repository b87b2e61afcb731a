#include "fetch/fetch_errors.h"

#include <spdlog/spdlog.h>

#include <cerrno>

namespace kacheryfs {

Failure read_failure(Counters& counters, const Status& result, EioSite site,
                     std::string_view sha1) {
  Failure failure = result.failure();
  if (failure.cause == Cause::kNotFound) return fail(Cause::kNotFound, failure.detail);
  if (failure.cause == Cause::kCancelled) return fail(Cause::kCancelled, failure.detail);
  std::uint64_t n = counters.count_eio(site);
  spdlog::warn("EIO #{} [site {} {}] {} for {}: {}", n, static_cast<int>(site), to_string(site),
               to_string(failure.cause), sha1, failure.detail);
  failure.error = -EIO;
  return failure;
}

int fetch_errno(Counters& counters, const Status& result, EioSite site, std::string_view sha1) {
  return result.ok() ? 0 : read_failure(counters, result, site, sha1).error;
}

Failure report_eio(Counters& counters, EioSite site, std::string_view sha1, std::string_view why) {
  log_checksum_eio(counters.count_eio(site), site, sha1, why);
  return fail(Cause::kBadBytes, std::string(why));
}

void log_checksum_eio(std::uint64_t n, EioSite site, std::string_view sha1, std::string_view why) {
  spdlog::error("EIO #{} [site {} {}] sha1 mismatch for {}: {}", n, static_cast<int>(site),
                to_string(site), sha1, why);
}

}  // namespace kacheryfs
