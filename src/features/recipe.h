#pragma once

// Guest features as recipes: what Phoenix installs and runs inside a guest, as data. Each feature
// of the estate (`features: ["base_setup", "docker", ...]`) names a recipe, a YAML file kept in
// the repository's recipes/ directory and built into the binary. A recipe is a list of steps
// (packages, files, links, systemd units, commands with their checks) and health checks; every
// step looks before it acts, so applying a recipe to a converged guest changes nothing.
//
// This module is pure: it parses recipes and expands them for one guest into concrete steps.
// Running them through a guest channel is provision/'s job.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/diagnostics.h"
#include "base/node.h"
#include "base/source.h"
#include "compile/desired.h"
#include "model/estate.h"

namespace phoenix::features {

// Packages installed with the guest's package manager (apt), when not already installed.
struct PackagesStep {
  std::vector<std::string> names;
};

// Where a file's content comes from.
struct FileContent {
  enum class Kind {
    kInline,    // `content`, with ${...} variables expanded
    kArtifact,  // `artifact`: a file Phoenix derives for this guest, by name (see Artifacts)
    kHostFile,  // `from_host`: a file of the machine Phoenix runs on (binaries, installers)
  };
  Kind kind = Kind::kInline;
  std::string text;  // the content (inline), the artifact's name, or the host path
};

// A file in the guest with its owner and mode.
struct FileStep {
  std::string path;
  FileContent content;
  std::string owner = "root";
  std::string group = "root";
  unsigned mode = 0644;
};

// A symbolic link `path` -> `target`.
struct LinkStep {
  std::string path;
  std::string target;
};

// A path that must not exist (a distribution's default site, say).
struct AbsentStep {
  std::string path;
};

// A systemd service: its unit file when the recipe writes one, enabled, and running. It is
// restarted (or reloaded) only when its unit or one of the `restart_on` files changed in this run.
struct ServiceStep {
  std::string name;              // "nginx" or "vllm.service"
  std::optional<FileStep> unit;  // written to /etc/systemd/system/<name>.service
  bool enable = true;
  bool reload = false;                  // on a change: `systemctl reload` instead of restart
  std::vector<std::string> restart_on;  // guest paths
};

// A command that runs only when it must: when its `unless` check fails, when `creates` does not
// exist, or, with `on_change`, only when one of those files changed in this run.
struct CommandStep {
  std::string name;  // what it does, for the report
  std::vector<std::string> run;
  std::vector<std::string> unless;  // a check; the command is skipped when it exits 0
  std::string creates;              // a path; the command is skipped when it exists
  std::vector<std::string> on_change;
};

using Step = std::variant<PackagesStep, FileStep, LinkStep, AbsentStep, ServiceStep, CommandStep>;

// One health check: polled with a deadline until it passes.
struct HealthCheck {
  enum class Kind { kHttp, kHttps, kTcp, kCommand };
  std::string name;
  Kind kind = Kind::kHttp;
  std::string url;                // http(s): the URL, with the guest's address substituted
  std::string host_header;        // http(s): a Host header, for name-based routing
  int expect_status = 0;          // http(s): 0 means any 2xx or 3xx
  std::string address;            // tcp: host or IP
  int port = 0;                   // tcp
  std::vector<std::string> argv;  // command: run in the guest, passes on exit 0
  std::chrono::seconds deadline{60};
  base::SourceLoc loc;
};

// A recipe as written, before its variables are expanded for a guest. Strings may hold
// ${name} references; `loc` of each part points into the recipe's file.
struct Recipe {
  std::string name;  // the feature name: the file's base name
  std::string description;
  std::vector<std::string> after;  // features applied before this one on the same guest
  base::Node steps;                // the `steps` list as written (expanded per guest)
  base::Node health;               // the `health` list as written
  base::SourceLoc loc;             // the file
};

// Every recipe, by feature name.
struct RecipeBook {
  std::map<std::string, Recipe, std::less<>> recipes;

  const Recipe* find(std::string_view feature) const;
};

// The recipes built into Phoenix (recipes/*.yml in the repository), as name and text.
struct EmbeddedRecipe {
  std::string_view name;
  std::string_view text;
};
std::span<const EmbeddedRecipe> embedded_recipes();

// Parses the recipes built into Phoenix; their texts join `sources` (as "recipes/<name>.yml")
// so that diagnostics can quote them. Their errors are Phoenix's own bugs: the tests keep them
// clean.
RecipeBook builtin_recipes(base::SourceManager& sources, base::Diagnostics& diags);

// Parses one recipe file's text (already in `sources` as `file`) into `book`. Errors name the
// file, the line and the fix.
void add_recipe(RecipeBook& book, std::string name, std::uint32_t file,
                const base::SourceManager& sources, base::Diagnostics& diags);

// What ${...} may name for one guest: "guest.id", "guest.name", "guest.ip", "domain", ...
using Variables = std::map<std::string, std::string, std::less<>>;

// The variables of one guest: guest.id, guest.name (its host name), guest.ip, guest.cert and
// guest.key (its certificate's paths, when it has one), domain, timezone (default Etc/UTC);
// step_ca.{url, fingerprint, dns_name, name, provisioner_name} as far as step_ca gives them;
// bin.{step, step_ca, traefik} and nvidia.{version, runfile} (guest_features, defaults below
// /usr/local/lib/phoenix); vllm.{version, port}.
Variables guest_variables(const model::Estate& estate, const compile::Desired& desired,
                          const model::Guest& guest);

// The vLLM release installed when guest_features.vllm_version does not say.
inline constexpr const char* kDefaultVllmVersion = "0.11.0";

// A recipe made concrete for one guest: variables expanded, every part checked.
struct Plan {
  std::string feature;
  std::vector<Step> steps;
  std::vector<HealthCheck> health;
};

// Expands `recipe` with `vars` for `guest` ("LXC 101 (Nginx-Phoenix)", named in messages). An
// unknown variable, a malformed step or a bad mode is reported at its place in the recipe file,
// and the step is left out.
Plan expand(const Recipe& recipe, const Variables& vars, base::Diagnostics& diags,
            std::string_view guest = {});

// Health checks written in a guest's `health_checks` (the estate), expanded with `vars` too.
std::vector<HealthCheck> expand_health(const base::Node& list, const Variables& vars,
                                       std::string_view what, base::Diagnostics& diags);

// The features of a guest in the order they are applied: each after the features its recipe
// names in `after` (when the guest has them), otherwise in the order the guest lists them.
// Unknown features are left out (validation reports them).
std::vector<const Recipe*> order_features(const RecipeBook& book,
                                          const std::vector<std::string>& features);

// "${a} and ${b.c}" with `vars`; unknown names are collected in `missing`.
std::string substitute(std::string_view text, const Variables& vars,
                       std::vector<std::string>& missing);

}  // namespace phoenix::features
