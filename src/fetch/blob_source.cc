#include "fetch/blob_source.h"

namespace kacheryfs {

const char* to_string(FetchStatus status) {
  switch (status) {
    case FetchStatus::kOk:
      return "ok";
    case FetchStatus::kNotFound:
      return "not found";
    case FetchStatus::kUnreachable:
      return "daemon unreachable";
    case FetchStatus::kTimeout:
      return "timeout";
    case FetchStatus::kCancelled:
      return "cancelled";
    case FetchStatus::kAuthRejected:
      return "auth code rejected";
    case FetchStatus::kServerError:
      return "server error";
    case FetchStatus::kProtocolError:
      return "protocol error";
    case FetchStatus::kLocalError:
      return "local cache write failed";
  }
  return "unknown";
}

}  // namespace kacheryfs
