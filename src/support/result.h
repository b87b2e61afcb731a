// The one error type. A Result<T> is a value or a Failure; a Failure carries the negative
// errno its caller would answer with (a FUSE reply, a tool's exit), the cause (what went
// wrong, for the code that decides what to do next: retry, fail over, give up) and a
// one-line detail for the log. Functions with nothing to return give Status (Result<Done>),
// which is ok when default-constructed. Calls that hand back a file descriptor or -errno,
// as the system calls they wrap do, and the FUSE operations, whose answer is an errno,
// keep returning int.
#pragma once

#include <cerrno>
#include <concepts>
#include <string>
#include <utility>
#include <variant>

namespace kacheryfs {

enum class Cause {
  kOk,
  kErrno,          // a local call failed: the errno says what
  kNotFound,       // the source does not have this blob
  kUnreachable,    // could not connect
  kTimeout,        // connect, first-byte or idle timeout
  kCancelled,      // the CancelToken fired
  kAuthRejected,   // 403 even with a freshly read auth code
  kServerError,    // 5xx (other than not-found) after retries
  kProtocolError,  // an answer that cannot be made sense of
  kLocalError,     // the cache refused the bytes (e.g. disk full)
  kBadBytes,       // bytes that do not hash to their name: nothing of them is served
};

const char* to_string(Cause cause);
// The errno a cause gives when its caller names none (kNotFound: -ENOENT, kCancelled:
// -EINTR, kUnreachable: -EHOSTUNREACH, kTimeout: -ETIMEDOUT, kAuthRejected: -EACCES,
// kProtocolError: -EPROTO, else -EIO).
int errno_of(Cause cause);

struct Failure {
  int error = -EIO;    // a negative errno
  std::string detail;  // one line for the log; may be empty
  Cause cause = Cause::kErrno;
};

inline Failure fail(int error, std::string detail = {}) {
  return {error, std::move(detail), Cause::kErrno};
}
inline Failure fail(Cause cause, std::string detail = {}) {
  return {errno_of(cause), std::move(detail), cause};
}
// A failure with both: e.g. kLocalError with the errno of the write that failed.
inline Failure fail(Cause cause, int error, std::string detail) {
  return {error, std::move(detail), cause};
}

struct Done {};

template <class T>
class [[nodiscard]] Result {
 public:
  Result() requires std::same_as<T, Done> : state_(Done{}) {}
  Result(T value) : state_(std::move(value)) {}            // NOLINT: implicit by design
  Result(Failure failure) : state_(std::move(failure)) {}  // NOLINT
  Result(Cause cause, std::string detail) : state_(fail(cause, std::move(detail))) {}

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }
  // 0 on success, else the negative errno.
  int error() const { return ok() ? 0 : std::get<1>(state_).error; }
  Cause cause() const { return ok() ? Cause::kOk : std::get<1>(state_).cause; }
  const std::string& detail() const {
    static const std::string none;
    return ok() ? none : std::get<1>(state_).detail;
  }
  const Failure& failure() const { return std::get<1>(state_); }
  Failure& failure() { return std::get<1>(state_); }

  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Failure> state_;
};

using Status = Result<Done>;
inline Status ok_status() { return Done{}; }

}  // namespace kacheryfs
