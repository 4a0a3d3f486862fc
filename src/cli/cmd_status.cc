// phoenix status [ids]: each guest of the estate against Proxmox: its state (one
// GET /cluster/resources), its health (a VM's guest agent), and how its config drifted from the
// estate (its GET .../config, unless --no-config).

#include <iostream>
#include <set>

#include "base/strings.h"
#include "cli/commands.h"
#include "cli/engines.h"

namespace phoenix::cli {

int run_status(const GlobalOptions& g, const StatusOptions& o) {
  auto opened = open_guest_session(g, o.ids);
  if (auto* code = std::get_if<int>(&opened)) return *code;
  GuestSession& s = std::get<GuestSession>(opened);
  const model::Estate& e = s.estate();
  std::set<model::GuestId> only(s.ids.begin(), s.ids.end());
  auto vm = vm_context(e, !o.no_config);
  if (!vm) vm = vm_context(e, false);  // without the key, sshkeys are not compared
  provision::Target t;
  t.node = proxmox_node(e);
  t.vm = *vm;
  provision::Provisioner p(*s.pve, std::move(t));

  nlohmann::json rows = nlohmann::json::array();
  bool converged = true;
  int exit = kExitOk;
  for (const model::Guest& guest : e.guests) {
    if (!only.empty() && !only.contains(guest.id)) continue;
    std::string kind = guest.is_lxc() ? "lxc" : "qemu";
    bool is_template = guest.is_template.present && guest.is_template.value;
    std::string want = is_template ? "template" : "running";
    std::string have = "missing", node, health;
    std::vector<std::string> drift;
    std::string error;
    if (auto it = s.inventory.find(guest.id); it != s.inventory.end()) {
      const nlohmann::json& r = it->second;
      node = r.value("node", "");
      if (r.value("type", "") != kind) {
        have = "a " + r.value("type", std::string("?")) + " guest";
      } else {
        have = r.value("template", 0) == 1 ? "template" : r.value("status", "unknown");
        health = p.health(guest, r);
        if (!o.no_config) {
          auto d = p.drift(guest);
          if (d) {
            drift = *d;
          } else {
            error = remote_error(d.error());
            exit = provider_exit(d.error());
          }
        }
      }
    }
    bool healthy = have != "running" || health != "agent not answering";
    bool ok = have == want && drift.empty() && healthy && error.empty();
    converged = converged && ok;
    nlohmann::json row = {{"id", guest.id},   {"name", guest.name.value}, {"kind", kind},
                          {"node", node},     {"desired", want},          {"observed", have},
                          {"health", health}, {"drift", drift},           {"ok", ok}};
    if (!error.empty()) row["error"] = error;
    rows.push_back(std::move(row));
  }
  if (g.output == OutputFormat::kJson) {
    print_json({{"proxmox", s.pve->describe()},
                {"guests", rows},
                {"converged", converged},
                {"requests", requests_json({s.pve.get()})}});
  } else {
    std::cout << "guests on " << s.pve->describe() << " (node " << proxmox_node(e) << ")\n";
    for (const nlohmann::json& r : rows) {
      std::cout << "  " << (r["ok"].get<bool>() ? "  " : "! ") << r["kind"].get<std::string>()
                << " " << r["id"].get<model::GuestId>() << " (" << r["name"].get<std::string>()
                << "): " << r["observed"].get<std::string>();
      if (r["observed"] != r["desired"]) std::cout << ", want " << r["desired"].get<std::string>();
      std::string h = r["health"].get<std::string>();
      if (!h.empty() && h != r["observed"].get<std::string>()) std::cout << ", " << h;
      if (!r["node"].get<std::string>().empty()) {
        std::cout << " on " << r["node"].get<std::string>();
      }
      std::cout << '\n';
      for (const auto& d : r["drift"]) std::cout << "      drift: " << d.get<std::string>() << '\n';
      if (r.contains("error"))
        std::cout << "      error: " << r["error"].get<std::string>() << '\n';
    }
    std::cout << (converged ? "converged\n" : "not converged\n");
  }
  if (exit != kExitOk) return exit;
  return converged ? kExitOk : kExitPartial;
}

}  // namespace phoenix::cli
