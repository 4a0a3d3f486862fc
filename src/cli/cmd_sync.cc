// phoenix sync stack <name> [--env E] | sync core

#include <iostream>

#include "base/fs.h"
#include "cli/commands.h"
#include "cli/engines.h"
#include "compile/desired.h"
#include "swarm/convert.h"
#include "swarm/deploy.h"

namespace phoenix::cli {
namespace {

using nlohmann::json;

json requests_json(const docker::RequestCounts& c) {
  return {{"total", c.total}, {"mutating", c.mutating}, {"by_route", c.by_route}};
}

// Deploys one stack on the manager's swarm and reports it (text or JSON).
int deploy(const GlobalOptions& g, const model::Estate& e,
           const compile::StackDeployment& deployment, const SyncStackOptions& o) {
  const model::Guest* manager_vm = swarm_manager(e);
  if (!manager_vm) {
    print_error(g, "no VM has \"swarm_role\": \"manager\"; stacks are deployed on its swarm");
    return kExitInvalid;
  }
  const std::string& name = deployment.stack;

  auto spec = stack_spec(e, deployment);
  if (!spec) {
    print_error(g, spec.error().message());
    return kExitInvalid;
  }
  if (g.output == OutputFormat::kText) {
    for (const std::string& w : spec->warnings) std::cerr << "phoenix: warning: " << w << '\n';
  }

  auto engine = open_engine(g, e, *manager_vm);
  if (!engine) {
    print_error(g, engine.error().describe());
    return kExitInvalid;
  }
  swarm::DeployOptions opt;
  opt.dry_run = g.dry_run;
  opt.wait = !o.no_wait;
  opt.deadline = std::chrono::seconds(o.timeout_s);
  if (g.output == OutputFormat::kText) {
    opt.progress = [](const std::string& line) { std::cerr << "  " << line << '\n'; };
  }
  auto report = swarm::deploy_stack(**engine, *spec, opt);
  if (!report) {
    print_error(g, "deploying stack " + name + ": " + remote_error(report.error()));
    return report.error().retryable() ? kExitUnreachable : kExitPartial;
  }

  std::size_t changes = change_count(*report);
  if (g.output == OutputFormat::kJson) {
    json doc = stack_report_json(*report);
    doc["environment"] = deployment.environment;
    doc["dry_run"] = g.dry_run;
    doc["warnings"] = spec->warnings;
    doc["requests"] = requests_json(report->requests);
    print_json(doc);
  } else {
    std::cout << "stack " << name << " (" << deployment.environment << ") on "
              << manager_vm->label() << '\n';
    std::cout << format_stack_changes(*report, "  ");
    if (g.dry_run) {
      std::cout << (changes ? std::to_string(changes) + " change(s) would be made\n"
                            : "no changes\n");
    } else if (report->failures.empty()) {
      std::cout << (changes ? "converged\n" : "no changes; converged\n");
    }
    if (g.verbose > 0) {
      std::cout << "engine requests: " << report->requests.total << " ("
                << report->requests.mutating << " mutating)\n";
    }
  }
  return report->failures.empty() ? kExitOk : kExitPartial;
}

}  // namespace

int run_sync_stack(const GlobalOptions& g, const SyncStackOptions& o) {
  LoadedEstate loaded = load_and_validate(g);
  if (loaded.diags.has_errors()) return report_invalid(g, loaded);
  const model::Estate& e = *loaded.estate;
  const model::Stack* stack = e.stack(o.name);
  if (!stack || !stack->has_compose) {
    print_error(g, "there is no stack \"" + o.name + "\" with a docker-compose.yml in " +
                       e.paths.stacks_dir);
    return kExitInvalid;
  }
  std::optional<std::string_view> env;
  if (o.environment) env = *o.environment;
  auto deployment = compile::compile_stack(e, o.name, env);
  if (!deployment) {
    std::string names;
    for (const auto& en : stack->environments) names += (names.empty() ? "" : ", ") + en.name;
    print_error(g, "stack " + o.name + " has no environment \"" +
                       (o.environment ? *o.environment : std::string("production")) +
                       "\" (it defines: " + (names.empty() ? "none" : names) + ")");
    return kExitInvalid;
  }
  return deploy(g, e, *deployment, o);
}

int run_sync_core(const GlobalOptions& g, const SyncStackOptions& o) {
  LoadedEstate loaded = load_and_validate(g);
  if (loaded.diags.has_errors()) return report_invalid(g, loaded);
  const model::Estate& e = *loaded.estate;
  auto deployment = compile::portainer_stack(e);
  if (!deployment) {
    print_error(g, swarm_manager(e) ? "docker.portainer_server_image is not set in "
                                      "phoenix_hypervisor_config.json; there is no core service "
                                      "to deploy"
                                    : "no VM has \"swarm_role\": \"manager\"; Portainer runs "
                                      "on its swarm");
    return kExitInvalid;
  }
  return deploy(g, e, *deployment, o);
}

}  // namespace phoenix::cli
