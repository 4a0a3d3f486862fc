#include "model/estate.h"

#include <algorithm>

namespace phoenix::model {

std::string_view to_string(GuestKind kind) { return kind == GuestKind::kLxc ? "LXC" : "VM"; }

bool Guest::has_feature(std::string_view f) const {
  return std::any_of(features.begin(), features.end(),
                     [&](const Val<std::string>& v) { return v.value == f; });
}

std::string Guest::label() const {
  std::string out = std::string(to_string(kind)) + " " + std::to_string(id);
  if (!name.value.empty()) out += " (" + name.value + ")";
  return out;
}

const StackEnvironment* Stack::environment(std::string_view env) const {
  for (const StackEnvironment& e : environments) {
    if (e.name == env) return &e;
  }
  return nullptr;
}

const Guest* Estate::guest(GuestId id) const {
  auto it = guest_index_.find(id);
  return it == guest_index_.end() ? nullptr : &guests[it->second];
}

const Stack* Estate::stack(std::string_view name) const {
  auto it = stack_index_.find(name);
  return it == stack_index_.end() ? nullptr : &stacks[it->second];
}

std::vector<const Guest*> Estate::guests_with_feature(std::string_view feature) const {
  std::vector<const Guest*> out;
  for (const Guest& g : guests) {
    if (g.has_feature(feature)) out.push_back(&g);
  }
  return out;
}

void Estate::reindex() {
  guest_index_.clear();
  stack_index_.clear();
  for (std::size_t i = 0; i < guests.size(); ++i) guest_index_.emplace(guests[i].id, i);
  for (std::size_t i = 0; i < stacks.size(); ++i) stack_index_.emplace(stacks[i].name, i);
}

const StackEnvironment* resolve_environment(const Stack& stack, const StackRef& ref) {
  if (ref.environment.present) return stack.environment(ref.environment.value);
  if (const StackEnvironment* e = stack.environment("production")) return e;
  if (stack.environments.size() == 1) return &stack.environments.front();
  return nullptr;
}

std::span<const std::string_view> known_features() {
  static constexpr std::string_view kFeatures[] = {
      "base_setup", "trusted_ca",    "step_cli",        "step_ca", "docker", "docker_proxy",
      "traefik",    "nginx_gateway", "portainer_agent", "nvidia",  "vllm",
  };
  return kFeatures;
}

}  // namespace phoenix::model
