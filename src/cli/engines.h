#pragma once

// Which Docker engine belongs to which VM, from the estate (DESIGN.md §1 "Where Phoenix finds
// its providers"): a VM's own `docker_api`, else for the swarm manager the platform's
// `docker_api.url`, else tcp://<vm ip>:2376 with the platform's TLS files. Relative file names
// are relative to the configuration directory.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "compile/desired.h"
#include "model/estate.h"
#include "providers/docker/api.h"
#include "providers/docker/engine_client.h"
#include "providers/proxmox/api.h"
#include "swarm/convert.h"
#include "swarm/deploy.h"
#include "swarm/heal.h"

namespace phoenix::cli {

// An error from a remote API, with whether retrying can help: "...: connection refused
// (temporary: running the command again may succeed)" or "... (retrying will not help)".
std::string remote_error(const base::Error& error);

base::Result<docker::Endpoint> engine_endpoint(const model::Estate& estate, const model::Guest& vm);

base::Result<std::unique_ptr<docker::Engine>> open_engine(const model::Estate& estate,
                                                          const model::Guest& vm);

const model::Guest* swarm_manager(const model::Estate& estate);

// The VM as the swarm should see it: its address and node labels.
swarm::SwarmMember swarm_member(const model::Guest& vm);

// The Proxmox API client from proxmox_api (default https://127.0.0.1:8006; the token secret read
// from its file), and the node guests are created on (default: this host's name).
base::Result<std::unique_ptr<proxmox::Pve>> open_proxmox(const model::Estate& estate);
std::string proxmox_node(const model::Estate& estate);

// Guest ids given on the command line, each checked against the estate; the error names the
// first that is not a guest.
base::Result<std::vector<model::GuestId>> parse_guest_ids(const model::Estate& estate,
                                                          const std::vector<std::string>& ids);

// The Proxmox inventory by guest id, from one GET /cluster/resources?type=vm.
base::Result<std::map<model::GuestId, nlohmann::json>> read_inventory(proxmox::Pve& pve);

// The exit code for a failed request to a provider: 4 when it cannot be used at all (not
// answering, TLS verification failed, credentials refused), else 2.
int provider_exit(const base::Error& error);

// The stack's Engine API objects; files its compose file names are read from the stack's
// directory. Errors carry the compose file location in their message.
base::Result<swarm::StackSpec> stack_spec(const model::Estate& estate,
                                          const compile::StackDeployment& deployment);

// A deploy or plan report for people: "+ service x", "~ service y" with one line per field
// ("path: before → after"), "- service z", created and removed objects, failures.
std::string format_stack_changes(const swarm::DeployReport& report, const std::string& indent);
nlohmann::json stack_report_json(const swarm::DeployReport& report);
std::size_t change_count(const swarm::DeployReport& report);

}  // namespace phoenix::cli
