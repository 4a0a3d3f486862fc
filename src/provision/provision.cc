#include "provision/provision.h"

#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "base/strings.h"
#include "pveconf/config.h"
#include "pveconf/firewall.h"
#include "pveconf/lxc.h"
#include "pveconf/observe.h"

namespace phoenix::provision {
namespace {

using base::ErrorKind;
using nlohmann::json;
using proxmox::Method;

constexpr const char* kInitialSnapshot = "phoenix-initial";

std::string id_text(model::GuestId id) { return std::to_string(id); }

bool is_template(const model::Guest& g) { return g.is_template.present && g.is_template.value; }

std::string show(const std::optional<std::string>& v) { return v ? *v : std::string("(unset)"); }

}  // namespace

std::mutex& SourceLocks::of(model::GuestId source) {
  std::lock_guard lock(mu_);
  return locks_[source];
}

base::Result<Inventory> read_inventory(proxmox::Pve& pve) {
  json resources = PHX_TRY(pve.get("/cluster/resources", {{"type", "vm"}}));
  Inventory out;
  for (json& r : resources) {
    if (r.contains("vmid") && r["vmid"].is_number_integer()) {
      // The id first: json's assignment takes its argument by value, moved before the key.
      auto id = static_cast<model::GuestId>(r["vmid"].get<std::int64_t>());
      out[id] = std::move(r);
    }
  }
  return out;
}

std::string Provisioner::base(const model::Guest& g) const {
  return "/nodes/" + t_.node + (g.is_lxc() ? "/lxc/" : "/qemu/") + id_text(g.id);
}

base::Result<void> Provisioner::act(std::vector<Step>& steps, const model::Guest* g,
                                    std::string action, std::string detail, Method method,
                                    const std::string& path, const proxmox::Params& params) {
  std::string who = g ? g->label() : std::string("cluster");
  steps.push_back({g ? g->id : 0, action, detail});
  if (t_.options.dry_run) return {};
  say(action + " " + who + (detail.empty() ? "" : ": " + detail));
  json answer = PHX_TRY(pve_.call(method, path, params));
  if (answer.is_string() && answer.get<std::string>().starts_with("UPID:")) {
    auto done = PHX_TRY(
        pve_.wait_task(answer.get<std::string>(), t_.options.task_deadline, t_.options.poll));
    if (!done.ok()) {
      auto log = pve_.get("/nodes/" + done.upid.node + "/tasks/" + done.upid.text + "/log",
                          {{"limit", "1000"}});
      std::string why = done.exitstatus;
      if (log && log->is_array() && !log->empty()) {
        std::string last = log->back().value("t", "");
        if (!last.empty() && last != why) why += " (log: " + last + ")";
      }
      return base::fail(ErrorKind::kInternal, action + " " + who + ": task failed: " + why);
    }
  }
  return {};
}

base::Result<void> Provisioner::converge(const model::Guest& g, const json* seen,
                                         const compile::FirewallRuleset* firewall,
                                         std::vector<Step>& steps) {
  std::optional<json> fresh;
  for (int attempt = 1;; ++attempt) {
    auto r =
        converge_once(g, fresh ? (fresh->is_null() ? nullptr : &*fresh) : seen, firewall, steps);
    if (r || t_.options.dry_run || attempt >= t_.options.attempts) return r;
    // What cannot pass by itself is reported at once.
    ErrorKind k = r.error().kind();
    if (k != ErrorKind::kTransient && k != ErrorKind::kTimeout && k != ErrorKind::kInternal) {
      return r;
    }
    say("retrying " + g.label() + " after: " + r.error().message());
    std::this_thread::sleep_for(t_.options.poll * attempt);
    auto inventory = read_inventory(pve_);
    if (!inventory) return r;
    auto it = inventory->find(g.id);
    fresh = it == inventory->end() ? json(nullptr) : it->second;
  }
}

base::Result<void> Provisioner::converge_once(const model::Guest& g, const json* seen,
                                              const compile::FirewallRuleset* firewall,
                                              std::vector<Step>& steps) {
  std::string type = g.is_lxc() ? "lxc" : "qemu";
  if (seen && seen->value("type", "") != type) {
    return base::fail(ErrorKind::kConflict, g.label() + ": id " + id_text(g.id) +
                                                " is taken by a " +
                                                seen->value("type", std::string("?")) +
                                                " guest on Proxmox; Phoenix does not touch it");
  }
  bool exists = seen != nullptr;
  bool running = exists && seen->value("status", "") == "running";
  bool templated = exists && seen->value("template", 0) == 1;
  const std::string b = base(g);
  const std::string guests = "/nodes/" + t_.node + "/" + type;

  // define
  if (!exists) {
    if (g.clone_from) {
      proxmox::Params p = {{"newid", id_text(g.id)},
                           {g.is_lxc() ? "hostname" : "name", g.name.value},
                           {"full", "1"}};
      // Proxmox locks the source while it copies it: one clone of a source at a time.
      std::unique_lock<std::mutex> source_lock;
      if (t_.clone_locks) source_lock = std::unique_lock(t_.clone_locks->of(g.clone_from->id));
      PHX_TRY(act(steps, &g, "clone", "from " + id_text(g.clone_from->id), Method::kPost,
                  guests + "/" + id_text(g.clone_from->id) + "/clone", p));
    } else if (g.is_lxc()) {
      PHX_TRY(act(steps, &g, "create", "from " + g.os_template.value, Method::kPost, guests,
                  pveconf::lxc_create_params(g)));
    } else if (g.template_image.present) {
      PHX_TRY(act(steps, &g, "create", "from image " + g.template_image.value, Method::kPost,
                  guests, pveconf::vm_create_params(g, t_.vm)));
    } else {
      return base::fail(ErrorKind::kInvalidInput,
                        g.label() +
                            " has neither clone_from_vmid nor template_image: Phoenix "
                            "cannot tell what to build it from");
    }
    // A dry run stops here: the rest depends on what Proxmox made.
    if (t_.options.dry_run) {
      if (firewall) steps.push_back({g.id, "firewall", "options and rules"});
      if (is_template(g)) {
        steps.push_back({g.id, "convert to template", ""});
      } else {
        steps.push_back({g.id, "start", ""});
      }
      return {};
    }
  }

  json config = PHX_TRY(pve_.get(b + "/config"));

  // configure (a template is frozen: Proxmox keeps it as it was converted)
  if (!templated) {
    proxmox::Params want = g.is_lxc() ? pveconf::lxc_config(g) : pveconf::vm_config(g, t_.vm);
    auto update = pveconf::config_update(
        g.is_lxc() ? pveconf::GuestType::kLxc : pveconf::GuestType::kQemu, want, config);
    if (!update.empty()) {
      std::vector<std::string> what;
      for (const auto& c : update.changes) {
        what.push_back(c.key == "sshkeys" ? "sshkeys"
                                          : c.key + ": " + show(c.before) + " → " + show(c.after));
      }
      PHX_TRY(act(steps, &g, "configure", base::join(what, "; "), Method::kPut, b + "/config",
                  update.params()));
    }
    // disk
    std::string disk = g.is_lxc() ? "rootfs" : pveconf::kVmDisk;
    std::int64_t want_gb = g.is_lxc() ? pveconf::lxc_rootfs_gb(g) : pveconf::vm_disk_gb(g, t_.vm);
    if (config.contains(disk)) {
      auto grow = pveconf::disk_resize(disk, pveconf::config_text(config[disk]), want_gb);
      if (!grow) return base::fail(grow.error().kind(), g.label() + ": " + grow.error().message());
      if (*grow) {
        PHX_TRY(act(steps, &g, "resize", disk + " to " + **grow, Method::kPut, b + "/resize",
                    {{"disk", disk}, {"size", **grow}}));
      }
    }
    if (g.is_lxc()) PHX_TRY(raw_keys(g, config, steps));
  }

  if (firewall) PHX_TRY(converge_firewall(b + "/firewall", &g, *firewall, steps));

  // snapshots, start, template
  std::set<std::string> snapshots;
  bool want_initial = g.enable_lifecycle_snapshots.value && !is_template(g);
  bool want_final = g.template_snapshot_name.present && !g.template_snapshot_name.value.empty();
  if (want_initial || want_final) {
    json list = PHX_TRY(pve_.get(b + "/snapshot"));
    for (const json& s : list) snapshots.insert(s.value("name", ""));
  }
  if (is_template(g)) {
    if (want_final && !templated && !snapshots.contains(g.template_snapshot_name.value)) {
      PHX_TRY(act(steps, &g, "snapshot", g.template_snapshot_name.value, Method::kPost,
                  b + "/snapshot", {{"snapname", g.template_snapshot_name.value}}));
    }
    if (!templated) {
      PHX_TRY(act(steps, &g, "convert to template", "", Method::kPost, b + "/template", {}));
    }
    return {};
  }
  if (!running) {
    PHX_TRY(act(steps, &g, "start", "", Method::kPost, b + "/status/start", {}));
    // A VM is up when its agent answers (a running one was waited on when it was started).
    if (g.is_vm() && !t_.options.dry_run) PHX_TRY(wait_agent(g));
  }
  if (want_initial && !snapshots.contains(kInitialSnapshot)) {
    PHX_TRY(act(steps, &g, "snapshot", kInitialSnapshot, Method::kPost, b + "/snapshot",
                {{"snapname", kInitialSnapshot}, {"description", "taken by phoenix create"}}));
  }
  if (want_final && !snapshots.contains(g.template_snapshot_name.value)) {
    PHX_TRY(act(steps, &g, "snapshot", g.template_snapshot_name.value, Method::kPost,
                b + "/snapshot", {{"snapname", g.template_snapshot_name.value}}));
  }
  return {};
}

base::Result<void> Provisioner::raw_keys(const model::Guest& g, const json& config,
                                         std::vector<Step>& steps) {
  pveconf::RawLines want = pveconf::raw_lxc_lines(g);
  if (want == pveconf::raw_lxc_from_api(config)) return {};
  std::string path = "/etc/pve/lxc/" + id_text(g.id) + ".conf";
  std::vector<std::string> keys;
  for (const auto& [k, v] : want) keys.push_back(k + ": " + v);
  steps.push_back(
      {g.id, "raw lxc keys",
       (keys.empty() ? "remove all" : base::join(keys, "; ")) + " (through the host channel)"});
  if (t_.options.dry_run) return {};
  if (!t_.host) {
    return base::fail(ErrorKind::kInvalidInput,
                      g.label() +
                          " has lxc_options or id_maps, which the Proxmox API cannot "
                          "set; give proxmox_api a host channel (host_ssh, or host_root "
                          "when Phoenix runs on the node)");
  }
  say("raw lxc keys " + g.label() + " through " + t_.host->describe());
  auto text = t_.host->read_file(path);
  if (!text) {
    return base::fail(text.error().kind(), g.label() + ": reading " + path +
                                               " through the host channel (" + t_.host->describe() +
                                               "): " + text.error().message());
  }
  auto written = t_.host->write_file(path, pveconf::with_raw_lxc(*text, want));
  if (!written) {
    return base::fail(written.error().kind(),
                      g.label() + ": writing " + path + ": " + written.error().message());
  }
  return {};
}

base::Result<void> Provisioner::converge_firewall(const std::string& fw_base, const model::Guest* g,
                                                  const compile::FirewallRuleset& firewall,
                                                  std::vector<Step>& steps) {
  json options = PHX_TRY(pve_.get(fw_base + "/options"));
  json rules = PHX_TRY(pve_.get(fw_base + "/rules"));
  auto ops = pveconf::reconcile_rules(pveconf::rules_from_api(rules),
                                      pveconf::rules_from_desired(firewall));
  for (const pveconf::FwOp& op : ops) {
    bool first = true;
    for (const pveconf::FwCall& c : pveconf::calls(op)) {
      Method m = c.method == "POST"  ? Method::kPost
                 : c.method == "PUT" ? Method::kPut
                                     : Method::kDelete;
      // One step per operation, however many requests it takes.
      if (first) {
        PHX_TRY(act(steps, g, "firewall", pveconf::to_string(op), m,
                    fw_base + "/" + pveconf::path(c), c.params));
        first = false;
      } else if (!t_.options.dry_run) {
        PHX_TRY(pve_.call(m, fw_base + "/" + pveconf::path(c), c.params));
      }
    }
  }
  // The options last: a DROP policy enabled before the rules that let traffic in would cut
  // the guest off.
  proxmox::Params opts =
      pveconf::options_update(pveconf::from_desired(firewall), pveconf::options_from_api(options));
  if (!opts.empty()) {
    std::vector<std::string> what;
    for (const auto& [k, v] : opts) what.push_back(k + "=" + v);
    PHX_TRY(act(steps, g, "firewall options", base::join(what, ", "), Method::kPut,
                fw_base + "/options", opts));
  }
  return {};
}

base::Result<void> Provisioner::converge_firewall_of(const model::Guest& g,
                                                     const compile::FirewallRuleset& firewall,
                                                     std::vector<Step>& steps) {
  return converge_firewall(base(g) + "/firewall", &g, firewall, steps);
}

base::Result<void> Provisioner::converge_cluster_firewall(const compile::FirewallRuleset& firewall,
                                                          std::vector<Step>& steps) {
  return converge_firewall("/cluster/firewall", nullptr, firewall, steps);
}

base::Result<void> Provisioner::wait_agent(const model::Guest& g) {
  say("waiting for the guest agent of " + g.label());
  auto deadline = std::chrono::steady_clock::now() + t_.options.agent_deadline;
  std::string last;
  while (true) {
    auto r = pve_.call(Method::kPost, base(g) + "/agent/ping");
    if (r) return {};
    last = r.error().message();
    if (std::chrono::steady_clock::now() >= deadline) {
      return base::fail(ErrorKind::kTimeout,
                        g.label() + ": the guest agent did not answer within " +
                            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                               t_.options.agent_deadline)
                                               .count()) +
                            " s (last: " + last + ")");
    }
    std::this_thread::sleep_for(t_.options.poll);
  }
}

base::Result<void> Provisioner::start(const model::Guest& g, const json& seen,
                                      std::vector<Step>& steps) {
  if (seen.value("template", 0) == 1) {
    return base::fail(ErrorKind::kInvalidInput, g.label() + " is a template: it does not run");
  }
  if (seen.value("status", "") == "running") return {};
  PHX_TRY(act(steps, &g, "start", "", Method::kPost, base(g) + "/status/start", {}));
  if (g.is_vm() && !t_.options.dry_run) PHX_TRY(wait_agent(g));
  return {};
}

base::Result<void> Provisioner::stop(const model::Guest& g, const json& seen,
                                     std::vector<Step>& steps) {
  if (seen.value("status", "") != "running") return {};
  return act(steps, &g, "stop", "clean shutdown, forced after 60 s", Method::kPost,
             base(g) + "/status/shutdown", {{"timeout", "60"}, {"forceStop", "1"}});
}

base::Result<void> Provisioner::destroy(const model::Guest& g, const json& seen, bool purge,
                                        std::vector<Step>& steps) {
  if (seen.value("status", "") == "running") {
    PHX_TRY(act(steps, &g, "stop", "before deletion", Method::kPost, base(g) + "/status/stop", {}));
  }
  proxmox::Params p;
  if (purge) {
    p = {{"purge", "1"}, {"destroy-unreferenced-disks", "1"}};
  }
  return act(steps, &g, "delete", purge ? "with purge" : "", Method::kDelete, base(g), p);
}

std::string Provisioner::health(const model::Guest& g, const json& seen) {
  if (seen.value("template", 0) == 1) return "template";
  if (seen.value("status", "") != "running") return seen.value("status", std::string("unknown"));
  if (g.is_lxc()) return "running";
  auto r = pve_.call(Method::kPost, base(g) + "/agent/ping");
  return r ? "agent answers" : "agent not answering";
}

base::Result<std::vector<std::string>> Provisioner::drift(const model::Guest& g) {
  json config = PHX_TRY(pve_.get(base(g) + "/config"));
  std::vector<std::string> out;
  if (pveconf::config_text(config.value("template", json(0))) == "1") return out;
  proxmox::Params want = g.is_lxc() ? pveconf::lxc_config(g) : pveconf::vm_config(g, t_.vm);
  auto update = pveconf::config_update(
      g.is_lxc() ? pveconf::GuestType::kLxc : pveconf::GuestType::kQemu, want, config);
  for (const auto& c : update.changes) {
    out.push_back(c.key == "sshkeys" ? "sshkeys differ"
                                     : c.key + ": " + show(c.before) + " → " + show(c.after));
  }
  std::string disk = g.is_lxc() ? "rootfs" : pveconf::kVmDisk;
  std::int64_t want_gb = g.is_lxc() ? pveconf::lxc_rootfs_gb(g) : pveconf::vm_disk_gb(g, t_.vm);
  if (config.contains(disk)) {
    auto have = pveconf::disk_size_gb(pveconf::config_text(config[disk]));
    if (have && *have != want_gb) {
      out.push_back(disk + ": " + std::to_string(*have) + " GiB, want " + std::to_string(want_gb) +
                    (*have > want_gb ? " (cannot shrink)" : ""));
    }
  }
  if (g.is_lxc() && pveconf::raw_lxc_lines(g) != pveconf::raw_lxc_from_api(config)) {
    out.push_back("raw lxc keys differ");
  }
  return out;
}

base::Result<plan::ObservedResource> Provisioner::observe_guest(const model::Guest& g,
                                                                const json& seen,
                                                                const json& desired_fields) {
  json config = PHX_TRY(pve_.get(base(g) + "/config"));
  plan::ObservedResource r;
  r.fields = pveconf::observed_guest_fields(g, desired_fields, seen, config);
  if (g.is_vm()) {
    // What the estate leaves to the VM defaults is compared at the defaults.
    if (!desired_fields.contains("ciuser")) r.fields.erase("ciuser");
  }
  std::string tags = config.contains("tags") ? pveconf::config_text(config["tags"]) : "";
  r.managed = tags.find("phoenix") != std::string::npos;
  return r;
}

base::Result<plan::ObservedResource> Provisioner::observe_firewall(const model::Guest* g,
                                                                   const json& desired_fields) {
  std::string fw = g ? base(*g) + "/firewall" : std::string("/cluster/firewall");
  json options = PHX_TRY(pve_.get(fw + "/options"));
  json rules = PHX_TRY(pve_.get(fw + "/rules"));
  plan::ObservedResource r;
  r.fields = pveconf::observed_firewall_fields(desired_fields, options, rules);
  return r;
}

std::vector<const model::Guest*> creation_order(const model::Estate& e,
                                                const std::vector<model::GuestId>& ids) {
  std::vector<const model::Guest*> out;
  std::set<model::GuestId> done;
  std::function<void(model::GuestId)> visit = [&](model::GuestId id) {
    if (!done.insert(id).second) return;
    const model::Guest* g = e.guest(id);
    if (!g) return;
    if (g->clone_from) visit(g->clone_from->id);
    for (const model::GuestRef& d : g->dependencies) visit(d.id);
    out.push_back(g);
  };
  for (model::GuestId id : ids) visit(id);
  return out;
}

std::vector<const model::Guest*> dependents(const model::Estate& e, model::GuestId id) {
  std::vector<const model::Guest*> out;
  for (const model::Guest& g : e.guests) {
    bool uses = g.clone_from && g.clone_from->id == id;
    for (const auto& d : g.dependencies) uses = uses || d.id == id;
    if (uses) out.push_back(&g);
  }
  return out;
}

std::map<model::GuestId, base::Result<void>> run_in_order(
    const std::vector<const model::Guest*>& order, int jobs,
    const std::function<base::Result<void>(const model::Guest&)>& work) {
  std::map<model::GuestId, base::Result<void>> results;
  std::set<model::GuestId> in_order;
  for (const model::Guest* g : order) in_order.insert(g->id);
  auto needs = [&](const model::Guest& g) {
    std::vector<model::GuestId> out;
    if (g.clone_from && in_order.contains(g.clone_from->id)) out.push_back(g.clone_from->id);
    for (const auto& d : g.dependencies) {
      if (in_order.contains(d.id)) out.push_back(d.id);
    }
    return out;
  };
  std::mutex mu;
  std::condition_variable changed;
  std::set<model::GuestId> started, finished;
  jobs = std::max(1, jobs);

  // The next guest that may start now: its dependencies done (or failed, then it fails too).
  auto pick = [&]() -> const model::Guest* {
    for (const model::Guest* g : order) {
      if (started.contains(g->id)) continue;
      bool ready = true;
      for (model::GuestId d : needs(*g)) ready = ready && finished.contains(d);
      if (!ready) continue;
      return g;
    }
    return nullptr;
  };
  auto worker = [&] {
    std::unique_lock lock(mu);
    while (true) {
      const model::Guest* g = nullptr;
      changed.wait(lock, [&] {
        g = pick();
        return g != nullptr || started.size() == order.size();
      });
      if (!g) return;
      started.insert(g->id);
      std::optional<base::Error> blocked;
      for (model::GuestId d : needs(*g)) {
        auto it = results.find(d);
        if (it != results.end() && !it->second) {
          blocked =
              base::Error(ErrorKind::kConflict, "not attempted: " + std::to_string(d) + " failed");
        }
      }
      base::Result<void> r;
      if (blocked) {
        r = std::unexpected(*blocked);
      } else {
        lock.unlock();
        r = work(*g);
        lock.lock();
      }
      results.insert_or_assign(g->id, std::move(r));
      finished.insert(g->id);
      changed.notify_all();
    }
  };
  std::vector<std::thread> threads;
  int n = std::min<int>(jobs, static_cast<int>(order.size()));
  for (int i = 0; i < n; ++i) threads.emplace_back(worker);
  for (std::thread& t : threads) t.join();
  return results;
}

}  // namespace phoenix::provision
