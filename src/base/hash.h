#pragma once

#include <string>
#include <string_view>

namespace phoenix::base {

// Lower-case hex SHA-256 of `data`, as `sha256sum` prints it.
std::string sha256_hex(std::string_view data);
// SHA-1, where a protocol wants it (Proxmox's config and firewall digests).
std::string sha1_hex(std::string_view data);

}  // namespace phoenix::base
