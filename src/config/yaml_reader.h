#pragma once

#include <cstdint>
#include <string_view>

#include "base/error.h"
#include "base/node.h"

namespace phoenix::config {

// Parses one YAML document into a Node tree with locations. Scalars are typed by the YAML 1.2
// core schema (quoted scalars are always strings), merge keys (`<<`) are expanded, and aliases
// are expanded with a bound on the total size so that an alias bomb is an error, not an OOM.
base::Result<base::Node> parse_yaml(std::string_view text, std::uint32_t file);

}  // namespace phoenix::config
