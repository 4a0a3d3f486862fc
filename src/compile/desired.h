#pragma once

// The desired state: everything Phoenix derives from the estate, as typed records for the
// renderers and as a flat list of resources (id, dependencies, fields) for the planner.

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/node.h"
#include "base/source.h"
#include "model/estate.h"

namespace phoenix::compile {

using model::GuestId;

// The five stages of `sync all` (DESIGN.md §6), plus the guests themselves, which `create`
// provisions before any stage can use them.
enum class Stage : int {
  kGuests = 0,
  kInfrastructure = 1,
  kSwarm = 2,
  kCoreServices = 3,
  kGateways = 4,
  kStacks = 5,
};

std::string_view to_string(Stage stage);

// Well-known places inside guests. Kept together so that renderers, the planner and later the
// providers agree on them.
struct Paths {
  static constexpr const char* kTraefikStatic = "/etc/traefik/traefik.yml";
  static constexpr const char* kTraefikDynamicDir = "/etc/traefik/dynamic";
  static constexpr const char* kTraefikDynamic = "/etc/traefik/dynamic/dynamic_conf.yml";
  static constexpr const char* kTraefikCertDir = "/etc/traefik/certs";
  static constexpr const char* kNginxSite = "/etc/nginx/sites-available/phoenix-gateway";
  // Debian's nginx.conf includes sites-enabled/*: the site is enabled by a link there.
  static constexpr const char* kNginxSiteEnabled = "/etc/nginx/sites-enabled/phoenix-gateway";
  static constexpr const char* kNginxCertDir = "/etc/nginx/ssl";
  static constexpr const char* kVllmUnit = "/etc/systemd/system/vllm.service";
  static constexpr const char* kVllmCertDir = "/etc/vllm/ssl";
  static constexpr const char* kRootCaName = "phoenix_root_ca.crt";
  // Traefik's client certificate for the manager's Docker API (its Swarm provider), in
  // kTraefikCertDir as <this>.crt and <this>.key.
  static constexpr const char* kTraefikDockerClient = "docker-client";
  static constexpr const char* kDnsRecords = "/etc/dnsmasq.d/00-phoenix-internal.conf";
};

inline constexpr const char* kTraefikNetwork = "traefik-public";
// Portainer, the core service of stage 3: its stack's default name (docker.portainer_stack
// changes it), and the node label that marks the
// swarm nodes of `portainer_role: agent` VMs, where its agent runs.
inline constexpr const char* kPortainerStack = "portainer";
inline constexpr const char* kPortainerAgentLabel = "com.phoenix.portainer-agent";

// A route of Traefik's file provider, for an LXC or VM `traefik_service`.
struct Route {
  std::string name;  // router, service and host label
  std::string host;  // <name>.<domain>
  std::string url;   // backend
  bool https = false;
  GuestId guest = 0;
};

struct DnsRecord {
  std::string host;
  std::string ip;
  std::string reason;  // "guest LXC 101", "route of LXC 102", "stack qdrant_service"
  std::optional<GuestId> guest = std::nullopt;  // the guest the name belongs to, or serving it
};

struct FirewallRule {
  std::string direction;  // IN | OUT
  std::string action;
  std::string source, dest, proto, dport, iface, comment;
};

struct FirewallRuleset {
  std::optional<GuestId> guest;  // nullopt: cluster-wide
  bool enabled = false;
  std::string policy_in, policy_out;  // cluster only; empty when unset
  std::vector<FirewallRule> rules;
};

struct StackDeployment {
  std::string stack;
  std::string environment;
  GuestId vm = 0;      // the VM whose docker_stacks names it
  base::Node compose;  // deployable: variables substituted, labels and network attached
  std::vector<std::string> routed_hosts;
};

struct VllmService {
  GuestId guest = 0;
  std::string guest_name;
  std::vector<std::string> argv;  // ExecStart
  std::vector<int> gpus;
  std::int64_t port = 0;
};

struct Certificate {
  std::string name;  // e.g. "gateway", "traefik", "vllm-801"
  GuestId guest = 0;
  std::string common_name;
  std::vector<std::string> sans;
  std::string cert_path, key_path;  // in the guest
};

struct Gateway {
  GuestId guest = 0;
  std::string domain;
  std::string upstream;  // http://<traefik ip>:80
  std::string cert_path, key_path;
};

struct TraefikInstance {
  GuestId guest = 0;
  std::string ip;
  std::optional<std::string> swarm_endpoint;  // tcp://<manager>:2376
};

// One thing Phoenix converges, as the planner sees it.
struct Resource {
  std::string id;    // "<kind>/<name>", unique
  std::string kind;  // lxc, vm, dns, firewall, cert, swarm-node, network, core-service, stack, file
  std::string name;
  Stage stage = Stage::kGuests;
  std::optional<GuestId> owner;   // the guest it belongs to, for `plan <ids>`
  std::vector<std::string> deps;  // ids of resources that must exist first
  nlohmann::json fields = nlohmann::json::object();
};

struct Desired {
  std::string domain;
  std::vector<Route> routes;
  std::vector<DnsRecord> dns;  // sorted by host
  std::vector<FirewallRuleset> firewalls;
  std::vector<StackDeployment> stacks;
  std::vector<VllmService> vllm;
  std::vector<Certificate> certificates;
  std::optional<Gateway> gateway;
  std::optional<TraefikInstance> traefik;
  std::vector<Resource> resources;  // sorted by id
};

struct CompileOptions {
  bool resources = true;  // the planner's resource list; rendering alone does not need it
};

// Derives the desired state. Expects an estate without validation errors; values that are
// still unusable are skipped rather than trusted.
Desired compile_estate(const model::Estate& estate, CompileOptions options = {});

// One stack made deployable with `environment` (default: the one the VM that names it in
// docker_stacks chose, else "production"). nullopt when the stack, its compose file or the
// environment does not exist.
std::optional<StackDeployment> compile_stack(const model::Estate& estate, std::string_view name,
                                             std::optional<std::string_view> environment);

// Portainer as a stack (stage 3): the server on the manager (docker.portainer_server_image),
// published on the manager's portainer_server_port (default 9443) in host mode for Traefik's
// file-provider route, and, when docker.portainer_agent_image is set, an agent on every node
// labelled kPortainerAgentLabel, which the server reaches over their own overlay network.
// nullopt without a manager VM or a server image.
std::optional<StackDeployment> portainer_stack(const model::Estate& estate);

// A guest's address without its prefix ("10.0.0.11" for "10.0.0.11/24"); nullopt for DHCP or
// no address.
std::optional<std::string> guest_ip(const model::Guest& g);

// A Node as JSON (for resource fields).
nlohmann::json to_json(const base::Node& node);

}  // namespace phoenix::compile
