#pragma once

#include <optional>
#include <string>
#include <vector>

#include "compile/desired.h"

namespace phoenix::render {

// One generated file: where `phoenix render` writes it, and where `sync` delivers it.
struct Artifact {
  std::string path;  // relative to the render directory, e.g. "traefik/dynamic_conf.yml"
  std::string content;
  // Delivery target: a guest (nullopt: the Proxmox host) and an absolute path there. Files that
  // are applied through an API instead (compose files, firewall rules) have an empty target.
  std::optional<compile::GuestId> guest;
  std::string target;
  compile::Stage stage = compile::Stage::kGateways;
};

enum class Scope {
  kAll,        // everything `phoenix render` writes
  kDelivered,  // only the files delivered as files (those with a target), for the planner
};

// Every artifact of DESIGN.md §2 (or only the delivered ones), in path order. Deterministic:
// the same desired state always renders to the same bytes.
std::vector<Artifact> render_all(const compile::Desired& desired, Scope scope = Scope::kAll);

std::string render_traefik_static(const compile::Desired& desired);
std::string render_traefik_dynamic(const compile::Desired& desired);
std::string render_compose(const compile::StackDeployment& stack);
std::string render_nginx_site(const compile::Gateway& gateway);
std::string render_dnsmasq(const compile::Desired& desired);
std::string render_firewall(const compile::FirewallRuleset& ruleset);
std::string render_vllm_unit(const compile::VllmService& service);

// Quotes one argument for a systemd Exec line.
std::string systemd_quote(std::string_view arg);

// Resources for the artifacts that are delivered as files, so that the planner can tell when
// one is missing or differs (by content hash).
std::vector<compile::Resource> file_resources(const std::vector<Artifact>& artifacts,
                                              const compile::Desired& desired);

}  // namespace phoenix::render
