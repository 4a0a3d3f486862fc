#include "validate/validate.h"

#include <algorithm>
#include <cctype>
#include <functional>
#include <map>
#include <set>
#include <unordered_map>

#include "base/hash.h"
#include "base/strings.h"
#include "model/interpolate.h"
#include "model/net.h"
#include "model/traefik.h"

namespace phoenix::validate {
namespace {

using base::Node;
using base::SourceLoc;
using model::Estate;
using model::Guest;
using model::GuestId;
using model::Val;

// Location of byte `offset` inside a JSON string literal that starts at `loc` (the opening
// quote). Exact as long as nothing before `offset` was escaped, which holds for labels.
SourceLoc inside_string(SourceLoc loc, std::size_t offset) {
  if (!loc.has_line()) return loc;
  loc.col += static_cast<std::uint32_t>(offset) + 1;
  return loc;
}

class Validator {
 public:
  Validator(const Estate& estate, base::Diagnostics& diags) : e_(estate), d_(diags) {}

  void run() {
    subnets_ = bridge_subnets();
    check_platform();
    check_uniqueness();
    for (const Guest& g : e_.guests) check_guest(g);
    check_references();
    check_cycles();
    check_gpus();
    check_swarm();
    check_stacks();
    check_routes();
    check_delivery();
  }

 private:
  // ---- helpers -----------------------------------------------------------------------------

  void first_seen(base::Diagnostic& diag, SourceLoc loc, std::string what) {
    diag.related.push_back({loc, std::move(what)});
  }

  void check_dns_name(const Val<std::string>& v, std::string_view what) {
    if (!v.present) return;
    if (!model::is_dns_name(v.value)) {
      d_.error("bad-hostname", v.loc,
               std::string(what) + " \"" + v.value + "\" is not a valid DNS name",
               "use letters, digits and hyphens, at most 63 characters per label, no leading "
               "or trailing hyphen");
    }
  }

  void check_ip_field(const Val<std::string>& v, std::string_view what) {
    if (v.present && !model::parse_ipv4(v.value)) {
      d_.error("bad-ip", v.loc, std::string(what) + " \"" + v.value + "\" is not an IPv4 address",
               "write it as four numbers, e.g. 10.0.0.1");
    }
  }

  // ---- phoenix_hypervisor_config.json ------------------------------------------------------

  void check_platform() {
    const model::Platform& p = e_.platform;
    if (!p.loc.has_file()) return;  // the file failed to load; already reported
    if (!p.domain_name.present) {
      d_.error("missing-key", p.loc, "domain_name is not set",
               "add \"domain_name\": \"internal.example.lan\"; host names are derived from it");
    } else {
      check_dns_name(p.domain_name, "domain_name");
    }
    const model::HostNetwork& n = p.network;
    if (n.address.present) {
      auto cidr = model::parse_cidr(n.address.value);
      if (!cidr) {
        d_.error("bad-ip", n.address.loc,
                 "interfaces.address \"" + n.address.value + "\" is not an address with a prefix",
                 "write it as CIDR, e.g. 10.0.0.13/24");
      } else if (n.gateway.present) {
        auto gw = model::parse_ipv4(n.gateway.value);
        if (!gw) {
          check_ip_field(n.gateway, "interfaces.gateway");
        } else if (!cidr->contains(*gw)) {
          d_.error("gateway-outside-subnet", n.gateway.loc,
                   "gateway " + n.gateway.value + " is outside the host's subnet " +
                       model::to_string(model::Cidr{cidr->network(), cidr->prefix}),
                   "a gateway must be reachable on the interface's own subnet");
        }
      }
    }
    for (const auto& ns : n.dns_nameservers) check_ip_field(ns, "dns_nameservers entry");
    for (const auto* v : {&n.default_subnet, &n.internal_bridge_subnet}) {
      if (v->present && !model::parse_cidr(v->value)) {
        d_.error("bad-ip", v->loc, "subnet \"" + v->value + "\" is not in CIDR form",
                 "write it as e.g. 10.0.0.0/24");
      }
    }
    check_ip_field(n.portainer_server_ip, "portainer_server_ip");
    check_ip_field(n.nfs_server, "nfs_server");
    for (const auto& up : p.dns_server.upstream_servers) check_ip_field(up, "upstream DNS server");
    check_dns_name(p.portainer_api.portainer_hostname, "portainer_hostname");
    check_dns_name(p.step_ca.dns_name, "step_ca.dns_name");
    if (p.firewall.present) {
      for (const auto* pol :
           {&p.firewall.default_input_policy, &p.firewall.default_output_policy}) {
        if (pol->present && pol->value != "ACCEPT" && pol->value != "DROP" &&
            pol->value != "REJECT") {
          d_.error("bad-firewall-rule", pol->loc,
                   "firewall policy \"" + pol->value + "\" is not ACCEPT, DROP or REJECT");
        }
      }
      for (const auto& rule : p.firewall.rules) check_rule(rule);
    }
  }

  // Bridge name -> subnet, from the host's interfaces and bridges.
  std::map<std::string, model::Cidr> bridge_subnets() const {
    std::map<std::string, model::Cidr> out;
    const model::HostNetwork& n = e_.platform.network;
    if (n.interface_name.present && n.address.present) {
      if (auto c = model::parse_cidr(n.address.value)) out[n.interface_name.value] = *c;
    }
    if (n.internal_bridge_name.present && n.internal_bridge_subnet.present) {
      if (auto c = model::parse_cidr(n.internal_bridge_subnet.value)) {
        out[n.internal_bridge_name.value] = *c;
      }
    }
    if (n.public_bridge.present && n.default_subnet.present && !out.count(n.public_bridge.value)) {
      if (auto c = model::parse_cidr(n.default_subnet.value)) out[n.public_bridge.value] = *c;
    }
    return out;
  }

  std::string default_vm_bridge() const {
    if (const Node* b =
            e_.vm_defaults.is_object() ? e_.vm_defaults.find("network_bridge") : nullptr;
        b && b->is_string()) {
      return b->text();
    }
    const auto& n = e_.platform.network;
    if (n.interface_name.present) return n.interface_name.value;
    return {};
  }

  // ---- per guest ---------------------------------------------------------------------------

  void check_guest(const Guest& g) {
    if (!g.name.present) {
      d_.error("missing-key", g.loc, g.label() + " has no \"name\"",
               "the name becomes the guest's host name");
    } else {
      if (!model::is_dns_name(g.name.value)) {
        d_.error("bad-hostname", g.name.loc,
                 "host name \"" + g.name.value + "\" of " + std::string(model::to_string(g.kind)) +
                     " " + std::to_string(g.id) + " is not a valid DNS name",
                 "use letters, digits and hyphens, at most 63 characters per label, no leading "
                 "or trailing hyphen");
      }
    }
    for (const auto& f : g.features) {
      auto known = model::known_features();
      if (std::find(known.begin(), known.end(), f.value) == known.end()) {
        auto guess = base::closest_match(f.value, known);
        d_.warning(
            "unknown-feature", f.loc, "unknown feature \"" + f.value + "\" in " + g.label(),
            guess ? "did you mean \"" + *guess + "\"?" : "known features: " + feature_list());
      }
    }
    if (g.is_lxc() && !g.os_template.present && !g.clone_from) {
      d_.error(
          "missing-key", g.loc, g.label() + " has neither \"template\" nor \"clone_from_ctid\"",
          "name an OS template, e.g. \"local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\"");
    }
    check_network(g, g.network, "network_config");
    if (g.secondary_network.present)
      check_network(g, g.secondary_network, "secondary_network_config");
    if (g.mac_address.present && !model::is_mac_address(g.mac_address.value)) {
      d_.error("bad-mac", g.mac_address.loc,
               "mac_address \"" + g.mac_address.value + "\" is not a MAC address",
               "write six hex pairs separated by colons, e.g. 52:54:00:12:34:56");
    }
    for (const auto& rule : g.firewall.rules) check_rule(rule);
    if (g.traefik_service.present) {
      const auto& t = g.traefik_service;
      if (!t.name.present) {
        d_.error("missing-key", t.loc, "traefik_service of " + g.label() + " has no \"name\"",
                 "the name becomes the route's host name: <name>." + domain());
      } else if (t.name.value.find('.') != std::string::npos || !model::is_dns_name(t.name.value)) {
        d_.error("bad-hostname", t.name.loc,
                 "traefik_service name \"" + t.name.value + "\" is not a valid DNS label",
                 "use letters, digits and hyphens; it becomes " + t.name.value + "." + domain());
      }
      if (!t.port.present) {
        d_.error("missing-key", t.loc, "traefik_service of " + g.label() + " has no \"port\"",
                 "give the port the service listens on inside the guest");
      }
      if (t.scheme.present && t.scheme.value != "http" && t.scheme.value != "https") {
        d_.error("bad-scheme", t.scheme.loc,
                 "traefik_service scheme \"" + t.scheme.value + "\" is not http or https");
      }
      if (!guest_ip(g)) {
        d_.error("route-without-address", t.loc,
                 g.label() + " is routed by Traefik but has no static IP address",
                 "give network_config.ip a static address in CIDR form");
      }
    }
    if (g.application_script && !g.application_script->exists) {
      d_.error("missing-script", g.application_script->name.loc,
               "application script \"" + g.application_script->name.value + "\" of " + g.label() +
                   " does not exist",
               "expected at " + g.application_script->resolved);
    }
    for (const auto& m : g.id_maps) {
      if (m.type.present && m.type.value != "uid" && m.type.value != "gid") {
        d_.error("bad-value", m.type.loc,
                 "id_maps type \"" + m.type.value + "\" is not uid or gid");
      }
    }
    for (const auto& mp : g.mount_points) {
      for (const auto* p : {&mp.host_path, &mp.container_path}) {
        if (!p->present) {
          d_.error("missing-key", mp.loc,
                   "mount point of " + g.label() +
                       " needs host_path and "
                       "container_path");
          break;
        }
        if (p->value.empty() || p->value.front() != '/') {
          d_.error("bad-path", p->loc, "mount point path \"" + p->value + "\" is not absolute");
        }
      }
    }
    if (g.is_vm()) {
      if (g.swarm_role.present && g.swarm_role.value != "manager" &&
          g.swarm_role.value != "worker") {
        d_.error("bad-value", g.swarm_role.loc,
                 "swarm_role \"" + g.swarm_role.value + "\" is not manager or worker");
      }
      for (const auto& l : g.node_labels) {
        std::size_t eq = l.value.find('=');
        if (eq == std::string::npos || eq == 0) {
          d_.error("bad-label", l.loc,
                   "node label \"" + l.value + "\" is not of the form key=value");
        }
      }
      check_dns_name(g.portainer_agent_hostname, "portainer_agent_hostname");
    }
    if (g.portainer_role.present) {
      static const std::set<std::string, std::less<>> kRoles = {"primary", "agent", "none",
                                                                "infrastructure", "server"};
      if (!kRoles.count(g.portainer_role.value)) {
        d_.error("bad-value", g.portainer_role.loc,
                 "portainer_role \"" + g.portainer_role.value +
                     "\" is not primary, agent, server, infrastructure or none");
      }
    }
    check_vllm(g);
  }

  std::string feature_list() const {
    std::vector<std::string> names;
    for (std::string_view f : model::known_features()) names.emplace_back(f);
    return base::join(names, ", ");
  }

  std::string domain() const {
    return e_.platform.domain_name.present ? e_.platform.domain_name.value : "<domain_name>";
  }

  static std::optional<model::Cidr> guest_ip(const Guest& g) {
    if (!g.network.ip.present) return std::nullopt;
    return model::parse_cidr(g.network.ip.value);
  }

  void check_network(const Guest& g, const model::NetworkConfig& net, std::string_view key) {
    if (!net.present) {
      if (!g.is_template.value) {
        d_.error("missing-key", g.loc, g.label() + " has no " + std::string(key),
                 "give it at least \"ip\" (CIDR or \"dhcp\")");
      }
      return;
    }
    std::optional<model::Cidr> cidr;
    if (!net.ip.present) {
      d_.error("missing-key", net.loc, std::string(key) + " of " + g.label() + " has no \"ip\"",
               "write a CIDR address such as 10.0.0.20/24, or \"dhcp\"");
    } else if (net.ip.value != "dhcp") {
      cidr = model::parse_cidr(net.ip.value);
      if (!cidr) {
        std::string hint = model::parse_ipv4(net.ip.value)
                               ? "add the prefix length, e.g. " + net.ip.value + "/24"
                               : "write a CIDR address such as 10.0.0.20/24, or \"dhcp\"";
        d_.error("bad-ip", net.ip.loc,
                 "ip \"" + net.ip.value + "\" of " + g.label() + " is not a CIDR address", hint);
      }
    }
    std::string bridge =
        net.bridge.present ? net.bridge.value : (g.is_vm() ? default_vm_bridge() : std::string());
    if (cidr && !bridge.empty()) {
      auto it = subnets_.find(bridge);
      if (it == subnets_.end()) {
        if (net.bridge.present && !subnets_.empty()) {
          d_.warning("unknown-bridge", net.bridge.loc,
                     "bridge \"" + bridge + "\" is not described in " +
                         "phoenix_hypervisor_config.json, so its subnet cannot be checked",
                     "describe it under network.interfaces or network.internal_bridge");
        }
      } else if (!it->second.contains(cidr->addr)) {
        d_.error("ip-outside-subnet", net.ip.loc,
                 "ip " + model::to_string(cidr->addr) + " of " + g.label() +
                     " is outside the subnet of bridge " + bridge + " (" +
                     model::to_string(model::Cidr{it->second.network(), it->second.prefix}) + ")",
                 "pick an address inside " +
                     model::to_string(model::Cidr{it->second.network(), it->second.prefix}));
      }
    }
    if (net.gw.present) {
      auto gw = model::parse_ipv4(net.gw.value);
      if (!gw) {
        check_ip_field(net.gw, "gw");
      } else if (cidr && !cidr->contains(*gw)) {
        d_.error("gateway-outside-subnet", net.gw.loc,
                 "gateway " + net.gw.value + " of " + g.label() + " is outside its subnet " +
                     model::to_string(model::Cidr{cidr->network(), cidr->prefix}),
                 "a gateway must be on the guest's own subnet");
      }
    }
    for (const auto& ns : net.nameservers) check_ip_field(ns, "nameserver");
    if (net.hwaddr.present && !model::is_mac_address(net.hwaddr.value)) {
      d_.error("bad-mac", net.hwaddr.loc,
               "hwaddr \"" + net.hwaddr.value + "\" is not a MAC address",
               "write six hex pairs separated by colons, e.g. 52:54:00:12:34:56");
    }
  }

  void check_vllm(const Guest& g) {
    const model::VllmConfig& v = g.vllm;
    if (!v.present) {
      if (g.has_feature("vllm") && !g.is_template.value) {
        d_.error("vllm-missing-config", g.loc,
                 g.label() + " has the vllm feature but no vllm_engine_config",
                 "add vllm_engine_config with at least ModelConfig.model and ServerConfig.port");
      }
      return;
    }
    if (!v.model.present || v.model.value.empty()) {
      d_.error("vllm-missing-model", v.loc, "vllm_engine_config of " + g.label() + " has no model",
               "set ModelConfig.model, e.g. \"ibm-granite/granite-embedding-english-r2\"");
    }
    if (!v.port.present) {
      d_.error("vllm-missing-port", v.loc, "vllm_engine_config of " + g.label() + " has no port",
               "set ServerConfig.port, e.g. 8000");
    }
    if (g.is_vm() || g.gpus.empty()) {
      d_.error("vllm-without-gpu", v.loc,
               g.label() + " has a vllm_engine_config but no GPU assigned",
               g.is_vm() ? "vLLM runs in GPU LXCs; move it to an LXC with gpu_assignment"
                         : "set gpu_assignment, e.g. \"0\"");
    } else if (v.tensor_parallel_size.present &&
               static_cast<std::size_t>(v.tensor_parallel_size.value) > g.gpus.size()) {
      d_.error("vllm-parallelism", v.tensor_parallel_size.loc,
               "tensor_parallel_size " + std::to_string(v.tensor_parallel_size.value) + " of " +
                   g.label() + " exceeds its " + std::to_string(g.gpus.size()) + " GPU(s)",
               "assign more GPUs or lower tensor_parallel_size");
    }
    if (g.traefik_service.present && g.traefik_service.port.present && v.port.present &&
        g.traefik_service.port.value != v.port.value) {
      d_.warning("port-mismatch", g.traefik_service.port.loc,
                 "traefik_service port " + std::to_string(g.traefik_service.port.value) +
                     " differs from the vLLM server port " + std::to_string(v.port.value),
                 "Traefik would route to a port vLLM does not listen on");
    }
  }

  // ---- firewall rules ----------------------------------------------------------------------

  void check_rule(const model::FirewallRule& r) {
    if (!r.type.present) {
      d_.error("bad-firewall-rule", r.loc, "firewall rule has no \"type\"",
               "use \"in\" or \"out\"");
    } else if (r.type.value != "in" && r.type.value != "out") {
      d_.error("bad-firewall-rule", r.type.loc,
               "firewall rule type \"" + r.type.value + "\" is not \"in\" or \"out\"");
    }
    if (!r.action.present) {
      d_.error("bad-firewall-rule", r.loc, "firewall rule has no \"action\"",
               "use ACCEPT, DROP or REJECT");
    } else if (r.action.value != "ACCEPT" && r.action.value != "DROP" &&
               r.action.value != "REJECT") {
      std::string up;
      for (char c : r.action.value)
        up += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      d_.error(
          "bad-firewall-rule", r.action.loc,
          "firewall action \"" + r.action.value + "\" is not ACCEPT, DROP or REJECT",
          up == "ACCEPT" || up == "DROP" || up == "REJECT" ? "write it in capitals: " + up : "");
    }
    bool proto_ok = true;
    if (r.proto.present) {
      static const std::set<std::string, std::less<>> kProtos = {
          "tcp", "udp", "icmp", "icmpv6", "ipv6-icmp", "sctp", "udplite", "gre", "esp", "ah"};
      if (!kProtos.count(r.proto.value)) {
        proto_ok = false;
        d_.error("bad-firewall-rule", r.proto.loc,
                 "firewall proto \"" + r.proto.value + "\" is not a known protocol",
                 "use tcp, udp, icmp, icmpv6, sctp, gre, esp or ah");
      }
    }
    if (r.port.present && proto_ok) {
      if (!r.proto.present || (r.proto.value != "tcp" && r.proto.value != "udp" &&
                               r.proto.value != "sctp" && r.proto.value != "udplite")) {
        d_.error("bad-firewall-rule", r.port.loc,
                 "firewall rule has a port but its proto has no ports",
                 "add \"proto\": \"tcp\" (ports exist for tcp, udp, sctp and udplite)");
      }
      for (const std::string& part : base::split(r.port.value, ',')) {
        if (!valid_port_or_range(base::trim(part))) {
          d_.error("bad-firewall-rule", r.port.loc,
                   "firewall port \"" + r.port.value + "\" is not a list of ports 1-65535",
                   "write ports and ranges like \"80,443\" or \"8000:8010\"");
          break;
        }
      }
    }
    for (const auto* addr : {&r.source, &r.dest}) {
      if (!addr->present) continue;
      for (const std::string& part : base::split(addr->value, ',')) {
        if (!model::parse_cidr(base::trim(part), true)) {
          d_.error("bad-firewall-rule", addr->loc,
                   "firewall address \"" + addr->value + "\" is not an IPv4 address or CIDR",
                   "write e.g. 10.0.0.12 or 10.0.0.0/24");
          break;
        }
      }
    }
  }

  static bool valid_port(std::string_view s) {
    auto v = base::parse_uint(s);
    return v && *v >= 1 && *v <= 65535;
  }
  static bool valid_port_or_range(std::string_view s) {
    std::size_t colon = s.find(':');
    if (colon == std::string_view::npos) return valid_port(s);
    std::string_view a = s.substr(0, colon), b = s.substr(colon + 1);
    return valid_port(a) && valid_port(b) && *base::parse_uint(a) <= *base::parse_uint(b);
  }

  // ---- uniqueness --------------------------------------------------------------------------

  void check_uniqueness() {
    std::unordered_map<GuestId, const Guest*> ids;
    std::unordered_map<std::string, std::pair<const Guest*, SourceLoc>> names, ips, macs;
    ids.reserve(e_.guests.size());
    names.reserve(e_.guests.size());
    ips.reserve(e_.guests.size());
    macs.reserve(e_.guests.size());
    for (const Guest& g : e_.guests) {
      if (auto [it, fresh] = ids.emplace(g.id, &g); !fresh) {
        auto& diag =
            d_.error("duplicate-id", g.loc, "guest id " + std::to_string(g.id) + " is used twice",
                     "LXC and VM ids share one namespace on a Proxmox node; pick a free id");
        first_seen(diag, it->second->loc, "first used by " + it->second->label());
      }
      // `what` describes the value, and is only called for a value seen before: the messages
      // are built for the duplicates, not for every guest.
      auto unique = [&](auto& seen, std::string key, SourceLoc loc, const char* code,
                        const auto& what, const char* hint) {
        if (key.empty()) return;
        auto [it, fresh] = seen.emplace(std::move(key), std::make_pair(&g, loc));
        if (fresh || it->second.first == &g) return;
        auto& diag =
            d_.error(code, loc, what() + " is also used by " + it->second.first->label(), hint);
        first_seen(diag, it->second.second, "first used here");
      };
      if (g.name.present) {
        unique(
            names, base::to_lower(g.name.value), g.name.loc, "duplicate-hostname",
            [&] { return "host name \"" + g.name.value + "\" of " + g.label(); },
            "give each guest its own name");
      }
      for (const auto* net : {&g.network, &g.secondary_network}) {
        if (net->ip.present) {
          if (auto c = model::parse_cidr(net->ip.value)) {
            unique(
                ips, model::to_string(c->addr), net->ip.loc, "duplicate-ip",
                [&] { return "IP address " + model::to_string(c->addr) + " of " + g.label(); },
                "give each guest its own address");
          }
        }
        if (net->hwaddr.present && model::is_mac_address(net->hwaddr.value)) {
          unique(
              macs, base::to_lower(net->hwaddr.value), net->hwaddr.loc, "duplicate-mac",
              [&] { return "MAC address " + net->hwaddr.value + " of " + g.label(); },
              "give each interface its own MAC address");
        }
      }
      if (g.mac_address.present && model::is_mac_address(g.mac_address.value) &&
          !(g.network.hwaddr.present &&
            base::to_lower(g.network.hwaddr.value) == base::to_lower(g.mac_address.value))) {
        unique(
            macs, base::to_lower(g.mac_address.value), g.mac_address.loc, "duplicate-mac",
            [&] { return "MAC address " + g.mac_address.value + " of " + g.label(); },
            "give each interface its own MAC address");
      }
    }
  }

  // ---- references --------------------------------------------------------------------------

  void check_references() {
    for (const Guest& g : e_.guests) {
      for (const auto& dep : g.dependencies) {
        if (dep.id == g.id) {
          d_.error("dependency-cycle", dep.loc, g.label() + " depends on itself");
        } else if (!e_.guest(dep.id)) {
          d_.error(
              "missing-dependency", dep.loc,
              g.label() + " depends on guest " + std::to_string(dep.id) + ", which is not defined",
              "define it in phoenix_lxc_configs.json or phoenix_vm_configs.json, or remove "
              "the dependency");
        }
      }
      if (g.clone_from) {
        const Guest* src = e_.guest(g.clone_from->id);
        std::string key = g.is_lxc() ? "clone_from_ctid" : "clone_from_vmid";
        if (!src) {
          d_.error("missing-clone-source", g.clone_from->loc,
                   key + " of " + g.label() + " names guest " + std::to_string(g.clone_from->id) +
                       ", which is not defined",
                   "define the template guest, or use \"template\" instead");
        } else if (src->kind != g.kind) {
          d_.error("clone-kind-mismatch", g.clone_from->loc,
                   g.label() + " cannot be cloned from " + src->label(),
                   "an LXC clones an LXC, a VM clones a VM");
        } else if (src->id == g.id) {
          d_.error("dependency-cycle", g.clone_from->loc, g.label() + " is cloned from itself");
        }
      }
    }
  }

  void check_cycles() {
    // Edges: dependencies and clone sources. Depth-first search with colours; each cycle is
    // reported once, at the reference that closes it.
    std::map<GuestId, int> colour;  // 0 new, 1 on stack, 2 done
    std::vector<std::pair<GuestId, SourceLoc>> stack;
    std::function<void(const Guest&)> visit = [&](const Guest& g) {
      colour[g.id] = 1;
      auto edges = out_edges(g);
      for (const auto& ref : edges) {
        const Guest* next = e_.guest(ref.id);
        if (!next || next->id == g.id) continue;
        int c = colour[next->id];
        if (c == 1) {
          std::vector<std::string> path;
          auto it = std::find_if(stack.begin(), stack.end(),
                                 [&](const auto& p) { return p.first == next->id; });
          for (; it != stack.end(); ++it) path.push_back(std::to_string(it->first));
          path.push_back(std::to_string(g.id));
          path.push_back(std::to_string(next->id));
          d_.error("dependency-cycle", ref.loc, "dependency cycle: " + base::join(path, " -> "),
                   "remove one of these dependencies; guests are created in dependency order");
        } else if (c == 0) {
          stack.emplace_back(g.id, ref.loc);
          visit(*next);
          stack.pop_back();
        }
      }
      colour[g.id] = 2;
    };
    for (const Guest& g : e_.guests) {
      if (colour[g.id] == 0) {
        stack.clear();
        visit(g);
      }
    }
  }

  static std::vector<model::GuestRef> out_edges(const Guest& g) {
    std::vector<model::GuestRef> edges;
    if (g.clone_from) edges.push_back(*g.clone_from);
    edges.insert(edges.end(), g.dependencies.begin(), g.dependencies.end());
    return edges;
  }

  // ---- GPUs --------------------------------------------------------------------------------

  void check_gpus() {
    std::map<int, const Guest*> owner;
    for (const Guest& g : e_.guests) {
      if (g.is_template.value) continue;  // templates never run
      for (int gpu : g.gpus) {
        auto [it, fresh] = owner.emplace(gpu, &g);
        if (!fresh) {
          auto& diag = d_.error("gpu-conflict", g.gpu_assignment.loc,
                                "GPU " + std::to_string(gpu) + " is assigned to both " +
                                    it->second->label() + " and " + g.label(),
                                "a GPU serves one running guest; give this guest another GPU, or "
                                "make one of them a template");
          first_seen(diag, it->second->gpu_assignment.loc, "also assigned here");
        }
      }
    }
  }

  // ---- swarm -------------------------------------------------------------------------------

  // A Docker endpoint is a local socket or TCP with mutual TLS; Phoenix never uses plain TCP.
  void check_docker_api(const model::DockerApi& api, std::string_view where) {
    if (!api.present || !api.url.present) return;
    const std::string& url = api.url.value;
    if (url.starts_with("unix://") && url.size() > 7 && url[7] == '/') return;
    if (!url.starts_with("tcp://") || url.size() <= 6) {
      d_.error("bad-docker-url", api.url.loc,
               std::string(where) + ".url \"" + url + "\" is not a Docker endpoint",
               "write unix:///var/run/docker.sock or tcp://<host>:2376");
      return;
    }
    const model::DockerApi& platform = e_.platform.docker_api;
    auto has = [&](const model::Val<std::string> model::DockerApi::*file) {
      return (api.*file).present || (platform.*file).present;
    };
    if (!has(&model::DockerApi::ca_file) || !has(&model::DockerApi::cert_file) ||
        !has(&model::DockerApi::key_file)) {
      d_.error("docker-tls-missing", api.url.loc,
               std::string(where) + ".url " + url +
                   " is TCP but ca_file, cert_file and key_file "
                   "are not all set",
               "Phoenix talks to a remote engine only with mutual TLS: set the three files here "
               "or in the platform's docker_api");
    }
  }

  // The Proxmox endpoint: an https URL, an API token id, its secret in a file, and a way to
  // verify the node (CA file, pinned fingerprint, the system's CAs, or insecure on purpose).
  void check_proxmox_api() {
    const model::ProxmoxApi& api = e_.platform.proxmox_api;
    if (!api.present) return;
    if (api.url.present && !api.url.value.starts_with("https://")) {
      d_.error("bad-proxmox-url", api.url.loc,
               "proxmox_api.url \"" + api.url.value + "\" is not an https:// URL",
               "write it as https://<node address>:8006");
    }
    if (api.token_id.present) {
      const std::string& id = api.token_id.value;
      auto at = id.find('@'), bang = id.find('!');
      if (at == std::string::npos || bang == std::string::npos || bang < at || at == 0 ||
          bang + 1 == id.size()) {
        d_.error("bad-token-id", api.token_id.loc,
                 "proxmox_api.token_id \"" + id + "\" is not an API token id",
                 "write user@realm!tokenname, e.g. root@pam!phoenix");
      }
      if (!api.token_secret_file.present) {
        d_.error("missing-key", api.token_id.loc,
                 "proxmox_api has a token_id but no token_secret_file",
                 "put the token's secret in a file with mode 0600 and name it with "
                 "\"token_secret_file\"");
      }
    }
    if (api.fingerprint.present) {
      if (!base::normalize_sha256_fingerprint(api.fingerprint.value)) {
        d_.error("bad-fingerprint", api.fingerprint.loc,
                 "proxmox_api.fingerprint is not a SHA-256 certificate fingerprint",
                 "copy it from `pvenode cert info` (32 bytes in hex, colons allowed)");
      }
    }
    if (api.host_ssh.present) {
      const std::string& t = api.host_ssh.value;
      if (t.empty() || t.starts_with('-') ||
          t.find_first_of(" \t\n'\"\\;&|$`") != std::string::npos) {
        d_.error("bad-host-ssh", api.host_ssh.loc,
                 "proxmox_api.host_ssh \"" + t + "\" is not an SSH destination",
                 "write user@host, e.g. root@10.0.0.13");
      }
    }
    if (api.host_root.present && !api.host_root.value.starts_with('/')) {
      d_.error("bad-host-root", api.host_root.loc,
               "proxmox_api.host_root \"" + api.host_root.value + "\" is not an absolute path",
               "write the directory that stands for the node's / (default /)");
    }
    if (api.insecure.present && api.insecure.value &&
        (api.ca_file.present || api.fingerprint.present)) {
      d_.warning("insecure-ignored", api.insecure.loc,
                 "proxmox_api.insecure is true but a ca_file or fingerprint is set; Phoenix "
                 "verifies the node with those and ignores insecure",
                 "remove \"insecure\"");
    }
  }

  void check_swarm() {
    check_proxmox_api();
    check_docker_api(e_.platform.docker_api, "docker_api");
    for (const Guest& g : e_.guests) {
      if (g.is_vm()) check_docker_api(g.docker_api, g.label() + " docker_api");
    }
    const Guest* manager = nullptr;
    for (const Guest& g : e_.guests) {
      if (!g.is_vm() || g.swarm_role.value != "manager") continue;
      if (manager) {
        auto& diag = d_.error("multiple-managers", g.swarm_role.loc,
                              g.label() + " is a second swarm manager",
                              "Phoenix manages a swarm with one manager VM");
        first_seen(diag, manager->swarm_role.loc, "first manager: " + manager->label());
      } else {
        manager = &g;
      }
    }
    for (const Guest& g : e_.guests) {
      if (!g.is_vm()) continue;
      if (g.swarm_role.value == "worker" && !manager) {
        d_.error("no-swarm-manager", g.swarm_role.loc,
                 g.label() + " is a swarm worker but no VM has swarm_role \"manager\"");
      }
      if (!g.docker_stacks.empty() && !g.swarm_role.present) {
        d_.error("stack-outside-swarm", g.docker_stacks.front().loc,
                 g.label() + " has docker_stacks but no swarm_role",
                 "stacks run on the swarm; set \"swarm_role\": \"manager\" or \"worker\"");
      }
    }
  }

  // ---- stacks ------------------------------------------------------------------------------

  void check_stacks() {
    for (const model::Stack& s : e_.stacks) {
      const auto& p = e_.platform;
      std::string core = p.portainer_stack.present ? p.portainer_stack.value : "portainer";
      if (s.name == core && p.portainer_server_image.present) {
        d_.error("reserved-stack-name", s.has_compose ? s.compose_loc : s.manifest_loc,
                 "stack " + s.name +
                     " has the name of Phoenix's core service: Portainer is "
                     "deployed as the stack \"" +
                     core + "\" from docker.portainer_server_image",
                 "rename the directory stacks/" + s.name + ", or set docker.portainer_stack");
      }
      if (s.compose_unreadable) continue;  // its syntax error is already reported
      if (!s.has_compose) {
        d_.error("missing-file", s.manifest_loc,
                 "stack " + s.name + " has phoenix.json but no docker-compose.yml",
                 "add " + s.dir + "/docker-compose.yml");
        continue;
      }
      if (!s.has_manifest) {
        d_.warning("missing-file", s.compose_loc,
                   "stack " + s.name + " has no phoenix.json, so none of its services is routed",
                   "add " + s.dir + "/phoenix.json with its environments");
      }
      check_compose(s);
      for (const model::StackEnvironment& env : s.environments) check_environment(s, env);
    }
    for (const Guest& g : e_.guests) {
      for (const model::StackRef& ref : g.docker_stacks) {
        const model::Stack* s = e_.stack(ref.name.value);
        if (!s) {
          std::vector<std::string_view> names;
          for (const auto& st : e_.stacks) names.push_back(st.name);
          auto guess = base::closest_match(ref.name.value, names);
          d_.error("missing-stack", ref.name.loc,
                   g.label() + " deploys stack \"" + ref.name.value + "\", which does not exist",
                   guess ? "did you mean \"" + *guess + "\"?"
                         : "create " + config_join(e_.paths.stacks_dir, ref.name.value) +
                               "/ with docker-compose.yml and phoenix.json");
          continue;
        }
        if (!model::resolve_environment(*s, ref)) {
          std::vector<std::string> envs;
          for (const auto& e : s->environments) envs.push_back(e.name);
          if (ref.environment.present) {
            d_.error("missing-environment", ref.environment.loc,
                     "stack " + s->name + " has no environment \"" + ref.environment.value + "\"",
                     envs.empty() ? "define it under \"environments\" in phoenix.json"
                                  : "it defines: " + base::join(envs, ", "));
          } else if (!envs.empty()) {
            d_.error("ambiguous-environment", ref.loc,
                     g.label() + " deploys stack " + s->name +
                         " without naming an environment, and it has no \"production\"",
                     "write {\"name\": \"" + s->name + "\", \"environment\": \"" + envs.front() +
                         "\"}; it defines: " + base::join(envs, ", "));
          }
        } else {
          check_interpolation(*s, *model::resolve_environment(*s, ref));
        }
      }
    }
  }

  static std::string config_join(const std::string& a, const std::string& b) {
    return a.empty() ? b : a + "/" + b;
  }

  void check_compose(const model::Stack& s) {
    const Node* services = s.compose.find("services");
    if (!services || !services->is_object() || services->size() == 0) {
      d_.error("compose-no-services", s.compose.loc().has_line() ? s.compose.loc() : s.compose_loc,
               "compose file of stack " + s.name + " defines no services");
      return;
    }
    for (const Node::Member& svc : services->members()) {
      if (!svc.value.is_object()) {
        d_.error("wrong-type", svc.value.loc(),
                 "service " + svc.key + " of stack " + s.name + " must be a mapping");
        continue;
      }
      for (const char* key : {"ports", "expose"}) {
        if (const Node::Member* m = svc.value.find_member(key)) {
          d_.error(std::string("compose-") + key, m->key_loc,
                   "service " + svc.key + " of stack " + s.name + " uses \"" + key + "\"",
                   "the platform reaches services only through Traefik: remove \"" +
                       std::string(key) + "\" and route with traefik_labels in phoenix.json");
        }
      }
      if (const Node* deploy = svc.value.find("deploy"); deploy && deploy->is_object()) {
        if (const Node* labels = deploy->find("labels");
            labels && !labels->is_null() && !labels->is_array() && !labels->is_object()) {
          d_.error("wrong-type", labels->loc(),
                   "deploy.labels of service " + svc.key + " must be a list or a mapping");
        }
      }
    }
  }

  void check_environment(const model::Stack& s, const model::StackEnvironment& env) {
    const Node* services = s.compose.find("services");
    for (const model::StackService& svc : env.services) {
      if (services && services->is_object() && !services->find(svc.name)) {
        std::vector<std::string_view> names;
        for (const auto& m : services->members()) names.push_back(m.key);
        auto guess = base::closest_match(svc.name, names);
        d_.error("unknown-service", svc.loc,
                 "environment " + env.name + " of stack " + s.name + " configures service \"" +
                     svc.name + "\", which the compose file does not define",
                 guess ? "did you mean \"" + *guess + "\"?" : "");
      }
      check_labels(s, env, svc);
    }
    for (const auto& v : env.variables) {
      if (!v.name.present || v.name.value.empty()) {
        d_.error("missing-key", v.loc,
                 "variable in environment " + env.name + " of stack " + s.name + " has no name");
      }
    }
    for (const auto& f : env.files) {
      if (!f.source.name.present) {
        d_.error("missing-key", f.loc, "file entry of stack " + s.name + " has no \"source\"");
      } else if (!f.source.exists) {
        d_.error("missing-file", f.source.name.loc,
                 "file \"" + f.source.name.value + "\" of stack " + s.name + " does not exist",
                 "expected at " + f.source.resolved);
      }
      if (!f.destination.present) {
        d_.error("missing-key", f.loc,
                 "file entry of stack " + s.name + " has no \"destination_in_container\"");
      }
    }
    for (const auto& rule : env.firewall_rules) check_rule(rule);
  }

  void check_labels(const model::Stack& s, const model::StackEnvironment& env,
                    const model::StackService& svc) {
    std::vector<model::Label> labels;
    for (const auto& text : svc.traefik_labels) {
      auto l = model::split_label(text.value, text.loc);
      if (!l) {
        d_.error("bad-label", text.loc, "label \"" + text.value + "\" is not of the form key=value",
                 "write e.g. \"traefik.enable=true\"");
        continue;
      }
      if (!l->key.starts_with("traefik.")) {
        d_.error(
            "bad-label", text.loc, "label \"" + l->key + "\" does not start with \"traefik.\"",
            "traefik_labels holds Traefik's labels only; put other labels in the compose file");
        continue;
      }
      labels.push_back(*l);
    }
    model::LabelModel m = model::model_labels(labels);
    for (const auto& [name, router] : m.routers) {
      if (!router.rule) {
        d_.error(
            "bad-rule", router.loc, "router " + name + " of stack " + s.name + " has no rule",
            "add traefik.http.routers." + name + ".rule=Host(`" + name + "." + domain() + "`)");
        continue;
      }
      check_rule_text(router.rule->value, router.rule->loc, router.rule->key.size() + 1 /* '=' */);
      if (router.entrypoints) {
        for (const std::string& ep : base::split(router.entrypoints->value, ',')) {
          std::string name_ep(base::trim(ep));
          if (!is_entrypoint(name_ep)) {
            d_.error("unknown-entrypoint", router.entrypoints->loc,
                     "entry point \"" + name_ep + "\" is not defined in Traefik's configuration",
                     "use web, websecure or traefik");
          }
        }
      }
    }
    if (m.enabled() || !m.routers.empty()) {
      bool has_port = std::any_of(m.services.begin(), m.services.end(),
                                  [](const auto& kv) { return kv.second.port.has_value(); });
      if (!has_port) {
        SourceLoc loc = svc.traefik_labels.empty() ? svc.loc : svc.traefik_labels.front().loc;
        d_.error("missing-server-port", loc,
                 "service " + svc.name + " of stack " + s.name + " (" + env.name +
                     ") is routed but has no loadbalancer.server.port label",
                 "add \"traefik.http.services." + svc.name +
                     ".loadbalancer.server.port=<port>\"; with no published ports Traefik cannot "
                     "guess it");
      }
    }
    for (const auto& [name, service] : m.services) {
      if (!service.port) continue;
      const std::string& v = service.port->value;
      if (v.find('$') == std::string::npos && !valid_port(v)) {
        d_.error("bad-label", service.port->loc,
                 "loadbalancer.server.port \"" + v + "\" is not a port 1-65535");
      }
    }
  }

  static bool is_entrypoint(std::string_view name) {
    return name == "web" || name == "websecure" || name == "traefik";
  }

  void check_rule_text(const std::string& rule, SourceLoc label_loc, std::size_t offset_in_label) {
    model::ParsedRule parsed;
    if (auto err = model::parse_rule(rule, &parsed)) {
      d_.error("bad-rule", inside_string(label_loc, offset_in_label + err->offset),
               "invalid Traefik rule: " + err->message,
               "Traefik v3 rules look like Host(`app." + domain() + "`) && PathPrefix(`/api`)");
      return;
    }
    for (const std::string& host : parsed.hosts) {
      if (host.find('$') == std::string::npos && !model::is_dns_name(host)) {
        std::size_t at = rule.find(host);
        d_.error(
            "bad-hostname",
            at == std::string::npos ? label_loc : inside_string(label_loc, offset_in_label + at),
            "Host(`" + host + "`) is not a valid DNS name",
            "use letters, digits, hyphens and dots only");
      }
    }
  }

  void check_interpolation(const model::Stack& s, const model::StackEnvironment& env) {
    std::map<std::string, std::string, std::less<>> vars;
    for (const auto& v : env.variables) vars[v.name.value] = v.value.value;
    std::set<std::string> reported;
    std::function<void(const Node&)> walk = [&](const Node& n) {
      if (n.is_string()) {
        auto r = model::interpolate(n.text(), vars);
        if (r.error) {
          d_.error("bad-variable", n.loc(), *r.error + " (stack " + s.name + ", " + env.name + ")");
        }
        for (const std::string& name : r.unset) {
          if (!reported.insert(name).second) continue;
          d_.warning("unset-variable", n.loc(),
                     "variable " + name + " is not set in environment " + env.name + " of stack " +
                         s.name + "; it becomes an empty string",
                     "add {\"name\": \"" + name +
                         "\", \"value\": ...} to its variables, or "
                         "write ${" +
                         name + ":-default}");
        }
      } else if (n.is_array()) {
        for (const Node& i : n.items()) walk(i);
      } else if (n.is_object()) {
        for (const auto& m : n.members()) walk(m.value);
      }
    };
    walk(s.compose);
    for (const auto& svc : env.services) {
      for (const auto& l : svc.traefik_labels) walk(Node::string(l.value, l.loc));
    }
  }

  // ---- routes: file provider against stacks ------------------------------------------------

  struct NameOwner {
    std::string owner;  // "the file provider (LXC 102)" or "stack qdrant_service (production)"
    SourceLoc loc;
    std::string stack;  // empty for the file provider
  };

  // ---- delivery (sync dns, sync gateways) ---------------------------------------------------

  // A command is a non-empty list of words; one word with spaces is shell text, which Phoenix
  // never runs.
  void check_argv(const model::Argv& argv, std::string_view what, std::string_view example) {
    if (!argv.present) return;
    std::string hint = "write the command as a list of words, e.g. " + std::string(example);
    if (argv.args.empty() || argv.args.front().value.empty()) {
      d_.error("bad-command", argv.loc, std::string(what) + " is an empty command", hint);
      return;
    }
    const Val<std::string>& program = argv.args.front();
    if (program.value.find_first_of(" \t\n") != std::string::npos) {
      d_.error("bad-command", program.loc,
               std::string(what) + " names the program \"" + program.value +
                   "\"; Phoenix runs commands without a shell",
               "split it into words: " + std::string(example));
    }
  }

  void check_absolute(const Val<std::string>& path, std::string_view what, std::string_view hint) {
    if (path.present && !path.value.starts_with('/')) {
      d_.error("bad-path", path.loc,
               std::string(what) + " \"" + path.value + "\" is not an absolute path",
               std::string(hint));
    }
  }

  void check_delivery() {
    const model::Platform& p = e_.platform;
    const model::DnsServer& dns = p.dns_server;
    check_absolute(dns.records_file, "dns_server.records_file",
                   "write the path on the host, e.g. /etc/dnsmasq.d/00-phoenix-internal.conf");
    check_argv(dns.reload, "dns_server.reload", R"(["systemctl", "restart", "dnsmasq"])");
    // dnsmasq reads address= lines only when it starts: SIGHUP (what `systemctl reload` sends
    // it) re-reads hosts files, never configuration files.
    std::vector<std::string> words;
    for (const auto& a : dns.reload.args) words.push_back(a.value);
    bool sighup = words == std::vector<std::string>{"systemctl", "reload", "dnsmasq"} ||
                  words == std::vector<std::string>{"systemctl", "reload", "dnsmasq.service"} ||
                  words == std::vector<std::string>{"service", "dnsmasq", "reload"};
    if (sighup) {
      d_.warning("dns-reload-sighup", dns.reload.loc,
                 "dns_server.reload signals dnsmasq (SIGHUP), which does not re-read the "
                 "address= records of its configuration files",
                 R"(restart it instead: ["systemctl", "restart", "dnsmasq"])");
    }
    check_argv(p.nginx_gateway.test, "nginx_gateway.test", R"(["nginx", "-t"])");
    check_argv(p.nginx_gateway.reload, "nginx_gateway.reload",
               R"(["systemctl", "reload", "nginx"])");
    check_argv(p.traefik.restart, "traefik.restart", R"(["systemctl", "restart", "traefik"])");
    check_argv(p.certificates.reload, "certificates.reload", R"(["systemctl", "reload", "nginx"])");
    check_argv(p.certificates.trust_update, "certificates.trust_update",
               R"(["update-ca-certificates"])");
    std::set<std::string> cert_names;
    for (const auto& x : p.certificates.extra) {
      if (!x.name.present || x.name.value.empty()) {
        d_.error("missing-key", x.loc, "an entry of certificates.extra has no \"name\"",
                 "name it, e.g. \"name\": \"grafana\"");
      } else if (!cert_names.insert(x.name.value).second) {
        d_.error("duplicate-certificate", x.name.loc,
                 "certificates.extra names \"" + x.name.value + "\" twice",
                 "give every certificate its own name");
      } else {
        for (const Guest& g : e_.guests) {
          if (base::to_lower(g.name.value) == x.name.value) {
            d_.error("duplicate-certificate", x.name.loc,
                     "certificates.extra \"" + x.name.value +
                         "\" has the name of the certificate Phoenix derives for " + g.label(),
                     "choose another name");
          }
        }
      }
      if (!x.guest) {
        d_.error("missing-key", x.loc, "an entry of certificates.extra has no \"guest\"",
                 "give the id of the guest that holds it, e.g. \"guest\": 101");
      } else if (!e_.guest(x.guest->id)) {
        d_.error("unknown-guest", x.guest->loc,
                 "certificates.extra names guest " + std::to_string(x.guest->id) +
                     ", which does not exist",
                 "use the id of an LXC or VM of the estate");
      }
      if (!x.common_name.present || x.common_name.value.empty()) {
        d_.error("missing-key", x.loc, "an entry of certificates.extra has no \"common_name\"",
                 "give the host name the certificate is for");
      }
      check_absolute(x.cert_path, "certificates.extra cert_path", "write its path in the guest");
      check_absolute(x.key_path, "certificates.extra key_path", "write its path in the guest");
      check_argv(x.reload, "certificates.extra reload", R"(["systemctl", "reload", "grafana"])");
    }
    for (const Guest& g : e_.guests) {
      check_absolute(g.local_root, g.label() + " local_root",
                     "write the directory that stands for the guest's /, e.g. "
                     "/var/lib/lxc/" +
                         std::to_string(g.id) + "/rootfs");
    }
  }

  void check_routes() {
    std::map<std::string, NameOwner> routers, services;
    for (const Guest& g : e_.guests) {
      if (!g.traefik_service.present || !g.traefik_service.name.present) continue;
      const std::string& name = g.traefik_service.name.value;
      NameOwner owner{"the file provider (" + g.label() + ")", g.traefik_service.name.loc, ""};
      claim(routers, "router", name, owner);
      claim(services, "service", name, owner);
    }
    // Each deployed (stack, environment); a stack deployed by several VMs counts once.
    std::set<std::pair<std::string, std::string>> deployed;
    for (const Guest& g : e_.guests) {
      for (const model::StackRef& ref : g.docker_stacks) {
        const model::Stack* s = e_.stack(ref.name.value);
        if (!s) continue;
        const model::StackEnvironment* env = model::resolve_environment(*s, ref);
        if (!env || !deployed.emplace(s->name, env->name).second) continue;
        for (const model::StackService& svc : env->services) {
          std::vector<model::Label> labels;
          for (const auto& t : svc.traefik_labels) {
            if (auto l = model::split_label(t.value, t.loc)) labels.push_back(*l);
          }
          model::LabelModel m = model::model_labels(labels);
          NameOwner owner{"stack " + s->name + " (" + env->name + ")", {}, s->name};
          for (const auto& [name, r] : m.routers) {
            owner.loc = r.loc;
            claim(routers, "router", name, owner);
          }
          for (const auto& [name, sv] : m.services) {
            owner.loc = sv.loc;
            claim(services, "service", name, owner);
          }
        }
      }
    }
  }

  void claim(std::map<std::string, NameOwner>& names, std::string_view kind,
             const std::string& name, const NameOwner& owner) {
    auto [it, fresh] = names.emplace(name, owner);
    if (fresh) return;
    const NameOwner& first = it->second;
    if (!first.stack.empty() && first.stack == owner.stack) return;  // one stack's own labels
    auto& diag = d_.error("route-name-conflict", owner.loc,
                          "Traefik " + std::string(kind) + " \"" + name + "\" of " + owner.owner +
                              " is also defined by " + first.owner,
                          "rename one of them; Traefik would route both names to one place");
    first_seen(diag, first.loc, "first defined here");
  }

  const Estate& e_;
  base::Diagnostics& d_;
  std::map<std::string, model::Cidr> subnets_;  // bridge name -> subnet
};

}  // namespace

void validate_estate(const model::Estate& estate, base::Diagnostics& diags) {
  Validator(estate, diags).run();
}

}  // namespace phoenix::validate
