// The guest endpoints of /nodes/{node}/lxc and /nodes/{node}/qemu. Mutating calls take the guest's
// config lock; those whose schema returns a string (a UPID) run as tasks that keep the lock until
// they stop, the others change the config at once and return null, as in Proxmox.
#include <ctime>
#include <regex>

#include "api.h"
#include "base/hash.h"

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

long long parse_size(const std::string& s) {
  static const std::regex re(R"(^(\d+(?:\.\d+)?)([KMGT]?)$)");
  std::smatch m;
  if (!std::regex_match(s, m, re)) return -1;
  double v = std::stod(m[1]);
  std::string u = m[2];
  double mult = u == "K"   ? 1024.0
                : u == "M" ? 1048576.0
                : u == "T" ? 1099511627776.0
                           : 1073741824.0;
  if (u.empty()) mult = 1;  // bare numbers are bytes in resize
  return static_cast<long long>(v * mult);
}

std::string format_size(long long bytes) {
  if (bytes % 1073741824LL == 0) return std::to_string(bytes / 1073741824LL) + "G";
  if (bytes % 1048576LL == 0) return std::to_string(bytes / 1048576LL) + "M";
  return std::to_string((bytes + 1023) / 1024) + "K";
}

// "size=8G" inside a disk property string.
long long disk_size(const std::string& spec) {
  static const std::regex re(R"((?:^|,)size=([^,]+))");
  std::smatch m;
  if (!std::regex_search(spec, m, re)) return 0;
  return parse_size(m[1]);
}

std::string with_size(const std::string& spec, long long bytes) {
  static const std::regex re(R"((^|,)size=[^,]+)");
  if (std::regex_search(spec, re))
    return std::regex_replace(spec, re, "$1size=" + format_size(bytes));
  return spec + ",size=" + format_size(bytes);
}

// "local-lvm:8,mp=/srv" -> "local-lvm:vm-101-disk-1,mp=/srv,size=8G": a new volume of N GiB.
std::string allocate_volume(const std::string& spec, int vmid, int& next_disk) {
  static const std::regex re(R"(^([a-zA-Z][a-zA-Z0-9\-_.]*):(\d+(?:\.\d+)?)(,.*)?$)");
  std::smatch m;
  if (!std::regex_match(spec, m, re)) return spec;
  std::string vol =
      std::string(m[1]) + ":vm-" + std::to_string(vmid) + "-disk-" + std::to_string(next_disk++);
  long long bytes = static_cast<long long>(std::stod(m[2]) * 1073741824.0);
  return with_size(vol + std::string(m[3]), bytes);
}

std::string digest_of(const std::map<std::string, std::string>& config) {
  std::string text;
  for (const auto& [k, v] : config) text += k + ": " + v + "\n";
  return base::sha256_hex(text).substr(0, 40);
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
  auto exists_msg = [this](int vmid) {
    auto g = store_->get(vmid);
    std::string k = g && g->type == "qemu" ? "VM" : "CT";
    return k + " " + std::to_string(vmid) + " already exists on node '" + opts_.node + "'";
  };
  auto wrong_node = [this](const ApiRequest& req) -> std::optional<ApiResponse> {
    if (req.params.at("node") == opts_.node) return std::nullopt;
    return ApiResponse::error(500, "no such cluster node '" + req.params.at("node") + "'");
  };

  // Runs `check` then `work` under the config lock of `vmid`: as a task when the schema says the
  // call returns a UPID, else at once. `check` rejects the call before a task is started.
  using Check = std::function<std::optional<ApiResponse>()>;
  using Work = std::function<base::Result<void>()>;
  auto locked = [this, type, wrong_node](const ApiRequest& req, int vmid,
                                         const std::string& task_type, Check check, Work work,
                                         std::function<void()> on_failure = {}) -> ApiResponse {
    if (auto r = wrong_node(req)) return *r;
    if (!locks_.try_acquire(vmid, opts_.lock_wait)) {
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

  // Create.
  route("POST", base, [=, this](const ApiRequest& req) {
    int vmid = vmid_of(req);
    Guest g;
    g.vmid = vmid;
    g.type = type;
    g.node = opts_.node;
    int next_disk = 0;
    for (const auto& [k, v] : req.params) {
      if (is_create_only(k)) continue;
      g.config[k] = is_disk_key(k) ? allocate_volume(v, vmid, next_disk) : v;
    }
    if (lxc) {
      g.config.try_emplace("arch", "amd64");
      std::string storage = req.params.contains("storage") ? req.params.at("storage") : "local";
      if (!g.config.contains("rootfs")) {
        g.config["rootfs"] = allocate_volume(storage + ":4", vmid, next_disk);
      }
      std::string tmpl = req.params.at("ostemplate");
      for (const char* os : {"debian", "ubuntu", "alpine", "centos", "fedora", "archlinux"}) {
        if (tmpl.find(os) != std::string::npos) g.config.try_emplace("ostype", os);
      }
    }
    bool start = req.params.contains("start") && req.params.at("start") == "1";
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
          }
          return save(done);
        },
        [this, vmid] { (void)store_->remove(vmid); });
  });

  // Config.
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
    out["digest"] = digest_of(g->config);
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
              d != req.params.end() && d->second != digest_of(g->config)) {
            return fail("detected modified configuration - file changed by other user? Try again.");
          }
          return std::nullopt;
        },
        [=, this]() -> base::Result<void> {
          auto g = load(vmid);
          if (!g) return base::fail(base::ErrorKind::kNotFound, "guest vanished");
          int next_disk = static_cast<int>(g->config.size());
          for (const auto& [k, v] : req.params) {
            if (k == "node" || k == "vmid" || k == "digest" || k == "delete" || k == "revert" ||
                k == "skiplock" || k == "force" || k == "background_delay") {
              continue;
            }
            g->config[k] = is_disk_key(k) ? allocate_volume(v, vmid, next_disk) : v;
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
    if (g->is_template()) out["template"] = 1;
    if (g->config.contains("lock")) out["lock"] = g->config.at("lock");
    if (locks_.locked(vmid) && !out.contains("lock")) out["lock"] = "";
    if (out["lock"] == "") out.erase("lock");
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
            if (!g) return base::fail(base::ErrorKind::kNotFound, "guest vanished");
            g->status = want_running ? "running" : "stopped";
            g->started_at = want_running ? std::time(nullptr) : 0;
            return save(*g);
          });
    };
  };
  route("POST", one + "/status/start", power("start", true));
  route("POST", one + "/status/stop", power("stop", false));
  route("POST", one + "/status/shutdown", power("shutdown", false));

  // Delete.
  route("DELETE", one, [=, this](const ApiRequest& req) {
    int vmid = vmid_of(req);
    return locked(
        req, vmid, tp + "destroy",
        [=, this]() -> std::optional<ApiResponse> {
          auto g = load(vmid);
          if (!g) return missing(vmid);
          if (g->status == "running") {
            return fail(lxc ? "unable to destroy CT " + std::to_string(vmid) +
                                  " - container is running"
                            : "VM " + std::to_string(vmid) + " is running - destroy failed");
          }
          return std::nullopt;
        },
        [this, vmid]() { return store_->remove(vmid); });
  });

  // Clone: the new guest appears at once, locked, and is removed if the task fails.
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
            if (k == "template" || k == "lock" || k == "parent") continue;
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
          return save(g);
        },
        [this, newid] { (void)store_->remove(newid); });
  });

  // Resize: grow only.
  route("PUT", one + "/resize", [=, this](const ApiRequest& req) {
    int vmid = vmid_of(req);
    std::string disk = req.params.at("disk");
    std::string size = req.params.at("size");
    return locked(
        req, vmid, "resize",
        [=, this]() -> std::optional<ApiResponse> {
          auto g = load(vmid);
          if (!g) return missing(vmid);
          if (!g->config.contains(disk)) return fail("unable to parse volume ID '" + disk + "'");
          long long cur = disk_size(g->config.at(disk));
          bool grow = size.starts_with("+");
          long long n = parse_size(grow ? size.substr(1) : size);
          if (n < 0) return fail("unable to parse size '" + size + "'");
          if ((grow ? cur + n : n) < cur) return fail("unable to shrink disk size");
          return std::nullopt;
        },
        [=, this]() -> base::Result<void> {
          auto g = load(vmid);
          if (!g) return base::fail(base::ErrorKind::kNotFound, "guest vanished");
          long long cur = disk_size(g->config.at(disk));
          bool grow = size.starts_with("+");
          long long n = parse_size(grow ? size.substr(1) : size);
          g->config[disk] = with_size(g->config[disk], grow ? cur + n : n);
          return save(*g);
        });
  });

  // Snapshots.
  route("GET", one + "/snapshot", [=, this](const ApiRequest& req) {
    if (auto r = wrong_node(req)) return *r;
    int vmid = vmid_of(req);
    auto g = load(vmid);
    if (!g) return missing(vmid);
    json out = g->snapshots;
    json current{{"name", "current"},
                 {"description", "You are here!"},
                 {"running", g->status == "running" ? 1 : 0}};
    if (!g->snapshots.empty()) current["parent"] = g->snapshots.back()["name"];
    out.push_back(current);
    return ApiResponse::ok(out);
  });
  route("POST", one + "/snapshot", [=, this](const ApiRequest& req) {
    int vmid = vmid_of(req);
    std::string name = req.params.at("snapname");
    std::string desc = req.params.contains("description") ? req.params.at("description") : "";
    return locked(
        req, vmid, tp + "snapshot",
        [=, this]() -> std::optional<ApiResponse> {
          auto g = load(vmid);
          if (!g) return missing(vmid);
          for (const auto& s : g->snapshots) {
            if (s["name"] == name) return fail("snapshot name '" + name + "' already used");
          }
          return std::nullopt;
        },
        [=, this]() -> base::Result<void> {
          auto g = load(vmid);
          if (!g) return base::fail(base::ErrorKind::kNotFound, "guest vanished");
          json s{{"name", name}, {"description", desc}, {"snaptime", std::time(nullptr)}};
          if (!g->snapshots.empty()) s["parent"] = g->snapshots.back()["name"];
          g->snapshots.push_back(s);
          g->config["parent"] = name;
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
          if (!g) return base::fail(base::ErrorKind::kNotFound, "guest vanished");
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

}  // namespace phoenix::pvesim
