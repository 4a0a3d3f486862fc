#include "providers/ca/ca.h"

#include <algorithm>

#include "base/strings.h"

namespace phoenix::ca {

using base::ErrorKind;

base::Result<std::vector<std::string>> certificate_names(const CertRequest& request) {
  std::vector<std::string> names;
  auto add = [&](std::string_view raw) -> base::Result<void> {
    std::string name = canonical_ip(raw).value_or(base::to_lower(raw));
    if (name.empty() || name.find_first_of(" \t\r\n") != std::string::npos) {
      return base::fail(ErrorKind::kInvalidInput,
                        "\"" + std::string(raw) + "\" is not a DNS name or an IP address");
    }
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    return {};
  };
  if (!request.common_name.empty()) PHX_TRY(add(request.common_name));
  for (const std::string& san : request.sans) PHX_TRY(add(san));
  if (names.empty()) {
    return base::fail(ErrorKind::kInvalidInput, "a certificate needs at least one name");
  }
  return names;
}

base::Result<IssuedCert> assemble_issued(const PrivateKey& key, std::string_view bundle_pem,
                                         const std::vector<std::string>& names) {
  std::vector<std::string> certs = split_pem_certificates(bundle_pem);
  if (certs.empty()) {
    return base::fail(ErrorKind::kInternal, "the CA's answer holds no PEM certificate");
  }
  bool ours = PHX_TRY(certificate_matches_key(certs[0], key));
  if (!ours) {
    return base::fail(ErrorKind::kInternal,
                      "the CA returned a certificate for another key than the one requested");
  }
  CertInfo info = PHX_TRY(read_certificate(certs[0]));
  for (const std::string& name : names) {
    const auto& have = is_ip_address(name) ? info.ip_addresses : info.dns_names;
    bool found = std::any_of(have.begin(), have.end(),
                             [&](const std::string& h) { return base::to_lower(h) == name; });
    if (!found) {
      return base::fail(ErrorKind::kInternal, "the CA's certificate does not name " + name +
                                                  " (it names " + base::join(info.dns_names, ", ") +
                                                  (info.ip_addresses.empty() ? "" : ", ") +
                                                  base::join(info.ip_addresses, ", ") + ")");
    }
  }
  IssuedCert out;
  out.key_pem = PHX_TRY(private_key_pem(key));
  out.cert_pem = certs[0];
  for (std::size_t i = 1; i < certs.size(); ++i) out.chain_pem += certs[i];
  out.not_before = info.not_before;
  out.not_after = info.not_after;
  out.serial = info.serial;
  return out;
}

}  // namespace phoenix::ca
