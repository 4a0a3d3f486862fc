#include <iostream>

#include "cli/commands.h"

namespace phoenix::cli {

int run_validate(const GlobalOptions& g) {
  const LoadedEstate& loaded = keep_until_exit(load_and_validate(g));
  bool ok = !loaded.diags.has_errors();
  if (g.output == OutputFormat::kJson) {
    nlohmann::json doc = diagnostics_json(loaded);
    doc["ok"] = ok;
    print_json(doc);
  } else {
    print_diagnostics(loaded, g);
    if (ok) {
      std::size_t lxcs = 0, vms = 0;
      for (const auto& guest : loaded.estate->guests) (guest.is_lxc() ? lxcs : vms)++;
      std::cout << "Estate " << g.config_dir << " is valid: " << lxcs << " LXC"
                << (lxcs == 1 ? "" : "s") << ", " << vms << " VM" << (vms == 1 ? "" : "s") << ", "
                << loaded.estate->stacks.size() << " stack"
                << (loaded.estate->stacks.size() == 1 ? "" : "s") << ".\n";
    }
  }
  return ok ? kExitOk : kExitInvalid;
}

}  // namespace phoenix::cli
