#include "support/result.h"

namespace kacheryfs {

const char* to_string(Cause cause) {
  switch (cause) {
    case Cause::kOk:
      return "ok";
    case Cause::kErrno:
      return "error";
    case Cause::kNotFound:
      return "not found";
    case Cause::kUnreachable:
      return "daemon unreachable";
    case Cause::kTimeout:
      return "timeout";
    case Cause::kCancelled:
      return "cancelled";
    case Cause::kAuthRejected:
      return "auth code rejected";
    case Cause::kServerError:
      return "server error";
    case Cause::kProtocolError:
      return "protocol error";
    case Cause::kLocalError:
      return "local cache write failed";
    case Cause::kBadBytes:
      return "checksum mismatch";
  }
  return "unknown";
}

int errno_of(Cause cause) {
  switch (cause) {
    case Cause::kOk:
      return 0;
    case Cause::kNotFound:
      return -ENOENT;
    case Cause::kCancelled:
      return -EINTR;
    case Cause::kUnreachable:
      return -EHOSTUNREACH;
    case Cause::kTimeout:
      return -ETIMEDOUT;
    case Cause::kAuthRejected:
      return -EACCES;
    case Cause::kProtocolError:
      return -EPROTO;
    case Cause::kErrno:
    case Cause::kServerError:
    case Cause::kLocalError:
    case Cause::kBadBytes:
      return -EIO;
  }
  return -EIO;
}

}  // namespace kacheryfs
