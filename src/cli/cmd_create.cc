// phoenix create <id...>: each guest and what it depends on, in dependency order, from its
// template (or clone source), then started and waited on. Idempotent: a guest that exists is
// not created again, one that runs is not started again.

#include <functional>
#include <iostream>
#include <map>
#include <set>

#include "base/strings.h"
#include "cli/commands.h"
#include "cli/engines.h"
#include "pveconf/lxc.h"

namespace phoenix::cli {
namespace {

using nlohmann::json;
using proxmox::Method;

constexpr std::chrono::minutes kTaskDeadline{10};

// The guests `ids` need, dependencies (and clone sources) first. Validation has ruled out
// cycles and dangling references.
std::vector<const model::Guest*> creation_order(const model::Estate& e,
                                                const std::vector<model::GuestId>& ids) {
  std::vector<const model::Guest*> out;
  std::set<model::GuestId> done;
  std::function<void(model::GuestId)> visit = [&](model::GuestId id) {
    if (!done.insert(id).second) return;
    const model::Guest* g = e.guest(id);
    if (!g) return;
    if (g->clone_from) visit(g->clone_from->id);
    for (const model::GuestRef& d : g->dependencies) visit(d.id);
    out.push_back(g);
  };
  for (model::GuestId id : ids) visit(id);
  return out;
}

}  // namespace

int run_create(const GlobalOptions& g, const CreateOptions& o) {
  LoadedEstate loaded = load_and_validate(g);
  if (loaded.diags.has_errors()) return report_invalid(g, loaded);
  const model::Estate& e = *loaded.estate;
  auto ids = parse_guest_ids(e, o.ids);
  if (!ids) {
    print_error(g, ids.error().message());
    return kExitInvalid;
  }
  std::vector<const model::Guest*> order = creation_order(e, *ids);
  for (const model::Guest* guest : order) {
    if (guest->is_vm()) {
      print_error(g, guest->label() +
                         " is a VM: this version of Phoenix creates LXCs only "
                         "(VM provisioning is the next step of the Proxmox work)");
      return kExitInvalid;
    }
  }
  auto pve = open_proxmox(e);
  if (!pve) {
    print_error(g, pve.error().describe());
    return kExitInvalid;
  }
  std::string node = proxmox_node(e);
  auto progress = [&](const std::string& line) {
    if (g.output == OutputFormat::kText) std::cerr << "  " << line << '\n';
  };

  auto inventory = read_inventory(**pve);
  if (!inventory) {
    print_error(g, "reading the Proxmox inventory: " + remote_error(inventory.error()));
    return provider_exit(inventory.error());
  }
  const std::map<model::GuestId, json>& seen = *inventory;
  json actions = json::array();
  std::string failure;
  for (const model::Guest* guest : order) {
    std::string base = "/nodes/" + node + "/lxc/" + std::to_string(guest->id);
    auto act = [&](const std::string& what, Method method, const std::string& path,
                   const proxmox::Params& params) -> bool {
      actions.push_back({{"guest", guest->id}, {"action", what}});
      if (g.dry_run) return true;
      progress(what + " " + guest->label());
      auto r = (*pve)->run_task(method, path, params, kTaskDeadline);
      if (!r) {
        failure = what + " " + guest->label() + ": " + remote_error(r.error());
        return false;
      }
      return true;
    };
    auto it = seen.find(guest->id);
    bool exists = it != seen.end();
    if (exists && it->second.value("type", "") != "lxc") {
      failure = guest->label() + ": id " + std::to_string(guest->id) + " is taken by a " +
                it->second.value("type", std::string("?")) +
                " guest on Proxmox; Phoenix does not touch it";
      break;
    }
    bool is_template = guest->is_template.present && guest->is_template.value;
    if (!exists) {
      bool ok;
      if (guest->clone_from) {
        ok = act(
            "clone", Method::kPost,
            "/nodes/" + node + "/lxc/" + std::to_string(guest->clone_from->id) + "/clone",
            {{"newid", std::to_string(guest->id)}, {"hostname", guest->name.value}, {"full", "1"}});
        // The clone takes the source's settings; the estate's own come on top.
        if (ok && !g.dry_run) {
          auto r = (*pve)->call(Method::kPut, base + "/config", pveconf::lxc_config(*guest));
          if (!r) {
            failure = "configure " + guest->label() + ": " + remote_error(r.error());
            ok = false;
          }
        }
      } else {
        ok = act("create", Method::kPost, "/nodes/" + node + "/lxc",
                 pveconf::lxc_create_params(*guest));
      }
      if (!ok) break;
    }
    bool running = exists && it->second.value("status", "") == "running";
    bool templated = exists && it->second.value("template", 0) == 1;
    if (is_template) {
      if (!templated && !act("convert to template", Method::kPost, base + "/template", {})) break;
    } else if (!running && !act("start", Method::kPost, base + "/status/start", {})) {
      break;
    }
  }

  if (g.output == OutputFormat::kJson) {
    json doc = {{"dry_run", g.dry_run}, {"actions", actions}, {"ok", failure.empty()}};
    if (!failure.empty()) doc["error"] = failure;
    doc["requests"] = {{"total", (*pve)->counts().total},
                       {"mutating", (*pve)->counts().mutating},
                       {"retries", (*pve)->counts().retries}};
    print_json(doc);
  } else {
    if (!failure.empty()) {
      print_error(g, failure);
    } else if (actions.empty()) {
      std::cout << "create: nothing to do\n";
    } else {
      std::cout << "create: " << (g.dry_run ? "would take " : "took ") << actions.size()
                << (actions.size() == 1 ? " action\n" : " actions\n");
      for (const json& a : actions) {
        std::cout << "  " << a["action"].get<std::string>() << " "
                  << e.guest(a["guest"].get<model::GuestId>())->label() << '\n';
      }
    }
  }
  return failure.empty() ? kExitOk : kExitPartial;
}

}  // namespace phoenix::cli
