#include "config/estate_image.h"

#include <concepts>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

namespace phoenix::config {
namespace {

using base::Node;
using base::SourceLoc;

// Every model struct the image holds is listed field by field below. A field added to one of
// them must be added to its list too, or a cached estate would come back without it: these
// sizes make the build fail until the list is looked at (update the size with the list).
#if defined(__x86_64__) && defined(__GLIBCXX__)
static_assert(sizeof(model::Guest) == 3088, "a field was added to Guest: add it to io() below");
static_assert(sizeof(model::Stack) == 224, "a field was added to Stack: add it to io() below");
static_assert(sizeof(model::Platform) == 3352, "Platform changed: update io() below");
static_assert(sizeof(model::FirewallRule) == 400, "FirewallRule changed: update io() below");
static_assert(sizeof(model::Firewall) == 64, "Firewall changed: update io() below");
static_assert(sizeof(model::GlobalFirewall) == 160, "GlobalFirewall changed: update io() below");
static_assert(sizeof(model::NetworkConfig) == 376, "NetworkConfig changed: update io() below");
static_assert(sizeof(model::TraefikService) == 136, "TraefikService changed: update io()");
static_assert(sizeof(model::MountPoint) == 160, "MountPoint changed: update io() below");
static_assert(sizeof(model::IdMap) == 136, "IdMap changed: update io() below");
static_assert(sizeof(model::VllmConfig) == 376, "VllmConfig changed: update io() below");
static_assert(sizeof(model::FileRef) == 88, "FileRef changed: update io() below");
static_assert(sizeof(model::StackRef) == 112, "StackRef changed: update io() below");
static_assert(sizeof(model::DockerApi) == 200, "DockerApi changed: update io() below");
static_assert(sizeof(model::Argv) == 40, "Argv changed: update io() below");
static_assert(sizeof(model::StackVariable) == 112, "StackVariable changed: update io()");
static_assert(sizeof(model::StackFile) == 152, "StackFile changed: update io() below");
static_assert(sizeof(model::StackService) == 72, "StackService changed: update io() below");
static_assert(sizeof(model::StackEnvironment) == 144, "StackEnvironment changed: update io()");
static_assert(sizeof(model::ProxmoxApi) == 416, "ProxmoxApi changed: update io() below");
static_assert(sizeof(model::DnsServer) == 176, "DnsServer changed: update io() below");
static_assert(sizeof(model::NginxGatewaySettings) == 88, "NginxGatewaySettings changed");
static_assert(sizeof(model::TraefikSettings) == 48, "TraefikSettings changed: update io()");
static_assert(sizeof(model::CertificateSettings) == 112, "CertificateSettings changed");
static_assert(sizeof(model::CertificateSettings::Extra) == 392, "certificates.extra changed");
static_assert(sizeof(model::StepCa) == 392, "StepCa changed: update io() below");
static_assert(sizeof(model::HostNetwork) == 520, "HostNetwork changed: update io() below");
static_assert(sizeof(model::PortainerApi) == 208, "PortainerApi changed: update io() below");
static_assert(sizeof(model::GuestFeatureSettings) == 248, "GuestFeatureSettings changed");
static_assert(sizeof(model::EstatePaths) == 96, "EstatePaths changed: update io() below");
static_assert(sizeof(base::Diagnostic) == 184, "Diagnostic changed: update io() below");
static_assert(sizeof(base::RelatedLoc) == 48, "RelatedLoc changed: update io() below");
static_assert(sizeof(SourceLoc) == 12, "SourceLoc changed: update io() below");
static_assert(sizeof(model::GuestRef) == 16, "GuestRef changed: update io() below");
static_assert(sizeof(model::Estate) == 3728, "Estate changed: update io_model() below");
#endif

template <class T>
concept Plain = std::is_arithmetic_v<T> || std::is_enum_v<T>;

class Writer {
 public:
  static constexpr bool kReading = false;

  template <Plain T>
  void plain(const T& v) {
    out_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void string(const std::string& s) {
    count(s.size());
    out_.append(s);
  }
  void bytes(const void* p, std::size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::size_t count(std::size_t n) {
    plain(static_cast<std::uint64_t>(n));
    return n;
  }
  bool ok() const { return true; }
  void reserve(std::size_t n) { out_.reserve(n); }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  static constexpr bool kReading = true;

  explicit Reader(std::string_view in) : in_(in) {}

  template <Plain T>
  void plain(T& v) {
    if (!need(sizeof v)) return;
    std::memcpy(&v, in_.data() + pos_, sizeof v);
    pos_ += sizeof v;
  }
  void string(std::string& s) {
    std::size_t n = count(0);
    if (!need(n)) return;
    s.assign(in_.data() + pos_, n);
    pos_ += n;
  }
  void bytes(void* p, std::size_t n) {
    if (!need(n)) return;
    std::memcpy(p, in_.data() + pos_, n);
    pos_ += n;
  }
  // A length, which can be no more than the bytes left (each element takes at least one).
  std::size_t count(std::size_t) {
    std::uint64_t n = 0;
    plain(n);
    if (n > in_.size() - pos_) {
      ok_ = false;
      return 0;
    }
    return static_cast<std::size_t>(n);
  }
  bool ok() const { return ok_; }
  bool at_end() const { return pos_ == in_.size(); }
  void fail() { ok_ = false; }

 private:
  bool need(std::size_t n) {
    if (!ok_ || n > in_.size() - pos_) {
      ok_ = false;
      return false;
    }
    return true;
  }

  std::string_view in_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

// `T` without const: the writer sees the estate const, the reader fills it.
template <class T, class U>
concept Is = std::same_as<std::remove_const_t<T>, U>;

template <class A, class T>
requires Plain<std::remove_const_t<T>>
void io(A& a, T& v) { a.plain(v); }

template <class A, Is<std::string> T>
void io(A& a, T& s) {
  a.string(s);
}

// A location is three numbers without padding (its size is checked above): one copy, not three.
template <class A, Is<SourceLoc> T>
void io(A& a, T& loc) {
  static_assert(std::is_trivially_copyable_v<SourceLoc>);
  a.bytes(&loc, sizeof loc);
}

template <class A, class... T>
void io_all(A& a, T&... fields) {
  (io(a, fields), ...);
}

template <class T>
struct IsVector : std::false_type {};
template <class T>
struct IsVector<std::vector<T>> : std::true_type {};
template <class T>
struct IsOptional : std::false_type {};
template <class T>
struct IsOptional<std::optional<T>> : std::true_type {};
template <class T>
struct IsVal : std::false_type {};
template <class T>
struct IsVal<model::Val<T>> : std::true_type {};

template <class A, class V>
requires IsVector<std::remove_const_t<V>>::value void io(A& a, V& v) {
  if constexpr (A::kReading) {
    std::size_t n = a.count(0);
    v.clear();
    v.resize(n);
  } else {
    a.count(v.size());
  }
  for (auto& item : v) {
    if (!a.ok()) return;
    io(a, item);
  }
}

template <class A, class O>
requires IsOptional<std::remove_const_t<O>>::value void io(A& a, O& o) {
  bool has = o.has_value();
  io(a, has);
  if constexpr (A::kReading) {
    if (has) io(a, o.emplace());
  } else {
    if (has) io(a, *o);
  }
}

template <class A, class V>
requires IsVal<std::remove_const_t<V>>::value void io(A& a, V& v) {
  io_all(a, v.value, v.loc, v.present);
}

// ---- nodes --------------------------------------------------------------------------------

constexpr int kMaxDepth = 256;  // parsers stop at 128

void write_node(Writer& w, const Node& n) {
  w.plain(n.kind());
  const SourceLoc loc = n.loc();
  io(w, loc);
  switch (n.kind()) {
    case Node::Kind::kNull:
      return;
    case Node::Kind::kBool:
      w.plain(n.as_bool());
      return;
    case Node::Kind::kInt:
      w.plain(n.as_int());
      io(w, n.text());
      return;
    case Node::Kind::kDouble:
      w.plain(n.as_double());
      io(w, n.text());
      return;
    case Node::Kind::kString:
      io(w, n.text());
      return;
    case Node::Kind::kArray:
      w.count(n.items().size());
      for (const Node& item : n.items()) write_node(w, item);
      return;
    case Node::Kind::kObject:
      w.count(n.members().size());
      for (const Node::Member& m : n.members()) {
        io_all(w, m.key, m.key_loc);
        write_node(w, m.value);
      }
      return;
  }
}

void read_node(Reader& r, Node& n, int depth) {
  if (depth > kMaxDepth) return r.fail();
  Node::Kind kind{};
  SourceLoc loc;
  io_all(r, kind, loc);
  if (!r.ok()) return;
  switch (kind) {
    case Node::Kind::kNull:
      n = Node::null(loc);
      return;
    case Node::Kind::kBool: {
      bool v = false;
      io(r, v);
      n = Node::boolean(v, loc);
      return;
    }
    case Node::Kind::kInt: {
      std::int64_t v = 0;
      std::string text;
      io_all(r, v, text);
      n = Node::integer(v, loc, std::move(text));
      return;
    }
    case Node::Kind::kDouble: {
      double v = 0;
      std::string text;
      io_all(r, v, text);
      n = Node::real(v, loc, std::move(text));
      return;
    }
    case Node::Kind::kString:
      n = Node::string({}, loc);
      io(r, n.mutable_text());
      return;
    case Node::Kind::kArray: {
      n = Node::array(loc);
      std::size_t count = r.count(0);
      std::vector<Node>& items = n.items();
      items.resize(count);
      for (Node& item : items) {
        if (!r.ok()) return;
        read_node(r, item, depth + 1);
      }
      return;
    }
    case Node::Kind::kObject: {
      n = Node::object(loc);
      std::size_t count = r.count(0);
      std::vector<Node::Member>& members = n.members();
      members.resize(count);
      for (Node::Member& m : members) {
        if (!r.ok()) return;
        io_all(r, m.key, m.key_loc);
        read_node(r, m.value, depth + 1);
      }
      return;
    }
  }
  r.fail();  // not a kind
}

template <class A, Is<Node> T>
void io(A& a, T& n) {
  if constexpr (A::kReading) {
    read_node(a, n, 0);
  } else {
    write_node(a, n);
  }
}

// ---- the model ----------------------------------------------------------------------------

template <class A, Is<model::GuestRef> T>
void io(A& a, T& r) {
  io_all(a, r.id, r.loc);
}

template <class A, Is<model::DockerApi> T>
void io(A& a, T& d) {
  io_all(a, d.present, d.url, d.ca_file, d.cert_file, d.key_file);
}

template <class A, Is<model::Argv> T>
void io(A& a, T& v) {
  io_all(a, v.present, v.loc, v.args);
}

template <class A, Is<model::FirewallRule> T>
void io(A& a, T& r) {
  io_all(a, r.loc, r.type, r.action, r.source, r.dest, r.proto, r.port, r.iface, r.comment);
}

template <class A, Is<model::Firewall> T>
void io(A& a, T& f) {
  io_all(a, f.present, f.loc, f.enabled, f.rules);
}

template <class A, Is<model::GlobalFirewall> T>
void io(A& a, T& f) {
  io_all(a, f.present, f.loc, f.enabled, f.default_input_policy, f.default_output_policy, f.rules);
}

template <class A, Is<model::NetworkConfig> T>
void io(A& a, T& n) {
  io_all(a, n.present, n.loc, n.name, n.bridge, n.ip, n.gw, n.hwaddr, n.type, n.nameservers,
         n.searchdomain);
}

template <class A, Is<model::TraefikService> T>
void io(A& a, T& t) {
  io_all(a, t.present, t.loc, t.name, t.port, t.scheme);
}

template <class A, Is<model::MountPoint> T>
void io(A& a, T& m) {
  io_all(a, m.loc, m.host_path, m.container_path, m.owner_uid, m.owner_gid);
}

template <class A, Is<model::IdMap> T>
void io(A& a, T& m) {
  io_all(a, m.loc, m.type, m.host_id, m.container_id, m.size);
}

template <class A, Is<model::VllmConfig> T>
void io(A& a, T& v) {
  io_all(a, v.present, v.loc, v.model, v.dtype, v.max_model_len, v.quantization,
         v.trust_remote_code, v.gpu_memory_utilization, v.tensor_parallel_size, v.host, v.port,
         v.served_model_name);
}

template <class A, Is<model::FileRef> T>
void io(A& a, T& f) {
  io_all(a, f.name, f.resolved, f.exists);
}

template <class A, Is<model::StackRef> T>
void io(A& a, T& s) {
  io_all(a, s.loc, s.name, s.environment);
}

template <class A, Is<model::Guest> T>
void io(A& a, T& g) {
  io_all(a, g.kind, g.id, g.loc, g.name, g.is_template, g.template_snapshot_name, g.clone_from,
         g.memory_mb, g.cores, g.start_at_boot, g.boot_order, g.boot_delay, g.features,
         g.portainer_role, g.dependencies, g.network, g.firewall, g.traefik_service,
         g.trigger_sync_on_completion);
  io_all(a, g.os_template, g.swap_mb, g.storage_pool, g.storage_size_gb, g.secondary_network,
         g.mac_address, g.gpu_assignment, g.gpus, g.unprivileged, g.id_maps, g.pct_options,
         g.lxc_options, g.apparmor_profile, g.apparmor_manages_nesting, g.application_script,
         g.bootstrap_ca_url, g.enable_lifecycle_snapshots, g.mount_points, g.health_checks, g.vllm);
  io_all(a, g.template_image, g.disk_size_gb, g.swarm_role, g.node_labels,
         g.portainer_environment_name, g.portainer_agent_hostname, g.username, g.docker_stacks,
         g.docker_api);
  io_all(a, g.local_root, g.volumes, g.snapshots);
}

template <class A, Is<model::StackVariable> T>
void io(A& a, T& v) {
  io_all(a, v.loc, v.name, v.value);
}

template <class A, Is<model::StackFile> T>
void io(A& a, T& f) {
  io_all(a, f.loc, f.source, f.destination);
}

template <class A, Is<model::StackService> T>
void io(A& a, T& s) {
  io_all(a, s.loc, s.name, s.traefik_labels);
}

template <class A, Is<model::StackEnvironment> T>
void io(A& a, T& e) {
  io_all(a, e.loc, e.name, e.variables, e.files, e.services, e.firewall_rules);
}

template <class A, Is<model::Stack> T>
void io(A& a, T& s) {
  io_all(a, s.name, s.dir, s.manifest_loc, s.compose_loc, s.has_manifest, s.has_compose,
         s.compose_unreadable, s.description, s.environments, s.compose);
}

template <class A, Is<model::ProxmoxApi> T>
void io(A& a, T& p) {
  io_all(a, p.present, p.url, p.node, p.token_id, p.token_secret_file, p.ca_file, p.fingerprint,
         p.insecure, p.host_ssh, p.host_root);
}

template <class A, Is<model::DnsServer> T>
void io(A& a, T& d) {
  io_all(a, d.present, d.loc, d.enabled, d.upstream_servers, d.authoritative_zones, d.records_file,
         d.reload);
}

template <class A, Is<model::NginxGatewaySettings> T>
void io(A& a, T& n) {
  io_all(a, n.present, n.test, n.reload);
}

template <class A, Is<model::TraefikSettings> T>
void io(A& a, T& t) {
  io_all(a, t.present, t.restart);
}

template <class A, Is<model::CertificateSettings::Extra> T>
void io(A& a, T& e) {
  io_all(a, e.loc, e.name, e.guest, e.common_name, e.sans, e.cert_path, e.key_path, e.owner,
         e.group, e.reload);
}

template <class A, Is<model::CertificateSettings> T>
void io(A& a, T& c) {
  io_all(a, c.present, c.reload, c.trust_update, c.extra);
}

template <class A, Is<model::StepCa> T>
void io(A& a, T& s) {
  io_all(a, s.present, s.root_ca_name, s.intermediate_ca_name, s.dns_name, s.provisioner_name,
         s.url, s.fingerprint, s.provisioner_password_file, s.acme_directory);
}

template <class A, Is<model::HostNetwork> T>
void io(A& a, T& n) {
  io_all(a, n.loc, n.interface_name, n.address, n.gateway, n.dns_nameservers, n.default_subnet,
         n.public_bridge, n.internal_bridge_name, n.internal_bridge_subnet, n.portainer_server_ip,
         n.portainer_server_port, n.portainer_agent_port, n.nfs_server);
}

template <class A, Is<model::PortainerApi> T>
void io(A& a, T& p) {
  io_all(a, p.present, p.admin_user, p.admin_password_file, p.portainer_hostname, p.api_key_file,
         p.inline_secret);
}

template <class A, Is<model::GuestFeatureSettings> T>
void io(A& a, T& g) {
  io_all(a, g.present, g.step_binary, g.step_ca_binary, g.traefik_binary, g.nvidia_runfile,
         g.vllm_version);
}

template <class A, Is<model::Platform> T>
void io(A& a, T& p) {
  io_all(a, p.loc, p.version, p.domain_name, p.timezone, p.network, p.portainer_server_image,
         p.portainer_agent_image, p.portainer_stack, p.firewall, p.portainer_api, p.dns_server,
         p.nginx_gateway, p.traefik, p.certificates, p.guest_features, p.step_ca, p.proxmox_api,
         p.docker_api, p.rollback_on_failure, p.debug_mode, p.mount_point_base);
  io_all(a, p.users, p.core_paths, p.zfs, p.nfs, p.proxmox_storage_ids, p.nvidia_driver,
         p.vm_defaults);
}

template <class A, Is<model::EstatePaths> T>
void io(A& a, T& p) {
  io_all(a, p.config_dir, p.stacks_dir, p.bin_dir);
}

template <class A, Is<base::RelatedLoc> T>
void io(A& a, T& r) {
  io_all(a, r.loc, r.message);
}

template <class A, Is<base::Diagnostic> T>
void io(A& a, T& d) {
  io_all(a, d.severity, d.code, d.loc, d.message, d.hint, d.related, d.masked_source);
}

// The estate's own parts, in one order for both directions (the sources are done apart: their
// text is not in the image).
template <class A, Is<model::Estate> T>
void io_model(A& a, T& e) {
  io_all(a, e.paths, e.platform, e.vm_defaults, e.guests, e.stacks);
}

}  // namespace

std::string encode_estate_image(const LoadResult& loaded) {
  Writer w;
  const base::SourceManager& sources = loaded.estate->sources;
  // An image is smaller than the files it was loaded from (2.9 MB for 5.3 at 1,000 guests): with
  // room for that much it does not grow by copies. Room not written to costs no memory.
  std::size_t text = 0;
  for (std::uint32_t id = 1; id <= sources.size(); ++id) text += sources.text(id).size();
  w.reserve(text + 4096);
  w.count(sources.size());
  for (std::uint32_t id = 1; id <= sources.size(); ++id) io(w, sources.path(id));
  io_model(w, *loaded.estate);
  io(w, loaded.diags.all());
  return w.take();
}

std::optional<LoadResult> decode_estate_image(std::string_view bytes, const SourceText& text) {
  Reader r(bytes);
  LoadResult out{std::make_unique<model::Estate>(), {}};
  model::Estate& estate = *out.estate;
  std::size_t files = r.count(0);
  for (std::size_t i = 0; i < files && r.ok(); ++i) {
    std::string path;
    io(r, path);
    std::optional<std::string> content = text(path);
    std::uint32_t id = estate.sources.reserve(path);
    if (content) estate.sources.fill(id, std::move(path), std::move(*content));
  }
  io_model(r, estate);
  std::vector<base::Diagnostic> diags;
  io(r, diags);
  if (!r.ok() || !r.at_end()) return std::nullopt;
  for (base::Diagnostic& d : diags) out.diags.add(std::move(d));
  estate.reindex();
  return out;
}

}  // namespace phoenix::config
