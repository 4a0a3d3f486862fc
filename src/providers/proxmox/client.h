#pragma once

// The real Proxmox transport: HTTPS to https://<host>:8006/api2/json on libcurl, authenticated
// with an API token whose secret is read from a file.
//
// TLS is always verified: against `ca_file`, or by the server certificate's SHA-256
// fingerprint (`fingerprint`, as `pvenode cert info` prints it), or against the system's CAs.
// Only `insecure` turns verification off, and only when asked. The token secret goes into the
// Authorization header and nowhere else: never into a message, a log or a URL.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"
#include "providers/proxmox/api.h"

namespace phoenix::proxmox {

struct ClientOptions {
  std::string url = {};                // https://host:8006 (a trailing /api2/json is accepted)
  std::string token_id = {};           // user@realm!tokenname
  std::string token_secret_file = {};  // the secret, alone in a file readable by its owner only
  std::string ca_file = {};
  std::string fingerprint = {};  // "AB:CD:..." (32 bytes), case and colons optional
  bool insecure = false;
  std::chrono::milliseconds timeout{30000};
  std::chrono::milliseconds connect_timeout{5000};
};

// Checks the options and reads the secret: a missing or group/world-readable secret file, a
// malformed fingerprint or URL, or a token id without "!" are kInvalidInput errors that name
// the setting (proxmox_api.<key>) and the fix.
base::Result<std::unique_ptr<Transport>> make_pve_client(const ClientOptions& options);

// "AB:CD:..." or "abcd..." -> 32 bytes; nullopt when it is not a SHA-256 fingerprint.
std::optional<std::string> parse_fingerprint(std::string_view text);

}  // namespace phoenix::proxmox
