#pragma once

#include <memory>
#include <optional>
#include <string>

#include "base/diagnostics.h"
#include "config/source_tree.h"
#include "model/estate.h"

namespace phoenix::config {

inline constexpr const char* kHypervisorFile = "phoenix_hypervisor_config.json";
inline constexpr const char* kLxcFile = "phoenix_lxc_configs.json";
inline constexpr const char* kVmFile = "phoenix_vm_configs.json";
inline constexpr const char* kDefaultConfigDir = "/usr/local/phoenix_hypervisor/etc";

struct LoadOptions {
  std::string config_dir;                 // holds the three JSON files
  std::optional<std::string> stacks_dir;  // default: stacks/ beside config_dir
  std::optional<std::string> bin_dir;     // default: bin/ beside config_dir
};

struct LoadResult {
  std::unique_ptr<model::Estate> estate;  // always set, possibly partial when diags has errors
  base::Diagnostics diags;
};

// Reads every configuration file of the estate. Syntax errors, wrong types, out-of-range values
// and unknown keys are reported in `diags`; loading carries on past them so that one run shows
// every problem. Semantic checks across values are validate/'s job.
LoadResult load_estate(const LoadOptions& options, SourceTree& tree);

// The directories an estate uses, with defaults filled in.
model::EstatePaths resolve_paths(const LoadOptions& options);

}  // namespace phoenix::config
