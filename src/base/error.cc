#include "base/error.h"

namespace phoenix::base {

std::string_view to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidInput:
      return "invalid input";
    case ErrorKind::kNotFound:
      return "not found";
    case ErrorKind::kConflict:
      return "conflict";
    case ErrorKind::kTimeout:
      return "timeout";
    case ErrorKind::kTransient:
      return "transient";
    case ErrorKind::kPermission:
      return "permission denied";
    case ErrorKind::kInternal:
      return "internal error";
  }
  return "unknown";
}

std::string Error::describe() const {
  std::string out;
  for (auto it = context_.rbegin(); it != context_.rend(); ++it) {
    out += *it;
    out += ": ";
  }
  out += message_;
  return out;
}

}  // namespace phoenix::base
