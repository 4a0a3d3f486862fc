#pragma once

// Stage 2 of `sync all`: the swarm itself. The manager VM's engine is in an active swarm and
// leads it (a swarm is created where there is none); every worker VM is joined with the
// manager's token and carries its node labels; the traefik-public overlay network exists and
// is attachable. Recovering a manager that lost quorum (`ForceNewCluster`) happens only when
// asked. Each function observes first and changes only what differs, so a healthy swarm costs
// no mutating request.

#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/error.h"
#include "providers/docker/api.h"

namespace phoenix::swarm {

inline constexpr const char* kManagedLabel = "com.phoenix.managed";

// A VM as the swarm should see it.
struct SwarmMember {
  std::string label;           // "VM 1001 (Docker-Manager)", for messages
  std::string advertise_addr;  // the VM's IP
  std::map<std::string, std::string> node_labels;
};

struct HealOptions {
  bool dry_run = false;
  bool force_new_cluster = false;  // recover a manager that lost quorum
  std::chrono::milliseconds deadline{std::chrono::seconds(60)};
  std::chrono::milliseconds poll_interval{250};
  std::function<void(const std::string&)> progress;
};

struct HealReport {
  std::vector<std::string> actions;  // what was done (or would be, with dry_run)
};

// The manager: swarm active with this engine as leader, its node labels, traefik-public.
base::Result<HealReport> heal_manager(docker::Engine& manager, const SwarmMember& member,
                                      const std::string& network, const HealOptions& options);

// One worker: joined to the manager's swarm, with its node labels.
base::Result<HealReport> join_worker(docker::Engine& manager, docker::Engine& worker,
                                     const SwarmMember& member, const HealOptions& options);

// What healing would change for one VM, judged from the manager's node list alone (a node is
// the VM's when its address is the VM's IP): "not joined", or the node labels it lacks.
std::vector<std::string> plan_member(const nlohmann::json& nodes, const SwarmMember& member);

// What `phoenix swarm status` shows about one VM's engine.
struct MemberStatus {
  std::string label;
  std::string endpoint;
  bool reachable = false;
  std::string error;  // when not reachable
  std::string api_version;
  std::string state;  // LocalNodeState: inactive, pending, active, error, locked
  std::string node_id;
  std::string cluster_id;
  bool manager = false;  // ControlAvailable
  bool leader = false;
  std::vector<std::string> missing_labels;  // "k=v" not on the node
  std::vector<std::string> problems;        // what `swarm init` / `swarm join` would fix
};

// `cluster_id` and `nodes` (GET /nodes) come from the manager; empty when it has no swarm.
MemberStatus member_status(docker::Engine& engine, const SwarmMember& member, bool is_manager,
                           const std::string& cluster_id, const nlohmann::json& nodes);

}  // namespace phoenix::swarm
