#pragma once

// step-ca's own API, as `step ca certificate` uses it with a JWK provisioner: the provisioner's
// encrypted key from GET /provisioners, decrypted with its password; a one-time token (an ES256
// JWT) signed with it; POST /1.0/sign with the token and a CSR.

#include <chrono>
#include <memory>
#include <string>

#include "base/error.h"
#include "providers/ca/ca.h"

namespace phoenix::ca {

struct StepCaOptions {
  std::string url;  // https://ca.internal.example.lan:9000
  // The CA's TLS is verified against its root: the root certificate itself (root_file, PEM), or
  // the SHA-256 fingerprint of one (hex, colons allowed, as `step certificate fingerprint`
  // prints it), which is then fetched from GET /root/<fingerprint> and checked against it, as
  // `step ca bootstrap` does. With both, the file must match the fingerprint.
  std::string fingerprint;
  std::string root_file;
  // The root itself, as text, when it was read elsewhere (from the CA's own guest, say); the
  // same checks as a root_file's. root_from names where it came from, for errors.
  std::string root_pem;
  std::string root_from = "the given root";
  std::string provisioner;  // the JWK provisioner's name
  // The provisioner's password, alone in the file (a trailing newline is ignored); the file must
  // be mode 0600 or stricter.
  std::string password_file;
  std::chrono::seconds token_lifetime{std::chrono::minutes(5)};
  std::chrono::milliseconds request_timeout{std::chrono::seconds(30)};
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
};

// Checks the options and reads the password and the root file; contacts nobody.
base::Result<std::unique_ptr<CertificateAuthority>> make_step_ca(StepCaOptions options);

// "ab:CD:..." or "abcd..." as 64 lower-case hex digits; nullopt when not a SHA-256 fingerprint.
std::optional<std::string> normalize_fingerprint(std::string_view text);

}  // namespace phoenix::ca
