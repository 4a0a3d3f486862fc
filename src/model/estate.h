#pragma once

// The estate: what the configuration files describe, typed, with the source location of every
// value. Nothing here does I/O; config/ fills it in and validate/ checks it.

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/node.h"
#include "base/source.h"

namespace phoenix::model {

using base::SourceLoc;

// A configuration value and where it was written. `present` is false when the key was absent,
// in which case `value` holds the default and `loc` points at the enclosing object.
template <class T>
struct Val {
  T value{};
  SourceLoc loc{};
  bool present = false;

  const T& operator*() const { return value; }
  const T* operator->() const { return &value; }
};

using GuestId = std::uint32_t;

enum class GuestKind { kLxc, kVm };

std::string_view to_string(GuestKind kind);  // "LXC" / "VM"

// A reference from one guest to another ("dependencies", "clone_from_*").
struct DockerApi {
  bool present = false;
  Val<std::string> url;
  Val<std::string> ca_file;
  Val<std::string> cert_file;
  Val<std::string> key_file;
};

struct GuestRef {
  GuestId id = 0;
  SourceLoc loc;
};

// A command as an argument vector, never shell text: ["systemctl", "reload", "nginx"].
struct Argv {
  bool present = false;
  SourceLoc loc;  // the list as written
  std::vector<Val<std::string>> args;
};

struct FirewallRule {
  SourceLoc loc;
  Val<std::string> type;    // in | out
  Val<std::string> action;  // ACCEPT | DROP | REJECT
  Val<std::string> source;
  Val<std::string> dest;
  Val<std::string> proto;
  Val<std::string> port;  // "80", "80,443", "8000:8010"
  Val<std::string> iface;
  Val<std::string> comment;
};

struct Firewall {
  bool present = false;
  SourceLoc loc;
  Val<bool> enabled;
  std::vector<FirewallRule> rules;
};

struct GlobalFirewall {
  bool present = false;
  SourceLoc loc;
  Val<bool> enabled;
  Val<std::string> default_input_policy;
  Val<std::string> default_output_policy;
  std::vector<FirewallRule> rules;
};

struct NetworkConfig {
  bool present = false;
  SourceLoc loc;
  Val<std::string> name;    // interface in the guest, e.g. eth0
  Val<std::string> bridge;  // host bridge, e.g. vmbr0
  Val<std::string> ip;      // CIDR or "dhcp"
  Val<std::string> gw;
  Val<std::string> hwaddr;
  Val<std::string> type;
  std::vector<Val<std::string>> nameservers;
  Val<std::string> searchdomain;
};

struct TraefikService {
  bool present = false;
  SourceLoc loc;
  Val<std::string> name;
  Val<std::int64_t> port;
  Val<std::string> scheme;  // http (default for LXCs) | https (default for VMs)
};

struct MountPoint {
  SourceLoc loc;
  Val<std::string> host_path;
  Val<std::string> container_path;
  Val<std::int64_t> owner_uid;
  Val<std::int64_t> owner_gid;
};

struct IdMap {
  SourceLoc loc;
  Val<std::string> type;  // uid | gid
  Val<std::int64_t> host_id;
  Val<std::int64_t> container_id;
  Val<std::int64_t> size;
};

struct VllmConfig {
  bool present = false;
  SourceLoc loc;
  Val<std::string> model;
  Val<std::string> dtype;
  Val<std::int64_t> max_model_len;
  Val<std::string> quantization;  // ModelConfig.quantization or CacheConfig.quantization
  Val<bool> trust_remote_code;
  Val<double> gpu_memory_utilization;
  Val<std::int64_t> tensor_parallel_size;
  Val<std::string> host;
  Val<std::int64_t> port;
  Val<std::string> served_model_name;
};

// A referenced file (application script, stack file) and whether it was found on disk.
struct FileRef {
  Val<std::string> name;  // as written
  std::string resolved;   // path it was looked up at
  bool exists = false;
};

struct StackRef {
  SourceLoc loc;
  Val<std::string> name;
  Val<std::string> environment;  // absent: the stack's default environment
};

// One LXC container or VM. Fields that apply to one kind only say so.
struct Guest {
  GuestKind kind = GuestKind::kLxc;
  GuestId id = 0;
  SourceLoc loc;  // the entry's key (LXC) or its `vmid` (VM)

  Val<std::string> name;
  Val<bool> is_template;
  Val<std::string> template_snapshot_name;
  std::optional<GuestRef> clone_from;  // clone_from_ctid / clone_from_vmid
  Val<std::int64_t> memory_mb;
  Val<std::int64_t> cores;
  Val<bool> start_at_boot;
  Val<std::int64_t> boot_order;
  Val<std::int64_t> boot_delay;
  std::vector<Val<std::string>> features;
  Val<std::string> portainer_role;
  std::vector<GuestRef> dependencies;
  NetworkConfig network;
  Firewall firewall;
  TraefikService traefik_service;
  Val<bool> trigger_sync_on_completion;

  // LXC only.
  Val<std::string> os_template;  // `template`
  Val<std::int64_t> swap_mb;
  Val<std::string> storage_pool;
  Val<std::int64_t> storage_size_gb;
  NetworkConfig secondary_network;
  Val<std::string> mac_address;
  Val<std::string> gpu_assignment;  // as written: "none", "0", "0,1"
  std::vector<int> gpus;            // parsed from gpu_assignment
  Val<bool> unprivileged;
  std::vector<IdMap> id_maps;
  std::vector<Val<std::string>> pct_options;
  std::vector<Val<std::string>> lxc_options;
  Val<std::string> apparmor_profile;
  Val<bool> apparmor_manages_nesting;
  std::optional<FileRef> application_script;
  Val<std::string> bootstrap_ca_url;
  Val<bool> enable_lifecycle_snapshots;
  std::vector<MountPoint> mount_points;
  base::Node health_checks;  // kept as written; checked and run by the guest-features work
  VllmConfig vllm;

  // VM only.
  Val<std::string> template_image;
  Val<std::int64_t> disk_size_gb;
  Val<std::string> swarm_role;  // manager | worker
  std::vector<Val<std::string>> node_labels;
  Val<std::string> portainer_environment_name;
  Val<std::string> portainer_agent_hostname;
  Val<std::string> username;  // user_config.username
  std::vector<StackRef> docker_stacks;
  // This VM's Docker engine, where it is not tcp://<ip>:2376 with the platform's TLS files
  // (a lab, or a local socket). Files not given here fall back to the platform's docker_api.
  DockerApi docker_api;

  // Both: files delivered into the guest go below this directory of the machine Phoenix runs
  // on, which stands for the guest's `/`, and the guest's commands (reloads, tests) run on that
  // machine as written: the local channel, for tests, instead of `pct` or the guest agent.
  Val<std::string> local_root;

  // Both: raw sections kept for later stages.
  base::Node volumes;
  base::Node snapshots;

  bool is_lxc() const { return kind == GuestKind::kLxc; }
  bool is_vm() const { return kind == GuestKind::kVm; }
  bool has_feature(std::string_view f) const;
  // "LXC 101 (Nginx-Phoenix)".
  std::string label() const;
};

struct StackVariable {
  SourceLoc loc;
  Val<std::string> name;
  Val<std::string> value;
};

struct StackFile {
  SourceLoc loc;
  FileRef source;
  Val<std::string> destination;
};

struct StackService {
  SourceLoc loc;  // the service's key in phoenix.json
  std::string name;
  std::vector<Val<std::string>> traefik_labels;
};

struct StackEnvironment {
  SourceLoc loc;
  std::string name;
  std::vector<StackVariable> variables;
  std::vector<StackFile> files;
  std::vector<StackService> services;
  std::vector<FirewallRule> firewall_rules;
};

struct Stack {
  std::string name;  // the directory name
  std::string dir;   // path as displayed
  SourceLoc manifest_loc;
  SourceLoc compose_loc;
  bool has_manifest = false;
  bool has_compose = false;
  bool compose_unreadable = false;  // present but failed to parse (already reported)
  Val<std::string> description;
  std::vector<StackEnvironment> environments;
  base::Node compose;  // the compose file as written

  const StackEnvironment* environment(std::string_view name) const;
};

struct ProxmoxApi {
  bool present = false;
  Val<std::string> url;
  Val<std::string> node;
  Val<std::string> token_id;
  Val<std::string> token_secret_file;
  Val<std::string> ca_file;
  Val<std::string> fingerprint;
  Val<bool> insecure;
  // The node's host channel, for what the API cannot set (raw lxc.* keys): over SSH to
  // `host_ssh` ("root@10.0.0.13"), else local, with paths below `host_root` (default "/"; a lab
  // points it at the simulator's state directory).
  Val<std::string> host_ssh;
  Val<std::string> host_root;
};

struct DnsServer {
  bool present = false;
  SourceLoc loc;
  Val<bool> enabled;
  std::vector<Val<std::string>> upstream_servers;
  std::vector<Val<std::string>> authoritative_zones;
  Val<std::string> records_file;  // on the host; default /etc/dnsmasq.d/00-phoenix-internal.conf
  Argv reload;                    // default systemctl restart dnsmasq
};

// nginx_gateway: how the gateway guest's nginx checks and loads its configuration.
struct NginxGatewaySettings {
  bool present = false;
  Argv test;    // default nginx -t
  Argv reload;  // default systemctl reload nginx
};

// traefik: how the Traefik guest restarts Traefik (after its static configuration changed).
struct TraefikSettings {
  bool present = false;
  Argv restart;  // default systemctl restart traefik
};

// certificates: how guests load what `sync certs` delivers. `reload`, when given, replaces the
// reload of every certificate's service (the gateway's nginx, Traefik, docker, vLLM), e.g. for a
// lab; `trust_update` refreshes a guest's trust store after the root is put in it.
struct CertificateSettings {
  bool present = false;
  Argv reload;
  Argv trust_update;  // default update-ca-certificates
  // certificates.extra: certificates the estate does not derive (a TLS endpoint Phoenix does not
  // know of), issued, renewed and delivered like the others.
  struct Extra {
    SourceLoc loc;
    Val<std::string> name;
    std::optional<GuestRef> guest;
    Val<std::string> common_name;
    std::vector<Val<std::string>> sans;
    Val<std::string> cert_path;  // default /etc/phoenix/ssl/<name>.crt
    Val<std::string> key_path;   // default /etc/phoenix/ssl/<name>.key
    Val<std::string> owner;      // default root
    Val<std::string> group;      // default root
    Argv reload;                 // default none
  };
  std::vector<Extra> extra;
};

struct StepCa {
  bool present = false;
  Val<std::string> root_ca_name;
  Val<std::string> intermediate_ca_name;
  Val<std::string> dns_name;
  Val<std::string> provisioner_name;
  Val<std::string> url;
  Val<std::string> fingerprint;
  Val<std::string> provisioner_password_file;
  Val<std::string> acme_directory;
};

struct HostNetwork {
  SourceLoc loc;
  Val<std::string> interface_name;  // interfaces.name
  Val<std::string> address;         // interfaces.address (CIDR)
  Val<std::string> gateway;         // interfaces.gateway
  std::vector<Val<std::string>> dns_nameservers;
  Val<std::string> default_subnet;
  Val<std::string> public_bridge;
  Val<std::string> internal_bridge_name;
  Val<std::string> internal_bridge_subnet;
  Val<std::string> portainer_server_ip;
  Val<std::int64_t> portainer_server_port;
  Val<std::int64_t> portainer_agent_port;
  Val<std::string> nfs_server;
};

struct PortainerApi {
  bool present = false;
  Val<std::string> admin_user;
  Val<std::string> admin_password_file;
  Val<std::string> portainer_hostname;
  Val<std::string> api_key_file;
  bool inline_secret = false;  // admin_password or api_key written in the JSON itself
};

// guest_features: what the recipes of the guest features (recipes/) install from the machine
// Phoenix runs on. Each path defaults to /usr/local/lib/phoenix/<name>.
struct GuestFeatureSettings {
  bool present = false;
  Val<std::string> step_binary;     // the step CLI (step_cli, step_ca)
  Val<std::string> step_ca_binary;  // step-ca (step_ca)
  Val<std::string> traefik_binary;  // traefik (traefik)
  Val<std::string> nvidia_runfile;  // NVIDIA-Linux-x86_64-<version>.run (nvidia)
  Val<std::string> vllm_version;    // the vLLM release pip installs (vllm)
};

// phoenix_hypervisor_config.json.
struct Platform {
  SourceLoc loc;
  Val<std::string> version;
  Val<std::string> domain_name;
  Val<std::string> timezone;
  HostNetwork network;
  Val<std::string> portainer_server_image;
  Val<std::string> portainer_agent_image;
  Val<std::string> portainer_stack;  // docker.portainer_stack: its stack's name (default portainer)
  GlobalFirewall firewall;
  PortainerApi portainer_api;
  DnsServer dns_server;
  NginxGatewaySettings nginx_gateway;
  TraefikSettings traefik;
  CertificateSettings certificates;
  GuestFeatureSettings guest_features;
  StepCa step_ca;
  ProxmoxApi proxmox_api;
  DockerApi docker_api;
  Val<bool> rollback_on_failure;
  Val<bool> debug_mode;
  Val<std::string> mount_point_base;
  // Sections Phoenix keeps as written for the stages that use them.
  base::Node users, core_paths, zfs, nfs, proxmox_storage_ids, nvidia_driver, vm_defaults;
};

// Where the estate was read from.
struct EstatePaths {
  std::string config_dir;
  std::string stacks_dir;
  std::string bin_dir;
};

struct Estate {
  base::SourceManager sources;
  EstatePaths paths;
  Platform platform;
  base::Node vm_defaults;     // phoenix_vm_configs.json "vm_defaults"
  std::vector<Guest> guests;  // LXCs then VMs, each in file order
  std::vector<Stack> stacks;  // sorted by name

  const Guest* guest(GuestId id) const;
  const Stack* stack(std::string_view name) const;
  // Guests with `feature`, in file order.
  std::vector<const Guest*> guests_with_feature(std::string_view feature) const;
  // Rebuilds the lookup indexes; call after changing `guests` or `stacks`.
  void reindex();

 private:
  std::multimap<GuestId, std::size_t> guest_index_;
  std::map<std::string, std::size_t, std::less<>> stack_index_;
};

// The environment a docker_stacks entry deploys: the one it names; otherwise "production" when
// the stack has it, or the stack's only environment. nullptr when none applies.
const StackEnvironment* resolve_environment(const Stack& stack, const StackRef& ref);

// The features Phoenix knows how to apply inside a guest.
std::span<const std::string_view> known_features();

}  // namespace phoenix::model
