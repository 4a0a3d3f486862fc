#pragma once

// What Proxmox reports of a guest and its firewall, in the shape of the desired resources that
// compile/ makes (fields "memory_mb", "net0.ip", "rules[0].dport", ...), so that the planner can
// diff the two. Pure: the caller fetches the JSON.
//
// Proxmox's defaults are filled in (onboot 0, swap 512, unprivileged 0, policy_in DROP, ...), and
// what the estate leaves to Proxmox is not compared: a net0 key the estate does not set (a
// generated MAC address), a field Proxmox does not keep (the template a container was created
// from, its clone source, its feature names) is taken as desired.

#include <nlohmann/json.hpp>

#include "model/estate.h"

namespace phoenix::pveconf {

// `resource`: the guest's entry of GET /cluster/resources; `config`: GET .../config;
// `desired`: the fields of the guest's desired resource.
nlohmann::json observed_guest_fields(const model::Guest& guest, const nlohmann::json& desired,
                                     const nlohmann::json& resource, const nlohmann::json& config);

// `options`: GET .../firewall/options; `rules`: GET .../firewall/rules. `cluster` selects the
// cluster's defaults.
nlohmann::json observed_firewall_fields(const nlohmann::json& desired,
                                        const nlohmann::json& options, const nlohmann::json& rules);

}  // namespace phoenix::pveconf
