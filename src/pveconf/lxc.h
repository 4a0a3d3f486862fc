#pragma once

// An LXC of the estate as Proxmox's API takes it: the parameters of
// POST /nodes/{node}/lxc (create from a template) and of PUT .../config. Pure: no I/O.
//
// What the API cannot set (raw lxc_options, id_maps) is not here: it goes through the node's
// host channel, and the plan says so.

#include <string>
#include <utility>
#include <vector>

#include "model/estate.h"

namespace phoenix::pveconf {

using Params = std::vector<std::pair<std::string, std::string>>;

// The configuration keys Phoenix manages, in a stable order: hostname, cores, memory, swap,
// net0/net1 (ip, gw, hwaddr, firewall=1), features (nesting and keyctl for docker),
// unprivileged, nameserver, searchdomain, onboot, startup (order, up), tags, devN (the GPUs of
// gpu_assignment and their driver devices), mpN (mount points).
Params lxc_config(const model::Guest& lxc);

// lxc_config plus what only creation takes: vmid, ostemplate, rootfs (<storage_pool>:<GiB>).
Params lxc_create_params(const model::Guest& lxc);

}  // namespace phoenix::pveconf
