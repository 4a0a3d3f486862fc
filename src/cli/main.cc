// phoenix: the command line. Thin by design: parse arguments, call one command, map the result
// to an exit code.

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <exception>
#include <iostream>

#include "cli/commands.h"
#include "cli/heap.h"
#include "config/load_cache.h"
#include "config/loader.h"

namespace {

using phoenix::cli::GlobalOptions;
using phoenix::cli::OutputFormat;

std::string default_config_dir() {
  if (const char* env = std::getenv("PHOENIX_CONFIG_DIR"); env && *env) return env;
  return phoenix::config::kDefaultConfigDir;
}

int run(int argc, char** argv) {
  CLI::App app{"Phoenix: declarative orchestrator for a Proxmox VE platform"};
  app.require_subcommand(1);
  app.fallthrough();
  app.set_version_flag("--version", std::string("phoenix ") + PHOENIX_VERSION);
  GlobalOptions g;
  g.config_dir = default_config_dir();
  std::string output = "text";
  app.add_option("-C,--config-dir", g.config_dir,
                 "directory holding the estate's JSON files (default: $PHOENIX_CONFIG_DIR, else "
                 "/usr/local/phoenix_hypervisor/etc)");
  app.add_option("--stacks-dir", g.stacks_dir, "stacks directory (default: ../stacks beside -C)");
  app.add_option("--bin-dir", g.bin_dir, "scripts directory (default: ../bin beside -C)");
  app.add_option("--state-dir", g.state_dir,
                 "journal and lock (default: $PHOENIX_STATE_DIR, else /var/lib/phoenix)");
  app.add_option("--output", output, "output format")->check(CLI::IsMember({"text", "json"}));
  app.add_option("-j,--jobs", g.jobs, "parallel actions")->check(CLI::Range(1, 256));
  app.add_flag("--dry-run", g.dry_run, "show what would change, change nothing");
  app.add_flag("-v,--verbose", g.verbose, "more detail (repeatable)");
  g.cache_dir = phoenix::config::default_cache_dir();
  bool no_cache = false;
  app.add_flag("--no-cache", no_cache,
               "load the estate without the estate cache (kept in $PHOENIX_CACHE_DIR, else "
               "$XDG_CACHE_HOME/phoenix/estates, else ~/.cache/phoenix/estates; "
               "PHOENIX_CACHE_DIR= turns it off)");

  auto* validate = app.add_subcommand("validate", "check the estate and report every problem");

  phoenix::cli::RenderOptions render_opts;
  auto* render = app.add_subcommand("render", "write every generated configuration file");
  render->add_option("--out", render_opts.out_dir, "output directory, replaced atomically")
      ->required();

  phoenix::cli::PlanOptions plan_opts;
  auto* plan = app.add_subcommand("plan", "list the actions that would converge the platform");
  plan->add_option("ids", plan_opts.ids, "only these guests (and what they depend on)");
  plan->add_option("--observed", plan_opts.observed_file,
                   "observed state snapshot (docs/snapshot-format.md); default: empty platform");
  plan->add_flag("--proxmox", plan_opts.proxmox,
                 "observe the guests and firewalls on Proxmox (one inventory request, then "
                 "the config of each guest that exists) and plan against them");
  plan->add_flag("--files", plan_opts.files,
                 "read the delivered files (DNS records, Traefik's and the gateway's "
                 "configuration) where they live and plan against them, with their lines");
  plan->add_flag("--swarm", plan_opts.swarm,
                 "also observe every stack on the swarm (one list request per kind) and show "
                 "its service changes field by field");

  auto* snapshot = app.add_subcommand(
      "snapshot", "print the desired state as a snapshot (the platform as it would be converged)");

  phoenix::cli::GraphOptions graph_opts;
  auto* graph = app.add_subcommand("graph", "print the dependency graph");
  graph->add_option("--format", graph_opts.format, "dot or mermaid")
      ->check(CLI::IsMember({"dot", "mermaid"}));
  graph->add_flag("--guests", graph_opts.guests_only, "guests and stacks only");

  phoenix::cli::SwarmOptions swarm_opts;
  auto* swarm = app.add_subcommand("swarm", "the Docker Swarm on the VMs");
  swarm->require_subcommand(1);
  auto* swarm_status = swarm->add_subcommand(
      "status", "show each swarm VM's engine, membership and what it still needs");
  auto* swarm_init = swarm->add_subcommand(
      "init", "make the manager VM lead an active swarm, with its labels and traefik-public");
  swarm_init->add_flag("--force-new-cluster", swarm_opts.force_new_cluster,
                       "recover a manager that lost quorum as a new single-manager swarm");
  auto* swarm_join =
      swarm->add_subcommand("join", "join a worker VM to the swarm, with its labels");
  swarm_join->add_option("vmid", swarm_opts.vmid, "the worker VM")->required();

  phoenix::cli::SyncStackOptions sync_stack_opts;
  auto* sync = app.add_subcommand("sync", "converge part of the platform");
  sync->require_subcommand(1);
  auto* sync_stack = sync->add_subcommand(
      "stack", "deploy one stack on the swarm (docker stack deploy semantics) and wait for it");
  sync_stack->add_option("name", sync_stack_opts.name, "the stack (a directory under stacks/)")
      ->required();
  sync_stack->add_option("--env", sync_stack_opts.environment,
                         "environment of its phoenix.json (default: the VM's choice, else "
                         "production)");
  auto* sync_core = sync->add_subcommand(
      "core", "deploy the core services (Portainer server and agents) on the swarm and wait");
  for (CLI::App* deploying : {sync_stack, sync_core}) {
    deploying->add_flag("--no-wait", sync_stack_opts.no_wait,
                        "return once the changes are sent, without waiting for the tasks");
    deploying
        ->add_option("--timeout", sync_stack_opts.timeout_s,
                     "seconds to wait for every task to run (default 300)")
        ->check(CLI::Range(1, 86400));
  }

  auto* sync_dns = sync->add_subcommand(
      "dns",
      "write the DNS records file on the host and reload the DNS server (rolled back "
      "if the reload fails)");
  auto* sync_gateways = sync->add_subcommand(
      "gateways",
      "deliver Traefik's configuration and the Nginx gateway's site into their "
      "guests, test and reload (rolled back on failure)");
  auto* sync_certs = sync->add_subcommand(
      "certs", "issue, renew or keep every certificate, deliver it, and trust the internal root");
  phoenix::cli::SyncAllOptions sync_all_opts;
  auto* sync_all = sync->add_subcommand(
      "all",
      "converge the whole platform, stage by stage (guests, infrastructure, swarm, core, "
      "gateways, stacks), journaled, one run at a time per estate");
  sync_all->add_flag("--no-health", sync_all_opts.no_health,
                     "do not wait for the guests' health checks");
  sync_all
      ->add_option("--timeout", sync_all_opts.timeout_s,
                   "seconds to wait for each stack's tasks (default 300)")
      ->check(CLI::Range(1, 86400));
  phoenix::cli::HistoryOptions history_opts;
  auto* history = app.add_subcommand("history", "the converge runs of the journal, newest first");
  history->add_option("--limit", history_opts.limit, "how many runs (default 20)")
      ->check(CLI::Range(1, 100000));
  history->add_option("--run", history_opts.run, "also list this run's actions");

  phoenix::cli::SyncGuestsOptions sync_guests_opts;
  auto* sync_guests = sync->add_subcommand(
      "guests",
      "inside each guest: apply its features' recipes, run its application script once per "
      "change, and wait for its health checks");
  sync_guests->add_option("ids", sync_guests_opts.ids, "only these guests (default: all)");
  sync_guests->add_flag("--no-health", sync_guests_opts.setup.no_health,
                        "do not wait for health checks");
  sync_guests
      ->add_option("--health-scale", sync_guests_opts.setup.health_scale,
                   "multiply every health check's deadline by this factor")
      ->check(CLI::PositiveNumber);
  auto* sync_firewall = sync->add_subcommand(
      "firewall", "reconcile the cluster's and every existing guest's firewall rule by rule");

  phoenix::cli::CreateOptions create_opts;
  std::vector<std::string> lab_args;
  auto* lab = app.add_subcommand(
      "lab", "the whole platform on this machine: lab up|down|status, lab run COMMAND...");
  lab->prefix_command();
  lab->fallthrough(false);

  auto* create = app.add_subcommand(
      "create", "bring guests and what they depend on to the estate, in order (-j in parallel)");
  create->add_option("ids", create_opts.ids, "the guests")->required();
  create->add_flag("--no-setup", create_opts.no_setup,
                   "only the Proxmox side: no features, application scripts or health checks");
  create->add_flag("--no-health", create_opts.setup.no_health, "do not wait for health checks");

  phoenix::cli::DeleteOptions delete_opts;
  auto* del = app.add_subcommand("delete", "stop and destroy guests");
  del->add_option("ids", delete_opts.ids, "the guests")->required();
  del->add_flag("--purge", delete_opts.purge,
                "also remove them from backup jobs, replication and HA, and their unused disks");
  del->add_flag("--force", delete_opts.force,
                "delete even when an existing guest depends on one of them");

  phoenix::cli::PowerOptions power_opts;
  std::vector<CLI::App*> power;
  for (const char* action : {"start", "stop", "restart"}) {
    auto* cmd = app.add_subcommand(action, std::string(action) + " guests (only those named)");
    cmd->add_option("ids", power_opts.ids, "the guests")->required();
    cmd->add_flag("--with-deps", power_opts.with_deps,
                  "also what they depend on (start) or what depends on them (stop)");
    power.push_back(cmd);
  }

  phoenix::cli::StatusOptions status_opts;
  auto* status = app.add_subcommand(
      "status", "each guest against the Proxmox inventory (desired against observed)");
  status->add_option("ids", status_opts.ids, "only these guests");
  status->add_flag("--no-config", status_opts.no_config,
                   "only the inventory: no per-guest config, so no drift column");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : phoenix::cli::kExitInvalid;
  }
  g.output = output == "json" ? OutputFormat::kJson : OutputFormat::kText;
  if (no_cache) g.cache_dir.clear();
  g.colour = isatty(STDERR_FILENO) && std::getenv("NO_COLOR") == nullptr;

  if (*lab) return phoenix::cli::run_lab(g, lab->remaining());
  if (*validate) return phoenix::cli::run_validate(g);
  if (*render) return phoenix::cli::run_render(g, render_opts);
  if (*plan) return phoenix::cli::run_plan(g, plan_opts);
  if (*snapshot) return phoenix::cli::run_snapshot(g);
  if (*graph) return phoenix::cli::run_graph(g, graph_opts);
  if (*swarm) {
    swarm_opts.action = *swarm_init ? "init" : *swarm_join ? "join" : "status";
    (void)swarm_status;
    return phoenix::cli::run_swarm(g, swarm_opts);
  }
  if (*sync_stack) return phoenix::cli::run_sync_stack(g, sync_stack_opts);
  if (*status) return phoenix::cli::run_status(g, status_opts);
  if (*create) return phoenix::cli::run_create(g, create_opts);
  if (*del) return phoenix::cli::run_delete(g, delete_opts);
  for (CLI::App* cmd : power) {
    if (*cmd) {
      power_opts.action = cmd->get_name();
      return phoenix::cli::run_power(g, power_opts);
    }
  }
  if (*sync_firewall) return phoenix::cli::run_sync_firewall(g);
  if (*sync_certs) return phoenix::cli::run_sync_certs(g);
  if (*sync_guests) return phoenix::cli::run_sync_guests(g, sync_guests_opts);
  if (*sync_all) return phoenix::cli::run_sync_all(g, sync_all_opts);
  if (*history) return phoenix::cli::run_history(g, history_opts);
  if (*sync_dns) return phoenix::cli::run_sync_dns(g);
  if (*sync_gateways) return phoenix::cli::run_sync_gateways(g);
  if (*sync_core) return phoenix::cli::run_sync_core(g, sync_stack_opts);
  return phoenix::cli::kExitInvalid;
}

}  // namespace

int main(int argc, char** argv) {
  phoenix::cli::prefer_huge_pages_for_heap();
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "phoenix: error: " << e.what() << '\n';
  } catch (...) {
    std::cerr << "phoenix: error: unexpected failure\n";
  }
  return phoenix::cli::kExitPartial;
}
