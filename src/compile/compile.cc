#include <algorithm>
#include <cctype>
#include <functional>
#include <set>
#include <string_view>
#include <unordered_set>

#include "base/sort.h"
#include "base/strings.h"
#include "compile/desired.h"
#include "model/interpolate.h"
#include "model/net.h"
#include "model/raw_lxc.h"
#include "model/traefik.h"

namespace phoenix::compile {
namespace {

using base::Node;
using model::Estate;
using model::Guest;
using nlohmann::json;

std::string guest_resource_id(const Guest& g) {
  return std::string(g.is_lxc() ? "lxc/" : "vm/") + std::to_string(g.id);
}

const Guest* first_with_feature(const Estate& e, std::string_view feature) {
  for (const Guest& g : e.guests) {
    if (!g.is_template.value && g.has_feature(feature)) return &g;
  }
  return nullptr;
}

const Guest* swarm_manager(const Estate& e) {
  for (const Guest& g : e.guests) {
    if (g.is_vm() && g.swarm_role.value == "manager") return &g;
  }
  return nullptr;
}

class Compiler {
 public:
  Compiler(const Estate& e, CompileOptions options) : e_(e), options_(options) {}

  Desired run() {
    d_.domain = e_.platform.domain_name.value;
    if (const Guest* t = first_with_feature(e_, "traefik"); t && guest_ip(*t)) {
      TraefikInstance ti{t->id, *guest_ip(*t), std::nullopt};
      if (const Guest* m = swarm_manager(e_); m && guest_ip(*m)) {
        ti.swarm_endpoint = docker_endpoint(*m);
      }
      d_.traefik = ti;
    }
    routes();
    stacks();
    dns();
    firewalls();
    vllm();
    certificates();
    gateway();
    if (options_.resources) resources();
    return std::move(d_);
  }

 private:
  std::string docker_endpoint(const Guest& manager) const {
    const auto& api = e_.platform.docker_api;
    if (api.url.present) return api.url.value;
    return "tcp://" + *guest_ip(manager) + ":2376";
  }

  std::string host_of(std::string_view label) const {
    return base::to_lower(label) + "." + d_.domain;
  }

  // ---- file-provider routes ----------------------------------------------------------------

  void routes() {
    for (const Guest& g : e_.guests) {
      const auto& t = g.traefik_service;
      if (g.is_template.value || !t.present || !t.name.present || !t.port.present) continue;
      auto ip = guest_ip(g);
      if (!ip) continue;
      std::string scheme = t.scheme.present ? t.scheme.value : (g.is_vm() ? "https" : "http");
      Route r;
      r.name = t.name.value;
      r.host = host_of(t.name.value);
      r.https = scheme == "https";
      r.url = scheme + "://" + *ip + ":" + std::to_string(t.port.value);
      r.guest = g.id;
      d_.routes.push_back(std::move(r));
    }
    std::sort(d_.routes.begin(), d_.routes.end(),
              [](const Route& a, const Route& b) { return a.name < b.name; });
  }

  // ---- stacks ------------------------------------------------------------------------------

  void stacks() {
    std::set<std::string> seen;
    for (const Guest& g : e_.guests) {
      for (const model::StackRef& ref : g.docker_stacks) {
        const model::Stack* s = e_.stack(ref.name.value);
        if (!s || !s->has_compose) continue;
        const model::StackEnvironment* env = model::resolve_environment(*s, ref);
        if (!env || !seen.insert(s->name).second) continue;
        d_.stacks.push_back(deployable(*s, *env, g));
      }
    }
    base::sort_by_key(d_.stacks,
                      [](const StackDeployment& s) -> const std::string& { return s.stack; });
  }

  // Public for compile_stack(): one stack on its own.
 public:
  StackDeployment deployable(const model::Stack& s, const model::StackEnvironment& env,
                             const Guest& vm) const {
    std::map<std::string, std::string, std::less<>> vars;
    for (const auto& v : env.variables) vars[v.name.value] = v.value.value;
    auto subst = [&](const std::string& text) { return model::interpolate(text, vars).text; };

    StackDeployment out;
    out.stack = s.name;
    out.environment = env.name;
    out.vm = vm.id;
    out.compose = s.compose;
    std::function<void(Node&)> walk = [&](Node& n) {
      if (n.is_string()) {
        n = Node::string(subst(n.text()), n.loc());
      } else if (n.is_array()) {
        for (Node& i : n.items()) walk(i);
      } else if (n.is_object()) {
        for (auto& m : n.members()) walk(m.value);
      }
    };
    walk(out.compose);

    Node* services = out.compose.find("services");
    if (!services || !services->is_object()) return out;
    bool attached = false;
    for (const model::StackService& svc : env.services) {
      Node* service = services->find(svc.name);
      if (!service || !service->is_object() || svc.traefik_labels.empty()) continue;
      Node* deploy = service->find("deploy");
      if (!deploy || !deploy->is_object()) deploy = &service->set("deploy", Node::object());
      Node labels = Node::object();
      if (const Node* existing = deploy->find("labels")) {
        if (existing->is_object()) labels = *existing;
        if (existing->is_array()) {
          for (const Node& item : existing->items()) {
            if (auto l = model::split_label(item.text(), item.loc())) {
              labels.set(l->key, Node::string(l->value));
            }
          }
        }
      }
      std::vector<model::Label> parsed;
      for (const auto& t : svc.traefik_labels) {
        if (auto l = model::split_label(subst(t.value), t.loc)) {
          labels.set(l->key, Node::string(l->value));
          parsed.push_back(*l);
        }
      }
      deploy->set("labels", std::move(labels));
      for (const auto& [name, router] : model::model_labels(parsed).routers) {
        model::ParsedRule rule;
        if (router.rule && !model::parse_rule(router.rule->value, &rule)) {
          for (const std::string& h : rule.hosts) out.routed_hosts.push_back(base::to_lower(h));
        }
      }
      attach_network(*service);
      attached = true;
    }
    if (attached) {
      Node* networks = out.compose.find("networks");
      if (!networks || !networks->is_object())
        networks = &out.compose.set("networks", Node::object());
      Node external = Node::object();
      external.set("external", Node::boolean(true));
      networks->set(kTraefikNetwork, std::move(external));
    }
    std::sort(out.routed_hosts.begin(), out.routed_hosts.end());
    out.routed_hosts.erase(std::unique(out.routed_hosts.begin(), out.routed_hosts.end()),
                           out.routed_hosts.end());
    return out;
  }

 private:
  // Attaches traefik-public. A service without `networks` is on the stack's default network;
  // it stays there so that the stack's services still reach each other.
  static void attach_network(Node& service) {
    Node* nets = service.find("networks");
    if (!nets || nets->is_null()) {
      Node list = Node::array();
      list.push_back(Node::string("default"));
      list.push_back(Node::string(kTraefikNetwork));
      service.set("networks", std::move(list));
      return;
    }
    if (nets->is_array()) {
      for (const Node& n : nets->items()) {
        if (n.is_string() && n.text() == kTraefikNetwork) return;
      }
      nets->push_back(Node::string(kTraefikNetwork));
    } else if (nets->is_object() && !nets->find(kTraefikNetwork)) {
      nets->set(kTraefikNetwork, Node::null());
    }
  }

  // ---- DNS ---------------------------------------------------------------------------------

  void dns() {
    std::map<std::string, DnsRecord> records;
    if (d_.traefik) {
      auto routed = [&](const std::string& host, std::string reason, std::optional<GuestId> owner) {
        records[host] = DnsRecord{host, d_.traefik->ip, std::move(reason), owner};
      };
      for (const Route& r : d_.routes) {
        routed(r.host, "route of " + e_.guest(r.guest)->label(), r.guest);
      }
      for (const StackDeployment& s : d_.stacks) {
        for (const std::string& h : s.routed_hosts) routed(h, "stack " + s.stack, s.vm);
      }
      const auto& papi = e_.platform.portainer_api;
      if (papi.portainer_hostname.present) {
        const Guest* manager = swarm_manager(e_);
        routed(base::to_lower(papi.portainer_hostname.value), "Portainer",
               manager ? std::optional<GuestId>(manager->id) : std::nullopt);
      }
    }
    for (const Guest& g : e_.guests) {
      if (g.is_template.value || !g.name.present) continue;
      auto ip = guest_ip(g);
      if (!ip) continue;
      std::string host = host_of(g.name.value);
      // A routed name wins over a guest's own name: clients reach the service through Traefik.
      records.emplace(host, DnsRecord{host, *ip, "guest " + g.label(), g.id});
    }
    for (auto& [host, rec] : records) d_.dns.push_back(std::move(rec));
  }

  // ---- firewall ----------------------------------------------------------------------------

  static FirewallRule to_rule(const model::FirewallRule& r) {
    FirewallRule out;
    out.direction = r.type.value == "out" ? "OUT" : "IN";
    out.action = r.action.value;
    out.source = r.source.value;
    out.dest = r.dest.value;
    out.proto = r.proto.value;
    out.dport = r.port.value;
    out.iface = r.iface.value;
    out.comment = r.comment.value;
    return out;
  }

  void firewalls() {
    const auto& fw = e_.platform.firewall;
    if (fw.present) {
      FirewallRuleset cluster;
      cluster.enabled = fw.enabled.value;
      cluster.policy_in = fw.default_input_policy.value;
      cluster.policy_out = fw.default_output_policy.value;
      for (const auto& r : fw.rules) cluster.rules.push_back(to_rule(r));
      d_.firewalls.push_back(std::move(cluster));
    }
    std::multimap<GuestId, const StackDeployment*> stacks_by_vm;
    for (const StackDeployment& s : d_.stacks) stacks_by_vm.emplace(s.vm, &s);
    std::vector<FirewallRuleset> guests;
    for (const Guest& g : e_.guests) {
      if (g.is_template.value) continue;
      FirewallRuleset set;
      set.guest = g.id;
      set.enabled = g.firewall.enabled.value;
      for (const auto& r : g.firewall.rules) set.rules.push_back(to_rule(r));
      // Rules a stack asks for apply to the VM that deploys it.
      auto [first, last] = stacks_by_vm.equal_range(g.id);
      for (auto it = first; it != last; ++it) {
        const StackDeployment& s = *it->second;
        const model::StackEnvironment* env = e_.stack(s.stack)->environment(s.environment);
        for (const auto& r : env->firewall_rules) {
          FirewallRule rule = to_rule(r);
          if (rule.comment.empty()) rule.comment = "stack " + s.stack;
          set.rules.push_back(std::move(rule));
        }
        if (!env->firewall_rules.empty()) set.enabled = set.enabled || g.firewall.enabled.value;
      }
      if (!g.firewall.present && set.rules.empty()) continue;
      guests.push_back(std::move(set));
    }
    base::sort_by_key(guests, [](const FirewallRuleset& f) { return *f.guest; });
    d_.firewalls.insert(d_.firewalls.end(), guests.begin(), guests.end());
  }

  // ---- vLLM --------------------------------------------------------------------------------

  void vllm() {
    for (const Guest& g : e_.guests) {
      const model::VllmConfig& v = g.vllm;
      if (g.is_template.value || !v.present || !v.model.present || !v.port.present) continue;
      VllmService s;
      s.guest = g.id;
      s.guest_name = g.name.value;
      s.gpus = g.gpus;
      s.port = v.port.value;
      auto& a = s.argv;
      a = {"/opt/vllm/bin/vllm", "serve", v.model.value};
      a.insert(a.end(), {"--host", v.host.present ? v.host.value : "0.0.0.0"});
      a.insert(a.end(), {"--port", std::to_string(v.port.value)});
      if (v.served_model_name.present) {
        a.insert(a.end(), {"--served-model-name", v.served_model_name.value});
      }
      if (v.dtype.present) a.insert(a.end(), {"--dtype", v.dtype.value});
      if (v.max_model_len.present) {
        a.insert(a.end(), {"--max-model-len", std::to_string(v.max_model_len.value)});
      }
      if (v.quantization.present) a.insert(a.end(), {"--quantization", v.quantization.value});
      if (v.gpu_memory_utilization.present) {
        a.insert(a.end(),
                 {"--gpu-memory-utilization", format_fraction(v.gpu_memory_utilization.value)});
      }
      if (v.tensor_parallel_size.present) {
        a.insert(a.end(), {"--tensor-parallel-size", std::to_string(v.tensor_parallel_size.value)});
      }
      if (v.trust_remote_code.value) a.push_back("--trust-remote-code");
      std::string cert = cert_name(g);
      a.insert(a.end(), {"--ssl-certfile", std::string(Paths::kVllmCertDir) + "/" + cert + ".crt",
                         "--ssl-keyfile", std::string(Paths::kVllmCertDir) + "/" + cert + ".key"});
      d_.vllm.push_back(std::move(s));
    }
  }

  static std::string format_fraction(double d) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4g", d);
    return buf;
  }

  static std::string cert_name(const Guest& g) { return base::to_lower(g.name.value); }

  // ---- certificates ------------------------------------------------------------------------

  void certificates() {
    std::map<GuestId, Certificate> certs;
    auto add = [&](const Guest& g, const std::string& dir, std::vector<std::string> names) {
      Certificate& c = certs[g.id];
      if (c.name.empty()) {
        c.name = cert_name(g);
        c.guest = g.id;
        c.common_name = host_of(g.name.value);
        c.sans.push_back(c.common_name);
        if (auto ip = guest_ip(g)) c.sans.push_back(*ip);
        c.cert_path = dir + "/" + c.name + ".crt";
        c.key_path = dir + "/" + c.name + ".key";
      }
      c.sans.insert(c.sans.end(), names.begin(), names.end());
    };
    for (const Route& r : d_.routes) {
      if (r.https) add(*e_.guest(r.guest), "/etc/phoenix/ssl", {r.host});
    }
    if (const Guest* gw = first_with_feature(e_, "nginx_gateway"); gw && !d_.domain.empty()) {
      add(*gw, Paths::kNginxCertDir, {d_.domain, "*." + d_.domain});
    }
    if (d_.traefik) add(*e_.guest(d_.traefik->guest), Paths::kTraefikCertDir, {});
    // Docker's API over TCP with mutual TLS: the manager's (the swarm's endpoint) and every
    // guest's with docker_proxy.
    if (const Guest* m = swarm_manager(e_); m && guest_ip(*m)) {
      add(*m, "/etc/docker/ssl", {});
    }
    for (const Guest& g : e_.guests) {
      if (g.has_feature("docker_proxy") && !g.is_template.value && guest_ip(g)) {
        add(g, "/etc/docker/ssl", {});
      }
    }
    for (const VllmService& v : d_.vllm) add(*e_.guest(v.guest), Paths::kVllmCertDir, {});
    for (auto& [id, c] : certs) {
      std::sort(c.sans.begin(), c.sans.end());
      c.sans.erase(std::unique(c.sans.begin(), c.sans.end()), c.sans.end());
      d_.certificates.push_back(std::move(c));
    }
    // Traefik's client certificate for the manager's Docker API, which its Swarm provider
    // reads over mutual TLS.
    if (d_.traefik && d_.traefik->swarm_endpoint) {
      const Guest& t = *e_.guest(d_.traefik->guest);
      Certificate c;
      c.name = cert_name(t) + "-" + Paths::kTraefikDockerClient;
      c.guest = t.id;
      c.common_name = host_of(t.name.value);
      c.sans = {c.common_name};
      const std::string base =
          std::string(Paths::kTraefikCertDir) + "/" + Paths::kTraefikDockerClient;
      c.cert_path = base + ".crt";
      c.key_path = base + ".key";
      d_.certificates.push_back(std::move(c));
    }
    // certificates.extra, as written (validation has checked the names and guests).
    for (const auto& x : e_.platform.certificates.extra) {
      if (!x.guest || !e_.guest(x.guest->id) || x.name.value.empty()) continue;
      Certificate c;
      c.name = x.name.value;
      c.guest = x.guest->id;
      c.common_name = x.common_name.value;
      c.sans.push_back(c.common_name);
      for (const auto& n : x.sans) c.sans.push_back(n.value);
      std::sort(c.sans.begin(), c.sans.end());
      c.sans.erase(std::unique(c.sans.begin(), c.sans.end()), c.sans.end());
      c.cert_path = x.cert_path.present ? x.cert_path.value : "/etc/phoenix/ssl/" + c.name + ".crt";
      c.key_path = x.key_path.present ? x.key_path.value : "/etc/phoenix/ssl/" + c.name + ".key";
      d_.certificates.push_back(std::move(c));
    }
  }

  void gateway() {
    const Guest* gw = first_with_feature(e_, "nginx_gateway");
    if (!gw || !d_.traefik || d_.domain.empty()) return;
    Gateway g;
    g.guest = gw->id;
    g.domain = d_.domain;
    g.upstream = "http://" + d_.traefik->ip + ":80";
    for (const Certificate& c : d_.certificates) {
      if (c.guest == gw->id) {
        g.cert_path = c.cert_path;
        g.key_path = c.key_path;
      }
    }
    d_.gateway = g;
  }

  // ---- resources ---------------------------------------------------------------------------

  void resources() {
    auto& out = d_.resources;
    out.reserve(e_.guests.size() * 2 + d_.dns.size() + d_.firewalls.size() +
                d_.certificates.size() + d_.stacks.size() + 3);
    const Guest* ca = first_with_feature(e_, "step_ca");
    const Guest* manager = swarm_manager(e_);
    std::set<model::GuestId> ids;
    for (const Guest& g : e_.guests) {
      if (!ids.insert(g.id).second) continue;  // duplicate ids are a validation error
      out.push_back(guest_resource(g));
    }
    for (const DnsRecord& r : d_.dns) {
      Resource res{"dns/" + r.host, "dns", r.host, Stage::kInfrastructure, r.guest, {}, {}};
      res.fields = {{"ip", r.ip}, {"reason", r.reason}};
      out.push_back(std::move(res));
    }
    for (const FirewallRuleset& f : d_.firewalls) {
      std::string name = f.guest ? std::to_string(*f.guest) : "cluster";
      Resource res{"firewall/" + name, "firewall", name, Stage::kInfrastructure, f.guest, {}, {}};
      if (f.guest) res.deps.push_back(guest_resource_id(*e_.guest(*f.guest)));
      json rules = json::array();
      for (const FirewallRule& r : f.rules) {
        json j = {{"type", r.direction}, {"action", r.action}};
        for (auto [k, v] : {std::pair{"source", &r.source},
                            {"dest", &r.dest},
                            {"proto", &r.proto},
                            {"dport", &r.dport},
                            {"iface", &r.iface},
                            {"comment", &r.comment}}) {
          if (!v->empty()) j[k] = *v;
        }
        rules.push_back(std::move(j));
      }
      res.fields = {{"enable", f.enabled}, {"rules", std::move(rules)}};
      if (!f.policy_in.empty()) res.fields["policy_in"] = f.policy_in;
      if (!f.policy_out.empty()) res.fields["policy_out"] = f.policy_out;
      out.push_back(std::move(res));
    }
    for (const Certificate& c : d_.certificates) {
      Resource res{"cert/" + c.name, "cert", c.name, Stage::kInfrastructure, c.guest, {}, {}};
      res.deps.push_back(guest_resource_id(*e_.guest(c.guest)));
      if (ca && ca->id != c.guest) res.deps.push_back(guest_resource_id(*ca));
      res.fields = {{"common_name", c.common_name},
                    {"sans", c.sans},
                    {"cert_path", c.cert_path},
                    {"key_path", c.key_path}};
      out.push_back(std::move(res));
    }
    if (manager) {
      std::string manager_node = "swarm-node/" + std::to_string(manager->id);
      for (const Guest& g : e_.guests) {
        if (!g.is_vm() || !g.swarm_role.present || g.is_template.value) continue;
        Resource res{"swarm-node/" + std::to_string(g.id),
                     "swarm-node",
                     g.name.value,
                     Stage::kSwarm,
                     g.id,
                     {guest_resource_id(g)},
                     {}};
        if (g.id != manager->id) res.deps.push_back(manager_node);
        std::vector<std::string> labels;
        for (const auto& l : g.node_labels) labels.push_back(l.value);
        std::sort(labels.begin(), labels.end());
        res.fields = {{"role", g.swarm_role.value}, {"hostname", g.name.value}, {"labels", labels}};
        out.push_back(std::move(res));
      }
      Resource net{std::string("network/") + kTraefikNetwork,
                   "network",
                   kTraefikNetwork,
                   Stage::kSwarm,
                   std::nullopt,
                   {manager_node},
                   {}};
      net.fields = {{"driver", "overlay"}, {"attachable", true}, {"scope", "swarm"}};
      out.push_back(std::move(net));
      const auto& p = e_.platform;
      if (p.portainer_server_image.present) {
        Resource portainer{"core-service/portainer",
                           "core-service",
                           "portainer",
                           Stage::kCoreServices,
                           manager->id,
                           {std::string("network/") + kTraefikNetwork},
                           {}};
        std::vector<std::string> agents;
        for (const Guest& g : e_.guests) {
          if (g.is_vm() && g.portainer_role.value == "agent") {
            agents.push_back(std::to_string(g.id));
            portainer.deps.push_back("swarm-node/" + std::to_string(g.id));
          }
        }
        portainer.fields = {{"server_image", p.portainer_server_image.value},
                            {"agent_image", p.portainer_agent_image.value},
                            {"agent_vms", agents}};
        out.push_back(std::move(portainer));
      }
      for (const StackDeployment& s : d_.stacks) {
        Resource res{
            "stack/" + s.stack,
            "stack",
            s.stack,
            Stage::kStacks,
            s.vm,
            {std::string("network/") + kTraefikNetwork, "swarm-node/" + std::to_string(s.vm)},
            {}};
        res.fields = {{"environment", s.environment}, {"compose", to_json(s.compose)}};
        out.push_back(std::move(res));
      }
    }
    // Dependencies on resources that do not exist (invalid estates) are dropped.
    std::unordered_set<std::string_view> all;
    all.reserve(out.size());
    for (const Resource& r : out) all.insert(r.id);
    for (Resource& r : out) {
      std::erase_if(r.deps, [&](const std::string& d) { return !all.count(d) || d == r.id; });
      std::sort(r.deps.begin(), r.deps.end());
      r.deps.erase(std::unique(r.deps.begin(), r.deps.end()), r.deps.end());
    }
    base::sort_by_key(out, [](const Resource& r) -> const std::string& { return r.id; });
  }

  Resource guest_resource(const Guest& g) {
    Resource r{guest_resource_id(g),
               g.is_lxc() ? "lxc" : "vm",
               g.name.value,
               Stage::kGuests,
               g.id,
               {},
               {}};
    auto dep = [&](model::GuestId id) {
      if (const Guest* other = e_.guest(id)) r.deps.push_back(guest_resource_id(*other));
    };
    if (g.clone_from) dep(g.clone_from->id);
    for (const auto& d : g.dependencies) dep(d.id);
    json& f = r.fields;
    f["hostname"] = g.name.value;
    auto opt_int = [&](const char* key, const model::Val<std::int64_t>& v) {
      if (v.present) f[key] = v.value;
    };
    auto opt_str = [&](const char* key, const model::Val<std::string>& v) {
      if (v.present) f[key] = v.value;
    };
    opt_int("memory_mb", g.memory_mb);
    opt_int("cores", g.cores);
    f["onboot"] = g.start_at_boot.value;
    if (g.boot_order.present || g.boot_delay.present) {
      f["startup"] = {{"order", g.boot_order.value}, {"up", g.boot_delay.value}};
    }
    f["template"] = g.is_template.value;
    if (g.clone_from) f["clone_from"] = g.clone_from->id;
    json net = json::object();
    if (g.network.present) {
      for (auto [k, v] : {std::pair{"name", &g.network.name},
                          {"bridge", &g.network.bridge},
                          {"ip", &g.network.ip},
                          {"gw", &g.network.gw}}) {
        if (v->present) net[k] = v->value;
      }
      std::string mac = g.network.hwaddr.present ? g.network.hwaddr.value : g.mac_address.value;
      if (!mac.empty()) {
        for (char& c : mac) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        net["hwaddr"] = mac;
      }
      std::vector<std::string> ns;
      for (const auto& n : g.network.nameservers) ns.push_back(n.value);
      if (!ns.empty()) f["nameserver"] = base::join(ns, " ");
      f["net0"] = net;
    }
    if (g.is_lxc()) {
      opt_str("ostemplate", g.os_template);
      opt_int("swap_mb", g.swap_mb);
      opt_str("storage_pool", g.storage_pool);
      opt_int("storage_size_gb", g.storage_size_gb);
      f["unprivileged"] = g.unprivileged.value;
      f["gpus"] = g.gpus;
      std::vector<std::string> feats;
      for (const auto& ft : g.features) feats.push_back(ft.value);
      std::sort(feats.begin(), feats.end());
      f["features"] = feats;
      // lxc_options and id_maps: raw keys the API cannot set; the host channel writes them.
      std::vector<std::string> raw;
      for (const auto& [k, v] : model::raw_lxc_lines(g)) raw.push_back(k + ": " + v);
      if (!raw.empty()) f["raw_lxc_via_host_channel"] = raw;
      json mps = json::array();
      for (const auto& mp : g.mount_points) {
        mps.push_back(
            {{"host_path", mp.host_path.value}, {"container_path", mp.container_path.value}});
      }
      if (!mps.empty()) f["mount_points"] = mps;
    } else {
      opt_int("disk_size_gb", g.disk_size_gb);
      opt_str("ciuser", g.username);
      std::vector<std::string> feats;
      for (const auto& ft : g.features) feats.push_back(ft.value);
      std::sort(feats.begin(), feats.end());
      f["features"] = feats;
    }
    return r;
  }

  const Estate& e_;
  CompileOptions options_;
  Desired d_;
};

}  // namespace

std::string_view to_string(Stage stage) {
  switch (stage) {
    case Stage::kGuests:
      return "guests";
    case Stage::kInfrastructure:
      return "infrastructure";
    case Stage::kSwarm:
      return "swarm";
    case Stage::kCoreServices:
      return "core services";
    case Stage::kGateways:
      return "gateways";
    case Stage::kStacks:
      return "stacks";
  }
  return "?";
}

std::optional<StackDeployment> compile_stack(const model::Estate& estate, std::string_view name,
                                             std::optional<std::string_view> environment) {
  const model::Stack* s = estate.stack(name);
  if (!s || !s->has_compose) return std::nullopt;
  const Guest* vm = nullptr;
  model::StackRef ref;
  for (const Guest& g : estate.guests) {
    for (const model::StackRef& r : g.docker_stacks) {
      if (r.name.value == name && !vm) {
        vm = &g;
        ref = r;
      }
    }
  }
  if (!vm) {
    for (const Guest& g : estate.guests) {
      if (g.is_vm() && g.swarm_role.value == "manager" && !vm) vm = &g;
    }
  }
  if (!vm) return std::nullopt;
  ref.name = {std::string(name), {}, true};
  if (environment) ref.environment = {std::string(*environment), {}, true};
  const model::StackEnvironment* env = model::resolve_environment(*s, ref);
  if (!env) return std::nullopt;
  return Compiler(estate, CompileOptions{false}).deployable(*s, *env, *vm);
}

std::optional<StackDeployment> portainer_stack(const model::Estate& e) {
  const Guest* manager = swarm_manager(e);
  const auto& p = e.platform;
  if (!manager || !p.portainer_server_image.present) return std::nullopt;
  auto str = [](std::string v) { return Node::string(std::move(v)); };
  auto list = [](std::initializer_list<std::string> items) {
    Node a = Node::array();
    for (const auto& i : items) a.push_back(Node::string(i));
    return a;
  };
  std::int64_t server_port =
      p.network.portainer_server_port.present ? p.network.portainer_server_port.value : 9443;
  std::int64_t agent_port =
      p.network.portainer_agent_port.present ? p.network.portainer_agent_port.value : 9001;

  Node services = Node::object();
  bool agents = p.portainer_agent_image.present;
  if (agents) {
    Node agent = Node::object();
    agent.set("image", str(p.portainer_agent_image.value));
    Node env = Node::object();
    env.set("AGENT_CLUSTER_ADDR", str("tasks.agent"));
    env.set("AGENT_PORT", str(std::to_string(agent_port)));
    agent.set("environment", std::move(env));
    agent.set("volumes", list({"/var/run/docker.sock:/var/run/docker.sock",
                               "/var/lib/docker/volumes:/var/lib/docker/volumes"}));
    agent.set("networks", list({"agent_network"}));
    Node deploy = Node::object();
    deploy.set("mode", str("global"));
    Node placement = Node::object();
    placement.set("constraints",
                  list({std::string("node.labels.") + kPortainerAgentLabel + " == true"}));
    deploy.set("placement", std::move(placement));
    agent.set("deploy", std::move(deploy));
    services.set("agent", std::move(agent));
  }
  Node server = Node::object();
  server.set("image", str(p.portainer_server_image.value));
  if (agents) {
    server.set("command",
               list({"-H", "tcp://tasks.agent:" + std::to_string(agent_port), "--tlsskipverify"}));
  }
  // Published on the manager itself: Traefik's file provider routes the manager VM's
  // traefik_service to <manager ip>:<port>.
  Node port = Node::object();
  port.set("target", Node::integer(9443));
  port.set("published", Node::integer(server_port));
  port.set("protocol", str("tcp"));
  port.set("mode", str("host"));
  Node ports = Node::array();
  ports.push_back(std::move(port));
  server.set("ports", std::move(ports));
  server.set("volumes", list({"portainer_data:/data"}));
  server.set("networks",
             agents ? list({"agent_network", kTraefikNetwork}) : list({kTraefikNetwork}));
  Node deploy = Node::object();
  deploy.set("replicas", Node::integer(1));
  Node placement = Node::object();
  placement.set("constraints", list({"node.role == manager"}));
  deploy.set("placement", std::move(placement));
  server.set("deploy", std::move(deploy));
  services.set("portainer", std::move(server));

  Node networks = Node::object();
  if (agents) {
    Node agent_net = Node::object();
    agent_net.set("driver", str("overlay"));
    agent_net.set("attachable", Node::boolean(true));
    networks.set("agent_network", std::move(agent_net));
  }
  Node external = Node::object();
  external.set("external", Node::boolean(true));
  networks.set(kTraefikNetwork, std::move(external));
  Node volumes = Node::object();
  volumes.set("portainer_data", Node::object());

  StackDeployment out;
  out.stack = p.portainer_stack.present ? p.portainer_stack.value : kPortainerStack;
  out.environment = "core";
  out.vm = manager->id;
  out.compose = Node::object();
  out.compose.set("version", str("3.8"));
  out.compose.set("services", std::move(services));
  out.compose.set("networks", std::move(networks));
  out.compose.set("volumes", std::move(volumes));
  return out;
}

std::optional<std::string> guest_ip(const model::Guest& g) {
  if (!g.network.ip.present) return std::nullopt;
  auto cidr = model::parse_cidr(g.network.ip.value);
  if (!cidr) return std::nullopt;
  return model::to_string(cidr->addr);
}

json to_json(const Node& n) {
  switch (n.kind()) {
    case Node::Kind::kNull:
      return nullptr;
    case Node::Kind::kBool:
      return n.as_bool();
    case Node::Kind::kInt:
      return n.as_int();
    case Node::Kind::kDouble:
      return n.as_double();
    case Node::Kind::kString:
      return n.text();
    case Node::Kind::kArray: {
      json a = json::array();
      for (const Node& i : n.items()) a.push_back(to_json(i));
      return a;
    }
    case Node::Kind::kObject: {
      json o = json::object();
      for (const auto& m : n.members()) o[m.key] = to_json(m.value);
      return o;
    }
  }
  return nullptr;
}

Desired compile_estate(const Estate& estate, CompileOptions options) {
  return Compiler(estate, options).run();
}

}  // namespace phoenix::compile
