#pragma once

// An RFC 8555 (ACME) client: step-ca's ACME provisioner, or any ACME CA. It proves control of
// the names with http-01 challenges, which a ChallengeResponder makes answerable.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "providers/ca/ca.h"

namespace phoenix::ca {

// Serves http-01 key authorizations: after publish(token, ka), a GET of
// http://<name>/.well-known/acme-challenge/<token> on port 80 of every name being validated must
// answer `ka`. Http01Server (http01_server.h) is one; a gateway's web root would be another.
class ChallengeResponder {
 public:
  virtual ~ChallengeResponder() = default;
  virtual base::Result<void> publish(const std::string& token,
                                     const std::string& key_authorization) = 0;
  virtual void remove(const std::string& token) = 0;
};

struct AcmeOptions {
  std::string directory_url;  // https://ca.internal:9000/acme/acme/directory
  // Trust anchors for the CA's TLS, PEM: roots_pem, else the file roots_file, else the system's.
  std::string roots_pem;
  std::string roots_file;
  // The account's ES256 key (PEM). When the file is missing, a key is generated and the file is
  // written (mode 0600) once the CA has registered the account; an existing file must be mode
  // 0600 or stricter.
  std::string account_key_file;
  std::vector<std::string> contact;         // "mailto:ops@example.com"; may be empty
  ChallengeResponder* responder = nullptr;  // not owned; must outlive the client
  std::chrono::milliseconds timeout{std::chrono::minutes(2)};  // one whole issuance
  std::chrono::milliseconds poll_interval{std::chrono::milliseconds(250)};
  // A badNonce answer is retried with the fresh nonce it carries, this many times.
  int bad_nonce_retries = 1;
  std::chrono::milliseconds request_timeout{std::chrono::seconds(30)};
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
};

// Checks the options (the URL, the trust anchors, the account key file's mode); contacts nobody.
base::Result<std::unique_ptr<CertificateAuthority>> make_acme_ca(AcmeOptions options);

// "urn:ietf:params:acme:error:rejectedIdentifier: <detail>", with the subproblems after it:
// an RFC 7807 problem document as errors quote it.
std::string describe_acme_problem(const nlohmann::json& problem);

}  // namespace phoenix::ca
