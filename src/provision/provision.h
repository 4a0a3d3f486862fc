#pragma once

// Guests on Proxmox, brought to what the estate says through the API (and, for raw lxc.* keys,
// the node's host channel). Each step first looks, then acts only when it must, so that a second
// run changes nothing and a run cut short is finished by the next:
//
//   define      create from the template, or clone (VMs: from the template VM; a template VM
//               from its cloud image)
//   configure   PUT .../config with only the keys that differ (pveconf::config_update)
//   disk        grow rootfs / scsi0 (a shrink is refused)
//   raw keys    lxc_options and id_maps written into /etc/pve/lxc/<vmid>.conf
//   firewall    options, then rules reconciled one by one, order kept
//   start       and wait: the task for an LXC, the guest agent for a VM
//   snapshot    enable_lifecycle_snapshots: "phoenix-initial" once the guest first runs;
//               template_snapshot_name: taken once, last (before a template conversion)
//   template    is_template: converted, never started

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "compile/desired.h"
#include "model/estate.h"
#include "plan/plan.h"
#include "providers/host/host.h"
#include "providers/proxmox/api.h"
#include "pveconf/vm.h"

namespace phoenix::provision {

// The guests Proxmox has, by id, from one GET /cluster/resources?type=vm.
using Inventory = std::map<model::GuestId, nlohmann::json>;
base::Result<Inventory> read_inventory(proxmox::Pve& pve);

struct Options {
  std::chrono::milliseconds task_deadline = std::chrono::minutes(10);
  std::chrono::milliseconds agent_deadline = std::chrono::minutes(5);
  std::chrono::milliseconds poll = std::chrono::milliseconds(250);
  int attempts = 8;  // of a guest's whole convergence, when a failure may pass
  bool dry_run = false;
};

// One thing done (or, with dry_run, to be done) to a guest.
struct Step {
  model::GuestId guest = 0;  // 0: the cluster
  std::string action;        // "create", "clone", "configure", "resize", "raw lxc keys", ...
  std::string detail;        // "memory: 1024 → 2048", "+16G", "rule 2: in ACCEPT tcp 22"
};

// One mutex per clone source, shared by the threads of a run.
class SourceLocks {
 public:
  std::mutex& of(model::GuestId source);

 private:
  std::mutex mu_;
  std::map<model::GuestId, std::mutex> locks_;
};

// What the work needs from the estate and the environment.
struct Target {
  std::string node;
  pveconf::VmContext vm;
  host::HostChannel* host = nullptr;   // raw lxc keys; nullptr: none configured
  SourceLocks* clone_locks = nullptr;  // shared between parallel provisioners
  Options options;
  std::function<void(const std::string&)> progress;  // "clone LXC 102 (Traefik)"; may be empty
};

class Provisioner {
 public:
  Provisioner(proxmox::Pve& pve, Target target) : pve_(pve), t_(std::move(target)) {}

  // Brings the guest to the estate; `seen` is its inventory entry (nullptr: absent), `firewall`
  // its desired firewall (nullptr: none). Steps taken are appended to `steps`, also on failure.
  // Every step is idempotent, so a failure that may pass (a 5xx, a lost answer, a failed task)
  // is met by looking again (the guest's inventory entry) and carrying on, up to
  // Options::attempts times.
  base::Result<void> converge(const model::Guest& guest, const nlohmann::json* seen,
                              const compile::FirewallRuleset* firewall, std::vector<Step>& steps);

  // A guest's firewall options and rules (the guest exists).
  base::Result<void> converge_firewall_of(const model::Guest& guest,
                                          const compile::FirewallRuleset& firewall,
                                          std::vector<Step>& steps);
  // The cluster's firewall options and rules.
  base::Result<void> converge_cluster_firewall(const compile::FirewallRuleset& firewall,
                                               std::vector<Step>& steps);

  base::Result<void> start(const model::Guest& guest, const nlohmann::json& seen,
                           std::vector<Step>& steps);
  // A clean shutdown (stopped by force after its timeout).
  base::Result<void> stop(const model::Guest& guest, const nlohmann::json& seen,
                          std::vector<Step>& steps);
  // Stops it if it runs, then destroys it; `purge` also removes it from backup jobs,
  // replication and HA, and destroys its unreferenced disks.
  base::Result<void> destroy(const model::Guest& guest, const nlohmann::json& seen, bool purge,
                             std::vector<Step>& steps);

  // Health as `status` shows it: "running", "stopped", "template", "agent answers",
  // "agent not answering".
  std::string health(const model::Guest& guest, const nlohmann::json& seen);

  // What differs between the guest's Proxmox config and the estate: "memory: 1024 → 2048",
  // "rootfs: 8 GiB, want 16", "raw lxc keys". Empty when converged. Fetches its config.
  base::Result<std::vector<std::string>> drift(const model::Guest& guest);

  // The guest's observed fields in the planner's shape (fetches its config).
  base::Result<plan::ObservedResource> observe_guest(const model::Guest& guest,
                                                     const nlohmann::json& seen,
                                                     const nlohmann::json& desired_fields);
  // A firewall's observed fields (fetches its options and rules); `guest` nullptr: the cluster.
  base::Result<plan::ObservedResource> observe_firewall(const model::Guest* guest,
                                                        const nlohmann::json& desired_fields);

 private:
  base::Result<void> converge_once(const model::Guest& guest, const nlohmann::json* seen,
                                   const compile::FirewallRuleset* firewall,
                                   std::vector<Step>& steps);
  std::string base(const model::Guest& g) const;
  // A mutating call: waits for its task when it starts one. With dry_run only records.
  base::Result<void> act(std::vector<Step>& steps, const model::Guest* g, std::string action,
                         std::string detail, proxmox::Method method, const std::string& path,
                         const proxmox::Params& params);
  base::Result<void> converge_firewall(const std::string& fw_base, const model::Guest* g,
                                       const compile::FirewallRuleset& firewall,
                                       std::vector<Step>& steps);
  base::Result<void> wait_agent(const model::Guest& g);
  base::Result<void> raw_keys(const model::Guest& g, const nlohmann::json& config,
                              std::vector<Step>& steps);
  void say(const std::string& line) const {
    if (t_.progress) t_.progress(line);
  }

  proxmox::Pve& pve_;
  Target t_;
};

// The guests `ids` need, dependencies and clone sources first (validation has ruled out cycles).
std::vector<const model::Guest*> creation_order(const model::Estate& estate,
                                                const std::vector<model::GuestId>& ids);

// Guests of the estate that depend on `id` (dependencies or clone source).
std::vector<const model::Guest*> dependents(const model::Estate& estate, model::GuestId id);

// Runs `work` for every guest of `order` (which lists dependencies first) on up to `jobs`
// threads: a guest starts once the guests it depends on among `order` are done, and never
// runs when one of them failed (its result then says so). Returns each guest's result.
std::map<model::GuestId, base::Result<void>> run_in_order(
    const std::vector<const model::Guest*>& order, int jobs,
    const std::function<base::Result<void>(const model::Guest&)>& work);

}  // namespace phoenix::provision
