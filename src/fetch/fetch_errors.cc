#include "fetch/fetch_errors.h"

#include <spdlog/spdlog.h>

#include <cerrno>

namespace kacheryfs {

int fetch_errno(Counters& counters, const Status& result, EioSite site, std::string_view sha1) {
  switch (result.cause()) {
    case Cause::kOk:
      return 0;
    case Cause::kNotFound:
    case Cause::kCancelled:
      return result.error();
    default:
      break;
  }
  std::uint64_t n = counters.count_eio(site);
  spdlog::warn("EIO #{} [site {} {}] {} for {}: {}", n, static_cast<int>(site), to_string(site),
               to_string(result.cause()), sha1, result.detail());
  return -EIO;
}

int report_eio(Counters& counters, EioSite site, std::string_view sha1, std::string_view why) {
  log_checksum_eio(counters.count_eio(site), site, sha1, why);
  return -EIO;
}

void log_checksum_eio(std::uint64_t n, EioSite site, std::string_view sha1, std::string_view why) {
  spdlog::error("EIO #{} [site {} {}] sha1 mismatch for {}: {}", n, static_cast<int>(site),
                to_string(site), sha1, why);
}

}  // namespace kacheryfs
