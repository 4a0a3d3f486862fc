// phoenix create <id...>: each guest and what it depends on, brought to the estate in dependency
// order (provision/provision.h says how), up to -j guests at a time, then set up inside
// (cli/guest_setup.h: features, application script, health checks) unless --no-setup. A guest
// is done only when its health checks pass. Idempotent: a converged guest costs reads only.

#include <iostream>
#include <mutex>

#include "cli/commands.h"
#include "cli/engines.h"

namespace phoenix::cli {

int run_create(const GlobalOptions& g, const CreateOptions& o) {
  auto opened = open_guest_session(g, o.ids);
  if (auto* code = std::get_if<int>(&opened)) return *code;
  GuestSession& s = std::get<GuestSession>(opened);
  const model::Estate& e = s.estate();
  std::vector<const model::Guest*> order = provision::creation_order(e, s.ids);

  bool vms =
      std::any_of(order.begin(), order.end(), [](const model::Guest* x) { return x->is_vm(); });
  auto vm = vm_context(e, vms);
  if (!vm) {
    print_error(g, vm.error().message());
    return kExitInvalid;
  }
  compile::Desired desired = compile::compile_estate(e);
  std::map<model::GuestId, const compile::FirewallRuleset*> firewalls;
  for (const compile::FirewallRuleset& f : desired.firewalls) {
    if (f.guest) firewalls[*f.guest] = &f;
  }

  // One API client per parallel job: a client is not shared between threads.
  int jobs = std::max(1, std::min<int>(g.jobs, static_cast<int>(order.size())));
  std::vector<std::unique_ptr<proxmox::Pve>> clients;
  clients.push_back(std::move(s.pve));
  for (int i = 1; i < jobs; ++i) {
    auto pve = open_proxmox(e);
    if (!pve) {
      print_error(g, pve.error().describe());
      return kExitInvalid;
    }
    clients.push_back(std::move(*pve));
  }
  std::vector<proxmox::Pve*> free_clients;
  for (auto& c : clients) free_clients.push_back(c.get());

  // The setup inside each guest, prepared before anything changes: its recipe errors are the
  // estate's. A dry run lists the Proxmox side only (a guest that does not exist yet cannot
  // be looked into).
  std::unique_ptr<GuestSetup> setup;
  if (!o.no_setup && !g.dry_run) {
    std::vector<model::GuestId> setup_ids;
    for (const model::Guest* guest : order) setup_ids.push_back(guest->id);
    auto prepared = GuestSetup::prepare(g, s.loaded, setup_ids, o.setup);
    if (auto* code = std::get_if<int>(&prepared)) return *code;
    setup = std::move(std::get<0>(prepared));
  }

  auto host = open_host(e);
  provision::SourceLocks clone_locks;
  std::mutex mu;  // free_clients, steps, the progress lines
  std::vector<provision::Step> steps;
  auto progress = [&](const std::string& line) {
    if (g.output != OutputFormat::kText) return;
    std::lock_guard lock(mu);
    std::cerr << "  " << line << '\n';
  };

  auto results = provision::run_in_order(order, jobs, [&](const model::Guest& guest) {
    proxmox::Pve* pve = nullptr;
    {
      std::lock_guard lock(mu);
      pve = free_clients.back();
      free_clients.pop_back();
    }
    provision::Target t;
    t.node = proxmox_node(e);
    t.vm = *vm;
    t.host = host.get();
    t.clone_locks = &clone_locks;
    t.options.dry_run = g.dry_run;
    t.progress = progress;
    provision::Provisioner p(*pve, std::move(t));
    auto it = s.inventory.find(guest.id);
    auto fw = firewalls.find(guest.id);
    std::vector<provision::Step> mine;
    auto r = p.converge(guest, it == s.inventory.end() ? nullptr : &it->second,
                        fw == firewalls.end() ? nullptr : fw->second, mine);
    {
      std::lock_guard lock(mu);
      steps.insert(steps.end(), mine.begin(), mine.end());
      free_clients.push_back(pve);
    }
    if (!r || !setup) return r;
    return setup->run(guest);
  });

  nlohmann::json failed = nlohmann::json::array();
  for (const model::Guest* guest : order) {
    const auto& r = results.at(guest->id);
    if (!r) {
      failed.push_back({{"guest", guest->id}, {"error", remote_error(r.error())}});
    }
  }
  std::vector<const proxmox::Pve*> counted;
  for (auto& c : clients) counted.push_back(c.get());

  if (g.output == OutputFormat::kJson) {
    nlohmann::json inside = nlohmann::json::object();
    if (setup) {
      for (const model::Guest* guest : order) {
        inside[std::to_string(guest->id)] = setup->actions_json(guest->id);
      }
    }
    print_json({{"dry_run", g.dry_run},
                {"jobs", jobs},
                {"guests", order.size()},
                {"steps", steps_json(steps)},
                {"setup", inside},
                {"failed", failed},
                {"ok", failed.empty()},
                {"requests", requests_json(counted)}});
  } else {
    if (steps.empty()) {
      std::cout << "create: nothing to do; " << order.size()
                << (order.size() == 1 ? " guest is" : " guests are") << " as the estate says\n";
    } else {
      std::cout << "create: " << (g.dry_run ? "would take " : "took ") << steps.size()
                << (steps.size() == 1 ? " step\n" : " steps\n");
      print_steps(e, steps);
    }
    if (setup) {
      std::cout << "inside the guests:\n";
      for (const model::Guest* guest : order) {
        if (!guest->is_template.value) setup->print(*guest, results.at(guest->id));
      }
    }
    for (const auto& f : failed) {
      print_error(g, e.guest(f["guest"].get<model::GuestId>())->label() + ": " +
                         f["error"].get<std::string>());
    }
  }
  return failed.empty() ? kExitOk : kExitPartial;
}

}  // namespace phoenix::cli
