#pragma once

#include <string>

#include "base/node.h"

namespace phoenix::base {

// Types a plain (unquoted) YAML scalar by the YAML 1.2 core schema: null, booleans, integers
// (decimal, 0x, 0o), floats, .inf and .nan; anything else is a string.
Node resolve_plain_scalar(const std::string& text, SourceLoc loc);

}  // namespace phoenix::base
