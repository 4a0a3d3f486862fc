// phoenix swarm status | init | join <vmid>

#include <iostream>

#include "cli/commands.h"
#include "cli/engines.h"
#include "compile/desired.h"

namespace phoenix::cli {
namespace {

using nlohmann::json;

int exit_for(const base::Error& e) { return e.retryable() ? kExitUnreachable : kExitPartial; }

json member_json(const swarm::MemberStatus& s) {
  json j = {{"vm", s.label},      {"endpoint", s.endpoint}, {"reachable", s.reachable},
            {"state", s.state},   {"node_id", s.node_id},   {"manager", s.manager},
            {"leader", s.leader}, {"problems", s.problems}, {"api_version", s.api_version}};
  if (!s.error.empty()) j["error"] = s.error;
  return j;
}

std::function<void(const std::string&)> progress(const GlobalOptions& g) {
  if (g.output == OutputFormat::kJson) return {};
  return [](const std::string& line) { std::cerr << "  " << line << '\n'; };
}

int report_actions(const GlobalOptions& g, const std::string& what,
                   const base::Result<swarm::HealReport>& r) {
  if (!r) {
    print_error(g, remote_error(r.error()));
    return exit_for(r.error());
  }
  if (g.output == OutputFormat::kJson) {
    print_json({{"ok", true}, {"dry_run", g.dry_run}, {"actions", r->actions}});
  } else if (r->actions.empty()) {
    std::cout << what << ": nothing to do\n";
  } else {
    std::cout << what << (g.dry_run ? ": would take " : ": took ") << r->actions.size()
              << (r->actions.size() == 1 ? " action\n" : " actions\n");
    for (const std::string& a : r->actions) std::cout << "  " << a << '\n';
  }
  return kExitOk;
}

}  // namespace

int run_swarm(const GlobalOptions& g, const SwarmOptions& o) {
  LoadedEstate loaded = load_and_validate(g);
  if (loaded.diags.has_errors()) return report_invalid(g, loaded);
  const model::Estate& e = *loaded.estate;
  const model::Guest* manager_vm = swarm_manager(e);
  if (!manager_vm) {
    print_error(g, "no VM has \"swarm_role\": \"manager\"; there is no swarm to manage");
    return kExitInvalid;
  }
  auto manager = open_engine(g, e, *manager_vm);
  if (!manager) {
    print_error(g, manager.error().describe());
    return kExitInvalid;
  }
  swarm::HealOptions heal;
  heal.dry_run = g.dry_run;
  heal.force_new_cluster = o.force_new_cluster;
  heal.progress = progress(g);

  if (o.action == "init") {
    return report_actions(
        g, "swarm init",
        swarm::heal_manager(**manager, swarm_member(*manager_vm), compile::kTraefikNetwork, heal));
  }
  if (o.action == "join") {
    const model::Guest* vm = e.guest(o.vmid);
    if (!vm || !vm->is_vm()) {
      print_error(g, "there is no VM " + std::to_string(o.vmid) + " in the estate");
      return kExitInvalid;
    }
    if (vm->swarm_role.value != "worker") {
      print_error(g, vm->label() + " does not have \"swarm_role\": \"worker\"");
      return kExitInvalid;
    }
    auto worker = open_engine(g, e, *vm);
    if (!worker) {
      print_error(g, worker.error().describe());
      return kExitInvalid;
    }
    return report_actions(g, "swarm join " + std::to_string(o.vmid),
                          swarm::join_worker(**manager, **worker, swarm_member(*vm), heal));
  }

  // status
  std::string cluster_id;
  json nodes = json::array();
  if (auto info = (*manager)->get("/info"); info) {
    const json& s = info->value("Swarm", json::object());
    if (s.value("LocalNodeState", "") == "active" && s.value("ControlAvailable", false)) {
      cluster_id = s.contains("Cluster") ? s["Cluster"].value("ID", "") : "";
      if (auto n = (*manager)->get("/nodes"); n) nodes = *n;
    }
  }
  std::vector<swarm::MemberStatus> members;
  members.push_back(
      swarm::member_status(**manager, swarm_member(*manager_vm), true, cluster_id, nodes));
  for (const model::Guest& vm : e.guests) {
    if (!vm.is_vm() || vm.is_template.value || vm.swarm_role.value != "worker") continue;
    auto engine = open_engine(g, e, vm);
    if (!engine) {
      swarm::MemberStatus s;
      s.label = vm.label();
      s.error = remote_error(engine.error());
      s.problems.push_back("engine endpoint unusable");
      members.push_back(s);
      continue;
    }
    members.push_back(swarm::member_status(**engine, swarm_member(vm), false, cluster_id, nodes));
  }
  bool unreachable = false, problems = false;
  for (const auto& m : members) {
    unreachable |= !m.reachable;
    problems |= !m.problems.empty();
  }
  if (g.output == OutputFormat::kJson) {
    json list = json::array();
    for (const auto& m : members) list.push_back(member_json(m));
    print_json({{"cluster_id", cluster_id}, {"healthy", !problems}, {"members", list}});
  } else {
    std::cout << "swarm " << (cluster_id.empty() ? "(none)" : cluster_id) << '\n';
    for (const auto& m : members) {
      std::cout << "  " << m.label << "  " << m.endpoint;
      if (!m.reachable) {
        std::cout << "  unreachable: " << m.error << '\n';
        continue;
      }
      std::cout << "  API " << m.api_version << "  " << m.state;
      if (m.manager) std::cout << (m.leader ? "  manager (leader)" : "  manager");
      if (!m.manager && m.state == "active") std::cout << "  worker";
      std::cout << '\n';
      for (const auto& p : m.problems) std::cout << "    needs: " << p << '\n';
    }
    if (!problems) std::cout << "healthy\n";
  }
  if (unreachable) return kExitUnreachable;
  return problems ? kExitPartial : kExitOk;
}

}  // namespace phoenix::cli
