#pragma once

// The guest's configuration file as Proxmox writes it, /etc/pve/lxc/<vmid>.conf
// (PVE::LXC::Config::write_pct_config) or /etc/pve/qemu-server/<vmid>.conf
// (PVE::QemuServer::write_vm_config), and the raw lxc.* lines it may carry.

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/hash.h"

namespace phoenix::pvesim {

struct Guest;

// Raw LXC keys in file order: {"lxc.idmap", "u 0 100000 65536"}. The API cannot set them; they
// are written into the file directly, and GET .../config lists them as "lxc".
using RawLines = std::vector<std::pair<std::string, std::string>>;

using base::sha1_hex;

// The lxc.* lines of the file's main section (before the first [snapshot] section), read the way
// PVE::LXC::Config::parse_pct_config reads them: "lxc.key: value" or "lxc.key = value".
RawLines parse_raw_lxc(std::string_view text);

// The file: the description as '#' comment lines (encoded as PVE::Tools::encode_text does), the
// keys in sorted order, the raw `lxc` lines, then each snapshot as a "[name]" section, sorted.
std::string render_conf(const Guest& guest, const RawLines& lxc);

nlohmann::json raw_to_json(const RawLines& lines);    // [["lxc.idmap", "u 0 ..."], ...]
RawLines raw_from_json(const nlohmann::json& lines);  // the same; other shapes are skipped

}  // namespace phoenix::pvesim
