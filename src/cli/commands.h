#pragma once

#include <vector>

#include "cli/context.h"

namespace phoenix::cli {

int run_validate(const GlobalOptions& g);

struct RenderOptions {
  std::string out_dir;
};
int run_render(const GlobalOptions& g, const RenderOptions& o);

struct PlanOptions {
  std::vector<std::string> ids;
  std::optional<std::string> observed_file;
  bool swarm = false;  // observe the stacks on the swarm through the Engine API
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
};
// Each guest against the Proxmox inventory (one GET /cluster/resources). Exit 0 when every
// guest is as desired, 2 when not, 4 when Proxmox cannot be reached.
int run_status(const GlobalOptions& g, const StatusOptions& o);

struct CreateOptions {
  std::vector<std::string> ids;
};
// LXCs and what they depend on, created (from a template or a clone), made templates or
// started, in dependency order; what exists already is left as it is.
int run_create(const GlobalOptions& g, const CreateOptions& o);

}  // namespace phoenix::cli
