#pragma once

// A certificate authority, as Phoenix uses one: give it names, get back a key and a certificate
// for them. Implementations: StepCa (step-ca's own sign API, JWK provisioner; stepca.h) and
// AcmeCa (RFC 8555, against step-ca's ACME provisioner or any ACME CA; acme.h).

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "providers/ca/crypto.h"

namespace phoenix::ca {

struct CertRequest {
  std::string common_name;
  // DNS names and IP addresses. The common name is added to them when missing, as modern TLS
  // clients look only at the SANs.
  std::vector<std::string> sans;
  KeyType key_type = KeyType::kEcP256;
};

// A certificate and the key Phoenix generated for it, all in memory: nothing is written until the
// caller installs it, so a failed issuance leaves nothing half-installed.
struct IssuedCert {
  std::string key_pem;          // PKCS#8; a secret
  std::string cert_pem;         // the leaf
  std::string chain_pem;        // the intermediates, leaf's issuer first; no root
  std::int64_t not_before = 0;  // unix time
  std::int64_t not_after = 0;
  std::string serial;  // upper-case hex
};

// An instance serves one issue() at a time; it keeps what it learnt (a directory, an account, a
// decrypted provisioner key) for the next.
class CertificateAuthority {
 public:
  virtual ~CertificateAuthority() = default;
  // Generates a key, has the CA sign a certificate for `request`, and checks that what came
  // back is for that key and those names. Errors say whether a retry can help (kTransient,
  // kTimeout) and quote what the CA said; they never contain a secret.
  virtual base::Result<IssuedCert> issue(const CertRequest& request) = 0;
  // "step-ca https://ca.internal:9000 (provisioner admin)", for messages and plans.
  virtual std::string describe() const = 0;
  // The root (PEM) the CA's certificates chain to, for the guests' trust stores: step-ca's
  // pinned root; for ACME, the trust anchor it was given (an ACME CA does not publish its root).
  virtual base::Result<std::string> root_pem() = 0;
};

// The names a certificate for `request` carries: the SANs, with the common name first when it
// is not among them; duplicates dropped. Fails on an empty name or one with white space.
base::Result<std::vector<std::string>> certificate_names(const CertRequest& request);

// Builds the IssuedCert from the key and the PEM bundle a CA returned (leaf first), after checking
// that the leaf is for `key` and carries every name of `names`.
base::Result<IssuedCert> assemble_issued(const PrivateKey& key, std::string_view bundle_pem,
                                         const std::vector<std::string>& names);

}  // namespace phoenix::ca
