#pragma once

// Traefik's own languages, as Phoenix needs to understand them: router rules (v3 syntax) and
// the `traefik.*` labels of the Swarm provider. Pure functions, no I/O.

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/source.h"

namespace phoenix::model {

struct RuleError {
  std::size_t offset = 0;  // byte offset into the rule text
  std::string message;
};

struct ParsedRule {
  std::vector<std::string> hosts;  // the arguments of every Host() matcher
};

// Checks `rule` against Traefik v3's HTTP rule grammar: matchers (Host, Path, Header, ...) with
// the right number of backtick- or double-quoted arguments, combined with &&, ||, ! and
// parentheses.
std::optional<RuleError> parse_rule(std::string_view rule, ParsedRule* out = nullptr);

// One `key=value` label with the location of its text.
struct Label {
  std::string key;
  std::string value;
  base::SourceLoc loc;
};

// Splits "key=value" at the first '='; nullopt when there is none or the key is empty.
std::optional<Label> split_label(std::string_view text, base::SourceLoc loc);

struct LabelRouter {
  base::SourceLoc loc;  // first label naming it
  std::optional<Label> rule;
  std::optional<Label> entrypoints;
  std::optional<Label> service;
};

struct LabelService {
  base::SourceLoc loc;
  std::optional<Label> port;  // loadbalancer.server.port
};

// The routers and services that a set of Swarm-provider labels defines.
struct LabelModel {
  std::optional<Label> enable;
  std::map<std::string, LabelRouter> routers;
  std::map<std::string, LabelService> services;

  bool enabled() const { return enable && enable->value == "true"; }
};

// Collects routers and services from labels of the form traefik.http.routers.<name>.<field> and
// traefik.http.services.<name>.<field>.
LabelModel model_labels(const std::vector<Label>& labels);

}  // namespace phoenix::model
