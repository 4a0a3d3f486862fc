#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace phoenix::base {

// `bytes` as lower-case hex, two digits a byte.
std::string to_hex(std::string_view bytes);

// Lower-case hex SHA-256 of `data`, as `sha256sum` prints it.
std::string sha256_hex(std::string_view data);
// SHA-1, where a protocol wants it (Proxmox's config and firewall digests).
std::string sha1_hex(std::string_view data);

// A SHA-256 fingerprint as people write it ("AB:CD:..." or "abcd...") as 64 lower-case hex
// digits; nullopt when it is not one.
std::optional<std::string> normalize_sha256_fingerprint(std::string_view text);

}  // namespace phoenix::base
