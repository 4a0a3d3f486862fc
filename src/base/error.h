#pragma once

#include <expected>
#include <string>
#include <utility>
#include <vector>

#include "base/source.h"

namespace phoenix::base {

// What went wrong, in the terms a caller needs to decide what to do next.
enum class ErrorKind {
  kInvalidInput,  // the user's input is wrong; retrying will not help
  kNotFound,
  kConflict,
  kTimeout,
  kTransient,  // a retry may succeed
  kPermission,
  kInternal,
};

std::string_view to_string(ErrorKind kind);

class Error {
 public:
  Error(ErrorKind kind, std::string message, SourceLoc loc = {})
      : kind_(kind), message_(std::move(message)), loc_(loc) {}

  ErrorKind kind() const { return kind_; }
  const std::string& message() const { return message_; }
  SourceLoc loc() const { return loc_; }
  const std::vector<std::string>& context() const { return context_; }

  // Whether repeating the failed operation unchanged can succeed.
  bool retryable() const { return kind_ == ErrorKind::kTransient || kind_ == ErrorKind::kTimeout; }

  // Adds what the caller was doing, outermost last: "loading estate: reading x.json: ...".
  Error&& with_context(std::string what) && {
    context_.push_back(std::move(what));
    return std::move(*this);
  }

  // "outer: inner: message".
  std::string describe() const;

 private:
  ErrorKind kind_;
  std::string message_;
  SourceLoc loc_;
  std::vector<std::string> context_;
};

template <class T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(ErrorKind kind, std::string message, SourceLoc loc = {}) {
  return std::unexpected(Error(kind, std::move(message), loc));
}

namespace detail {
template <class T>
T unwrap(Result<T>&& r) {
  return std::move(*r);
}
inline void unwrap(Result<void>&&) {}
}  // namespace detail

}  // namespace phoenix::base

// Evaluates an expression yielding Result<T>; on error returns it from the enclosing function,
// otherwise yields the value. Uses a GNU statement expression, as ccache's TRY does.
#define PHX_TRY(expr)                                             \
  ({                                                              \
    auto phx_try_result_ = (expr);                                \
    if (!phx_try_result_) {                                       \
      return std::unexpected(std::move(phx_try_result_).error()); \
    }                                                             \
    ::phoenix::base::detail::unwrap(std::move(phx_try_result_));  \
  })
