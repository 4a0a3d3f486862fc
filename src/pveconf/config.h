#pragma once

// A guest's Proxmox configuration compared with what the estate wants, after normalising both
// sides the way Proxmox stores them, so that an untouched guest shows no drift. Pure: no I/O.
//
// Normalisation: numbers and booleans compare as integers ("2048" == 2048); property strings
// (net0, features, startup, mpN, devN, ipconfig0, agent) compare as key=value sets, with the
// implicit first key made explicit ("/dev/nvidia0" == "path=/dev/nvidia0"), MAC addresses in
// upper case, and what Proxmox fills in by itself (an LXC interface's type=veth and generated
// hwaddr, a VM interface's generated MAC) ignored unless the estate sets it; tags and nameserver
// compare as sets; sshkeys compare URL-decoded.

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "pveconf/lxc.h"

namespace phoenix::pveconf {

enum class GuestType { kLxc, kQemu };

// "a=1,b=2" as a map; a value without a key belongs to `default_key`.
std::map<std::string, std::string> parse_property_string(std::string_view text,
                                                         std::string_view default_key = "");

// Percent-encoding as Proxmox wants sshkeys (RFC 3986 unreserved characters kept), and back.
std::string url_encode(std::string_view text);
std::string url_decode(std::string_view text);

// A value of a GET .../config answer as text: numbers printed, strings as they are.
std::string config_text(const nlohmann::json& value);

// Whether the two values of `key` mean the same to Proxmox.
bool same_value(GuestType type, std::string_view key, std::string_view desired,
                std::string_view observed);

struct ConfigChange {
  std::string key;
  std::optional<std::string> before;  // nullopt: not set on Proxmox
  std::optional<std::string> after;   // nullopt: to be removed
};

// What a PUT .../config must carry to bring `observed` to `desired`: the keys to set (desired
// text) and the keys to remove (the `delete` parameter). Only keys Phoenix manages are
// removed: devN, mpN and netN (N >= 1) that the estate no longer has. Disks (rootfs, scsiN) are
// not here: see disk_resize.
struct ConfigUpdate {
  Params set;
  std::vector<std::string> remove;
  std::vector<ConfigChange> changes;  // for plans and reports, in key order

  bool empty() const { return set.empty() && remove.empty(); }
  // set, plus delete=<keys> when there are any: the parameters of the PUT.
  Params params() const;
};
ConfigUpdate config_update(GuestType type, const Params& desired, const nlohmann::json& observed);

// A disk's size in GiB from its property string ("local-lvm:vm-101-disk-0,size=8G" -> 8;
// "512M" rounds up to 1); nullopt when it has none.
std::optional<std::int64_t> disk_size_gb(std::string_view spec);
// The storage of a volume ("local-lvm:vm-101-disk-0,size=8G" -> "local-lvm").
std::string disk_storage(std::string_view spec);

// The resize a disk needs to reach `want_gb`: nullopt when it is that size already, the
// PUT .../resize `size` value ("16G") when it must grow, and an error when the estate asks for
// a smaller disk than Proxmox has: disks only grow.
base::Result<std::optional<std::string>> disk_resize(std::string_view disk_key,
                                                     std::string_view observed_spec,
                                                     std::int64_t want_gb);

}  // namespace phoenix::pveconf
