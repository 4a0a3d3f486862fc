#pragma once

#include <filesystem>
#include <string>

#include "base/error.h"

namespace phoenix::pvesim {

struct CertFiles {
  std::filesystem::path cert;  // PEM certificate, usable as a client's CA file
  std::filesystem::path key;   // PEM private key
  std::string fingerprint;     // SHA-256 of the DER certificate, "AB:CD:..." as Proxmox shows it
};

// Returns the certificate in <dir>/pve-ssl.pem (and .key), creating a self-signed one for
// `hostname`, 127.0.0.1 and ::1 if there is none; writes the fingerprint to <dir>/pve-ssl.fp.
base::Result<CertFiles> ensure_certificate(const std::filesystem::path& dir,
                                           const std::string& hostname);

// The fingerprint of an existing PEM certificate.
base::Result<std::string> certificate_fingerprint(const std::filesystem::path& cert);

}  // namespace phoenix::pvesim
