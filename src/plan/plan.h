#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "compile/desired.h"

namespace phoenix::plan {

// What a provider saw of one resource. `managed` marks resources Phoenix created (tagged), the
// only ones it will ever delete.
struct ObservedResource {
  nlohmann::json fields = nlohmann::json::object();
  bool managed = true;
};

struct Observed {
  std::map<std::string, ObservedResource> resources;
};

// The snapshot file format (docs/snapshot-format.md):
//   {"phoenix_snapshot": 1, "resources": {"<id>": {"managed": true, "fields": {...}}}}
base::Result<Observed> parse_snapshot(const nlohmann::json& doc);
// A snapshot of `resources` as if the platform had converged to them.
nlohmann::json make_snapshot(const std::vector<compile::Resource>& resources);

enum class ActionKind { kCreate, kUpdate, kReplace, kDelete, kNoop };
std::string_view to_string(ActionKind kind);

struct FieldChange {
  std::string path;  // dotted, e.g. "net0.ip"
  std::optional<nlohmann::json> before;
  std::optional<nlohmann::json> after;
  bool forces_replacement = false;
};

struct Action {
  ActionKind kind = ActionKind::kNoop;
  std::string id;
  std::string resource_kind;
  std::string name;
  compile::Stage stage = compile::Stage::kGuests;
  std::optional<compile::GuestId> owner;
  std::string reason;
  std::vector<FieldChange> changes;
  std::vector<std::string> deps;
};

struct Plan {
  std::vector<Action> actions;      // dependency order: creates/updates first, deletes last
  std::vector<std::string> errors;  // changes Phoenix refuses to make (e.g. shrinking a disk)
  std::size_t count(ActionKind kind) const;
  bool has_changes() const;
};

struct PlanOptions {
  std::set<compile::GuestId> only;  // empty: everything
};

// Compares desired with observed. Fails only for a bad selection (an id that is not a guest).
base::Result<Plan> make_plan(const std::vector<compile::Resource>& desired,
                             const Observed& observed, const PlanOptions& options);

struct TextOptions {
  bool colour = false;
  bool show_unchanged = false;
};
std::string format_plan(const Plan& plan, const TextOptions& options);
nlohmann::json plan_to_json(const Plan& plan);

// Nested objects become dotted keys; arrays of objects become key[i]; other arrays stay whole.
std::map<std::string, nlohmann::json> flatten(const nlohmann::json& fields);

}  // namespace phoenix::plan
