// phoenix sync all: the whole platform converged in one run, holding the estate's lock, every
// action journaled (apply/). The actions are the commands of each stage, in the stages of
// DESIGN.md §6, after the guests themselves:
//   guests          create (Proxmox, then features, application scripts, health checks)
//   infrastructure  sync dns, sync firewall, sync certs
//   swarm           swarm init, swarm join <each worker>
//   core            sync core (Portainer)
//   gateways        sync gateways (Traefik, Nginx)
//   stacks          sync stack <each stack of a VM's docker_stacks>
// The actions form one DAG (apply/executor.h): each waits for what it needs (the guests before
// everything, the swarm before core and stacks, the certificates before the gateways), runs
// beside the others up to -j at a time (one swarm change at a time), is retried when its
// provider could not be reached, and a failure skips only what needs it. Each action runs in
// this process, on its own thread, as its command with --output json (its report taken through
// JsonTo), so that a run reports and journals every action the same way: a live view on a
// terminal, plain lines otherwise, one JSON event per line with --output json.

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "apply/executor.h"
#include "apply/journal.h"
#include "apply/lock.h"
#include "base/fs.h"
#include "base/hash.h"
#include "base/strings.h"
#include "base/tally.h"
#include "cli/commands.h"
#include "cli/engines.h"

namespace phoenix::cli {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

struct Action {
  std::string key;    // "infrastructure/dns"
  std::string stage;  // "infrastructure"
  std::string kind;   // for the executor's limits
  std::vector<std::string> needs;
  std::function<int(const GlobalOptions&)> run;
};

// What a terminal shows while the run goes: finished actions as lines, and one status line
// (stage, running actions, counts, elapsed time) redrawn in place.
class LiveView {
 public:
  explicit LiveView(bool live) : live_(live), start_(std::chrono::steady_clock::now()) {
    if (live_) ticker_ = std::thread([this] { tick(); });
  }
  ~LiveView() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (ticker_.joinable()) ticker_.join();
    std::lock_guard lock(mu_);
    clear();
  }
  void started(const std::string& key) {
    std::lock_guard lock(mu_);
    running_.insert(key);
    draw();
  }
  void done(const std::string& line, bool failed) {
    std::lock_guard lock(mu_);
    clear();
    std::cout << line << '\n';
    ++finished_;
    failed_ += failed;
    draw();
  }
  void finished(const std::string& key) {
    std::lock_guard lock(mu_);
    running_.erase(key);
    draw();
  }

 private:
  void clear() {
    if (live_ && drawn_) std::cout << "\r\033[K" << std::flush;
    drawn_ = false;
  }
  void draw() {
    if (!live_) {
      std::cout << std::flush;
      return;
    }
    auto secs = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - start_)
                    .count() /
                1000.0;
    std::string names;
    for (const std::string& k : running_) names += (names.empty() ? "" : ", ") + k;
    if (names.size() > 60) names = names.substr(0, 57) + "...";
    char elapsed[32];
    std::snprintf(elapsed, sizeof elapsed, "%.1f s", secs);
    std::cout << "\r\033[K[" << elapsed << "] " << finished_ << " done, " << failed_
              << " failed; running: " << (names.empty() ? "-" : names) << std::flush;
    drawn_ = true;
  }
  void tick() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::milliseconds(500));
      if (!stop_) draw();
    }
  }

  bool live_;
  std::chrono::steady_clock::time_point start_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread ticker_;
  bool stop_ = false, drawn_ = false;
  std::set<std::string> running_;
  int finished_ = 0, failed_ = 0;
};

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

  // The actions and what each needs.
  std::vector<Action> actions;
  const bool have_guests = !e.guests.empty();
  const std::vector<std::string> after_guests =
      have_guests ? std::vector<std::string>{"guests/create"} : std::vector<std::string>{};
  if (have_guests) {
    std::vector<std::string> ids;
    for (const model::Guest& guest : e.guests) ids.push_back(std::to_string(guest.id));
    actions.push_back({"guests/create", "guests", "guests", {}, [ids, &o](const GlobalOptions& gg) {
                         CreateOptions c;
                         c.ids = ids;
                         c.setup.no_health = o.no_health;
                         return run_create(gg, c);
                       }});
  }
  const model::DnsServer& dns = e.platform.dns_server;
  if (!(dns.enabled.present && !dns.enabled.value)) {
    actions.push_back({"infrastructure/dns", "infrastructure", "dns", after_guests, run_sync_dns});
  }
  actions.push_back(
      {"infrastructure/firewall", "infrastructure", "firewall", after_guests, run_sync_firewall});
  std::vector<std::string> gateway_needs = after_guests;
  if (e.platform.step_ca.url.present) {
    actions.push_back(
        {"infrastructure/certs", "infrastructure", "certs", after_guests, run_sync_certs});
    gateway_needs.push_back("infrastructure/certs");
  }
  std::vector<std::string> swarm_ready;  // init and every join
  if (swarm_manager(e)) {
    actions.push_back({"swarm/init", "swarm", "swarm", after_guests, [](const GlobalOptions& gg) {
                         SwarmOptions sw;
                         sw.action = "init";
                         return run_swarm(gg, sw);
                       }});
    swarm_ready.push_back("swarm/init");
    for (const model::Guest& guest : e.guests) {
      if (!guest.is_vm() || guest.swarm_role.value != "worker" || guest.is_template.value) continue;
      int vmid = static_cast<int>(guest.id);
      std::string key = "swarm/join/" + std::to_string(vmid);
      actions.push_back({key, "swarm", "swarm", {"swarm/init"}, [vmid](const GlobalOptions& gg) {
                           SwarmOptions sw;
                           sw.action = "join";
                           sw.vmid = vmid;
                           return run_swarm(gg, sw);
                         }});
      swarm_ready.push_back(key);
    }
    if (e.platform.portainer_server_image.present) {
      actions.push_back(
          {"core/portainer", "core", "core", swarm_ready, [&o](const GlobalOptions& gg) {
             SyncStackOptions st;
             st.timeout_s = o.timeout_s;
             return run_sync_core(gg, st);
           }});
    }
  }
  actions.push_back({"gateways", "gateways", "gateways", gateway_needs, run_sync_gateways});
  std::set<std::string> stacks;
  for (const model::Guest& guest : e.guests) {
    for (const model::StackRef& ref : guest.docker_stacks) {
      if (!stacks.insert(ref.name.value).second) continue;
      std::optional<std::string> env;
      if (ref.environment.present) env = ref.environment.value;
      std::string name = ref.name.value;
      actions.push_back({"stacks/" + name, "stacks", "stack", swarm_ready,
                         [name, env, &o](const GlobalOptions& gg) {
                           SyncStackOptions st;
                           st.name = name;
                           st.environment = env;
                           st.timeout_s = o.timeout_s;
                           return run_sync_stack(gg, st);
                         }});
    }
  }

  // Each action is its command with --output json, on its own thread, its report taken through
  // JsonTo; journaled as it starts and ends.
  GlobalOptions inner = g;
  inner.output = OutputFormat::kJson;
  std::optional<LiveView> live;
  live.emplace(!json_lines && isatty(STDOUT_FILENO));
  LiveView& view = *live;
  std::map<std::string, std::int64_t> journal_ids;
  std::vector<apply::Task> tasks;
  for (const Action& a : actions) {
    apply::Task t;
    t.key = a.key;
    t.stage = a.stage;
    t.kind = a.kind;
    t.needs = a.needs;
    // A provider that could not be reached (exit 4) may answer a little later.
    t.attempts = a.kind == "guests" ? 1 : 3;
    t.run = [&inner, &g, run = a.run] {
      std::ostringstream out;
      int code;
      {
        JsonTo to(out);
        code = run(inner);
      }
      apply::TaskResult r;
      json report = json::parse(out.str(), nullptr, false);
      r.report = report.is_discarded() ? json(out.str()).dump() : report.dump();
      if (report.is_discarded()) report = out.str();
      if (code == kExitOk) {
        r.status = changed_in(report) ? apply::TaskResult::Status::kChanged
                                      : apply::TaskResult::Status::kUnchanged;
        if (g.dry_run && r.status == apply::TaskResult::Status::kChanged) r.detail = "would change";
      } else {
        r.status = apply::TaskResult::Status::kFailed;
        r.error = error_in(report);
        if (r.error.empty()) r.error = "exit " + std::to_string(code);
        r.retryable = code == kExitUnreachable;
      }
      return r;
    };
    tasks.push_back(std::move(t));
  }
  int changed = 0, unchanged = 0, failed = 0, skipped = 0;
  apply::ExecutorOptions eo;
  eo.jobs = g.jobs;
  eo.per_kind = {{"swarm", 1}};
  std::set<std::string> stages_started;
  eo.on_start = [&](const apply::Task& t, int attempt) {
    if (stages_started.insert(t.stage).second) {
      event({{"event", "stage_started"}, {"stage", t.stage}});
    }
    if (attempt == 1) {
      if (auto id = j.begin_action(*run, t.key, t.stage)) journal_ids[t.key] = *id;
    }
    event(
        {{"event", "action_started"}, {"action", t.key}, {"stage", t.stage}, {"attempt", attempt}});
    view.started(t.key);
  };
  eo.on_done = [&](const apply::Task& t, const apply::TaskResult& r) {
    if (stages_started.insert(t.stage).second) {  // all of it skipped
      event({{"event", "stage_started"}, {"stage", t.stage}});
    }
    std::string result(apply::to_string(r.status));
    if (r.status == apply::TaskResult::Status::kChanged) ++changed;
    if (r.status == apply::TaskResult::Status::kUnchanged) ++unchanged;
    if (r.status == apply::TaskResult::Status::kFailed) ++failed;
    if (r.status == apply::TaskResult::Status::kSkipped) {
      ++skipped;
      if (auto id = j.begin_action(*run, t.key, t.stage)) journal_ids[t.key] = *id;
    }
    if (auto it = journal_ids.find(t.key); it != journal_ids.end()) {
      (void)j.end_action(it->second, result, r.detail, r.error, r.report);
    }
    json report = r.report.empty() ? json(nullptr) : json::parse(r.report, nullptr, false);
    event({{"event", "action_done"},
           {"action", t.key},
           {"stage", t.stage},
           {"result", result},
           {"attempts", r.attempts},
           {"detail", r.detail},
           {"error", r.error.empty() ? json(nullptr) : json(r.error)},
           {"report", report.is_discarded() ? json(nullptr) : report}});
    if (!json_lines) {
      std::string line = "  " + t.key + ": " + result;
      if (!r.detail.empty()) line += " (" + r.detail + ")";
      if (!r.error.empty()) line += ": " + r.error;
      if (r.attempts > 1) line += " [" + std::to_string(r.attempts) + " attempts]";
      view.done(line, r.status == apply::TaskResult::Status::kFailed);
    }
    view.finished(t.key);
  };
  apply::execute(tasks, eo);
  live.reset();  // its status line gone before the summary

  const bool ok = failed == 0 && skipped == 0;
  std::string summary = std::to_string(actions.size()) + " actions: " + std::to_string(changed) +
                        (g.dry_run ? " would change, " : " changed, ") + std::to_string(unchanged) +
                        " unchanged, " + std::to_string(failed) + " failed, " +
                        std::to_string(skipped) + " skipped";
  (void)j.end_run(*run, ok ? "ok" : "failed", summary);
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  // Every provider's requests in this run (all its actions run in this process).
  json requests = json::object();
  std::string requests_line;
  for (const auto& [provider, t] : base::request_tallies()) {
    requests[provider] = {{"total", t.total}, {"mutating", t.mutating}};
    requests_line +=
        (requests_line.empty() ? "" : ", ") + provider + " " + std::to_string(t.total) +
        (provider == "guest" ? " commands" : " (" + std::to_string(t.mutating) + " mutating)");
  }
  event({{"event", "run_done"},
         {"run", *run},
         {"ok", ok},
         {"summary", summary},
         {"requests", requests}});
  if (!json_lines) {
    if (!requests_line.empty()) std::cout << "requests: " << requests_line << '\n';
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
