// phoenix sync all: the whole platform converged in one run, holding the estate's lock, every
// action journaled (apply/). The actions are the commands of each stage, in the stages of
// DESIGN.md §6, after the guests themselves:
//   guests          create (Proxmox, then features, application scripts, health checks)
//   infrastructure  sync dns, sync firewall, sync certs
//   swarm           swarm init, swarm join <each worker>
//   core            sync core (Portainer)
//   gateways        sync gateways (Traefik, Nginx)
//   stacks          sync stack <each stack of a VM's docker_stacks>
// A stage's actions run when the stages they need succeeded; a failure stops only what depends
// on it. Each action runs in this process with its output taken as JSON, so that a run reports
// (and journals) each action's result the same way: plain lines, or one JSON event per line
// with --output json.

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <set>

#include "apply/journal.h"
#include "apply/lock.h"
#include "base/fs.h"
#include "base/hash.h"
#include "base/strings.h"
#include "cli/commands.h"
#include "cli/engines.h"

namespace phoenix::cli {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

struct Action {
  std::string key;    // "infrastructure/dns"
  std::string stage;  // "infrastructure"
  std::function<int(const GlobalOptions&)> run;
};

// Which stages a stage needs to have succeeded.
const std::map<std::string, std::vector<std::string>>& stage_needs() {
  static const std::map<std::string, std::vector<std::string>> kNeeds = {
      {"guests", {}},
      {"infrastructure", {"guests"}},
      {"swarm", {"guests"}},
      {"core", {"swarm"}},
      {"gateways", {"guests", "infrastructure"}},
      {"stacks", {"swarm"}},
  };
  return kNeeds;
}

// Runs `fn` with standard output going to a file, and returns what it wrote.
std::pair<int, std::string> captured(const std::function<int()>& fn) {
  std::cout.flush();
  std::fflush(stdout);
  char tmpl[] = "/tmp/phoenix-sync-all-XXXXXX";
  int tmp = ::mkstemp(tmpl);
  if (tmp < 0) return {fn(), ""};
  ::unlink(tmpl);
  int saved = ::dup(STDOUT_FILENO);
  ::dup2(tmp, STDOUT_FILENO);
  int code = fn();
  std::cout.flush();
  std::fflush(stdout);
  ::dup2(saved, STDOUT_FILENO);
  ::close(saved);
  std::string out;
  ::lseek(tmp, 0, SEEK_SET);
  char buf[8192];
  ssize_t n;
  while ((n = ::read(tmp, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  ::close(tmp);
  return {code, out};
}

// Whether an action's report says it changed something, whatever command made it.
bool changed_in(const json& doc) {
  if (!doc.is_object()) return false;
  if (auto it = doc.find("changed"); it != doc.end() && it->is_boolean()) return it->get<bool>();
  if (auto it = doc.find("changes"); it != doc.end() && it->is_number()) return it->get<int>() > 0;
  for (const char* key : {"steps", "actions"}) {
    if (auto it = doc.find(key); it != doc.end() && it->is_array() && !it->empty()) return true;
  }
  if (auto it = doc.find("setup"); it != doc.end() && it->is_object()) {
    for (const auto& [id, acts] : it->items()) {
      for (const auto& a : acts) {
        if (a.value("changed", false)) return true;
      }
    }
  }
  return false;
}

// The first error an action's report names.
std::string error_in(const json& doc) {
  if (doc.is_object()) {
    if (auto it = doc.find("error"); it != doc.end() && it->is_string())
      return it->get<std::string>();
    if (auto it = doc.find("diagnostics"); it != doc.end() && it->is_array() && !it->empty()) {
      return (*it)[0].value("message", "invalid estate");
    }
  }
  if (doc.is_object() || doc.is_array()) {
    for (const auto& v : doc) {
      if (std::string e = error_in(v); !e.empty()) return e;
    }
  }
  return "";
}

std::string state_dir(const GlobalOptions& g) {
  if (g.state_dir) return *g.state_dir;
  if (const char* env = std::getenv("PHOENIX_STATE_DIR"); env && *env) return env;
  return "/var/lib/phoenix";
}

std::string estate_key(const std::string& config_dir) {
  std::error_code ec;
  fs::path abs = fs::weakly_canonical(fs::absolute(config_dir), ec);
  return base::sha256_hex(abs.string()).substr(0, 12);
}

}  // namespace

int run_sync_all(const GlobalOptions& g, const SyncAllOptions& o) {
  using Clock = std::chrono::steady_clock;
  const auto started = Clock::now();
  LoadedEstate loaded = load_and_validate(g);
  if (loaded.diags.has_errors()) return report_invalid(g, loaded);
  const model::Estate& e = *loaded.estate;
  const bool json_lines = g.output == OutputFormat::kJson;
  auto event = [&](json ev) {
    if (!json_lines) return;
    ev["elapsed_ms"] =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
    std::cout << ev.dump() << std::endl;
  };

  // The state directory, the lock, the journal.
  const std::string dir = state_dir(g);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    print_error(g, "cannot create the state directory " + dir + ": " + ec.message() +
                       " (--state-dir or $PHOENIX_STATE_DIR choose another)");
    return kExitInvalid;
  }
  fs::permissions(dir, fs::perms::owner_all, ec);
  const std::string key = estate_key(e.paths.config_dir);
  auto lock = apply::acquire_lock(dir + "/lock-" + key, "sync all");
  if (!lock) {
    print_error(g, lock.error().message());
    return lock.error().kind() == base::ErrorKind::kConflict ? kExitLocked : kExitInvalid;
  }
  auto journal = apply::Journal::open(dir + "/journal.db");
  if (!journal) {
    print_error(g, journal.error().message());
    return kExitInvalid;
  }
  apply::Journal& j = **journal;
  auto interrupted = j.mark_interrupted();
  if (lock->taken_over() && !json_lines) {
    const apply::LockHolder& h = *lock->taken_over();
    std::cerr << "phoenix: the last converge (pid " << h.pid << " on " << h.host << ", since "
              << apply::format_time(h.since) << ") did not finish; this run finishes its work\n";
  }
  auto run = j.begin_run(g.dry_run ? "sync all --dry-run" : "sync all", e.paths.config_dir);
  if (!run) {
    print_error(g, run.error().message());
    return kExitInvalid;
  }
  event({{"event", "run_started"},
         {"run", *run},
         {"state_dir", dir},
         {"interrupted_before", interrupted ? *interrupted : 0}});

  // The actions, stage by stage.
  std::vector<Action> actions;
  {
    std::vector<std::string> ids;
    for (const model::Guest& guest : e.guests) ids.push_back(std::to_string(guest.id));
    if (!ids.empty()) {
      actions.push_back({"guests/create", "guests", [ids, &o](const GlobalOptions& gg) {
                           CreateOptions c;
                           c.ids = ids;
                           c.setup.no_health = o.no_health;
                           return run_create(gg, c);
                         }});
    }
  }
  const model::DnsServer& dns = e.platform.dns_server;
  if (!(dns.enabled.present && !dns.enabled.value)) {
    actions.push_back({"infrastructure/dns", "infrastructure", run_sync_dns});
  }
  actions.push_back({"infrastructure/firewall", "infrastructure", run_sync_firewall});
  if (e.platform.step_ca.url.present) {
    actions.push_back({"infrastructure/certs", "infrastructure", run_sync_certs});
  }
  if (const model::Guest* manager = swarm_manager(e)) {
    (void)manager;
    actions.push_back({"swarm/init", "swarm", [](const GlobalOptions& gg) {
                         SwarmOptions s;
                         s.action = "init";
                         return run_swarm(gg, s);
                       }});
    for (const model::Guest& guest : e.guests) {
      if (!guest.is_vm() || guest.swarm_role.value != "worker" || guest.is_template.value) continue;
      int vmid = static_cast<int>(guest.id);
      actions.push_back(
          {"swarm/join/" + std::to_string(vmid), "swarm", [vmid](const GlobalOptions& gg) {
             SwarmOptions s;
             s.action = "join";
             s.vmid = vmid;
             return run_swarm(gg, s);
           }});
    }
    if (e.platform.portainer_server_image.present) {
      actions.push_back({"core/portainer", "core", [&o](const GlobalOptions& gg) {
                           SyncStackOptions s;
                           s.timeout_s = o.timeout_s;
                           return run_sync_core(gg, s);
                         }});
    }
  }
  actions.push_back({"gateways", "gateways", run_sync_gateways});
  std::set<std::string> stacks;
  for (const model::Guest& guest : e.guests) {
    for (const model::StackRef& ref : guest.docker_stacks) {
      if (!stacks.insert(ref.name.value).second) continue;
      std::optional<std::string> env;
      if (ref.environment.present) env = ref.environment.value;
      std::string name = ref.name.value;
      actions.push_back({"stacks/" + name, "stacks", [name, env, &o](const GlobalOptions& gg) {
                           SyncStackOptions s;
                           s.name = name;
                           s.environment = env;
                           s.timeout_s = o.timeout_s;
                           return run_sync_stack(gg, s);
                         }});
    }
  }

  // Run them. Each action sees JSON output (its report) and no progress of its own on stderr
  // beyond its errors.
  GlobalOptions inner = g;
  inner.output = OutputFormat::kJson;
  std::set<std::string> failed_stages;
  int done = 0, changed = 0, failed = 0, skipped = 0;
  std::string current_stage;
  for (const Action& a : actions) {
    if (a.stage != current_stage) {
      current_stage = a.stage;
      event({{"event", "stage_started"}, {"stage", a.stage}});
      if (!json_lines) std::cout << "== " << a.stage << '\n' << std::flush;
    }
    auto action_id = j.begin_action(*run, a.key, a.stage);
    std::vector<std::string> blocked;
    for (const std::string& need : stage_needs().at(a.stage)) {
      if (failed_stages.contains(need)) blocked.push_back(need);
    }
    std::string result, detail, error;
    json report = nullptr;
    if (!blocked.empty()) {
      result = "skipped";
      detail = "not run: the " + base::join(blocked, " and ") +
               (blocked.size() == 1 ? " stage" : " stages") + " failed";
      ++skipped;
      failed_stages.insert(a.stage);
    } else {
      event({{"event", "action_started"}, {"action", a.key}, {"stage", a.stage}});
      auto [code, out] = captured([&] { return a.run(inner); });
      report = json::parse(out, nullptr, false);
      if (report.is_discarded()) report = out;
      bool did_change = changed_in(report);
      if (code == kExitOk) {
        result = did_change ? (g.dry_run ? "would change" : "changed") : "unchanged";
        changed += did_change;
        ++done;
      } else {
        result = "failed";
        error = error_in(report);
        if (error.empty()) error = "exit " + std::to_string(code);
        ++failed;
        failed_stages.insert(a.stage);
      }
    }
    if (action_id) {
      (void)j.end_action(*action_id, result, detail, error, report.is_null() ? "" : report.dump());
    }
    event({{"event", "action_done"},
           {"action", a.key},
           {"stage", a.stage},
           {"result", result},
           {"detail", detail},
           {"error", error.empty() ? json(nullptr) : json(error)},
           {"report", report}});
    if (!json_lines) {
      std::cout << "  " << a.key << ": " << result;
      if (!detail.empty()) std::cout << " (" << detail << ")";
      if (!error.empty()) std::cout << ": " << error;
      std::cout << '\n' << std::flush;
    }
  }

  const bool ok = failed == 0 && skipped == 0;
  std::string summary = std::to_string(actions.size()) + " actions: " + std::to_string(changed) +
                        (g.dry_run ? " would change, " : " changed, ") +
                        std::to_string(done - changed) + " unchanged, " + std::to_string(failed) +
                        " failed, " + std::to_string(skipped) + " skipped";
  (void)j.end_run(*run, ok ? "ok" : "failed", summary);
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  event({{"event", "run_done"}, {"run", *run}, {"ok", ok}, {"summary", summary}});
  if (!json_lines) {
    std::cout << summary << " in " << elapsed.count() / 1000.0 << " s\n"
              << (ok ? (changed ? "converged\n" : "no changes\n") : "not converged\n");
  }
  return ok ? kExitOk : kExitPartial;
}

int run_history(const GlobalOptions& g, const HistoryOptions& o) {
  const std::string dir = state_dir(g);
  if (!fs::exists(dir + "/journal.db")) {
    if (g.output == OutputFormat::kJson) {
      print_json({{"runs", json::array()}});
    } else {
      std::cout << "no runs yet (journal: " << dir << "/journal.db)\n";
    }
    return kExitOk;
  }
  auto journal = apply::Journal::open(dir + "/journal.db");
  if (!journal) {
    print_error(g, journal.error().message());
    return kExitInvalid;
  }
  auto runs = (*journal)->runs(o.limit);
  if (!runs) {
    print_error(g, runs.error().message());
    return kExitInvalid;
  }
  json list = json::array();
  for (const apply::RunRecord& r : *runs) {
    json entry = {{"run", r.id},
                  {"command", r.command},
                  {"estate", r.estate},
                  {"started_at", r.started_at},
                  {"ended_at", r.ended_at},
                  {"result", r.result},
                  {"summary", r.summary},
                  {"pid", r.pid},
                  {"host", r.host}};
    if (o.run && *o.run == r.id) {
      json acts = json::array();
      if (auto as = (*journal)->actions(r.id)) {
        for (const apply::ActionRecord& a : *as) {
          json report = json::parse(a.report, nullptr, false);
          acts.push_back({{"action", a.key},
                          {"stage", a.stage},
                          {"started_at", a.started_at},
                          {"ended_at", a.ended_at},
                          {"result", a.result},
                          {"detail", a.detail},
                          {"error", a.error},
                          {"report", report.is_discarded() ? json(nullptr) : report}});
        }
      }
      entry["actions"] = acts;
    }
    list.push_back(entry);
  }
  if (g.output == OutputFormat::kJson) {
    print_json({{"runs", list}});
    return kExitOk;
  }
  for (const json& r : list) {
    std::cout << "#" << r["run"].get<std::int64_t>() << "  "
              << apply::format_time(r["started_at"].get<std::int64_t>()) << "  "
              << r["command"].get<std::string>() << "  " << r["result"].get<std::string>();
    if (!r["summary"].get<std::string>().empty()) {
      std::cout << "  (" << r["summary"].get<std::string>() << ")";
    }
    std::cout << '\n';
    if (r.contains("actions")) {
      for (const json& a : r["actions"]) {
        std::cout << "    " << a["action"].get<std::string>() << ": "
                  << a["result"].get<std::string>();
        if (!a["error"].get<std::string>().empty())
          std::cout << ": " << a["error"].get<std::string>();
        std::cout << '\n';
      }
    }
  }
  if (list.empty()) std::cout << "no runs yet\n";
  return kExitOk;
}

}  // namespace phoenix::cli
