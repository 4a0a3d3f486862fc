#include "cli/engines.h"

#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>

#include "base/fs.h"
#include "base/strings.h"
#include "cli/context.h"
#include "compile/desired.h"
#include "providers/ca/crypto.h"
#include "providers/proxmox/agent.h"
#include "providers/proxmox/client.h"

namespace phoenix::cli {

namespace fs = std::filesystem;

namespace {

std::string resolve(const model::Estate& estate, const std::string& path) {
  if (path.empty()) return path;
  std::filesystem::path p(path);
  if (p.is_absolute()) return path;
  return (std::filesystem::path(estate.paths.config_dir) / p).string();
}

// Proxmox names its nodes after their host names.
std::string local_node_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "localhost";
  std::string s(name);
  return s.substr(0, s.find('.'));
}

}  // namespace

std::string remote_error(const base::Error& error) {
  return error.describe() + (error.retryable()
                                 ? " (temporary: running the command again may succeed)"
                                 : " (retrying will not help)");
}

const model::Guest* swarm_manager(const model::Estate& estate) {
  for (const model::Guest& g : estate.guests) {
    if (g.is_vm() && !g.is_template.value && g.swarm_role.value == "manager") return &g;
  }
  return nullptr;
}

base::Result<docker::Endpoint> engine_endpoint(const model::Estate& estate,
                                               const model::Guest& vm) {
  const model::DockerApi& own = vm.docker_api;
  const model::DockerApi& platform = estate.platform.docker_api;
  auto pick = [&](const model::Val<std::string> model::DockerApi::*field) {
    if ((own.*field).present) return resolve(estate, (own.*field).value);
    if ((platform.*field).present) return resolve(estate, (platform.*field).value);
    return std::string();
  };
  docker::Endpoint e;
  const model::Guest* manager = swarm_manager(estate);
  if (own.url.present) {
    e.url = own.url.value;
  } else if (manager == &vm && platform.url.present) {
    e.url = platform.url.value;
  } else {
    auto ip = compile::guest_ip(vm);
    if (!ip) {
      return base::fail(base::ErrorKind::kInvalidInput,
                        vm.label() +
                            " has no static IP, so its Docker engine cannot be found; "
                            "give it network_config.ip or a docker_api.url");
    }
    e.url = "tcp://" + *ip + ":2376";
  }
  if (e.url.starts_with("tcp://")) {
    e.ca_file = pick(&model::DockerApi::ca_file);
    e.cert_file = pick(&model::DockerApi::cert_file);
    e.key_file = pick(&model::DockerApi::key_file);
  }
  return e;
}

base::Result<ClientIdentity> docker_client_identity(const GlobalOptions& g,
                                                    const model::Estate& estate) {
  static std::mutex mu;
  static std::optional<ClientIdentity> made;
  std::lock_guard lock(mu);
  if (made) return *made;
  const fs::path dir = fs::path(state_dir(g)) / "docker-client";
  ClientIdentity id{(dir / "ca.pem").string(), (dir / "cert.pem").string(),
                    (dir / "key.pem").string()};
  // Kept while it has more than a third of its lifetime left, and its root is there.
  if (auto pem = base::read_file(id.cert_file);
      pem && fs::exists(id.key_file) && fs::exists(id.ca_file)) {
    if (auto info = ca::read_certificate(*pem)) {
      auto now = static_cast<std::int64_t>(std::time(nullptr));
      if (now < info->not_before + (info->not_after - info->not_before) * 2 / 3) {
        made = id;
        return id;
      }
    }
  }
  const model::StepCa& sc = estate.platform.step_ca;
  if (!sc.url.present || !sc.provisioner_password_file.present) {
    return base::fail(base::ErrorKind::kInvalidInput,
                      "the Docker engines want a client certificate: set docker_api.cert_file, "
                      "key_file and ca_file, or step_ca (url, provisioner_name, "
                      "provisioner_password_file) for Phoenix to have one issued");
  }
  GuestChannels channels(estate);
  guest::GuestChannel* ca_channel = nullptr;
  if (const model::Guest* guest = step_ca_guest(estate)) {
    if (auto ch = channels.get(guest->id)) ca_channel = *ch;
  }
  auto options = PHX_TRY(step_ca_options(estate, ca_channel));
  auto authority = PHX_TRY(ca::make_step_ca(options));
  auto issued = PHX_TRY(authority->issue({.common_name = "phoenix", .sans = {"phoenix"}}));
  auto root = PHX_TRY(authority->root_pem());
  std::error_code ec;
  fs::create_directories(dir, ec);
  fs::permissions(dir, fs::perms::owner_all, ec);
  constexpr auto kPrivate = fs::perms::owner_read | fs::perms::owner_write;
  PHX_TRY(base::write_file_atomic(id.key_file, issued.key_pem, kPrivate));
  PHX_TRY(base::write_file_atomic(id.cert_file, issued.cert_pem + issued.chain_pem, kPrivate));
  PHX_TRY(base::write_file_atomic(id.ca_file, root, kPrivate));
  made = id;
  return id;
}

base::Result<std::unique_ptr<docker::Engine>> open_engine(const GlobalOptions& g,
                                                          const model::Estate& estate,
                                                          const model::Guest& vm) {
  docker::Endpoint e = PHX_TRY(engine_endpoint(estate, vm));
  if (e.url.starts_with("tcp://") && e.cert_file.empty() && e.key_file.empty()) {
    auto id = docker_client_identity(g, estate);
    if (!id) return std::unexpected(std::move(id).error().with_context(vm.label() + "'s engine"));
    e.cert_file = id->cert_file;
    e.key_file = id->key_file;
    if (e.ca_file.empty()) e.ca_file = id->ca_file;
  }
  auto transport = docker::make_engine_client(e);
  if (!transport) {
    return std::unexpected(std::move(transport).error().with_context(vm.label() + "'s engine"));
  }
  return std::make_unique<docker::Engine>(std::move(*transport));
}

swarm::SwarmMember swarm_member(const model::Guest& vm) {
  swarm::SwarmMember m;
  m.label = vm.label();
  m.advertise_addr = compile::guest_ip(vm).value_or("");
  for (const auto& l : vm.node_labels) {
    auto eq = l.value.find('=');
    if (eq == std::string::npos) {
      m.node_labels[l.value] = "";
    } else {
      m.node_labels[l.value.substr(0, eq)] = l.value.substr(eq + 1);
    }
  }
  // Where Portainer's agent runs (its global service is constrained to this label).
  if (vm.portainer_role.value == "agent") m.node_labels[compile::kPortainerAgentLabel] = "true";
  return m;
}

namespace {

// A value for one line of output: compact, and cut when long.
std::string short_json(const nlohmann::json& v) {
  if (v.is_null()) return "(none)";
  std::string s = v.dump();
  if (s.size() > 120) s = s.substr(0, 117) + "...";
  return s;
}

}  // namespace

base::Result<std::unique_ptr<proxmox::Pve>> open_proxmox(const model::Estate& e) {
  const model::ProxmoxApi& api = e.platform.proxmox_api;
  proxmox::ClientOptions o;
  o.url = api.url.present ? api.url.value : "https://127.0.0.1:8006";
  o.token_id = api.token_id.value;
  o.token_secret_file = resolve(e, api.token_secret_file.value);
  o.ca_file = resolve(e, api.ca_file.value);
  o.fingerprint = api.fingerprint.value;
  o.insecure = api.insecure.present && api.insecure.value;
  auto transport = PHX_TRY(proxmox::make_pve_client(o));
  return std::make_unique<proxmox::Pve>(std::move(transport));
}

std::string proxmox_node(const model::Estate& e) {
  const model::ProxmoxApi& api = e.platform.proxmox_api;
  return api.node.present ? api.node.value : local_node_name();
}

base::Result<std::vector<model::GuestId>> parse_guest_ids(const model::Estate& e,
                                                          const std::vector<std::string>& ids) {
  std::vector<model::GuestId> out;
  for (const std::string& id : ids) {
    auto n = base::parse_uint(id);
    if (!n || *n > 999999999 || !e.guest(static_cast<model::GuestId>(*n))) {
      return base::fail(base::ErrorKind::kInvalidInput,
                        "\"" + id + "\" is not the id of a guest of the estate");
    }
    out.push_back(static_cast<model::GuestId>(*n));
  }
  return out;
}

std::unique_ptr<host::HostChannel> open_host(const model::Estate& e) {
  const model::ProxmoxApi& api = e.platform.proxmox_api;
  if (api.host_ssh.present) return host::ssh_host(api.host_ssh.value);
  return host::local_host(api.host_root.present ? resolve(e, api.host_root.value) : "/");
}

std::unique_ptr<guest::GuestChannel> open_node_channel(const model::Estate& e) {
  const model::ProxmoxApi& api = e.platform.proxmox_api;
  if (api.host_ssh.present) {
    return guest::exec_guest(base::ssh_runner(api.host_ssh.value),
                             "the node (ssh " + api.host_ssh.value + ")");
  }
  return guest::local_guest(api.host_root.present ? resolve(e, api.host_root.value) : "/");
}

base::Result<guest::GuestChannel*> GuestChannels::get(model::GuestId id) {
  if (auto it = open_.find(id); it != open_.end()) return it->second.get();
  const model::Guest* g = e_.guest(id);
  std::unique_ptr<guest::GuestChannel> ch;
  if (g->local_root.present) {
    ch = guest::local_guest(g->local_root.value);
  } else if (g->is_lxc()) {
    const model::ProxmoxApi& api = e_.platform.proxmox_api;
    ch = api.host_ssh.present ? guest::pct_guest(base::ssh_runner(api.host_ssh.value), id,
                                                 "ssh " + api.host_ssh.value)
                              : guest::pct_guest(base::local_runner(), id, "this node");
  } else {
    // A client of its own: channels of different guests may be used from different threads.
    auto pve = open_proxmox(e_);
    if (!pve) {
      return base::fail(
          pve.error().kind(),
          "Phoenix reaches " + g->label() +
              " through its QEMU guest agent, over the Proxmox API: " + pve.error().message());
    }
    proxmox::Pve& client = *pves_.emplace_back(std::move(*pve));
    ch = guest::exec_guest(
        proxmox::agent_runner(client, proxmox_node(e_), id),
        g->label() + " through its guest agent (" + client.describe() + ")",
        proxmox::kAgentInputLimit,
        proxmox::agent_runner(client, proxmox_node(e_), id, std::chrono::minutes(5),
                              std::chrono::milliseconds(200), /*repeatable=*/true));
  }
  return (open_[id] = std::move(ch)).get();
}

base::Result<pveconf::VmContext> vm_context(const model::Estate& e, bool need_key) {
  pveconf::VmContext ctx = pveconf::vm_context(e);
  std::string file = pveconf::ssh_public_key_file(e);
  if (file.empty() || !need_key) return ctx;
  auto key = base::read_file(resolve(e, file));
  if (!key) {
    return base::fail(base::ErrorKind::kInvalidInput,
                      "users.ssh_public_key_file: cannot read " + resolve(e, file) + " (" +
                          key.error().message() +
                          "); VMs get this key through cloud-init. Create it with ssh-keygen or "
                          "point the setting at an existing .pub file");
  }
  ctx.ssh_public_key = *key;
  return ctx;
}

std::variant<GuestSession, int> open_guest_session(const GlobalOptions& g,
                                                   const std::vector<std::string>& ids) {
  GuestSession s;
  s.loaded = load_and_validate(g);
  if (s.loaded.diags.has_errors()) return report_invalid(g, s.loaded);
  auto parsed = parse_guest_ids(s.estate(), ids);
  if (!parsed) {
    print_error(g, parsed.error().message());
    return kExitInvalid;
  }
  s.ids = *parsed;
  auto pve = open_proxmox(s.estate());
  if (!pve) {
    print_error(g, pve.error().describe());
    return kExitInvalid;
  }
  s.pve = std::move(*pve);
  auto inventory = provision::read_inventory(*s.pve);
  if (!inventory) {
    print_error(g, "reading the Proxmox inventory: " + remote_error(inventory.error()));
    return provider_exit(inventory.error());
  }
  s.inventory = std::move(*inventory);
  return s;
}

void print_steps(const model::Estate& e, const std::vector<provision::Step>& steps) {
  for (const provision::Step& s : steps) {
    const model::Guest* guest = s.guest ? e.guest(s.guest) : nullptr;
    std::cout << "  " << s.action << " " << (guest ? guest->label() : std::string("cluster"));
    if (!s.detail.empty()) std::cout << ": " << s.detail;
    std::cout << '\n';
  }
}

nlohmann::json steps_json(const std::vector<provision::Step>& steps) {
  nlohmann::json out = nlohmann::json::array();
  for (const provision::Step& s : steps) {
    nlohmann::json j = {{"action", s.action}, {"detail", s.detail}};
    j["guest"] = s.guest ? nlohmann::json(s.guest) : nlohmann::json(nullptr);
    out.push_back(std::move(j));
  }
  return out;
}

nlohmann::json requests_json(const std::vector<const proxmox::Pve*>& clients) {
  std::uint64_t total = 0, mutating = 0, retries = 0;
  std::map<std::string, std::uint64_t> routes;
  for (const proxmox::Pve* p : clients) {
    total += p->counts().total;
    mutating += p->counts().mutating;
    retries += p->counts().retries;
    for (const auto& [k, v] : p->counts().by_route) routes[k] += v;
  }
  return {{"total", total}, {"mutating", mutating}, {"retries", retries}, {"by_route", routes}};
}

int provider_exit(const base::Error& error) {
  bool unusable = error.retryable() || error.kind() == base::ErrorKind::kPermission;
  return unusable ? kExitUnreachable : kExitPartial;
}

std::size_t change_count(const swarm::DeployReport& report) {
  std::size_t n = report.created.size() + report.removed.size();
  for (const auto& s : report.services) n += s.action != "unchanged";
  return n;
}

std::string format_stack_changes(const swarm::DeployReport& report, const std::string& indent) {
  std::ostringstream out;
  for (const auto& c : report.created) out << indent << "+ " << c << '\n';
  for (const auto& s : report.services) {
    if (s.action == "unchanged") continue;
    char sign = s.action == "create" ? '+' : s.action == "remove" ? '-' : '~';
    out << indent << sign << " service " << s.name << '\n';
    for (const auto& f : s.fields) {
      out << indent << "    " << f.path << ": " << short_json(f.before) << " → "
          << short_json(f.after) << '\n';
    }
  }
  for (const auto& r : report.removed) out << indent << "- " << r << '\n';
  for (const auto& f : report.failures) out << indent << "failed: " << f << '\n';
  return out.str();
}

nlohmann::json stack_report_json(const swarm::DeployReport& report) {
  nlohmann::json services = nlohmann::json::array();
  for (const auto& s : report.services) {
    nlohmann::json fields = nlohmann::json::array();
    for (const auto& f : s.fields) {
      fields.push_back({{"path", f.path}, {"before", f.before}, {"after", f.after}});
    }
    services.push_back({{"name", s.name}, {"action", s.action}, {"fields", fields}});
  }
  return {{"stack", report.stack},           {"converged", report.converged},
          {"changes", change_count(report)}, {"services", services},
          {"created", report.created},       {"removed", report.removed},
          {"failures", report.failures}};
}

base::Result<swarm::StackSpec> stack_spec(const model::Estate& estate,
                                          const compile::StackDeployment& deployment) {
  const model::Stack* stack = estate.stack(deployment.stack);
  std::string dir = stack ? stack->dir : std::string();
  swarm::ReadFile read = [&](const std::string& path) -> base::Result<std::string> {
    std::filesystem::path p(path);
    return base::read_file(p.is_absolute() ? p : std::filesystem::path(dir) / p);
  };
  auto spec = swarm::convert_stack(deployment.stack, deployment.compose, read);
  if (!spec) {
    base::SourceLoc loc = spec.error().loc();
    std::string where;
    if (loc.has_file()) {
      where = estate.sources.path(loc.file);
      if (loc.has_line()) where += ":" + std::to_string(loc.line) + ":" + std::to_string(loc.col);
      where += ": ";
    }
    return base::fail(spec.error().kind(),
                      where + "stack " + deployment.stack + ": " + spec.error().message());
  }
  return spec;
}

const model::Guest* step_ca_guest(const model::Estate& estate) {
  for (const model::Guest& guest : estate.guests) {
    if (!guest.is_template.value && guest.has_feature("step_ca")) return &guest;
  }
  return nullptr;
}

base::Result<ca::StepCaOptions> step_ca_options(const model::Estate& e,
                                                guest::GuestChannel* ca_channel) {
  const model::StepCa& sc = e.platform.step_ca;
  ca::StepCaOptions o;
  o.url = sc.url.value;
  o.fingerprint = sc.fingerprint.value;
  o.provisioner = sc.provisioner_name.value;
  if (sc.provisioner_password_file.present) {
    const std::string& f = sc.provisioner_password_file.value;
    o.password_file = f.starts_with('/') ? f : e.paths.config_dir + "/" + f;
  }
  if (!o.fingerprint.empty()) return o;
  const model::Guest* guest = step_ca_guest(e);
  constexpr const char* kRoot = "/etc/step-ca/certs/root_ca.crt";
  if (!guest || !ca_channel) {
    return base::fail(base::ErrorKind::kInvalidInput,
                      "step-ca's TLS cannot be verified: set step_ca.fingerprint (the root's "
                      "SHA-256, as `step certificate fingerprint root_ca.crt` prints it), or run "
                      "the CA in a guest with the step_ca feature");
  }
  auto pem = ca_channel->read_file(kRoot);
  if (!pem) {
    return base::fail(base::ErrorKind::kTransient,
                      "step-ca's root is not in " + guest->label() + " yet (" + kRoot + ": " +
                          pem.error().message() +
                          "): its step_ca feature initialises the CA, or set step_ca.fingerprint");
  }
  o.root_pem = std::move(*pem);
  o.root_from = std::string(kRoot) + " in " + guest->label();
  return o;
}

}  // namespace phoenix::cli
