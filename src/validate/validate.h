#pragma once

#include "base/diagnostics.h"
#include "model/estate.h"

namespace phoenix::validate {

// Every check across values of a loaded estate: uniqueness, networks, references, GPUs, compose
// rules, Traefik labels and rules, names, firewall rules and vLLM settings. Pure: reads the
// estate only. Appends to `diags` and keeps going after each problem.
void validate_estate(const model::Estate& estate, base::Diagnostics& diags);

}  // namespace phoenix::validate
