#include "plan/plan.h"

#include <algorithm>
#include <queue>
#include <string_view>
#include <unordered_map>

namespace phoenix::plan {
namespace {

using nlohmann::json;

enum class Policy { kUpdate, kGrowOnly, kReplace };

// Fields Proxmox cannot change in place.
Policy policy_of(std::string_view kind, std::string_view path) {
  if (kind == "lxc") {
    if (path == "storage_size_gb") return Policy::kGrowOnly;
    if (path == "unprivileged" || path == "ostemplate" || path == "clone_from") {
      return Policy::kReplace;
    }
  }
  if (kind == "vm") {
    if (path == "disk_size_gb") return Policy::kGrowOnly;
    if (path == "clone_from") return Policy::kReplace;
  }
  return Policy::kUpdate;
}

void flatten_into(const json& j, const std::string& prefix, std::map<std::string, json>& out) {
  if (j.is_object()) {
    if (j.empty() && !prefix.empty()) out[prefix] = j;
    for (auto it = j.begin(); it != j.end(); ++it) {
      flatten_into(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
    }
    return;
  }
  if (j.is_array() &&
      std::any_of(j.begin(), j.end(), [](const json& e) { return e.is_object(); })) {
    for (std::size_t i = 0; i < j.size(); ++i) {
      flatten_into(j[i], prefix + "[" + std::to_string(i) + "]", out);
    }
    if (j.empty()) out[prefix] = j;
    return;
  }
  out[prefix] = j;
}

std::string show(const json& v) { return v.dump(); }

std::string show_value(const json& v) {
  if (v.is_string()) return json(v).dump();
  return show(v);
}

}  // namespace

std::map<std::string, json> flatten(const json& fields) {
  std::map<std::string, json> out;
  flatten_into(fields, "", out);
  return out;
}

std::string_view to_string(ActionKind kind) {
  switch (kind) {
    case ActionKind::kCreate:
      return "create";
    case ActionKind::kUpdate:
      return "update";
    case ActionKind::kReplace:
      return "replace";
    case ActionKind::kDelete:
      return "delete";
    case ActionKind::kNoop:
      return "no-op";
  }
  return "?";
}

base::Result<Observed> parse_snapshot(const json& doc) {
  using base::ErrorKind;
  if (!doc.is_object() || !doc.contains("phoenix_snapshot")) {
    return base::fail(ErrorKind::kInvalidInput,
                      "not a Phoenix snapshot: expected an object with \"phoenix_snapshot\": 1");
  }
  if (doc["phoenix_snapshot"] != 1) {
    return base::fail(ErrorKind::kInvalidInput, "unsupported snapshot version " +
                                                    doc["phoenix_snapshot"].dump() +
                                                    "; this Phoenix reads version 1");
  }
  Observed out;
  if (!doc.contains("resources")) return out;
  const json& res = doc["resources"];
  if (!res.is_object()) {
    return base::fail(ErrorKind::kInvalidInput, "\"resources\" must be an object keyed by id");
  }
  for (auto it = res.begin(); it != res.end(); ++it) {
    const json& r = it.value();
    if (!r.is_object()) {
      return base::fail(ErrorKind::kInvalidInput,
                        "resource \"" + it.key() + "\" must be an object with \"fields\"");
    }
    ObservedResource o;
    if (r.contains("fields")) {
      if (!r["fields"].is_object()) {
        return base::fail(ErrorKind::kInvalidInput,
                          "\"fields\" of resource \"" + it.key() + "\" must be an object");
      }
      o.fields = r["fields"];
    }
    if (r.contains("managed")) {
      if (!r["managed"].is_boolean()) {
        return base::fail(ErrorKind::kInvalidInput,
                          "\"managed\" of resource \"" + it.key() + "\" must be true or false");
      }
      o.managed = r["managed"].get<bool>();
    }
    out.resources[it.key()] = std::move(o);
  }
  return out;
}

json make_snapshot(const std::vector<compile::Resource>& resources) {
  json res = json::object();
  for (const compile::Resource& r : resources) {
    res[r.id] = {{"managed", true}, {"fields", r.fields}};
  }
  return {{"phoenix_snapshot", 1}, {"resources", res}};
}

std::size_t Plan::count(ActionKind kind) const {
  return static_cast<std::size_t>(std::count_if(actions.begin(), actions.end(),
                                                [&](const Action& a) { return a.kind == kind; }));
}

bool Plan::has_changes() const {
  return std::any_of(actions.begin(), actions.end(),
                     [](const Action& a) { return a.kind != ActionKind::kNoop; });
}

base::Result<Plan> make_plan(const std::vector<compile::Resource>& desired,
                             const Observed& observed, const PlanOptions& options) {
  std::unordered_map<std::string_view, const compile::Resource*> by_id;
  by_id.reserve(desired.size());
  for (const compile::Resource& r : desired) by_id[r.id] = &r;

  // Selection: the named guests, everything they depend on, and what belongs to them.
  std::set<compile::GuestId> selected;
  if (!options.only.empty()) {
    std::map<compile::GuestId, const compile::Resource*> guests;
    for (const compile::Resource& r : desired) {
      if ((r.kind == "lxc" || r.kind == "vm") && r.owner) guests[*r.owner] = &r;
    }
    std::vector<compile::GuestId> work;
    for (compile::GuestId id : options.only) {
      if (!guests.count(id)) {
        return base::fail(base::ErrorKind::kInvalidInput,
                          "guest " + std::to_string(id) + " is not defined in the estate");
      }
      work.push_back(id);
    }
    while (!work.empty()) {
      compile::GuestId id = work.back();
      work.pop_back();
      if (!selected.insert(id).second) continue;
      for (const std::string& dep : guests[id]->deps) {
        auto it = by_id.find(dep);
        if (it != by_id.end() && it->second->owner) work.push_back(*it->second->owner);
      }
    }
  }
  auto in_selection = [&](const std::optional<compile::GuestId>& owner) {
    return options.only.empty() || (owner && selected.count(*owner));
  };

  Plan plan;
  std::vector<Action> changes;
  // Room for the deletions too, which are appended at the end.
  changes.reserve(desired.size() + observed.resources.size());
  for (const compile::Resource& r : desired) {
    if (!in_selection(r.owner)) continue;
    Action a;
    a.id = r.id;
    a.resource_kind = r.kind;
    a.name = r.name;
    a.stage = r.stage;
    a.owner = r.owner;
    a.deps = r.deps;
    auto obs = observed.resources.find(r.id);
    if (obs == observed.resources.end()) {
      a.kind = ActionKind::kCreate;
      a.reason = "not present on the platform";
    } else {
      auto want = flatten(r.fields);
      auto have = flatten(obs->second.fields);
      std::set<std::string> keys;
      for (const auto& [k, v] : want) keys.insert(k);
      for (const auto& [k, v] : have) keys.insert(k);
      bool replace = false;
      for (const std::string& k : keys) {
        auto w = want.find(k);
        auto h = have.find(k);
        if (w != want.end() && h != have.end() && w->second == h->second) continue;
        FieldChange c;
        c.path = k;
        if (h != have.end()) c.before = h->second;
        if (w != want.end()) c.after = w->second;
        Policy p = policy_of(r.kind, k);
        if (p == Policy::kReplace) {
          c.forces_replacement = true;
          replace = true;
        } else if (p == Policy::kGrowOnly && c.before && c.after && c.before->is_number() &&
                   c.after->is_number() && *c.after < *c.before) {
          plan.errors.push_back(r.id + ": " + k + " cannot shrink from " + show(*c.before) +
                                " to " + show(*c.after) +
                                "; Proxmox only grows disks. Keep it at " + show(*c.before) +
                                " or recreate the guest deliberately");
        }
        a.changes.push_back(std::move(c));
      }
      if (a.changes.empty()) {
        a.kind = ActionKind::kNoop;
        a.reason = "up to date";
      } else if (replace) {
        a.kind = ActionKind::kReplace;
        a.reason = "a field that cannot change in place differs";
      } else {
        a.kind = ActionKind::kUpdate;
        a.reason = std::to_string(a.changes.size()) + " field" +
                   (a.changes.size() == 1 ? "" : "s") + " differ" +
                   (a.changes.size() == 1 ? "s" : "");
      }
    }
    changes.push_back(std::move(a));
  }

  // Topological order (Kahn); among ready actions, earlier stages first, then by id.
  std::unordered_map<std::string_view, std::size_t> index;
  index.reserve(changes.size());
  for (std::size_t i = 0; i < changes.size(); ++i) index[changes[i].id] = i;
  std::vector<int> pending(changes.size(), 0);
  std::vector<std::vector<std::size_t>> dependents(changes.size());
  for (std::size_t i = 0; i < changes.size(); ++i) {
    for (const std::string& d : changes[i].deps) {
      auto it = index.find(d);
      if (it == index.end()) continue;
      ++pending[i];
      dependents[it->second].push_back(i);
    }
  }
  auto later = [&](std::size_t a, std::size_t b) {
    if (changes[a].stage != changes[b].stage) return changes[a].stage > changes[b].stage;
    return changes[a].id > changes[b].id;
  };
  std::priority_queue<std::size_t, std::vector<std::size_t>, decltype(later)> ready(later);
  for (std::size_t i = 0; i < changes.size(); ++i) {
    if (pending[i] == 0) ready.push(i);
  }
  std::vector<bool> done(changes.size(), false);
  std::vector<std::size_t> order;  // the actions' positions in `changes`, in plan order
  order.reserve(changes.size());
  while (!ready.empty()) {
    std::size_t i = ready.top();
    ready.pop();
    done[i] = true;
    order.push_back(i);
    for (std::size_t j : dependents[i]) {
      if (--pending[j] == 0) ready.push(j);
    }
  }
  // A cycle (only in estates that failed validation) leaves actions behind; keep them visible.
  for (std::size_t i = 0; i < changes.size(); ++i) {
    if (!done[i]) order.push_back(i);
  }
  // The actions are put in that order where they are (a second vector of them all would be
  // megabytes of fresh memory at 10,000 guests): each cycle of the permutation is followed once.
  std::vector<bool> placed(changes.size(), false);
  for (std::size_t start = 0; start < changes.size(); ++start) {
    if (placed[start]) continue;
    Action first = std::move(changes[start]);
    std::size_t at = start;
    while (true) {
      placed[at] = true;
      const std::size_t from = order[at];
      if (from == start) {
        changes[at] = std::move(first);
        break;
      }
      changes[at] = std::move(changes[from]);
      at = from;
    }
  }
  plan.actions = std::move(changes);

  // Deletions: managed resources no longer desired, dependents before what they depend on,
  // which for our kinds means later stages first.
  std::vector<Action> deletes;
  for (const auto& [id, obs] : observed.resources) {
    if (by_id.count(id) || !obs.managed) continue;
    Action a;
    a.kind = ActionKind::kDelete;
    a.id = id;
    a.resource_kind = id.substr(0, id.find('/'));
    a.name = id.substr(id.find('/') + 1);
    a.reason = "managed by Phoenix but no longer in the estate";
    if (a.resource_kind == "lxc" || a.resource_kind == "vm") {
      a.stage = compile::Stage::kGuests;
      if (auto n = a.name;
          !n.empty() && std::all_of(n.begin(), n.end(), ::isdigit) && n.size() < 10) {
        a.owner = static_cast<compile::GuestId>(std::stoul(n));
      }
    } else if (a.resource_kind == "stack") {
      a.stage = compile::Stage::kStacks;
    } else if (a.resource_kind == "file") {
      a.stage = compile::Stage::kGateways;
    } else if (a.resource_kind == "swarm-node" || a.resource_kind == "network") {
      a.stage = compile::Stage::kSwarm;
    } else {
      a.stage = compile::Stage::kInfrastructure;
    }
    if (!options.only.empty() && !in_selection(a.owner)) continue;
    deletes.push_back(std::move(a));
  }
  std::stable_sort(deletes.begin(), deletes.end(), [](const Action& a, const Action& b) {
    return static_cast<int>(a.stage) > static_cast<int>(b.stage);
  });
  plan.actions.insert(plan.actions.end(), std::make_move_iterator(deletes.begin()),
                      std::make_move_iterator(deletes.end()));
  return plan;
}

std::string format_plan(const Plan& plan, const TextOptions& opts) {
  auto paint = [&](const char* colour, const std::string& text) {
    return opts.colour ? std::string(colour) + text + "\x1b[0m" : text;
  };
  constexpr const char* kGreen = "\x1b[32m";
  constexpr const char* kYellow = "\x1b[33m";
  constexpr const char* kRed = "\x1b[31m";
  constexpr const char* kMagenta = "\x1b[35m";
  std::string out;
  if (!plan.has_changes()) {
    out += "No changes. The platform matches the estate (" +
           std::to_string(plan.count(ActionKind::kNoop)) + " resources up to date).\n";
  } else {
    out += "Phoenix will perform the following actions, in this order:\n";
    int stage = -1;
    for (const Action& a : plan.actions) {
      if (a.kind == ActionKind::kNoop && !opts.show_unchanged) continue;
      if (static_cast<int>(a.stage) != stage) {
        stage = static_cast<int>(a.stage);
        out += "\n  # stage " + std::to_string(stage) + ": " +
               std::string(compile::to_string(a.stage)) + "\n";
      }
      std::string sym;
      const char* colour = kGreen;
      switch (a.kind) {
        case ActionKind::kCreate:
          sym = "+";
          break;
        case ActionKind::kUpdate:
          sym = "~";
          colour = kYellow;
          break;
        case ActionKind::kReplace:
          sym = "-/+";
          colour = kMagenta;
          break;
        case ActionKind::kDelete:
          sym = "-";
          colour = kRed;
          break;
        case ActionKind::kNoop:
          sym = " ";
          colour = "";
          break;
      }
      std::string head = sym + " " + a.id;
      if (!a.name.empty() && a.id.find(a.name) == std::string::npos) head += " (" + a.name + ")";
      out += "  " + (a.kind == ActionKind::kNoop ? head : paint(colour, head)) + "\n";
      out += "      " + std::string(to_string(a.kind)) + ": " + a.reason + "\n";
      for (const FieldChange& c : a.changes) {
        std::string line = "      " + c.path + ": ";
        line += c.before ? show_value(*c.before) : "(none)";
        line += " → ";
        line += c.after ? show_value(*c.after) : "(removed)";
        if (c.forces_replacement) line += "  # forces replacement";
        out += line + "\n";
      }
    }
    out += "\nPlan: " + std::to_string(plan.count(ActionKind::kCreate)) + " to create, " +
           std::to_string(plan.count(ActionKind::kUpdate)) + " to update, " +
           std::to_string(plan.count(ActionKind::kReplace)) + " to replace, " +
           std::to_string(plan.count(ActionKind::kDelete)) + " to delete, " +
           std::to_string(plan.count(ActionKind::kNoop)) + " unchanged.\n";
  }
  for (const std::string& e : plan.errors) out += paint(kRed, "error: ") + e + "\n";
  return out;
}

json plan_to_json(const Plan& plan) {
  json actions = json::array();
  for (const Action& a : plan.actions) {
    json changes = json::array();
    for (const FieldChange& c : a.changes) {
      json jc = {{"field", c.path},
                 {"before", c.before ? *c.before : json(nullptr)},
                 {"after", c.after ? *c.after : json(nullptr)}};
      if (c.forces_replacement) jc["forces_replacement"] = true;
      changes.push_back(std::move(jc));
    }
    json ja = {{"action", to_string(a.kind)},
               {"id", a.id},
               {"kind", a.resource_kind},
               {"name", a.name},
               {"stage", static_cast<int>(a.stage)},
               {"stage_name", compile::to_string(a.stage)},
               {"reason", a.reason},
               {"changes", changes},
               {"depends_on", a.deps}};
    if (a.owner) ja["guest"] = *a.owner;
    actions.push_back(std::move(ja));
  }
  return {{"actions", actions},
          {"errors", plan.errors},
          {"summary",
           {{"create", plan.count(ActionKind::kCreate)},
            {"update", plan.count(ActionKind::kUpdate)},
            {"replace", plan.count(ActionKind::kReplace)},
            {"delete", plan.count(ActionKind::kDelete)},
            {"unchanged", plan.count(ActionKind::kNoop)}}}};
}

}  // namespace phoenix::plan
