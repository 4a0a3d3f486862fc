#pragma once

// Which Docker engine belongs to which VM, from the estate (DESIGN.md §1 "Where Phoenix finds
// its providers"): a VM's own `docker_api`, else for the swarm manager the platform's
// `docker_api.url`, else tcp://<vm ip>:2376 with the platform's TLS files. Relative file names
// are relative to the configuration directory.

#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "base/error.h"
#include "cli/context.h"
#include "compile/desired.h"
#include "model/estate.h"
#include "providers/ca/stepca.h"
#include "providers/docker/api.h"
#include "providers/docker/engine_client.h"
#include "providers/guest/channel.h"
#include "providers/host/host.h"
#include "providers/proxmox/api.h"
#include "provision/provision.h"
#include "pveconf/vm.h"
#include "swarm/convert.h"
#include "swarm/deploy.h"
#include "swarm/heal.h"

namespace phoenix::cli {

// An error from a remote API, with whether retrying can help: "...: connection refused
// (temporary: running the command again may succeed)" or "... (retrying will not help)".
std::string remote_error(const base::Error& error);

base::Result<docker::Endpoint> engine_endpoint(const model::Estate& estate, const model::Guest& vm);

// The engine of `vm`. Over TCP without TLS files of its own (docker_api), Phoenix presents its own
// client certificate (docker_client_identity).
base::Result<std::unique_ptr<docker::Engine>> open_engine(const GlobalOptions& g,
                                                          const model::Estate& estate,
                                                          const model::Guest& vm);

// Phoenix's own client certificate for the engines' mutual TLS (the docker_proxy feature trusts
// the internal root only): issued by step-ca, as the estate's certificates are, for the name
// "phoenix", kept in <state dir>/docker-client/ (cert.pem, key.pem 0600, ca.pem: the internal
// root) and renewed past two thirds of its lifetime. Made once per process.
struct ClientIdentity {
  std::string ca_file, cert_file, key_file;
};
base::Result<ClientIdentity> docker_client_identity(const GlobalOptions& g,
                                                    const model::Estate& estate);

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

// The node's host channel: over SSH to proxmox_api.host_ssh, else local below host_root ("/").
std::unique_ptr<host::HostChannel> open_host(const model::Estate& estate);

// The node itself as a place for files and commands (the DNS records live there): this machine,
// with paths below proxmox_api.host_root (default /), or the node over proxmox_api.host_ssh.
std::unique_ptr<guest::GuestChannel> open_node_channel(const model::Estate& estate);

// How Phoenix reaches inside each guest, opened on first use: its `local_root` (tests), else an
// LXC through `pct exec` on the node (here, or over proxmox_api.host_ssh), else a VM through its
// QEMU guest agent over the Proxmox API (a client per VM). get() is not thread-safe; the
// channels of different guests may be used from different threads.
class GuestChannels {
 public:
  explicit GuestChannels(const model::Estate& estate) : e_(estate) {}
  base::Result<guest::GuestChannel*> get(model::GuestId id);

 private:
  const model::Estate& e_;
  std::vector<std::unique_ptr<proxmox::Pve>> pves_;
  std::map<model::GuestId, std::unique_ptr<guest::GuestChannel>> open_;
};

// How Phoenix reaches step-ca (step_ca: url, provisioner, password file relative to the
// configuration directory) and how it trusts it: step_ca.fingerprint pins the root; without it
// the root is read from the CA's own guest (the one with the step_ca feature,
// /etc/step-ca/certs/root_ca.crt) through `ca_channel`, so trust rests on the node as pct exec's
// does. With neither, the error says what to set.
base::Result<ca::StepCaOptions> step_ca_options(const model::Estate& estate,
                                                guest::GuestChannel* ca_channel);
// The guest that runs the CA (the step_ca feature), if any.
const model::Guest* step_ca_guest(const model::Estate& estate);

// The VM defaults, with the cloud-init SSH key read from users.ssh_public_key_file when
// `need_key` (some VM is to be configured).
base::Result<pveconf::VmContext> vm_context(const model::Estate& estate, bool need_key);

// What every guest command starts with: the estate loaded and valid, the guest ids of the
// command line checked, Proxmox opened and its inventory read.
struct GuestSession {
  LoadedEstate loaded;
  std::vector<model::GuestId> ids;
  std::unique_ptr<proxmox::Pve> pve;
  provision::Inventory inventory;
  const model::Estate& estate() const { return *loaded.estate; }
};
// The session, or the exit code after the error is printed.
std::variant<GuestSession, int> open_guest_session(const GlobalOptions& g,
                                                   const std::vector<std::string>& ids);

// Steps for people ("  create LXC 101 (Nginx): from debian-12") and as JSON.
void print_steps(const model::Estate& estate, const std::vector<provision::Step>& steps);
nlohmann::json steps_json(const std::vector<provision::Step>& steps);
// Request counts of one or more clients, for --output json.
nlohmann::json requests_json(const std::vector<const proxmox::Pve*>& clients);

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
