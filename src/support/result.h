// The core's one error convention: a Result<T> is a value or a failure, and a failure is a
// negative errno (what a FUSE reply or a tool's exit needs) plus an optional one-line
// detail for the log. Functions with nothing to return give Status (Result<void>).
// Plain functions that only return "0 or -errno" keep returning int: that is the same
// convention without a value.
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace kacheryfs {

struct Failure {
  int error = -EIO;    // a negative errno
  std::string detail;  // one line for the log; may be empty
};

inline Failure fail(int error, std::string detail = {}) { return {error, std::move(detail)}; }

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}            // NOLINT: implicit by design
  Result(Failure failure) : state_(std::move(failure)) {}  // NOLINT

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }
  // 0 on success, else the negative errno.
  int error() const { return ok() ? 0 : std::get<1>(state_).error; }
  const std::string& detail() const {
    static const std::string none;
    return ok() ? none : std::get<1>(state_).detail;
  }
  const Failure& failure() const { return std::get<1>(state_); }

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

struct Done {};
using Status = Result<Done>;
inline Status ok_status() { return Done{}; }

}  // namespace kacheryfs
