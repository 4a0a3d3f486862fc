#pragma once

// Converges one stack on a swarm manager with `docker stack deploy` semantics: networks,
// configs and secrets first, then each service created or updated (with its version, so a
// concurrent change is refused rather than overwritten), services gone from the compose file
// pruned, and a wait until every task runs. Observation is one list request per object kind,
// never one per object, and an unchanged stack costs no mutating request at all.

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "base/error.h"
#include "providers/docker/api.h"
#include "swarm/convert.h"

namespace phoenix::swarm {

struct DeployOptions {
  bool wait = true;
  std::chrono::milliseconds deadline{std::chrono::minutes(5)};
  std::chrono::milliseconds poll_interval{500};
  bool dry_run = false;  // observe and report what would change; send no mutating request
  std::function<void(const std::string&)> progress;  // one line per step; may be empty
};

// One value that differs between the spec Phoenix wants and the one the engine has.
struct FieldChange {
  std::string path;       // e.g. "TaskTemplate.ContainerSpec.Env"
  nlohmann::json before;  // the engine's value (null when it has none)
  nlohmann::json after;   // Phoenix's value (null when Phoenix does not set it)
};

struct ServiceChange {
  std::string name;
  std::string action;               // "create", "update", "remove", "unchanged"
  std::vector<FieldChange> fields;  // for updates
};

struct DeployReport {
  std::string stack;
  std::vector<ServiceChange> services;
  std::vector<std::string> created;   // "network x", "config y", "secret z"
  std::vector<std::string> removed;   // configs and secrets no service uses any more
  bool converged = false;             // every task running (and healthy where checked)
  std::vector<std::string> failures;  // per service: what failed and why
  docker::RequestCounts requests;
};

// The swarm's objects, one list request per kind (GET /networks, /configs, /secrets, /services
// with status), for planning every stack at once.
struct SwarmObservation {
  nlohmann::json networks = nlohmann::json::array();
  nlohmann::json configs = nlohmann::json::array();
  nlohmann::json secrets = nlohmann::json::array();
  nlohmann::json services = nlohmann::json::array();
};
base::Result<SwarmObservation> observe_swarm(docker::Engine& engine);

// What deploy_stack would do, from an observation: no request is sent. `converged` says whether
// the stack's services all run now.
DeployReport plan_stack(const SwarmObservation& observed, const StackSpec& stack);

// Deploys `stack` through `engine`. An Error only when the engine could not be used (a request
// failed); a deploy whose tasks fail or roll back returns a report with `failures`.
base::Result<DeployReport> deploy_stack(docker::Engine& engine, const StackSpec& stack,
                                        const DeployOptions& options = {});

// Where `actual` (a spec as the engine returns it) differs from `desired` (a spec as Phoenix
// sends it): every value Phoenix sets must be equal, maps Phoenix owns (labels, options) must
// match exactly, lists must match element by element; defaults the engine fills in are ignored.
// Returns the differences by dotted path, empty when they match.
std::vector<FieldChange> spec_differences(const nlohmann::json& desired,
                                          const nlohmann::json& actual);

}  // namespace phoenix::swarm
