#pragma once

#include <vector>

#include "cli/context.h"
#include "cli/guest_setup.h"

namespace phoenix::cli {

int run_validate(const GlobalOptions& g);

struct RenderOptions {
  std::string out_dir;
};
int run_render(const GlobalOptions& g, const RenderOptions& o);

struct PlanOptions {
  std::vector<std::string> ids;
  std::optional<std::string> observed_file;
  bool swarm = false;    // observe the stacks on the swarm through the Engine API
  bool proxmox = false;  // observe the guests and firewalls through the Proxmox API
  bool files = false;    // read the delivered files through the node's and the guests' channels
};
int run_plan(const GlobalOptions& g, const PlanOptions& o);
int run_snapshot(const GlobalOptions& g);

struct GraphOptions {
  std::string format = "dot";  // dot | mermaid
  bool guests_only = false;
};
int run_graph(const GlobalOptions& g, const GraphOptions& o);

struct SwarmOptions {
  std::string action;  // status | init | join
  int vmid = 0;        // join
  bool force_new_cluster = false;
};
int run_swarm(const GlobalOptions& g, const SwarmOptions& o);

struct SyncStackOptions {
  std::string name;
  std::optional<std::string> environment;
  bool no_wait = false;
  int timeout_s = 300;
};
int run_sync_stack(const GlobalOptions& g, const SyncStackOptions& o);
// Stage 3, Portainer: deployed as a stack named "portainer".
int run_sync_core(const GlobalOptions& g, const SyncStackOptions& o);

struct StatusOptions {
  std::vector<std::string> ids;
  bool no_config = false;  // skip each guest's config (no drift column): one request in all
};
// Each guest against the Proxmox inventory (one GET /cluster/resources). Exit 0 when every
// guest is as desired, 2 when not, 4 when Proxmox cannot be reached.
int run_status(const GlobalOptions& g, const StatusOptions& o);

struct SyncAllOptions {
  bool no_health = false;
  int timeout_s = 300;  // per stack deployment
};
// The whole platform, stage by stage, holding the estate's lock, journaled (exit 3: locked).
int run_sync_all(const GlobalOptions& g, const SyncAllOptions& o);

struct HistoryOptions {
  int limit = 20;
  std::optional<std::int64_t> run;  // show this run's actions too
};
// The journal's runs, newest first.
int run_history(const GlobalOptions& g, const HistoryOptions& o);

// `phoenix lab up|down|status|run ...`: the lab's driver (tools/lab/phoenix_lab.py) with these
// arguments, told where this phoenix and its pve-sim are. Returns only when it cannot be run.
int run_lab(const GlobalOptions& g, const std::vector<std::string>& args);

struct SyncGuestsOptions {
  std::vector<std::string> ids;  // empty: every guest that is not a template
  SetupSettings setup;
};
// What runs inside each guest (setup/): features, application script, health checks.
int run_sync_guests(const GlobalOptions& g, const SyncGuestsOptions& o);

struct CreateOptions {
  std::vector<std::string> ids;
  bool no_setup = false;  // Proxmox only: no features, application script or health checks
  SetupSettings setup;
};
// Guests and what they depend on, brought to the estate in dependency order, up to -j at a time
// (provision/provision.h); a converged guest costs reads only.
int run_create(const GlobalOptions& g, const CreateOptions& o);

struct PowerOptions {
  std::string action;  // start | stop | restart
  std::vector<std::string> ids;
  bool with_deps = false;
};
// Only the named guests, unless with_deps: then also what they depend on (start) or what
// depends on them (stop), in dependency order.
int run_power(const GlobalOptions& g, const PowerOptions& o);

struct DeleteOptions {
  std::vector<std::string> ids;
  bool purge = false;
  bool force = false;
};
// Stops and destroys the guests, dependents first; refuses a guest that an existing guest
// outside the list depends on, unless force.
int run_delete(const GlobalOptions& g, const DeleteOptions& o);

// The cluster's and every existing guest's firewall, reconciled rule by rule.
int run_sync_firewall(const GlobalOptions& g);

// The dnsmasq records file on the host, reloaded; rolled back when the reload fails
// (cmd_deliver.cc, deliver/). Exit 0 done or no change, 1 invalid input, 2 failed.
int run_sync_dns(const GlobalOptions& g);
// Traefik's static and dynamic configuration in its guest (restarted only when the static one
// changed), then the Nginx gateway's site, tested and reloaded; rolled back on failure.
int run_sync_gateways(const GlobalOptions& g);
// Every certificate of the estate issued (missing), renewed (past 2/3 of its lifetime, or new
// names) or kept, through step-ca's JWK provisioner, delivered into its guest and its service
// reloaded; the internal root into every reachable guest's trust store.
int run_sync_certs(const GlobalOptions& g);

}  // namespace phoenix::cli
