#pragma once

#include <string>

#include "base/node.h"

namespace phoenix::render {

// Block-style YAML with two-space indents. Keys are emitted in sorted order so that the output
// does not depend on how the tree was built. Strings are quoted whenever a plain scalar would
// read back as something else (a number, a boolean, null, or YAML syntax).
std::string emit_yaml(const base::Node& node);

// Whether `text` can be written as a plain YAML scalar and still read back as that string.
bool is_plain_safe(std::string_view text);

}  // namespace phoenix::render
