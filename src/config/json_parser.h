#pragma once

#include <cstdint>
#include <string_view>

#include "base/diagnostics.h"
#include "base/error.h"
#include "base/node.h"

namespace phoenix::config {

// Parses strict JSON (RFC 8259) into a Node tree whose values carry file `file`'s line and
// column. Syntax errors come back as an Error with the location of the offending character.
// Duplicate keys are reported to `diags` as warnings; the last value wins, as in most parsers.
base::Result<base::Node> parse_json(std::string_view text, std::uint32_t file,
                                    base::Diagnostics& diags);

}  // namespace phoenix::config
