// phoenix status [ids]: each guest of the estate against the Proxmox inventory, from one
// GET /cluster/resources.

#include <iostream>
#include <map>
#include <set>

#include "base/strings.h"
#include "cli/commands.h"
#include "cli/engines.h"

namespace phoenix::cli {
namespace {

using nlohmann::json;

}  // namespace

int run_status(const GlobalOptions& g, const StatusOptions& o) {
  LoadedEstate loaded = load_and_validate(g);
  if (loaded.diags.has_errors()) return report_invalid(g, loaded);
  const model::Estate& e = *loaded.estate;
  auto ids = parse_guest_ids(e, o.ids);
  if (!ids) {
    print_error(g, ids.error().message());
    return kExitInvalid;
  }
  std::set<model::GuestId> only(ids->begin(), ids->end());
  auto pve = open_proxmox(e);
  if (!pve) {
    print_error(g, pve.error().describe());
    return kExitInvalid;
  }
  auto seen = read_inventory(**pve);
  if (!seen) {
    print_error(g, "reading the Proxmox inventory: " + remote_error(seen.error()));
    return provider_exit(seen.error());
  }
  json rows = json::array();
  bool drift = false;
  for (const model::Guest& guest : e.guests) {
    if (!only.empty() && !only.contains(guest.id)) continue;
    std::string kind = guest.is_lxc() ? "lxc" : "qemu";
    bool is_template = guest.is_template.present && guest.is_template.value;
    std::string want = is_template ? "template" : "running";
    std::string have = "missing";
    std::string node;
    if (auto it = seen->find(guest.id); it != seen->end()) {
      const json& r = it->second;
      node = r.value("node", "");
      if (r.value("type", "") != kind) {
        have = "a " + r.value("type", std::string("?")) + " guest";
      } else if (r.value("template", 0) == 1) {
        have = "template";
      } else {
        have = r.value("status", "unknown");
      }
    }
    bool ok = have == want;
    drift |= !ok;
    rows.push_back({{"id", guest.id},
                    {"name", guest.name.value},
                    {"kind", kind},
                    {"node", node},
                    {"desired", want},
                    {"observed", have},
                    {"ok", ok}});
  }
  if (g.output == OutputFormat::kJson) {
    print_json({{"proxmox", (*pve)->describe()}, {"guests", rows}, {"converged", !drift}});
  } else {
    std::cout << "guests on " << (*pve)->describe() << " (node " << proxmox_node(e) << ")\n";
    for (const json& r : rows) {
      std::cout << "  " << (r["ok"].get<bool>() ? "  " : "! ") << r["kind"].get<std::string>()
                << " " << r["id"].get<model::GuestId>() << " (" << r["name"].get<std::string>()
                << "): " << r["observed"].get<std::string>();
      if (!r["ok"].get<bool>()) std::cout << ", want " << r["desired"].get<std::string>();
      if (!r["node"].get<std::string>().empty()) {
        std::cout << " on " << r["node"].get<std::string>();
      }
      std::cout << '\n';
    }
    std::cout << (drift ? "not converged\n" : "converged\n");
  }
  return drift ? kExitPartial : kExitOk;
}

}  // namespace phoenix::cli
