// The guest endpoints of /nodes/{node}/lxc and /nodes/{node}/qemu. Mutating calls take the guest's
// config lock; those whose schema returns a string (a UPID) run as tasks that keep the lock until
// they stop, the others change the config at once and return null, as in Proxmox.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <regex>
#include <set>
#include <thread>
#include <variant>

#include "api.h"
#include "base/process.h"

namespace phoenix::pvesim {

using nlohmann::json;

namespace {

// Parameters of create calls that are not config keys.
bool is_create_only(const std::string& k) {
  static const std::set<std::string> keys = {
      "node",    "vmid",  "ostemplate", "password", "ssh-public-keys",
      "storage", "force", "restore",    "unique",   "ignore-unpack-errors",
      "start",   "pool",  "bwlimit",    "archive",  "live-restore"};
  return keys.contains(k);
}

bool is_disk_key(const std::string& k) {
  static const std::regex re(
      R"((rootfs|mp\d+|scsi\d+|virtio\d+|sata\d+|ide\d+|efidisk0|tpmstate0))");
  return std::regex_match(k, re);
}

// The order in which Proxmox allocates the volumes of a new guest (foreach_volume): rootfs before
// mp0, mp1, ...; ide, sata, scsi, virtio, then efidisk0 and tpmstate0.
std::pair<int, int> disk_order(const std::string& k) {
  static const std::vector<std::string> prefixes = {"rootfs", "mp",     "ide",     "sata",
                                                    "scsi",   "virtio", "efidisk", "tpmstate"};
  for (std::size_t i = 0; i < prefixes.size(); ++i) {
    if (!k.starts_with(prefixes[i])) continue;
    std::string n = k.substr(prefixes[i].size());
    return {static_cast<int>(i), n.empty() ? 0 : std::stoi(n)};
  }
  return {static_cast<int>(prefixes.size()), 0};
}

std::vector<std::string> disk_keys_in_order(const Params& params) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : params) {
    if (is_disk_key(k)) keys.push_back(k);
  }
  std::sort(keys.begin(), keys.end(), [](const std::string& a, const std::string& b) {
    return disk_order(a) < disk_order(b);
  });
  return keys;
}

long long parse_size(const std::string& s) {
  static const std::regex re(R"(^(\d+(?:\.\d+)?)([KMGT]?)$)");
  std::smatch m;
  if (!std::regex_match(s, m, re)) return -1;
  double v = std::stod(m[1]);
  std::string u = m[2];
  double mult = u == "K"   ? 1024.0
                : u == "M" ? 1048576.0
                : u == "G" ? 1073741824.0
                : u == "T" ? 1099511627776.0
                           : 1.0;  // bare numbers are bytes in resize
  return static_cast<long long>(v * mult);
}

std::string format_size(long long bytes) {
  if (bytes % 1073741824LL == 0) return std::to_string(bytes / 1073741824LL) + "G";
  if (bytes % 1048576LL == 0) return std::to_string(bytes / 1048576LL) + "M";
  return std::to_string((bytes + 1023) / 1024) + "K";
}

// A disk's property string: the volume (its default key) and the other properties, printed back
// the way PVE::JSONSchema::print_property_string does, volume first and the rest sorted.
struct DiskSpec {
  std::string volume;
  std::map<std::string, std::string> opts;

  static DiskSpec parse(const std::string& spec) {
    DiskSpec d;
    std::size_t i = 0;
    bool first = true;
    while (i <= spec.size()) {
      std::size_t j = spec.find(',', i);
      if (j == std::string::npos) j = spec.size();
      std::string part = spec.substr(i, j - i);
      i = j + 1;
      auto eq = part.find('=');
      std::string k = eq == std::string::npos ? "" : part.substr(0, eq);
      if (first && (eq == std::string::npos || k == "file" || k == "volume")) {
        d.volume = eq == std::string::npos ? part : part.substr(eq + 1);
      } else if (!part.empty()) {
        d.opts[eq == std::string::npos ? part : k] =
            eq == std::string::npos ? "" : part.substr(eq + 1);
      }
      first = false;
    }
    return d;
  }
  std::string print() const {
    std::string out = volume;
    for (const auto& [k, v] : opts) out += "," + k + "=" + v;
    return out;
  }
};

// "size=8G" inside a disk property string.
long long disk_size(const std::string& spec) {
  auto d = DiskSpec::parse(spec);
  auto it = d.opts.find("size");
  return it == d.opts.end() ? 0 : parse_size(it->second);
}

std::string with_size(const std::string& spec, long long bytes) {
  auto d = DiskSpec::parse(spec);
  d.opts["size"] = format_size(bytes);
  return d.print();
}

// The lowest N for which vm-<vmid>-disk-N is not in `config` (PVE::Storage's find_free_diskname).
int next_free_disk(const std::map<std::string, std::string>& config, int vmid) {
  std::set<int> used;
  const std::regex re("(?:vm|base)-" + std::to_string(vmid) + R"(-disk-(\d+))");
  for (const auto& [k, v] : config) {
    for (std::sregex_iterator it(v.begin(), v.end(), re), end; it != end; ++it) {
      used.insert(std::stoi((*it)[1]));
    }
  }
  int n = 0;
  while (used.contains(n)) ++n;
  return n;
}

// A new volume for "STORAGE:SIZE_IN_GiB" ("local-lvm:8,mp=/srv" ->
// "local-lvm:vm-101-disk-1,mp=/srv,size=8G"); "STORAGE:0,import-from=..." imports an image,
// taken as 2 GiB; "STORAGE:cloudinit" is the cloud-init drive. Other values are kept as given.
std::string allocate_volume(const std::string& spec, int vmid,
                            const std::map<std::string, std::string>& config) {
  static const std::regex alloc(R"(^([a-zA-Z][a-zA-Z0-9\-_.]*):(\d+(?:\.\d+)?)$)");
  static const std::regex cloudinit(R"(^([a-zA-Z][a-zA-Z0-9\-_.]*):cloudinit$)");
  auto d = DiskSpec::parse(spec);
  std::smatch m;
  if (std::regex_match(d.volume, m, cloudinit)) {
    d.volume = std::string(m[1]) + ":vm-" + std::to_string(vmid) + "-cloudinit";
    d.opts["media"] = "cdrom";
    return d.print();
  }
  if (!std::regex_match(d.volume, m, alloc)) return spec;
  double gib = std::stod(m[2]);
  if (d.opts.erase("import-from") > 0 && gib == 0) gib = 2;
  d.volume = std::string(m[1]) + ":vm-" + std::to_string(vmid) + "-disk-" +
             std::to_string(next_free_disk(config, vmid));
  d.opts["size"] = format_size(static_cast<long long>(gib * 1073741824.0));
  return d.print();
}

// Whether a property string whose default key is boolean is on: "1", "enabled=1,type=virtio".
bool flag_enabled(const std::string& spec, const std::string& key) {
  auto d = DiskSpec::parse(spec);
  std::string v = d.volume;
  if (auto it = d.opts.find(key); it != d.opts.end()) v = it->second;
  return v == "1" || v == "yes" || v == "true" || v == "on";
}

long long now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What the guest agent's network-get-interfaces reports: lo, then eth<N> for each net<N>, with
// its MAC address and the static addresses of ipconfig<N>.
json interfaces(const Guest& g) {
  json out = json::array();
  out.push_back({{"name", "lo"},
                 {"hardware-address", "00:00:00:00:00:00"},
                 {"ip-addresses",
                  {{{"ip-address-type", "ipv4"}, {"ip-address", "127.0.0.1"}, {"prefix", 8}},
                   {{"ip-address-type", "ipv6"}, {"ip-address", "::1"}, {"prefix", 128}}}}});
  static const std::regex net_key(R"(net(\d+))");
  static const std::regex mac(R"(([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2})");
  static const std::regex cidr(R"(([^/]+)/(\d+))");
  for (const auto& [k, v] : g.config) {
    std::smatch m;
    if (!std::regex_match(k, m, net_key)) continue;
    std::string n = m[1];
    char fallback[32];
    std::snprintf(fallback, sizeof fallback, "bc:24:11:%02x:%02x:%02x", (g.vmid >> 8) & 0xff,
                  g.vmid & 0xff, std::stoi(n) & 0xff);
    std::string hw = fallback;
    for (const auto& [model, value] : DiskSpec::parse(v).opts) {
      if (std::regex_match(value, mac)) hw = value;
    }
    std::transform(hw.begin(), hw.end(), hw.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    json addrs = json::array();
    if (auto ipc = g.config.find("ipconfig" + n); ipc != g.config.end()) {
      auto opts = DiskSpec::parse(ipc->second).opts;
      for (const auto& [key, family] : {std::pair{"ip", "ipv4"}, std::pair{"ip6", "ipv6"}}) {
        std::smatch a;
        if (auto it = opts.find(key); it != opts.end() && std::regex_match(it->second, a, cidr)) {
          addrs.push_back({{"ip-address-type", family},
                           {"ip-address", a[1].str()},
                           {"prefix", std::stoi(a[2])}});
        }
      }
    }
    out.push_back({{"name", "eth" + n}, {"hardware-address", hw}, {"ip-addresses", addrs}});
  }
  return out;
}

}  // namespace

void Simulator::register_guest_routes(const std::string& type) {
  const bool lxc = type == "lxc";
  const std::string kind = lxc ? "CT" : "VM";
  const std::string tp = lxc ? "vz" : "qm";
  const std::string base = "/nodes/{node}/" + type;
  const std::string one = base + "/{vmid}";

  auto fail = [](std::string msg) { return ApiResponse::error(500, std::move(msg)); };
  auto vmid_of = [](const ApiRequest& req, const char* key = "vmid") {
    return std::stoi(req.params.at(key));
  };
  auto param = [](const ApiRequest& req, const char* key, const char* def = "") {
    auto it = req.params.find(key);
    return it == req.params.end() ? std::string(def) : it->second;
  };
  auto missing = [this, type](int vmid) {
    return ApiResponse::error(500, "Configuration file 'nodes/" + opts_.node + "/" +
                                       (type == "qemu" ? "qemu-server" : "lxc") + "/" +
                                       std::to_string(vmid) + ".conf' does not exist");
  };
  auto load = [this, type](int vmid) -> std::optional<Guest> {
    auto g = store_->get(vmid);
    if (!g || g->type != type) return std::nullopt;
    return g;
  };
  auto vanished = [] { return base::fail(base::ErrorKind::kNotFound, "guest vanished"); };
  auto exists_msg = [this](int vmid) {
    auto g = store_->get(vmid);
    std::string k = g && g->type == "qemu" ? "VM" : "CT";
    return k + " " + std::to_string(vmid) + " already exists on node '" + opts_.node + "'";
  };
  auto wrong_node = [this](const ApiRequest& req) -> std::optional<ApiResponse> {
    if (req.params.at("node") == opts_.node) return std::nullopt;
    return ApiResponse::error(500, "no such cluster node '" + req.params.at("node") + "'");
  };
  // The SHA-1 of the config file, as Proxmox's digest is.
  auto digest = [this](int vmid) { return sha1_hex(store_->conf_text(vmid)); };
  const std::string modified =
      "detected modified configuration - file changed by other user? Try again.";

  // Runs `check` then `work` under the config lock of `vmid`: as a task when the schema says the
  // call returns a UPID, else at once. `check` rejects the call before a task is started.
  using Check = std::function<std::optional<ApiResponse>()>;
  using Work = std::function<base::Result<void>()>;
  auto locked = [this, type, wrong_node](const ApiRequest& req, int vmid,
                                         const std::string& task_type, Check check, Work work,
                                         std::function<void()> on_failure = {}) -> ApiResponse {
    if (auto r = wrong_node(req)) return *r;
    bool phantom = inject_lock(vmid);
    if (!locks_.try_acquire(vmid, opts_.lock_wait)) {
      // The phantom that made this call fail ends with it, so that whether the next call finds
      // the lock held depends on the seed alone, not on how quickly it comes.
      if (phantom) locks_.drop_hold(vmid);
      return ApiResponse::error(500, lock_timeout_message(type, vmid));
    }
    if (auto r = check()) {
      locks_.release(vmid);
      return *r;
    }
    if (!req.schema->returns_string()) {
      auto r = work();
      locks_.release(vmid);
      if (!r) return ApiResponse::error(500, r.error().message());
      return ApiResponse::ok(nullptr);
    }
    return ApiResponse::ok(tasks_.start(opts_.node, task_type, std::to_string(vmid), req.user, vmid,
                                        std::move(work), std::move(on_failure)));
  };

  auto save = [this](Guest g) -> base::Result<void> { return store_->put(g); };

  // Create: disks are allocated in Proxmox's order, each on the lowest free vm-<vmid>-disk-N.
  route("POST", base, [=, this](const ApiRequest& req) {
    int vmid = vmid_of(req);
    Guest g;
    g.vmid = vmid;
    g.type = type;
    g.node = opts_.node;
    for (const auto& [k, v] : req.params) {
      if (!is_create_only(k) && !is_disk_key(k)) g.config[k] = v;
    }
    if (lxc && !req.params.contains("rootfs")) {
      g.config["rootfs"] = allocate_volume(param(req, "storage", "local") + ":4", vmid, g.config);
    }
    for (const auto& k : disk_keys_in_order(req.params)) {
      g.config[k] = allocate_volume(req.params.at(k), vmid, g.config);
    }
    if (lxc) {
      g.config.try_emplace("arch", "amd64");
      std::string tmpl = req.params.at("ostemplate");
      for (const char* os : {"debian", "ubuntu", "alpine", "centos", "fedora", "archlinux"}) {
        if (tmpl.find(os) != std::string::npos) g.config.try_emplace("ostype", os);
      }
    }
    bool start = param(req, "start") == "1";
    return locked(
        req, vmid, tp + "create",
        [=, this]() -> std::optional<ApiResponse> {
          if (store_->get(vmid))
            return fail("unable to create " + kind + " " + std::to_string(vmid) + " - " +
                        exists_msg(vmid));
          Guest pending = g;
          pending.config["lock"] = "create";
          if (auto r = store_->put(pending); !r) return fail(r.error().message());
          return std::nullopt;
        },
        [=, this]() -> base::Result<void> {
          Guest done = g;
          if (start) {
            done.status = "running";
            done.started_at = std::time(nullptr);
            done.started_at_ms = now_ms();
          }
          return save(done);
        },
        [this, vmid] { (void)store_->remove(vmid); });
  });

  // Config: the keys as the schema types them, the raw lxc.* lines of the file (read now, so that
  // edits made to the file show), and the file's digest.
  route("GET", one + "/config", [=, this](const ApiRequest& req) {
    if (auto r = wrong_node(req)) return *r;
    int vmid = vmid_of(req);
    auto g = load(vmid);
    if (!g) return missing(vmid);
    auto put = schema_.match("PUT", "/nodes/n/" + type + "/100/config");
    json out = json::object();
    for (const auto& [k, v] : g->config) {
      out[k] = v;
      if (!put) continue;
      const auto& props = put->method->info->at("parameters").at("properties");
      std::string sk = props.contains(k) ? k : std::regex_replace(k, std::regex(R"(\d+$)"), "[n]");
      if (!props.contains(sk)) continue;
      std::string t = props.at(sk).value("type", "string");
      if ((t == "integer" || t == "boolean") && std::regex_match(v, std::regex(R"(-?\d+)"))) {
        out[k] = std::stoll(v);
      } else if (t == "number" && std::regex_match(v, std::regex(R"(-?\d+(\.\d+)?)"))) {
        out[k] = std::stod(v);
      }
    }
    std::string text = store_->conf_text(vmid);
    if (auto raw = parse_raw_lxc(text); lxc && !raw.empty()) out["lxc"] = raw_to_json(raw);
    out["digest"] = sha1_hex(text);
    return ApiResponse::ok(out);
  });

  auto update_config = [=, this](const ApiRequest& req) {
    int vmid = vmid_of(req);
    return locked(
        req, vmid, tp + "config",
        [=, this]() -> std::optional<ApiResponse> {
          auto g = load(vmid);
          if (!g) return missing(vmid);
          if (auto d = req.params.find("digest");
              d != req.params.end() && d->second != digest(vmid)) {
            return fail(modified);
          }
          return std::nullopt;
        },
        [=, this]() -> base::Result<void> {
          auto g = load(vmid);
          if (!g) return vanished();
          for (const auto& [k, v] : req.params) {
            if (k == "node" || k == "vmid" || k == "digest" || k == "delete" || k == "revert" ||
                k == "skiplock" || k == "force" || k == "background_delay" || is_disk_key(k)) {
              continue;
            }
            g->config[k] = v;
          }
          for (const auto& k : disk_keys_in_order(req.params)) {
            g->config[k] = allocate_volume(req.params.at(k), vmid, g->config);
          }
          if (auto d = req.params.find("delete"); d != req.params.end()) {
            static const std::regex sep(R"([,;\s]+)");
            for (std::sregex_token_iterator it(d->second.begin(), d->second.end(), sep, -1), end;
                 it != end; ++it) {
              g->config.erase(it->str());
            }
          }
          return save(*g);
        });
  };
  route("PUT", one + "/config", update_config);
  route("POST", one + "/config", update_config);

  // Status.
  route("GET", one + "/status/current", [=, this](const ApiRequest& req) {
    if (auto r = wrong_node(req)) return *r;
    int vmid = vmid_of(req);
    auto g = load(vmid);
    if (!g) return missing(vmid);
    auto cfg = [&](const char* k, const char* def) {
      auto it = g->config.find(k);
      return it == g->config.end() ? std::string(def) : it->second;
    };
    json out{{"vmid", vmid},
             {"status", g->status},
             {"type", type},
             {"name", cfg(lxc ? "hostname" : "name", (kind + std::to_string(vmid)).c_str())},
             {"cpus", std::stoi(cfg("cores", "1"))},
             {"maxmem", std::stoll(cfg("memory", "512")) * 1048576LL},
             {"maxdisk", disk_size(cfg(lxc ? "rootfs" : "scsi0", ""))},
             {"uptime", g->status == "running" ? std::time(nullptr) - g->started_at : 0},
             {"ha", {{"managed", 0}}}};
    if (lxc) out["maxswap"] = std::stoll(cfg("swap", "512")) * 1048576LL;
    if (!lxc && flag_enabled(cfg("agent", "0"), "enabled")) out["agent"] = 1;
    if (g->is_template()) out["template"] = 1;
    if (auto l = g->config.find("lock"); l != g->config.end()) out["lock"] = l->second;
    return ApiResponse::ok(out);
  });

  auto power = [=, this](const std::string& action, bool want_running) {
    return [=, this](const ApiRequest& req) {
      int vmid = vmid_of(req);
      return locked(
          req, vmid, tp + action,
          [=, this]() -> std::optional<ApiResponse> {
            auto g = load(vmid);
            if (!g) return missing(vmid);
            if (want_running && g->is_template()) {
              return fail(lxc ? "you can't start a CT if it's a template"
                              : "you can't start a vm if it's a template");
            }
            if (want_running && g->status == "running") {
              return fail(kind + " " + std::to_string(vmid) + " already running");
            }
            if (!want_running && g->status != "running") {
              return fail(kind + " " + std::to_string(vmid) + " not running");
            }
            return std::nullopt;
          },
          [=, this]() -> base::Result<void> {
            auto g = load(vmid);
            if (!g) return vanished();
            if (auto hooked = run_guest_hook(want_running ? "start" : "stop", *g); !hooked) {
              return hooked;
            }
            g->status = want_running ? "running" : "stopped";
            g->started_at = want_running ? std::time(nullptr) : 0;
            g->started_at_ms = want_running ? now_ms() : 0;
            return save(*g);
          });
    };
  };
  route("POST", one + "/status/start", power("start", true));
  route("POST", one + "/status/stop", power("stop", false));
  route("POST", one + "/status/shutdown", power("shutdown", false));

  // Delete: the guest, its config file and its firewall. A running guest is refused (a container
  // is stopped first with force=1); purge and destroy-unreferenced-disks have nothing more to
  // remove here.
  route("DELETE", one, [=, this](const ApiRequest& req) {
    int vmid = vmid_of(req);
    bool force = lxc && param(req, "force") == "1";
    return locked(
        req, vmid, tp + "destroy",
        [=, this]() -> std::optional<ApiResponse> {
          auto g = load(vmid);
          if (!g) return missing(vmid);
          if (g->config.contains("protection") && g->config.at("protection") == "1") {
            return fail("can't remove " + kind + " " + std::to_string(vmid) +
                        " - protection mode enabled");
          }
          if (g->status == "running" && !force) {
            return fail(lxc ? "unable to destroy CT " + std::to_string(vmid) +
                                  " - container is running"
                            : "VM " + std::to_string(vmid) + " is running - destroy failed");
          }
          return std::nullopt;
        },
        [=, this]() -> base::Result<void> {
          if (auto g = load(vmid)) {
            if (auto hooked = run_guest_hook("destroy", *g); !hooked) return hooked;
          }
          return store_->remove(vmid);
        });
  });

  // Clone: the new guest appears at once, locked, and is removed if the task fails. Its disks
  // are its own (vm-<newid>-disk-N, the source's sizes); the raw lxc.* lines and the firewall
  // are copied, as Proxmox copies them.
  route("POST", one + "/clone", [=, this](const ApiRequest& req) {
    int vmid = vmid_of(req);
    int newid = vmid_of(req, "newid");
    return locked(
        req, vmid, tp + "clone",
        [=, this]() -> std::optional<ApiResponse> {
          if (!load(vmid)) return missing(vmid);
          if (store_->get(newid))
            return fail("unable to create " + kind + " " + std::to_string(newid) + " - " +
                        exists_msg(newid));
          Guest pending;
          pending.vmid = newid;
          pending.type = type;
          pending.node = opts_.node;
          pending.config["lock"] = "create";
          if (auto r = store_->put(pending); !r) return fail(r.error().message());
          return std::nullopt;
        },
        [=, this]() -> base::Result<void> {
          auto src = load(vmid);
          if (!src) return base::fail(base::ErrorKind::kNotFound, "source vanished");
          Guest g;
          g.vmid = newid;
          g.type = type;
          g.node = opts_.node;
          const std::string from = "-" + std::to_string(vmid) + "-";
          for (auto [k, v] : src->config) {
            if (k == "template" || k == "lock" || k == "parent" || k.starts_with("unused")) {
              continue;
            }
            if (is_disk_key(k)) {
              for (const char* prefix : {"vm", "base"}) {
                auto pos = v.find(std::string(prefix) + from);
                if (pos != std::string::npos) {
                  v.replace(pos, std::string(prefix).size() + from.size(),
                            "vm-" + std::to_string(newid) + "-");
                }
              }
            }
            g.config[k] = v;
          }
          const char* name_key = lxc ? "hostname" : "name";
          if (auto n = req.params.find(lxc ? "hostname" : "name"); n != req.params.end()) {
            g.config[name_key] = n->second;
          }
          if (auto d = req.params.find("description"); d != req.params.end()) {
            g.config["description"] = d->second;
          }
          PHX_TRY(store_->copy_firewall(std::to_string(vmid), std::to_string(newid)));
          RawLines raw = lxc ? parse_raw_lxc(store_->conf_text(vmid)) : RawLines{};
          return store_->put(g, raw);
        },
        [this, newid] { (void)store_->remove(newid); });
  });

  // Resize: grow only. A container checks before its task starts ("unable to shrink disk size",
  // and refuses a size it already has); a VM checks inside its task, as qemu-server does.
  route("PUT", one + "/resize", [=, this](const ApiRequest& req) {
    int vmid = vmid_of(req);
    std::string disk = req.params.at("disk");
    std::string size = req.params.at("size");
    std::string want_digest = param(req, "digest");
    // The new size in bytes, or an error message.
    auto new_size = [=](const Guest& g) -> std::variant<long long, std::string> {
      if (!g.config.contains(disk)) {
        return lxc ? "unable to parse volume ID ''" : "disk '" + disk + "' does not exist";
      }
      long long cur = disk_size(g.config.at(disk));
      bool grow = size.starts_with("+");
      long long n = parse_size(grow ? size.substr(1) : size);
      if (n < 0) return "invalid size string";
      long long target = grow ? cur + n : n;
      if (target < cur)
        return lxc ? "unable to shrink disk size" : "shrinking disks is not supported";
      return target;
    };
    return locked(
        req, vmid, "resize",
        [=, this]() -> std::optional<ApiResponse> {
          auto g = load(vmid);
          if (!g) return missing(vmid);
          if (!lxc) return std::nullopt;
          if (!want_digest.empty() && want_digest != digest(vmid)) return fail(modified);
          auto target = new_size(*g);
          if (auto* err = std::get_if<std::string>(&target)) return fail(*err);
          if (std::get<long long>(target) == disk_size(g->config.at(disk))) {
            return fail("disk is already at specified size");
          }
          return std::nullopt;
        },
        [=, this]() -> base::Result<void> {
          auto g = load(vmid);
          if (!g) return vanished();
          if (!lxc && !want_digest.empty() && want_digest != digest(vmid)) {
            return base::fail(base::ErrorKind::kConflict,
                              "checksum mismatch (file change by other user?)");
          }
          auto target = new_size(*g);
          if (auto* err = std::get_if<std::string>(&target)) {
            return base::fail(base::ErrorKind::kInvalidInput, *err);
          }
          g->config[disk] = with_size(g->config[disk], std::get<long long>(target));
          return save(*g);
        });
  });

  // Snapshots: the list ends with "current", the guest as it is now.
  route("GET", one + "/snapshot", [=, this](const ApiRequest& req) {
    if (auto r = wrong_node(req)) return *r;
    int vmid = vmid_of(req);
    auto g = load(vmid);
    if (!g) return missing(vmid);
    json out = json::array();
    for (const auto& s : g->snapshots) {
      json item{{"name", s.value("name", "")},
                {"description", s.value("description", "")},
                {"snaptime", s.value("snaptime", 0LL)}};
      if (!lxc) item["vmstate"] = 0;
      if (s.contains("parent")) item["parent"] = s["parent"];
      out.push_back(std::move(item));
    }
    json current{{"name", "current"},
                 {"description", "You are here!"},
                 {"digest", digest(vmid)},
                 {"running", g->status == "running" ? 1 : 0}};
    if (auto p = g->config.find("parent"); p != g->config.end()) current["parent"] = p->second;
    out.push_back(current);
    return ApiResponse::ok(out);
  });
  route("POST", one + "/snapshot", [=, this](const ApiRequest& req) {
    int vmid = vmid_of(req);
    std::string name = req.params.at("snapname");
    std::string desc = param(req, "description");
    return locked(
        req, vmid, tp + "snapshot",
        [=, this]() -> std::optional<ApiResponse> {
          if (!load(vmid)) return missing(vmid);
          for (const char* reserved : {"current", lxc ? "vzdump" : "pending"}) {
            if (name == reserved) {
              return fail("unable to use snapshot name '" + name + "' (reserved name)");
            }
          }
          return std::nullopt;
        },
        [=, this]() -> base::Result<void> {
          auto g = load(vmid);
          if (!g) return vanished();
          for (const auto& s : g->snapshots) {
            if (s.value("name", "") == name) {
              return base::fail(base::ErrorKind::kConflict,
                                "snapshot name '" + name + "' already used");
            }
          }
          // PVE::AbstractConfig::__snapshot_copy_config: the config as it is, without these.
          std::map<std::string, std::string> copy;
          for (const auto& [k, v] : g->config) {
            if (k == "lock" || k == "digest" || k == "description" || k.starts_with("unused")) {
              continue;
            }
            copy[k] = v;
          }
          json s{{"name", name},
                 {"description", desc},
                 {"snaptime", std::time(nullptr)},
                 {"config", copy},
                 {"lxc", raw_to_json(lxc ? parse_raw_lxc(store_->conf_text(vmid)) : RawLines{})}};
          if (auto p = g->config.find("parent"); p != g->config.end()) s["parent"] = p->second;
          g->snapshots.push_back(s);
          g->config["parent"] = name;
          return save(*g);
        });
  });
  route("DELETE", one + "/snapshot/{snapname}", [=, this](const ApiRequest& req) {
    int vmid = vmid_of(req);
    std::string name = req.params.at("snapname");
    return locked(
        req, vmid, tp + "delsnapshot",
        [=, this]() -> std::optional<ApiResponse> {
          if (!load(vmid)) return missing(vmid);
          return std::nullopt;
        },
        [=, this]() -> base::Result<void> {
          auto g = load(vmid);
          if (!g) return vanished();
          auto it = std::find_if(g->snapshots.begin(), g->snapshots.end(),
                                 [&](const json& s) { return s.value("name", "") == name; });
          if (it == g->snapshots.end()) {
            return base::fail(base::ErrorKind::kNotFound, "snapshot '" + name + "' does not exist");
          }
          // Whatever had the snapshot as its parent now has the snapshot's parent.
          std::optional<std::string> up;
          if (it->contains("parent")) up = (*it)["parent"].get<std::string>();
          g->snapshots.erase(it);
          auto reparent = [&](auto&& get, auto&& set, auto&& drop) {
            if (get() != name) return;
            if (up) {
              set(*up);
            } else {
              drop();
            }
          };
          if (g->config.contains("parent")) {
            reparent([&] { return g->config["parent"]; },
                     [&](const std::string& p) { g->config["parent"] = p; },
                     [&] { g->config.erase("parent"); });
          }
          for (auto& s : g->snapshots) {
            if (!s.contains("parent")) continue;
            reparent([&] { return s["parent"].get<std::string>(); },
                     [&](const std::string& p) {
                       s["parent"] = p;
                       s["config"]["parent"] = p;
                     },
                     [&] {
                       s.erase("parent");
                       if (s.contains("config")) s["config"].erase("parent");
                     });
          }
          return save(*g);
        });
  });

  // Template.
  route("POST", one + "/template", [=, this](const ApiRequest& req) {
    int vmid = vmid_of(req);
    return locked(
        req, vmid, tp + "template",
        [=, this]() -> std::optional<ApiResponse> {
          auto g = load(vmid);
          if (!g) return missing(vmid);
          if (g->is_template()) return fail("you can't convert a template to a template");
          if (g->status == "running")
            return fail("you can't convert a running " + kind + " to a template");
          return std::nullopt;
        },
        [=, this]() -> base::Result<void> {
          auto g = load(vmid);
          if (!g) return vanished();
          g->config["template"] = "1";
          for (auto& [k, v] : g->config) {
            if (!is_disk_key(k)) continue;
            auto pos = v.find("vm-" + std::to_string(vmid) + "-");
            if (pos != std::string::npos) v.replace(pos, 2, "base");
          }
          return save(*g);
        });
  });
}

// The QEMU guest agent (PVE::QemuServer::Agent::assert_agent_available): it answers only for a
// running VM whose config enables it, and only once the VM has been up for --agent-delay.
void Simulator::register_agent_routes() {
  const std::string one = "/nodes/{node}/qemu/{vmid}";

  // The agent's answer to `command`, or Proxmox's error.
  auto agent = [this](const ApiRequest& req, const std::string& command) -> ApiResponse {
    if (req.params.at("node") != opts_.node) {
      return ApiResponse::error(500, "no such cluster node '" + req.params.at("node") + "'");
    }
    int vmid = std::stoi(req.params.at("vmid"));
    auto g = store_->get(vmid);
    if (!g || g->type != "qemu") {
      return ApiResponse::error(500, "Configuration file 'nodes/" + opts_.node + "/qemu-server/" +
                                         std::to_string(vmid) + ".conf' does not exist");
    }
    if (!g->config.contains("agent")) {
      return ApiResponse::error(500, "No QEMU guest agent configured");
    }
    if (g->status != "running") {
      return ApiResponse::error(500, "VM " + std::to_string(vmid) + " is not running");
    }
    if (!flag_enabled(g->config.at("agent"), "enabled") ||
        now_ms() - g->started_at_ms < opts_.agent_delay.count()) {
      return ApiResponse::error(500, "QEMU guest agent is not running");
    }
    if (command == "ping") return ApiResponse::ok({{"result", json::object()}});
    if (command == "network-get-interfaces") return ApiResponse::ok({{"result", interfaces(*g)}});
    if (command == "exec") return agent_exec(vmid, req);
    if (command == "exec-status") return agent_exec_status(req);
    return ApiResponse::error(501, "Agent command '" + command + "' not implemented (by pve-sim)");
  };
  route("POST", one + "/agent/ping", [agent](const ApiRequest& req) { return agent(req, "ping"); });
  route("GET", one + "/agent/network-get-interfaces",
        [agent](const ApiRequest& req) { return agent(req, "network-get-interfaces"); });
  route("POST", one + "/agent",
        [agent](const ApiRequest& req) { return agent(req, req.params.at("command")); });
  route("POST", one + "/agent/exec", [agent](const ApiRequest& req) { return agent(req, "exec"); });
  route("GET", one + "/agent/exec-status",
        [agent](const ApiRequest& req) { return agent(req, "exec-status"); });
}

// guest-exec: the program runs in the background (through --agent-exec, which stands for the
// VM), and its pid is answered at once, as QEMU's agent does.
base::Result<void> Simulator::run_guest_hook(const std::string& what, const Guest& guest) {
  if (opts_.guest_hook.empty() || guest.is_template()) return {};
  nlohmann::json in = {
      {"vmid", guest.vmid}, {"type", guest.type}, {"node", guest.node}, {"config", guest.config}};
  auto r = base::run_process({opts_.guest_hook, what, std::to_string(guest.vmid)}, in.dump(),
                             std::chrono::minutes(10));
  if (!r) return std::unexpected(r.error());
  if (r->exit_code != 0) {
    std::string err = r->err;
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    return base::fail(base::ErrorKind::kInternal, "the guest hook could not " + what + " " +
                                                      std::to_string(guest.vmid) + " (exit " +
                                                      std::to_string(r->exit_code) + "): " + err);
  }
  return {};
}

ApiResponse Simulator::agent_exec(int vmid, const ApiRequest& req) {
  if (opts_.agent_exec.empty()) {
    return ApiResponse::error(501,
                              "agent/exec is not implemented by this pve-sim (start it with "
                              "--agent-exec to run VM programs)");
  }
  std::vector<std::string> argv{opts_.agent_exec, std::to_string(vmid)};
  for (std::string& a : array_values(req.params.at("command"))) argv.push_back(std::move(a));
  auto in = req.params.find("input-data");
  std::string input = in == req.params.end() ? "" : in->second;
  auto exec = std::make_shared<AgentExec>();
  long long pid;
  {
    std::lock_guard lock(agent_mu_);
    pid = next_agent_pid_++;
    agent_execs_[pid] = exec;
  }
  std::thread([this, exec, argv = std::move(argv), input = std::move(input)] {
    auto r = base::run_process(argv, input, std::chrono::minutes(10));
    std::lock_guard lock(agent_mu_);
    exec->exited = true;
    if (r) {
      exec->exit_code = r->exit_code;
      exec->out = std::move(r->out);
      exec->err = std::move(r->err);
    } else {
      exec->err = r.error().message();
    }
  }).detach();
  return ApiResponse::ok({{"pid", pid}});
}

ApiResponse Simulator::agent_exec_status(const ApiRequest& req) {
  long long pid = std::stoll(req.params.at("pid"));
  std::lock_guard lock(agent_mu_);
  auto it = agent_execs_.find(pid);
  if (it == agent_execs_.end()) {
    return ApiResponse::error(500, "Agent error: Invalid parameter 'pid'");
  }
  const AgentExec& e = *it->second;
  json out = {{"exited", e.exited}};
  if (e.exited) {
    if (e.exit_code >= 0) out["exitcode"] = e.exit_code;
    if (!e.out.empty()) out["out-data"] = e.out;
    if (!e.err.empty()) out["err-data"] = e.err;
    agent_execs_.erase(it);  // QEMU's agent forgets a process once its end was reported
  }
  return ApiResponse::ok(out);
}

}  // namespace phoenix::pvesim
