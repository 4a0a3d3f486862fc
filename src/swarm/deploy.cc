#include "swarm/deploy.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <thread>

namespace phoenix::swarm {
namespace {

using base::Result;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

bool owned_map(const std::string& key) {
  return key == "Labels" || key == "Options" || key == "Sysctls" || key == "DriverOpts";
}

// null, false, 0, "", [] or an object of such values: what the engine may leave out.
bool is_zero(const json& v) {
  if (v.is_null()) return true;
  if (v.is_boolean()) return !v.get<bool>();
  if (v.is_number()) return v == 0;
  if (v.is_string()) return v.get<std::string>().empty();
  if (v.is_array()) return v.empty();
  for (const auto& [k, inner] : v.items()) {
    if (!is_zero(inner)) return false;
  }
  return true;
}

void diff(const json& desired, const json& actual, const std::string& path, bool exact,
          std::vector<FieldChange>& out) {
  auto differ = [&](const std::string& p, const json& want, const json& have) {
    out.push_back({p, have, want});
  };
  if (desired.is_object()) {
    if (!actual.is_object()) {
      if (!is_zero(desired) || !is_zero(actual)) differ(path, desired, actual);
      return;
    }
    for (const auto& [k, v] : desired.items()) {
      std::string p = path.empty() ? k : path + "." + k;
      auto it = actual.find(k);
      if (it == actual.end()) {
        // A zero value the engine leaves out is not a difference.
        if (!is_zero(v)) differ(p, v, nullptr);
        continue;
      }
      diff(v, *it, p, owned_map(k), out);
    }
    if (exact) {
      for (const auto& [k, v] : actual.items()) {
        if (!desired.contains(k)) differ(path.empty() ? k : path + "." + k, nullptr, v);
      }
    }
    return;
  }
  if (desired.is_array()) {
    if (!actual.is_array() || actual.size() != desired.size()) {
      if (!(desired.empty() && actual.is_null())) differ(path, desired, actual);
      return;
    }
    std::vector<FieldChange> inner;
    for (std::size_t i = 0; i < desired.size(); ++i)
      diff(desired[i], actual[i], path, false, inner);
    if (!inner.empty()) differ(path, desired, actual);
    return;
  }
  if (desired.is_number() && actual.is_number()) {
    if (desired.get<double>() != actual.get<double>()) differ(path, desired, actual);
    return;
  }
  if (desired != actual) differ(path, desired, actual);
}

std::string label_filter(const std::string& ns) {
  return json{{"label", json::array({std::string(kNamespaceLabel) + "=" + ns})}}.dump();
}

class Deployer {
 public:
  Deployer(docker::Engine* engine, const StackSpec& stack, const DeployOptions& options)
      : engine_(engine), stack_(stack), opt_(options) {}

  // Plans from an observation of the whole swarm; sends nothing.
  DeployReport plan(const SwarmObservation& o) {
    report_.stack = stack_.ns;
    for (const json& n : o.networks) networks_[n.value("Name", "")] = n.value("Id", "");
    auto mine = [&](const json& list) {
      json out = json::array();
      for (const json& item : list) {
        const json& labels = item["Spec"].value("Labels", json::object());
        if (labels.value(kNamespaceLabel, "") == stack_.ns) out.push_back(item);
      }
      return out;
    };
    configs_ = mine(o.configs);
    secrets_ = mine(o.secrets);
    services_ = mine(o.services);
    // dry_run is set: none of these sends a request.
    (void)ensure_networks();
    (void)ensure_objects("configs", stack_.configs, configs_, config_ids_);
    (void)ensure_objects("secrets", stack_.secrets, secrets_, secret_ids_);
    (void)services();
    report_.converged = all_running(services_);
    return std::move(report_);
  }

  Result<DeployReport> run() {
    engine_->reset_counts();
    report_.stack = stack_.ns;
    PHX_TRY(observe());
    PHX_TRY(ensure_networks());
    PHX_TRY(ensure_objects("configs", stack_.configs, configs_, config_ids_));
    PHX_TRY(ensure_objects("secrets", stack_.secrets, secrets_, secret_ids_));
    bool changed = PHX_TRY(services());
    if (!opt_.dry_run) {
      if (changed || !all_running(services_)) {
        if (opt_.wait) PHX_TRY(wait());
      } else {
        report_.converged = true;
      }
      PHX_TRY(remove_unused());
    }
    report_.requests = engine_->counts();
    return std::move(report_);
  }

 private:
  void say(const std::string& line) {
    if (opt_.progress) opt_.progress(line);
  }

  // ---- observation: one list per kind ---------------------------------------------------------

  Result<void> observe() {
    json nets = PHX_TRY(engine_->get("/networks"));
    for (const json& n : nets) networks_[n.value("Name", "")] = n.value("Id", "");
    configs_ = PHX_TRY(engine_->get("/configs", {{"filters", label_filter(stack_.ns)}}));
    secrets_ = PHX_TRY(engine_->get("/secrets", {{"filters", label_filter(stack_.ns)}}));
    services_ = PHX_TRY(
        engine_->get("/services", {{"filters", label_filter(stack_.ns)}, {"status", "true"}}));
    return {};
  }

  Result<void> ensure_networks() {
    for (const std::string& ext : stack_.external_networks) {
      if (networks_.contains(ext)) continue;
      std::string where = engine_ ? " on " + engine_->describe() : "";
      if (opt_.dry_run) {
        report_.failures.push_back("the external network " + ext + " does not exist" + where +
                                   " (phoenix swarm init creates traefik-public)");
        continue;
      }
      return base::fail(base::ErrorKind::kNotFound,
                        "stack " + stack_.ns + " uses the external network " + ext +
                            ", which does not exist" + where +
                            "; create it first (phoenix swarm init creates traefik-public)");
    }
    for (const auto& [name, body] : stack_.networks) {
      if (networks_.contains(name)) continue;
      report_.created.push_back("network " + name);
      if (opt_.dry_run) continue;
      say("creating network " + name);
      json r = PHX_TRY(engine_->post("/networks/create", body));
      networks_[name] = r.value("Id", "");
    }
    return {};
  }

  Result<void> ensure_objects(const char* kind, const std::vector<FileObject>& wanted,
                              const json& existing, std::map<std::string, std::string>& ids) {
    for (const json& o : existing) ids[o["Spec"].value("Name", "")] = o.value("ID", "");
    std::string singular(kind, std::strlen(kind) - 1);
    for (const FileObject& obj : wanted) {
      if (ids.contains(obj.name)) continue;
      report_.created.push_back(singular + " " + obj.name);
      if (opt_.dry_run) {
        ids[obj.name] = "<new>";
        continue;
      }
      say("creating " + singular + " " + obj.name);
      json r = PHX_TRY(engine_->post("/" + std::string(kind) + "/create", obj.spec));
      ids[obj.name] = r.value("ID", "");
    }
    return {};
  }

  // The spec to send: references resolved to ids, networks to their ids as the engine stores
  // them.
  json resolved(const ServiceSpec& s) const {
    json spec = s.spec;
    json& cs = spec["TaskTemplate"]["ContainerSpec"];
    auto resolve = [&](const char* list, const char* name_key, const char* id_key,
                       const std::map<std::string, std::string>& ids) {
      if (!cs.contains(list)) return;
      for (json& ref : cs[list]) {
        auto it = ids.find(ref[name_key].get<std::string>());
        if (it != ids.end()) ref[id_key] = it->second;
      }
    };
    resolve("Configs", "ConfigName", "ConfigID", config_ids_);
    resolve("Secrets", "SecretName", "SecretID", secret_ids_);
    return spec;
  }

  json comparable(json spec) const {
    // The engine keeps network attachments by id.
    for (json& n : spec["TaskTemplate"]["Networks"]) {
      auto it = networks_.find(n["Target"].get<std::string>());
      if (it != networks_.end()) n["Target"] = it->second;
    }
    return spec;
  }

  Result<bool> services() {
    std::map<std::string, const json*> current;
    for (const json& s : services_) current[s["Spec"].value("Name", "")] = &s;
    bool changed = false;
    for (const ServiceSpec& s : stack_.services) {
      json spec = resolved(s);
      auto it = current.find(s.name);
      if (it == current.end()) {
        report_.services.push_back({s.name, "create", {}});
        changed = true;
        if (opt_.dry_run) continue;
        say("creating service " + s.name);
        PHX_TRY(engine_->post("/services/create", spec));
        continue;
      }
      const json& actual = *it->second;
      std::vector<FieldChange> fields = spec_differences(comparable(spec), actual["Spec"]);
      if (fields.empty()) {
        report_.services.push_back({s.name, "unchanged", {}});
        continue;
      }
      report_.services.push_back({s.name, "update", fields});
      changed = true;
      if (opt_.dry_run) continue;
      say("updating service " + s.name + " (" + std::to_string(fields.size()) + " fields)");
      if (std::any_of(fields.begin(), fields.end(),
                      [](const FieldChange& f) { return f.path.starts_with("TaskTemplate"); })) {
        updated_[s.name] = actual.contains("UpdateStatus")
                               ? actual["UpdateStatus"].value("StartedAt", "")
                               : std::string();
      }
      std::string id = actual.value("ID", "");
      std::string version = std::to_string(actual["Version"].value("Index", 0));
      PHX_TRY(engine_->post("/services/" + id + "/update", spec, {{"version", version}}));
    }
    std::set<std::string> wanted;
    for (const ServiceSpec& s : stack_.services) wanted.insert(s.name);
    for (const auto& [name, svc] : current) {
      if (wanted.contains(name)) continue;
      report_.services.push_back({name, "remove", {}});
      changed = true;
      if (opt_.dry_run) continue;
      say("removing service " + name + " (no longer in the compose file)");
      auto r = engine_->del("/services/" + svc->value("ID", ""));
      if (!r && r.error().kind() != base::ErrorKind::kNotFound) return std::unexpected(r.error());
    }
    return changed;
  }

  // ---- waiting --------------------------------------------------------------------------------

  bool all_running(const json& services) const {
    std::set<std::string> wanted;
    for (const ServiceSpec& s : stack_.services) wanted.insert(s.name);
    std::size_t seen = 0;
    for (const json& s : services) {
      if (!wanted.contains(s["Spec"].value("Name", ""))) continue;
      ++seen;
      if (!service_done(s)) return false;
    }
    return seen == wanted.size();
  }

  // Done: every desired task runs, and a rolling update Phoenix started has finished. An update
  // is recognised by a StartedAt other than the one observed before it was sent, since the
  // engine starts the updater after answering.
  bool service_done(const json& s) const {
    std::string name = s["Spec"].value("Name", "");
    std::string state, started;
    if (s.contains("UpdateStatus")) {
      state = s["UpdateStatus"].value("State", "");
      started = s["UpdateStatus"].value("StartedAt", "");
    }
    if (state == "updating" || state == "rollback_started") return false;
    if (auto it = updated_.find(name); it != updated_.end()) {
      if (started == it->second || state != "completed") return false;
    }
    const json& st = s.value("ServiceStatus", json::object());
    auto running = st.value("RunningTasks", std::uint64_t{0});
    auto desired = st.value("DesiredTasks", std::uint64_t{0});
    const json& mode = s["Spec"].value("Mode", json::object());
    bool scaled_to_zero =
        mode.contains("Replicated") && mode["Replicated"].value("Replicas", 1) == 0;
    return running == desired && (desired > 0 || scaled_to_zero);
  }

  // A rolling update that ended in a rollback or a pause: waiting longer will not help.
  bool service_stuck(const json& s) const {
    if (!s.contains("UpdateStatus")) return false;
    std::string state = s["UpdateStatus"].value("State", "");
    std::string started = s["UpdateStatus"].value("StartedAt", "");
    auto it = updated_.find(s["Spec"].value("Name", ""));
    if (it == updated_.end() || started == it->second) return false;
    return state == "rollback_completed" || state == "paused" || state == "rollback_paused";
  }

  Result<void> wait() {
    say("waiting for the tasks of stack " + stack_.ns);
    auto deadline = Clock::now() + opt_.deadline;
    json latest;
    while (true) {
      latest = PHX_TRY(
          engine_->get("/services", {{"filters", label_filter(stack_.ns)}, {"status", "true"}}));
      services_ = latest;
      bool done = true;
      bool stuck = false;
      for (const json& s : latest) {
        if (service_stuck(s)) stuck = true;
        if (!service_done(s)) done = false;
      }
      if (done && !stuck && all_running(latest)) {
        report_.converged = true;
        say("stack " + stack_.ns + " converged");
        return {};
      }
      if (stuck || Clock::now() >= deadline) break;
      std::this_thread::sleep_for(opt_.poll_interval);
    }
    return explain_failures(latest);
  }

  // Why the stack did not converge: the update status and the latest task error of each
  // service that is not done. One task list for the whole stack.
  Result<void> explain_failures(const json& services) {
    json names = json::array();
    for (const json& s : services) names.push_back(s["Spec"].value("Name", ""));
    json tasks = PHX_TRY(engine_->get("/tasks", {{"filters", json{{"service", names}}.dump()}}));
    for (const json& s : services) {
      std::string name = s["Spec"].value("Name", "");
      std::string state = s.contains("UpdateStatus") ? s["UpdateStatus"].value("State", "") : "";
      bool rolled_back = service_stuck(s) && state == "rollback_completed";
      if (service_done(s) && !service_stuck(s)) continue;
      std::string id = s.value("ID", "");
      std::string why;
      std::string latest_time;
      for (const json& t : tasks) {
        if (t.value("ServiceID", "") != id) continue;
        const json& st = t.value("Status", json::object());
        std::string err = st.value("Err", "");
        std::string ts = st.value("Timestamp", "");
        std::string tstate = st.value("State", "");
        if ((tstate == "failed" || tstate == "rejected" || !err.empty()) && ts >= latest_time) {
          latest_time = ts;
          why = "task " + t.value("ID", "").substr(0, 12) + " " + tstate +
                (err.empty() ? "" : ": " + err);
        }
      }
      std::string line = name + ": ";
      if (rolled_back) {
        line += "the update failed and was rolled back";
        std::string msg = s["UpdateStatus"].value("Message", "");
        if (!msg.empty()) line += " (" + msg + ")";
      } else if (state == "paused") {
        line += "the update is paused after a failure";
      } else {
        const json& st = s.value("ServiceStatus", json::object());
        line += std::to_string(st.value("RunningTasks", 0)) + " of " +
                std::to_string(st.value("DesiredTasks", 0)) + " tasks running at the deadline";
      }
      if (!why.empty()) line += "; " + why;
      report_.failures.push_back(line);
    }
    if (report_.failures.empty()) {
      report_.failures.push_back("the stack did not converge before the deadline");
    }
    return {};
  }

  // Configs and secrets of this stack that no service of it references any more. One that is
  // still in use (by a service that rolled back, say) stays.
  Result<void> remove_unused() {
    std::set<std::string> used;
    for (const json& s : services_) {
      const json& cs = s["Spec"]["TaskTemplate"].value("ContainerSpec", json::object());
      for (const char* list : {"Configs", "Secrets"}) {
        if (!cs.contains(list)) continue;
        for (const json& ref : cs[list]) {
          used.insert(ref.value("ConfigID", ref.value("SecretID", "")));
        }
      }
    }
    std::set<std::string> wanted;
    for (const FileObject& o : stack_.configs) wanted.insert(o.name);
    for (const FileObject& o : stack_.secrets) wanted.insert(o.name);
    for (const auto& [kind, list] : {std::pair<const char*, const json*>{"configs", &configs_},
                                     std::pair<const char*, const json*>{"secrets", &secrets_}}) {
      for (const json& o : *list) {
        std::string name = o["Spec"].value("Name", "");
        std::string id = o.value("ID", "");
        if (wanted.contains(name) || used.contains(id)) continue;
        say("removing unused " + std::string(kind, std::strlen(kind) - 1) + " " + name);
        auto r = engine_->del("/" + std::string(kind) + "/" + id);
        if (!r) {
          // In use by a task that is still shutting down: the next deploy removes it.
          if (r.error().kind() == base::ErrorKind::kConflict ||
              r.error().kind() == base::ErrorKind::kInvalidInput ||
              r.error().kind() == base::ErrorKind::kNotFound) {
            continue;
          }
          return std::unexpected(r.error());
        }
        report_.removed.push_back(std::string(kind, std::strlen(kind) - 1) + " " + name);
      }
    }
    return {};
  }

  docker::Engine* engine_;  // null when planning from an observation
  const StackSpec& stack_;
  const DeployOptions& opt_;
  DeployReport report_;
  std::map<std::string, std::string> networks_;  // name -> id
  json configs_ = json::array(), secrets_ = json::array(), services_ = json::array();
  std::map<std::string, std::string> config_ids_, secret_ids_;  // name -> id
  std::map<std::string, std::string> updated_;  // service -> UpdateStatus.StartedAt before
};

}  // namespace

std::vector<FieldChange> spec_differences(const json& desired, const json& actual) {
  std::vector<FieldChange> out;
  diff(desired, actual, "", false, out);
  std::stable_sort(out.begin(), out.end(),
                   [](const FieldChange& a, const FieldChange& b) { return a.path < b.path; });
  return out;
}

Result<SwarmObservation> observe_swarm(docker::Engine& engine) {
  SwarmObservation o;
  o.networks = PHX_TRY(engine.get("/networks"));
  o.configs = PHX_TRY(engine.get("/configs"));
  o.secrets = PHX_TRY(engine.get("/secrets"));
  o.services = PHX_TRY(engine.get("/services", {{"status", "true"}}));
  return o;
}

DeployReport plan_stack(const SwarmObservation& observed, const StackSpec& stack) {
  DeployOptions options;
  options.dry_run = true;
  return Deployer(nullptr, stack, options).plan(observed);
}

Result<DeployReport> deploy_stack(docker::Engine& engine, const StackSpec& stack,
                                  const DeployOptions& options) {
  return Deployer(&engine, stack, options).run();
}

}  // namespace phoenix::swarm
