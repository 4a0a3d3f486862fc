#include "config/loader.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <filesystem>
#include <thread>

#include "base/strings.h"
#include "config/json_parser.h"
#include "config/reader.h"
#include "config/yaml_reader.h"

namespace phoenix::config {
namespace {

using base::Node;
using base::SourceLoc;
using model::Guest;
using model::GuestId;
using model::GuestKind;

constexpr std::int64_t kMaxGuestId = 999'999'999;  // Proxmox's vmid range is 100..999999999
constexpr std::int64_t kMinGuestId = 100;

std::string parent_dir(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  std::string parent = std::filesystem::path(dir).parent_path().string();
  return parent;
}

class Loader {
 public:
  Loader(const LoadOptions& options, SourceTree& tree)
      : tree_(tree), estate_(std::make_unique<model::Estate>()) {
    estate_->paths = resolve_paths(options);
  }

  LoadResult run() {
    const auto& paths = estate_->paths;
    // Every file is found first, then all are read and parsed at once (on several threads for
    // a large estate), then their values are read into the estate in the order of the files.
    ParsedFile* platform = add_file(join_path(paths.config_dir, kHypervisorFile), Syntax::kJson);
    ParsedFile* lxc = add_file(join_path(paths.config_dir, kLxcFile), Syntax::kJson);
    ParsedFile* vm = add_file(join_path(paths.config_dir, kVmFile), Syntax::kJson);
    std::vector<StackFiles> stacks = find_stacks();
    load_all({lxc, vm});
    drop_absent(stacks);
    if (auto* root = take(*platform)) read_platform(*root);
    // The guests of both files go into one vector, reserved once: a Guest is a few KiB, and
    // growing the vector for the VMs would copy every LXC.
    const Node* lxc_root = take(*lxc);
    const Node* vm_root = take(*vm);
    estate_->guests.reserve(entry_count(lxc_root, "lxc_configs") + entry_count(vm_root, "vms"));
    if (lxc_root) read_lxc_file(*lxc_root);
    if (vm_root) read_vm_file(*vm_root);
    read_stacks(stacks);
    files_.clear();  // the trees that were read (compose files were moved into their stacks)
    estate_->reindex();
    return LoadResult{std::move(estate_), std::move(diags_)};
  }

 private:
  // ---- files -------------------------------------------------------------------------------

  enum class Syntax { kJson, kYaml };

  // One configuration file: read, then parsed with diagnostics of its own (files are read and
  // parsed in parallel), which join the estate's when its values are read.
  struct ParsedFile {
    std::string path;
    std::string fallback;   // read instead when `path` does not exist
    bool optional = false;  // may be absent: not an error
    Syntax syntax = Syntax::kJson;
    std::uint32_t id = 0;  // in estate_->sources, reserved when the file is added
    bool present = false;  // it exists (read, or failed to read for another reason)
    bool read = false;     // its text is in estate_->sources
    std::optional<Node> root;
    base::Diagnostics diags;
  };

  struct StackFiles {
    std::string name, dir;
    ParsedFile* compose = nullptr;   // absent: no compose file
    ParsedFile* manifest = nullptr;  // absent: no phoenix.json
  };

  ParsedFile* add_file(std::string path, Syntax syntax, bool optional = false,
                       std::string fallback = {}) {
    ParsedFile& f = files_.emplace_back();
    f.path = std::move(path);
    f.fallback = std::move(fallback);
    f.optional = optional;
    f.syntax = syntax;
    f.id = estate_->sources.reserve(f.path);
    return &f;
  }

  // Reads one file into its reserved source. Touches nothing but `f` and its source, and reads
  // the tree, which several threads may do at once. An optional file is simply tried: no
  // separate look first (a large estate has hundreds of stacks, and every system call counts).
  void read(ParsedFile& f) const {
    auto text = tree_.read(f.path);
    if (!text && text.error().kind() == base::ErrorKind::kNotFound && !f.fallback.empty()) {
      auto other = tree_.read(f.fallback);
      if (other || other.error().kind() != base::ErrorKind::kNotFound) {
        f.path = f.fallback;
        text = std::move(other);
      }
    }
    if (!text && text.error().kind() == base::ErrorKind::kNotFound && f.optional) return;
    f.present = true;
    if (!text) {
      std::string hint;
      if (text.error().kind() == base::ErrorKind::kNotFound) {
        hint = "point -C (or PHOENIX_CONFIG_DIR) at the directory holding " +
               std::string(kHypervisorFile) + ", " + kLxcFile + " and " + kVmFile;
      }
      f.diags.error("missing-file", {}, text.error().message(), hint);
      return;
    }
    estate_->sources.fill(f.id, f.path, std::move(*text));
    f.read = true;
  }

  // Parses one file that was read. Touches nothing but `f` (and reads the sources, which no
  // one changes while files are parsed).
  void parse(ParsedFile& f) const {
    if (!f.read) return;
    const std::string& text = estate_->sources.text(f.id);
    if (f.syntax == Syntax::kYaml) {
      auto node = parse_yaml(text, f.id);
      if (!node) {
        f.diags.error("yaml-syntax", node.error().loc(), node.error().message());
        return;
      }
      f.root = std::move(*node);
      return;
    }
    auto node = parse_json(text, f.id, f.diags);
    if (!node) {
      f.diags.error("json-syntax", node.error().loc(), node.error().message());
      return;
    }
    if (!node->is_object()) {
      f.diags.error("wrong-type", node->loc(),
                    "the top level of " + f.path + " must be an object, not " +
                        std::string(node->kind_name()));
      return;
    }
    f.root = std::move(*node);
  }

  // Reading and parsing are most of the cost of loading a large estate, and files are
  // independent: a few threads take them in turn, `first` (the biggest) first. A small estate
  // is loaded on this thread alone.
  void load_all(std::initializer_list<ParsedFile*> first) {
    std::vector<ParsedFile*> order(first);
    for (ParsedFile& f : files_) {
      if (std::find(first.begin(), first.end(), &f) == first.end()) order.push_back(&f);
    }
    constexpr std::size_t kParallelFrom = 16;  // files
    unsigned workers = std::min<unsigned>(std::max(1u, std::thread::hardware_concurrency()), 4);
    if (order.size() < kParallelFrom) workers = 1;
    std::atomic<std::size_t> next{0};
    auto work = [&] {
      for (std::size_t i = next++; i < order.size(); i = next++) {
        read(*order[i]);
        parse(*order[i]);
      }
    };
    std::vector<std::jthread> threads;
    for (unsigned w = 1; w < workers; ++w) threads.emplace_back(work);
    work();
  }

  // How many entries `root`'s `key` holds (0 when it is missing or not a list or an object).
  static std::size_t entry_count(const Node* root, std::string_view key) {
    const Node* list = root ? root->find(key) : nullptr;
    return list ? list->size() : 0;
  }

  // The file's diagnostics join the estate's; returns its parsed root, if any.
  const Node* take(ParsedFile& f) {
    diags_.append(f.diags);
    f.diags = {};
    return f.root ? &*f.root : nullptr;
  }

  // ---- shared shapes -----------------------------------------------------------------------

  static void read_rule(ObjectReader& r, model::FirewallRule& rule) {
    rule.loc = r.node().loc();
    r.str("type", rule.type);
    r.str("action", rule.action);
    r.str("source", rule.source);
    r.str("dest", rule.dest);
    r.str("proto", rule.proto);
    r.str("iface", rule.iface);
    r.str("comment", rule.comment);
    // `port` is a string ("80,443") in the seeds, an integer in some older files.
    const Node* port = r.raw("port");
    rule.port.loc = r.node().loc();
    if (port && port->is_int()) {
      rule.port = {port->text(), port->loc(), true};
    } else if (port && port->is_string()) {
      rule.port = {port->text(), port->loc(), true};
    } else if (port && !port->is_null()) {
      r.diags().error("wrong-type", port->loc(),
                      "port in " + r.what() + " must be a string such as \"80,443\", not " +
                          std::string(port->kind_name()));
    }
  }

  static void read_rules(ObjectReader& r, std::string_view key,
                         std::vector<model::FirewallRule>& out) {
    r.object_list(key, [&](ObjectReader& rr) {
      model::FirewallRule rule;
      read_rule(rr, rule);
      out.push_back(std::move(rule));
    });
  }

  static void read_firewall(ObjectReader& r, model::Firewall& fw) {
    r.object("firewall", [&](ObjectReader& f) {
      fw.present = true;
      fw.loc = f.node().loc();
      f.boolean("enabled", fw.enabled);
      read_rules(f, "rules", fw.rules);
    });
  }

  // Accepts 101 or "101": the seeds write LXC ids as strings and VM ids as integers.
  std::optional<model::GuestRef> guest_ref(const Node& v, std::string_view what) {
    std::optional<std::uint64_t> id;
    if (v.is_int() && v.as_int() >= 0) id = static_cast<std::uint64_t>(v.as_int());
    if (v.is_string()) id = base::parse_uint(base::trim(v.text()));
    if (!id || *id < kMinGuestId || *id > kMaxGuestId) {
      diags_.error("bad-guest-id", v.loc(),
                   std::string(what) + " must be a guest id between 100 and 999999999, not " +
                       (v.is_string() ? "\"" + v.text() + "\"" : v.text()));
      return std::nullopt;
    }
    return model::GuestRef{static_cast<GuestId>(*id), v.loc()};
  }

  // A command as a list of words; present (with its location) even when written as [].
  static void read_argv(ObjectReader& r, std::string_view key, model::Argv& out) {
    if (const Node* v = r.node().find(key); v && !v->is_null()) {
      out.present = true;
      out.loc = v->loc();
    }
    r.str_list(key, out.args);
  }

  void read_common_guest(ObjectReader& r, Guest& g) {
    r.str("name", g.name);
    r.str("local_root", g.local_root);
    r.boolean("is_template", g.is_template);
    r.str("template_snapshot_name", g.template_snapshot_name);
    r.integer("memory_mb", g.memory_mb, 16, 16 * 1024 * 1024);
    r.integer("cores", g.cores, 1, 8192);
    r.boolean("start_at_boot", g.start_at_boot);
    r.integer("boot_order", g.boot_order, 0, 100000);
    r.integer("boot_delay", g.boot_delay, 0, 100000);
    r.str_list("features", g.features);
    r.str("portainer_role", g.portainer_role);
    r.boolean("trigger_sync_on_completion", g.trigger_sync_on_completion);
    if (const Node* deps = r.raw("dependencies"); deps && !deps->is_null()) {
      if (!deps->is_array()) {
        diags_.error("wrong-type", deps->loc(),
                     "dependencies in " + g.label() + " must be an array of guest ids, not " +
                         std::string(deps->kind_name()));
      } else {
        for (const Node& d : deps->items()) {
          if (auto ref = guest_ref(d, "each dependency")) g.dependencies.push_back(*ref);
        }
      }
    }
    read_firewall(r, g.firewall);
    r.object("traefik_service", [&](ObjectReader& t) {
      g.traefik_service.present = true;
      g.traefik_service.loc = t.node().loc();
      t.str("name", g.traefik_service.name);
      t.integer("port", g.traefik_service.port, 1, 65535);
      t.str("scheme", g.traefik_service.scheme);
    });
    g.volumes = raw_or_null(r, "volumes");
  }

  static Node raw_or_null(ObjectReader& r, std::string_view key) {
    const Node* v = r.raw(key);
    return v ? *v : Node::null();
  }

  void read_network(ObjectReader& n, model::NetworkConfig& net) {
    net.present = true;
    net.loc = n.node().loc();
    n.str("name", net.name);
    n.str("bridge", net.bridge);
    n.str("ip", net.ip);
    n.str("gw", net.gw);
    n.str("hwaddr", net.hwaddr);
    n.str("type", net.type);
    n.str_list("nameservers", net.nameservers, true);
    n.str_list("nameserver", net.nameservers, true);  // the VM file's spelling
    n.str("searchdomain", net.searchdomain);
  }

  std::optional<model::FileRef> script_ref(ObjectReader& r, std::string_view key) {
    model::Val<std::string> name;
    r.str(key, name);
    if (!name.present) return std::nullopt;
    model::FileRef ref{name, {}, false};
    const std::string& bin = estate_->paths.bin_dir;
    std::vector<std::string> candidates;
    if (!name.value.empty() && name.value.front() == '/') {
      candidates.push_back(name.value);
    } else {
      candidates.push_back(join_path(bin, name.value));
      candidates.push_back(join_path(join_path(bin, "lxc_setup"), name.value));
    }
    ref.resolved = candidates.front();
    for (const std::string& c : candidates) {
      if (tree_.is_file(c)) {
        ref.resolved = c;
        ref.exists = true;
        break;
      }
    }
    return ref;
  }

  // The source line of a secret's key with everything from its value on replaced, so that a
  // diagnostic can show where the secret is without showing the secret.
  std::string masked_line(const Node::Member& m) const {
    std::string line(estate_->sources.line_text(m.key_loc));
    if (m.value.loc().line == m.key_loc.line && m.value.loc().col >= 1 &&
        m.value.loc().col - 1 <= line.size()) {
      return line.substr(0, m.value.loc().col - 1) + "\"********\"";
    }
    return line.substr(0,
                       std::min<std::size_t>(line.size(), m.key_loc.col - 1 + m.key.size() + 2)) +
           " ********";
  }

  // ---- phoenix_hypervisor_config.json ------------------------------------------------------

  void read_platform(const Node& root) {
    model::Platform& p = estate_->platform;
    p.loc = root.loc();
    ObjectReader r(root, diags_, kHypervisorFile);
    r.known("$schema");
    r.known("author");
    r.str("version", p.version);
    r.str("domain_name", p.domain_name);
    r.str("timezone", p.timezone);
    p.users = raw_or_null(r, "users");
    p.core_paths = raw_or_null(r, "core_paths");
    p.zfs = raw_or_null(r, "zfs");
    p.nfs = raw_or_null(r, "nfs");
    p.proxmox_storage_ids = raw_or_null(r, "proxmox_storage_ids");
    p.nvidia_driver = raw_or_null(r, "nvidia_driver");
    p.vm_defaults = raw_or_null(r, "vm_defaults");
    r.str("mount_point_base", p.mount_point_base);
    r.unused("samba", "Samba shares are outside what Phoenix manages; remove the section");
    r.unused("proxmox_defaults",
             "Phoenix takes guest settings from each guest's entry; remove the section");
    r.unused("tests", "health checks are defined per guest (health_checks)");

    r.object("network", [&](ObjectReader& n) {
      model::HostNetwork& net = p.network;
      net.loc = n.node().loc();
      n.object("interfaces", [&](ObjectReader& i) {
        i.str("name", net.interface_name);
        i.str("address", net.address);
        i.str("gateway", net.gateway);
        i.str_list("dns_nameservers", net.dns_nameservers, true);
      });
      n.str("default_subnet", net.default_subnet);
      n.str("public_bridge", net.public_bridge);
      n.object("internal_bridge", [&](ObjectReader& b) {
        b.str("name", net.internal_bridge_name);
        b.str("subnet", net.internal_bridge_subnet);
      });
      n.str("portainer_server_ip", net.portainer_server_ip);
      n.integer("portainer_server_port", net.portainer_server_port, 1, 65535);
      n.integer("portainer_agent_port", net.portainer_agent_port, 1, 65535);
      n.str("nfs_server", net.nfs_server);
      n.unused("external_registry_url", "images come from each compose file; remove the key");
      n.unused("fallback_dns", "use dns_server.upstream_servers");
    });
    r.object("docker", [&](ObjectReader& d) {
      d.str("portainer_server_image", p.portainer_server_image);
      d.str("portainer_agent_image", p.portainer_agent_image);
      d.str("portainer_stack", p.portainer_stack);
    });
    r.object("behavior", [&](ObjectReader& b) {
      b.boolean("rollback_on_failure", p.rollback_on_failure);
      b.boolean("debug_mode", p.debug_mode);
    });
    auto read_global_firewall = [&](ObjectReader& f) {
      model::GlobalFirewall& fw = p.firewall;
      fw.present = true;
      fw.loc = f.node().loc();
      f.boolean("enabled", fw.enabled);
      f.str("default_input_policy", fw.default_input_policy);
      f.str("default_output_policy", fw.default_output_policy);
      read_rules(f, "global_firewall_rules", fw.rules);
    };
    r.object("firewall", read_global_firewall);
    // Older installations keep the firewall under shared_volumes; the seeds' scripts read it there.
    if (const Node* shared = r.raw("shared_volumes"); shared && shared->is_object()) {
      ObjectReader s(*shared, diags_, "shared_volumes");
      if (!p.firewall.present) {
        s.object("firewall", read_global_firewall);
        if (const Node::Member* m = shared->find_member("firewall")) {
          diags_.warning(
              "moved-key", m->key_loc,
              "firewall settings belong at the top level of " + std::string(kHypervisorFile),
              "move \"firewall\" out of \"shared_volumes\"; Phoenix reads it here "
              "only for compatibility");
        }
      } else {
        s.known("firewall");
      }
      for (const Node::Member& m : shared->members()) {
        if (m.key == "firewall") continue;
        s.known(m.key);
      }
      if (shared->size() > (shared->find("firewall") ? 1u : 0u)) {
        diags_.warning(
            "unused-key", r.node().find_member("shared_volumes")->key_loc,
            "\"shared_volumes\" in " + std::string(kHypervisorFile) + " is not used by Phoenix",
            "declare shared directories as mount_points of the guests that use them");
      }
    }
    r.object("portainer_api", [&](ObjectReader& a) {
      model::PortainerApi& api = p.portainer_api;
      api.present = true;
      a.str("admin_user", api.admin_user);
      a.str("portainer_hostname", api.portainer_hostname);
      a.str("admin_password_file", api.admin_password_file);
      a.str("api_key_file", api.api_key_file);
      for (const char* secret : {"admin_password", "api_key"}) {
        const Node::Member* m = a.node().find_member(secret);
        a.known(secret);
        if (m && !m->value.is_null()) {
          api.inline_secret = true;
          diags_
              .warning("inline-secret", m->key_loc,
                       std::string(secret) +
                           " is written in the configuration file; Phoenix "
                           "never reads secrets from it",
                       "put the secret in a file readable only by its owner (mode 0600) and "
                       "name it with \"" +
                           std::string(secret) + "_file\"")
              .masked_source = masked_line(*m);
        }
      }
    });
    r.object("dns_server", [&](ObjectReader& d) {
      model::DnsServer& dns = p.dns_server;
      dns.present = true;
      dns.loc = d.node().loc();
      d.boolean("enabled", dns.enabled);
      d.str_list("upstream_servers", dns.upstream_servers);
      d.str_list("authoritative_zones", dns.authoritative_zones);
      d.str("records_file", dns.records_file);
      read_argv(d, "reload", dns.reload);
    });
    r.object("nginx_gateway", [&](ObjectReader& n) {
      p.nginx_gateway.present = true;
      read_argv(n, "test", p.nginx_gateway.test);
      read_argv(n, "reload", p.nginx_gateway.reload);
    });
    r.object("certificates", [&](ObjectReader& c) {
      p.certificates.present = true;
      read_argv(c, "reload", p.certificates.reload);
      read_argv(c, "trust_update", p.certificates.trust_update);
      c.object_list("extra", [&](ObjectReader& x) {
        model::CertificateSettings::Extra cert;
        cert.loc = x.node().loc();
        x.str("name", cert.name);
        if (const Node* gid = x.node().find("guest"); gid && !gid->is_null()) {
          x.known("guest");
          cert.guest = guest_ref(*gid, "guest");
        }
        x.str("common_name", cert.common_name);
        x.str_list("sans", cert.sans);
        x.str("cert_path", cert.cert_path);
        x.str("key_path", cert.key_path);
        x.str("owner", cert.owner);
        x.str("group", cert.group);
        read_argv(x, "reload", cert.reload);
        p.certificates.extra.push_back(std::move(cert));
      });
    });
    r.object("guest_features", [&](ObjectReader& f) {
      model::GuestFeatureSettings& gf = p.guest_features;
      gf.present = true;
      f.str("step_binary", gf.step_binary);
      f.str("step_ca_binary", gf.step_ca_binary);
      f.str("traefik_binary", gf.traefik_binary);
      f.str("nvidia_runfile", gf.nvidia_runfile);
      f.str("vllm_version", gf.vllm_version);
    });
    r.object("traefik", [&](ObjectReader& t) {
      p.traefik.present = true;
      read_argv(t, "restart", p.traefik.restart);
    });
    r.object("step_ca", [&](ObjectReader& s) {
      model::StepCa& ca = p.step_ca;
      ca.present = true;
      s.str("root_ca_name", ca.root_ca_name);
      s.str("intermediate_ca_name", ca.intermediate_ca_name);
      s.str("dns_name", ca.dns_name);
      s.str("provisioner_name", ca.provisioner_name);
      s.str("url", ca.url);
      s.str("fingerprint", ca.fingerprint);
      s.str("provisioner_password_file", ca.provisioner_password_file);
      s.str("acme_directory", ca.acme_directory);
    });
    r.object("proxmox_api", [&](ObjectReader& a) {
      model::ProxmoxApi& api = p.proxmox_api;
      api.present = true;
      a.str("url", api.url);
      a.str("node", api.node);
      a.str("token_id", api.token_id);
      a.str("token_secret_file", api.token_secret_file);
      a.str("ca_file", api.ca_file);
      a.str("fingerprint", api.fingerprint);
      a.boolean("insecure", api.insecure);
      a.str("host_ssh", api.host_ssh);
      a.str("host_root", api.host_root);
      if (const Node::Member* m = a.node().find_member("token_secret")) {
        a.known("token_secret");
        diags_
            .error("inline-secret", m->key_loc,
                   "token_secret is written in the configuration file; Phoenix never reads "
                   "secrets from it",
                   "put the token secret in a file with mode 0600 and name it with "
                   "\"token_secret_file\"")
            .masked_source = masked_line(*m);
      }
    });
    r.object("docker_api", [&](ObjectReader& a) { read_docker_api(a, p.docker_api); });
    r.finish();
  }

  // ---- phoenix_lxc_configs.json ------------------------------------------------------------

  void read_lxc_file(const Node& root) {
    ObjectReader r(root, diags_, kLxcFile);
    r.known("$schema");
    // Global NVIDIA settings, used by the nvidia feature.
    r.known("nvidia_driver_version");
    r.known("nvidia_repo_url");
    r.known("nvidia_runfile_url");
    const Node* configs = r.raw("lxc_configs");
    if (!configs) {
      diags_.error("missing-key", root.loc(), std::string(kLxcFile) + " has no \"lxc_configs\"",
                   "add \"lxc_configs\": { \"<ctid>\": { ... } }");
      return;
    }
    if (!configs->is_object()) {
      diags_.error("wrong-type", configs->loc(),
                   "lxc_configs must be an object keyed by container id, not " +
                       std::string(configs->kind_name()));
      return;
    }
    for (const Node::Member& m : configs->members()) {
      auto ref = guest_ref(Node::string(m.key, m.key_loc), "each key of lxc_configs");
      if (!ref) continue;
      if (!m.value.is_object()) {
        diags_.error(
            "wrong-type", m.value.loc(),
            "LXC " + m.key + " must be an object, not " + std::string(m.value.kind_name()));
        continue;
      }
      Guest& g = estate_->guests.emplace_back();  // in place: a Guest is a few KiB
      g.kind = GuestKind::kLxc;
      g.id = ref->id;
      g.loc = m.key_loc;
      read_lxc(m.value, g);
    }
  }

  void read_lxc(const Node& node, Guest& g) {
    ObjectReader r(node, diags_, "LXC " + std::to_string(g.id));
    read_common_guest(r, g);
    r.str("template", g.os_template);
    if (const Node* c = r.raw("clone_from_ctid"); c && !c->is_null()) {
      g.clone_from = guest_ref(*c, "clone_from_ctid");
    }
    r.integer("swap_mb", g.swap_mb, 0, 16 * 1024 * 1024);
    r.str("storage_pool", g.storage_pool);
    r.integer("storage_size_gb", g.storage_size_gb, 1, 1024 * 1024);
    r.object("network_config", [&](ObjectReader& n) { read_network(n, g.network); });
    r.object("secondary_network_config",
             [&](ObjectReader& n) { read_network(n, g.secondary_network); });
    r.str("mac_address", g.mac_address);
    r.str("gpu_assignment", g.gpu_assignment);
    parse_gpus(g);
    r.boolean("unprivileged", g.unprivileged);
    r.object_list("id_maps", [&](ObjectReader& m) {
      model::IdMap map;
      map.loc = m.node().loc();
      m.str("type", map.type);
      m.integer("host_id", map.host_id, 0, 4294967294);
      m.integer("container_id", map.container_id, 0, 4294967294);
      m.integer("size", map.size, 1, 4294967295);
      g.id_maps.push_back(std::move(map));
    });
    r.str_list("pct_options", g.pct_options);
    r.str_list("lxc_options", g.lxc_options);
    r.str("apparmor_profile", g.apparmor_profile);
    r.boolean("apparmor_manages_nesting", g.apparmor_manages_nesting);
    g.application_script = script_ref(r, "application_script");
    r.str("bootstrap_ca_url", g.bootstrap_ca_url);
    r.boolean("enable_lifecycle_snapshots", g.enable_lifecycle_snapshots);
    r.object_list("mount_points", [&](ObjectReader& m) {
      model::MountPoint mp;
      mp.loc = m.node().loc();
      m.str("host_path", mp.host_path);
      m.str("container_path", mp.container_path);
      m.integer("owner_uid", mp.owner_uid, 0, 4294967294);
      m.integer("owner_gid", mp.owner_gid, 0, 4294967294);
      g.mount_points.push_back(std::move(mp));
    });
    if (const Node* hc = r.raw("health_checks")) g.health_checks = *hc;
    r.object("vllm_engine_config", [&](ObjectReader& v) { read_vllm(v, g.vllm); });
    // Keys of older installations, reported so that nothing is dropped silently.
    r.unused("ports", "LXC services are reached through Traefik (traefik_service), not ports");
    r.unused("template_file", "use \"template\" or \"clone_from_ctid\"");
    r.unused("zfs_volumes", "declare storage as mount_points");
    r.unused("health_check", "use \"health_checks\"");
    r.unused("tests", "use \"health_checks\"");
    for (const char* legacy :
         {"vllm_model", "vllm_quantization", "vllm_max_model_len", "vllm_gpu_memory_utilization",
          "vllm_tensor_parallel_size", "vllm_served_model_name", "vllm_model_type", "vllm_port",
          "vllm_trust_remote_code", "vllm_parameters", "vllm_args", "vllm", "integration_tests",
          "run_integration_tests"}) {
      r.unused(legacy, "use \"vllm_engine_config\"");
    }
  }

  void parse_gpus(Guest& g) {
    if (!g.gpu_assignment.present) return;
    std::string_view text = base::trim(g.gpu_assignment.value);
    if (text.empty() || text == "none") return;
    for (const std::string& part : base::split(text, ',')) {
      auto n = base::parse_uint(base::trim(part));
      if (!n || *n > 63) {
        diags_.error("bad-gpu-assignment", g.gpu_assignment.loc,
                     "gpu_assignment of " + g.label() +
                         " must be \"none\" or GPU indexes such "
                         "as \"0\" or \"0,1\", not \"" +
                         g.gpu_assignment.value + "\"");
        g.gpus.clear();
        return;
      }
      g.gpus.push_back(static_cast<int>(*n));
    }
  }

  static void read_vllm(ObjectReader& v, model::VllmConfig& c) {
    c.present = true;
    c.loc = v.node().loc();
    v.object("ModelConfig", [&](ObjectReader& m) {
      m.str("model", c.model);
      m.str("dtype", c.dtype);
      m.integer("max_model_len", c.max_model_len, 1, 1 << 30);
      m.str("quantization", c.quantization);
      m.boolean("trust_remote_code", c.trust_remote_code);
    });
    v.object("CacheConfig", [&](ObjectReader& m) {
      m.number("gpu_memory_utilization", c.gpu_memory_utilization, 0.01, 1.0);
      if (!c.quantization.present) {
        m.str("quantization", c.quantization);
      } else {
        m.known("quantization");
      }
    });
    v.object("ParallelConfig", [&](ObjectReader& m) {
      m.integer("tensor_parallel_size", c.tensor_parallel_size, 1, 64);
    });
    v.object("ServerConfig", [&](ObjectReader& m) {
      m.str("host", c.host);
      m.integer("port", c.port, 1, 65535);
      m.str("served_model_name", c.served_model_name);
    });
  }

  // ---- phoenix_vm_configs.json -------------------------------------------------------------

  void read_vm_file(const Node& root) {
    ObjectReader r(root, diags_, kVmFile);
    r.known("$schema");
    if (const Node* d = r.raw("vm_defaults")) estate_->vm_defaults = *d;
    const Node* vms = r.raw("vms");
    if (!vms) {
      diags_.error("missing-key", root.loc(), std::string(kVmFile) + " has no \"vms\"",
                   "add \"vms\": [ { \"vmid\": ..., ... } ]");
      return;
    }
    if (!vms->is_array()) {
      diags_.error("wrong-type", vms->loc(),
                   "vms must be an array of VM entries, not " + std::string(vms->kind_name()));
      return;
    }
    for (const Node& v : vms->items()) {
      if (!v.is_object()) {
        diags_.error("wrong-type", v.loc(),
                     "each entry of vms must be an object, not " + std::string(v.kind_name()));
        continue;
      }
      const Node* vmid = v.find("vmid");
      if (!vmid) {
        diags_.error("missing-key", v.loc(), "VM entry has no \"vmid\"",
                     "give every VM a unique \"vmid\" between 100 and 999999999");
        continue;
      }
      auto ref = guest_ref(*vmid, "vmid");
      if (!ref) continue;
      Guest& g = estate_->guests.emplace_back();
      g.kind = GuestKind::kVm;
      g.id = ref->id;
      g.loc = vmid->loc();
      read_vm(v, g);
    }
  }

  void read_vm(const Node& node, Guest& g) {
    ObjectReader r(node, diags_, "VM " + std::to_string(g.id));
    r.known("vmid");
    read_common_guest(r, g);
    r.str("template_image", g.template_image);
    if (const Node* c = r.raw("clone_from_vmid"); c && !c->is_null()) {
      g.clone_from = guest_ref(*c, "clone_from_vmid");
    }
    r.integer("disk_size_gb", g.disk_size_gb, 1, 1024 * 1024);
    r.str("swarm_role", g.swarm_role);
    r.str_list("node_labels", g.node_labels);
    r.str("portainer_environment_name", g.portainer_environment_name);
    r.str("portainer_agent_hostname", g.portainer_agent_hostname);
    r.object("network_config", [&](ObjectReader& n) { read_network(n, g.network); });
    r.object("user_config", [&](ObjectReader& u) { u.str("username", g.username); });
    if (const Node* s = r.raw("snapshots")) g.snapshots = *s;
    if (const Node* stacks = r.raw("docker_stacks"); stacks && !stacks->is_null()) {
      if (!stacks->is_array()) {
        diags_.error("wrong-type", stacks->loc(),
                     "docker_stacks in " + g.label() + " must be an array, not " +
                         std::string(stacks->kind_name()));
      } else {
        for (const Node& s : stacks->items()) read_stack_ref(s, g);
      }
    }
    r.object("docker_api", [&](ObjectReader& a) { read_docker_api(a, g.docker_api); });
    r.unused("dns_records", "DNS records are derived from the estate");
    r.unused("docker_firewall_rules", "use the stack's firewall_rules or the VM's firewall");
    r.unused("qm_options", "set VM options through their own keys");
  }

  static void read_docker_api(ObjectReader& a, model::DockerApi& api) {
    api.present = true;
    a.str("url", api.url);
    a.str("ca_file", api.ca_file);
    a.str("cert_file", api.cert_file);
    a.str("key_file", api.key_file);
  }

  void read_stack_ref(const Node& s, Guest& g) {
    model::StackRef ref;
    ref.loc = s.loc();
    if (s.is_string()) {
      ref.name = {s.text(), s.loc(), true};
    } else if (s.is_object()) {
      ObjectReader o(s, diags_, "docker_stacks entry of " + g.label());
      o.str("name", ref.name);
      o.str("environment", ref.environment);
      if (!ref.name.present) {
        diags_.error("missing-key", s.loc(),
                     "docker_stacks entry of " + g.label() + " has no \"name\"");
        return;
      }
    } else {
      diags_.error("wrong-type", s.loc(),
                   "each entry of docker_stacks must be a stack name or {\"name\", "
                   "\"environment\"}, not " +
                       std::string(s.kind_name()));
      return;
    }
    g.docker_stacks.push_back(std::move(ref));
  }

  // ---- stacks/<name>/ ----------------------------------------------------------------------

  // The stack directories, with the files to read in each (with the others).
  std::vector<StackFiles> find_stacks() {
    std::vector<StackFiles> stacks;
    const std::string& dir = estate_->paths.stacks_dir;
    for (const std::string& name : tree_.list_dirs(dir)) {
      StackFiles sf;
      sf.name = name;
      sf.dir = join_path(dir, name);
      sf.compose = add_file(join_path(sf.dir, "docker-compose.yml"), Syntax::kYaml, true,
                            join_path(sf.dir, "docker-compose.yaml"));
      sf.manifest = add_file(join_path(sf.dir, "phoenix.json"), Syntax::kJson, true);
      stacks.push_back(std::move(sf));
    }
    return stacks;
  }

  // Once the files are read: a directory with neither file is not a stack.
  static void drop_absent(std::vector<StackFiles>& stacks) {
    for (StackFiles& sf : stacks) {
      if (!sf.compose->present) sf.compose = nullptr;
      if (!sf.manifest->present) sf.manifest = nullptr;
    }
    std::erase_if(stacks, [](const StackFiles& sf) { return !sf.compose && !sf.manifest; });
  }

  void read_stacks(const std::vector<StackFiles>& stacks) {
    for (const StackFiles& sf : stacks) {
      model::Stack stack;
      stack.name = sf.name;
      stack.dir = sf.dir;
      stack.has_manifest = sf.manifest != nullptr;
      stack.has_compose = sf.compose != nullptr;
      if (sf.compose) {
        if (take(*sf.compose)) {
          stack.compose = std::move(*sf.compose->root);
          stack.compose_loc = SourceLoc{stack.compose.loc().file, 0, 0};
          if (!stack.compose.is_object()) {
            diags_.error("wrong-type", stack.compose.loc(),
                         "a compose file must be a mapping with \"services\", not " +
                             std::string(stack.compose.kind_name()));
            stack.compose = Node::object();
          }
        } else {
          stack.has_compose = false;
          stack.compose_unreadable = true;
        }
      }
      if (sf.manifest) {
        if (const Node* node = take(*sf.manifest)) {
          stack.manifest_loc = SourceLoc{node->loc().file, 0, 0};
          read_manifest(*node, stack);
        } else {
          stack.has_manifest = false;
        }
      }
      estate_->stacks.push_back(std::move(stack));
    }
  }

  void read_manifest(const Node& root, model::Stack& stack) {
    ObjectReader r(root, diags_, "stack " + stack.name);
    r.known("$schema");
    r.str("description", stack.description);
    r.unused("placement_constraints", "write placement constraints in the compose file");
    const Node* envs = r.raw("environments");
    if (!envs || envs->is_null()) return;
    if (!envs->is_object()) {
      diags_.error("wrong-type", envs->loc(),
                   "environments in stack " + stack.name +
                       " must be an object keyed by "
                       "environment name, not " +
                       std::string(envs->kind_name()));
      return;
    }
    for (const Node::Member& m : envs->members()) {
      if (!m.value.is_object()) {
        diags_.error("wrong-type", m.value.loc(),
                     "environment \"" + m.key + "\" of stack " + stack.name +
                         " must be an object, not " + std::string(m.value.kind_name()));
        continue;
      }
      model::StackEnvironment env;
      env.name = m.key;
      env.loc = m.key_loc;
      ObjectReader e(m.value, diags_, "environment " + m.key + " of stack " + stack.name);
      e.object_list("variables", [&](ObjectReader& v) {
        model::StackVariable var;
        var.loc = v.node().loc();
        v.str("name", var.name);
        v.str("value", var.value);
        if (!var.value.present) {
          // Numbers are common in the seeds' variables ("API_PORT": 8000); keep their text.
          if (const Node* n = v.node().find("value"); n && n->is_number()) {
            var.value = {n->text(), n->loc(), true};
            diags_.warning(
                "wrong-type", n->loc(),
                "variable values are strings; " + n->text() + " is used as \"" + n->text() + "\"",
                "quote the value");
          }
        }
        env.variables.push_back(std::move(var));
      });
      e.object_list("files", [&](ObjectReader& f) {
        model::StackFile file;
        file.loc = f.node().loc();
        f.str("source", file.source.name);
        f.str("destination_in_container", file.destination);
        if (file.source.name.present) {
          std::vector<std::string> candidates = {
              join_path(stack.dir, file.source.name.value),
              join_path(parent_dir(estate_->paths.stacks_dir), file.source.name.value)};
          file.source.resolved = candidates.front();
          for (const std::string& c : candidates) {
            if (tree_.is_file(c)) {
              file.source.resolved = c;
              file.source.exists = true;
              break;
            }
          }
        }
        env.files.push_back(std::move(file));
      });
      e.object("services", [&](ObjectReader& s) {
        for (const Node::Member& svc : s.node().members()) {
          model::StackService service;
          service.name = svc.key;
          service.loc = svc.key_loc;
          s.object(svc.key, [&](ObjectReader& one) {
            one.str_list("traefik_labels", service.traefik_labels);
          });
          env.services.push_back(std::move(service));
        }
      });
      read_rules(e, "firewall_rules", env.firewall_rules);
      e.finish();
      stack.environments.push_back(std::move(env));
    }
  }

  SourceTree& tree_;
  std::unique_ptr<model::Estate> estate_;
  std::deque<ParsedFile> files_;  // a deque: the pointers handed out stay valid
  base::Diagnostics diags_;
};

}  // namespace

model::EstatePaths resolve_paths(const LoadOptions& options) {
  model::EstatePaths paths;
  paths.config_dir = options.config_dir;
  std::string root = parent_dir(options.config_dir);
  paths.stacks_dir = options.stacks_dir ? *options.stacks_dir : join_path(root, "stacks");
  paths.bin_dir = options.bin_dir ? *options.bin_dir : join_path(root, "bin");
  return paths;
}

LoadResult load_estate(const LoadOptions& options, SourceTree& tree) {
  return Loader(options, tree).run();
}

}  // namespace phoenix::config
