#pragma once

// An LXC of the estate as Proxmox's API takes it: the parameters of
// POST /nodes/{node}/lxc (create from a template) and of PUT .../config. Pure: no I/O.
//
// What the API cannot set (raw lxc_options, id_maps) is not here: it goes through the node's
// host channel, and the plan says so.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/estate.h"
#include "model/raw_lxc.h"

namespace phoenix::pveconf {

using Params = std::vector<std::pair<std::string, std::string>>;

// The configuration keys Phoenix manages, in a stable order: hostname, cores, memory, swap,
// net0/net1 (ip, gw, hwaddr, firewall=1), features (nesting and keyctl for docker),
// unprivileged, nameserver, searchdomain, onboot, startup (order, up), tags, devN (the GPUs of
// gpu_assignment and their driver devices), mpN (mount points).
Params lxc_config(const model::Guest& lxc);

// lxc_config plus what only creation takes: vmid, ostemplate, rootfs (<storage_pool>:<GiB>).
Params lxc_create_params(const model::Guest& lxc);

// The rootfs size the LXC should have, in GiB (storage_size_gb, default 8).
std::int64_t lxc_rootfs_gb(const model::Guest& lxc);

// ---- raw lxc.* keys, which only the node's config file takes ----------------------------------

using RawLines = model::RawLxcLines;
using model::raw_lxc_lines;  // model/raw_lxc.h

// The raw keys as GET .../config reports them: "lxc": [["lxc.idmap", "u 0 100000 65536"], ...].
RawLines raw_lxc_from_api(const nlohmann::json& config);

// /etc/pve/lxc/<vmid>.conf with its raw keys replaced by `lines`: every lxc.* line of the main
// section (before the first [snapshot] section) is dropped, and `lines` go at its end; all else
// is kept byte for byte.
std::string with_raw_lxc(std::string_view conf, const RawLines& lines);

}  // namespace phoenix::pveconf
