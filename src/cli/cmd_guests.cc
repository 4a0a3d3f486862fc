// phoenix delete | start | stop | restart <id...>, and phoenix sync firewall: one guest at a
// time, in dependency order (reversed for stop and delete), through the Proxmox provider.

#include <algorithm>
#include <iostream>
#include <set>

#include "cli/commands.h"
#include "cli/engines.h"

namespace phoenix::cli {
namespace {

using nlohmann::json;

// The guests a power command acts on, in the order to act: the named ones, with --with-deps also
// what they depend on (start) or, transitively, what depends on them (stop); dependencies first
// when starting, dependents first when stopping.
std::vector<const model::Guest*> power_order(const model::Estate& e,
                                             const std::vector<model::GuestId>& ids, bool with_deps,
                                             bool stopping) {
  std::set<model::GuestId> wanted(ids.begin(), ids.end());
  if (with_deps && !stopping) {
    for (const model::Guest* g : provision::creation_order(e, ids)) wanted.insert(g->id);
  }
  for (bool grew = with_deps && stopping; grew;) {
    grew = false;
    for (model::GuestId id : std::vector<model::GuestId>(wanted.begin(), wanted.end())) {
      for (const model::Guest* d : provision::dependents(e, id)) {
        grew |= wanted.insert(d->id).second;
      }
    }
  }
  std::vector<const model::Guest*> out =
      provision::creation_order(e, std::vector<model::GuestId>(wanted.begin(), wanted.end()));
  std::erase_if(out, [&](const model::Guest* g) { return !wanted.contains(g->id); });
  if (stopping) std::reverse(out.begin(), out.end());
  return out;
}

int finish(const GlobalOptions& g, const GuestSession& s, const std::string& command,
           const std::vector<provision::Step>& steps, const json& failed) {
  if (g.output == OutputFormat::kJson) {
    print_json({{"command", command},
                {"dry_run", g.dry_run},
                {"steps", steps_json(steps)},
                {"failed", failed},
                {"ok", failed.empty()},
                {"requests", requests_json({s.pve.get()})}});
  } else {
    if (steps.empty()) {
      std::cout << command << ": nothing to do\n";
    } else {
      std::cout << command << ": " << (g.dry_run ? "would take " : "took ") << steps.size()
                << (steps.size() == 1 ? " step\n" : " steps\n");
      print_steps(s.estate(), steps);
    }
    for (const json& f : failed) print_error(g, f["error"].get<std::string>());
  }
  return failed.empty() ? kExitOk : kExitPartial;
}

provision::Target target(const GlobalOptions& g, const model::Estate& e) {
  provision::Target t;
  t.node = proxmox_node(e);
  t.options.dry_run = g.dry_run;
  t.progress = [&g](const std::string& line) {
    if (g.output == OutputFormat::kText) std::cerr << "  " << line << '\n';
  };
  return t;
}

}  // namespace

int run_power(const GlobalOptions& g, const PowerOptions& o) {
  auto opened = open_guest_session(g, o.ids);
  if (auto* code = std::get_if<int>(&opened)) return *code;
  GuestSession& s = std::get<GuestSession>(opened);
  const model::Estate& e = s.estate();
  provision::Provisioner p(*s.pve, target(g, e));
  std::vector<provision::Step> steps;
  json failed = json::array();
  auto each = [&](bool stopping, auto&& fn) {
    for (const model::Guest* guest : power_order(e, s.ids, o.with_deps, stopping)) {
      auto it = s.inventory.find(guest->id);
      if (it == s.inventory.end()) {
        failed.push_back({{"guest", guest->id},
                          {"error", guest->label() +
                                        " does not exist on Proxmox; create it "
                                        "first (phoenix create " +
                                        std::to_string(guest->id) + ")"}});
        continue;
      }
      if (it->second.value("template", 0) == 1) continue;  // templates never run
      auto r = fn(*guest, it->second);
      if (!r) failed.push_back({{"guest", guest->id}, {"error", remote_error(r.error())}});
    }
  };
  if (o.action == "stop" || o.action == "restart") {
    each(true,
         [&](const model::Guest& guest, const json& seen) { return p.stop(guest, seen, steps); });
  }
  if (o.action == "restart" && failed.empty() && !g.dry_run) {
    auto again = provision::read_inventory(*s.pve);
    if (!again) {
      print_error(g, "reading the Proxmox inventory: " + remote_error(again.error()));
      return provider_exit(again.error());
    }
    s.inventory = std::move(*again);
  }
  if (o.action == "start" || (o.action == "restart" && failed.empty())) {
    each(false, [&](const model::Guest& guest, json seen) {
      if (o.action == "restart" && g.dry_run) seen["status"] = "stopped";
      return p.start(guest, seen, steps);
    });
  }
  return finish(g, s, o.action, steps, failed);
}

int run_delete(const GlobalOptions& g, const DeleteOptions& o) {
  auto opened = open_guest_session(g, o.ids);
  if (auto* code = std::get_if<int>(&opened)) return *code;
  GuestSession& s = std::get<GuestSession>(opened);
  const model::Estate& e = s.estate();
  std::set<model::GuestId> named(s.ids.begin(), s.ids.end());
  // A guest others depend on goes only with them, or when told.
  if (!o.force) {
    for (model::GuestId id : s.ids) {
      for (const model::Guest* d : provision::dependents(e, id)) {
        if (named.contains(d->id) || !s.inventory.contains(d->id)) continue;
        print_error(g, e.guest(id)->label() + " is needed by " + d->label() +
                           ", which exists on Proxmox; delete both, or pass --force");
        return kExitInvalid;
      }
    }
  }
  provision::Provisioner p(*s.pve, target(g, e));
  std::vector<provision::Step> steps;
  json failed = json::array();
  std::vector<const model::Guest*> order = provision::creation_order(e, s.ids);
  std::reverse(order.begin(), order.end());
  for (const model::Guest* guest : order) {
    if (!named.contains(guest->id)) continue;
    auto it = s.inventory.find(guest->id);
    if (it == s.inventory.end()) continue;  // gone already
    if (it->second.value("type", "") != (guest->is_lxc() ? "lxc" : "qemu")) {
      failed.push_back({{"guest", guest->id},
                        {"error", guest->label() + ": id " + std::to_string(guest->id) +
                                      " is another kind of guest on Proxmox; not deleted"}});
      continue;
    }
    auto r = p.destroy(*guest, it->second, o.purge, steps);
    if (!r) failed.push_back({{"guest", guest->id}, {"error", remote_error(r.error())}});
  }
  return finish(g, s, "delete", steps, failed);
}

int run_sync_firewall(const GlobalOptions& g) {
  auto opened = open_guest_session(g, {});
  if (auto* code = std::get_if<int>(&opened)) return *code;
  GuestSession& s = std::get<GuestSession>(opened);
  const model::Estate& e = s.estate();
  compile::Desired desired = compile::compile_estate(e);
  provision::Provisioner p(*s.pve, target(g, e));
  std::vector<provision::Step> steps;
  json failed = json::array();
  for (const compile::FirewallRuleset& f : desired.firewalls) {
    base::Result<void> r;
    if (!f.guest) {
      r = p.converge_cluster_firewall(f, steps);
    } else if (!s.inventory.contains(*f.guest)) {
      continue;  // created with its guest
    } else {
      r = p.converge_firewall_of(*e.guest(*f.guest), f, steps);
    }
    if (!r) {
      failed.push_back({{"guest", f.guest ? json(*f.guest) : json(nullptr)},
                        {"error", remote_error(r.error())}});
    }
  }
  return finish(g, s, "sync firewall", steps, failed);
}

}  // namespace phoenix::cli
