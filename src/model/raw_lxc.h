#pragma once

// The raw lxc.* keys of an LXC: what only the node's config file (/etc/pve/lxc/<vmid>.conf)
// takes, since the Proxmox API cannot set them. Pure.

#include <string>
#include <utility>
#include <vector>

#include "model/estate.h"

namespace phoenix::model {

using RawLxcLines = std::vector<std::pair<std::string, std::string>>;

// In order: its lxc_options ("lxc.apparmor.profile=unconfined" becomes
// {"lxc.apparmor.profile", "unconfined"}), then, when it has id_maps, the complete lxc.idmap
// set: the estate's maps, with the ranges around them mapped the unprivileged way (container id
// N to host 100000 + N), since an incomplete map leaves the container unable to start.
RawLxcLines raw_lxc_lines(const Guest& lxc);

}  // namespace phoenix::model
