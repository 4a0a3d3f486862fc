#pragma once

// A deployable compose file turned into the Engine API objects that `docker stack deploy`
// creates for it, with the same names, labels and defaults (docker/cli's cli/compose/convert),
// plus what Phoenix adds:
//   - configs and secrets are named after their content (<stack>_<key>_<hash>), because the
//     engine cannot change one in place; a changed file becomes a new object and the old one is
//     removed once nothing uses it;
//   - every service's UpdateConfig.FailureAction is "rollback" unless the compose file says
//     otherwise.
// Pure: file contents come through `ReadFile`, nothing here talks to an engine.

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/node.h"

namespace phoenix::swarm {

inline constexpr const char* kNamespaceLabel = "com.docker.stack.namespace";
inline constexpr const char* kImageLabel = "com.docker.stack.image";
// On configs and secrets: the compose key the object was made from.
inline constexpr const char* kSourceLabel = "com.phoenix.source";

// A config or secret the stack needs. `spec` is the ConfigSpec / SecretSpec body (Name, Labels,
// Data in base64).
struct FileObject {
  std::string key;   // compose key
  std::string name;  // engine name, content-hashed
  nlohmann::json spec;
};

struct ServiceSpec {
  std::string key;      // compose key
  std::string name;     // <stack>_<key>
  nlohmann::json spec;  // ServiceSpec; config and secret references lack their ids
  bool has_healthcheck = false;
};

struct StackSpec {
  std::string ns;
  std::map<std::string, nlohmann::json> networks;  // name -> NetworkCreate body
  std::vector<std::string> external_networks;
  std::vector<FileObject> configs, secrets;  // sorted by name
  std::vector<ServiceSpec> services;         // sorted by name
  std::vector<std::string> warnings;         // e.g. compose options `docker stack deploy` ignores
};

// Reads a file named in the compose file, relative to the stack's directory.
using ReadFile = std::function<base::Result<std::string>(const std::string& path)>;

// `compose` is a deployable compose file (variables substituted). Errors carry the location of
// the offending value.
base::Result<StackSpec> convert_stack(const std::string& ns, const base::Node& compose,
                                      const ReadFile& read_file);

// Compose durations ("1m30s", "250ms", "2h") in nanoseconds.
std::optional<std::int64_t> parse_duration(std::string_view text);
// Compose byte sizes ("512M", "1g", "1024", "64mb") in bytes, 1024-based as docker's units.
std::optional<std::int64_t> parse_bytes(std::string_view text);

}  // namespace phoenix::swarm
