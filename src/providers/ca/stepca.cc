#include "providers/ca/stepca.h"

#include <curl/curl.h>
#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "base/fs.h"
#include "base/hash.h"
#include "base/strings.h"
#include "providers/ca/http.h"

namespace phoenix::ca {
namespace {

using base::ErrorKind;
using nlohmann::json;

std::string url_escape(std::string_view text) {
  char* e = curl_easy_escape(nullptr, text.data(), static_cast<int>(text.size()));
  std::string out = e ? e : "";
  curl_free(e);
  return out;
}

class StepCa final : public CertificateAuthority {
 public:
  StepCa(StepCaOptions options, std::string password, std::string root_pem)
      : options_(std::move(options)),
        password_(std::move(password)),
        root_pem_(std::move(root_pem)) {}

  base::Result<std::string> root_pem() override {
    PHX_TRY(bootstrap_root());
    return root_pem_;
  }

  std::string describe() const override {
    return "step-ca " + options_.url + " (provisioner " + options_.provisioner + ")";
  }

  base::Result<IssuedCert> issue(const CertRequest& request) override {
    auto result = issue_once(request);
    if (!result) {
      return std::unexpected(std::move(result).error().with_context(
          "issuing a certificate for " + request.common_name + " from " + describe()));
    }
    return result;
  }

 private:
  HttpOptions http_options(bool verify) const {
    return HttpOptions{.what = "step-ca",
                       .roots_pem = root_pem_,
                       .verify = verify,
                       .timeout = options_.request_timeout,
                       .connect_timeout = options_.connect_timeout,
                       .secrets = {password_}};
  }

  base::Result<IssuedCert> issue_once(const CertRequest& request) {
    std::vector<std::string> names = PHX_TRY(certificate_names(request));
    PHX_TRY(bootstrap_root());
    if (!http_) http_ = std::make_unique<HttpClient>(http_options(true));
    PHX_TRY(load_provisioner_key());

    PrivateKey key = PHX_TRY(generate_key(request.key_type));
    std::string csr =
        pem_encode(PHX_TRY(make_csr(key, names.front(), names)), "CERTIFICATE REQUEST");
    std::string token = PHX_TRY(one_time_token(names.front(), names));
    json body = {{"csr", csr}, {"ott", token}};
    auto resp = PHX_TRY(http_->send({.method = "POST",
                                     .url = options_.url + "/1.0/sign",
                                     .body = body.dump(),
                                     .content_type = "application/json",
                                     .accept = "application/json"}));
    json answer = json::parse(resp.body, nullptr, false);
    if (resp.status >= 400) {
      return base::fail(status_kind(resp.status), "POST /1.0/sign: step-ca refused (HTTP " +
                                                      std::to_string(resp.status) +
                                                      "): " + message_of(resp, answer));
    }
    if (!answer.is_object() || !answer.contains("crt") || !answer["crt"].is_string()) {
      return base::fail(ErrorKind::kInternal,
                        "POST /1.0/sign: step-ca's answer has no certificate (\"crt\")");
    }
    // certChain is leaf first, then the intermediates; older versions send only crt and ca.
    std::string bundle;
    if (answer.contains("certChain") && answer["certChain"].is_array() &&
        !answer["certChain"].empty()) {
      for (const json& pem : answer["certChain"]) {
        if (pem.is_string()) bundle += pem.get<std::string>();
      }
    } else {
      bundle = answer["crt"].get<std::string>() + answer.value("ca", "");
    }
    return assemble_issued(key, bundle, names);
  }

  static ErrorKind status_kind(long status) {
    if (status >= 500 || status == 429) return ErrorKind::kTransient;
    if (status == 401 || status == 403) return ErrorKind::kPermission;
    if (status == 404) return ErrorKind::kNotFound;
    return ErrorKind::kInvalidInput;
  }

  // step-ca's errors are {"status": 401, "message": "..."}.
  std::string message_of(const HttpResponse& resp, const json& body) const {
    std::string text;
    if (body.is_object() && body.contains("message") && body["message"].is_string()) {
      text = body["message"].get<std::string>();
    } else {
      text = std::string(base::trim(resp.body.substr(0, 200)));
    }
    if (text.empty()) return "no details";
    for (std::size_t at; (at = text.find(password_)) != std::string::npos;) {
      text.replace(at, password_.size(), "<redacted>");
    }
    return text;
  }

  // Trust: the root file given, else the root the CA serves under the pinned fingerprint. That
  // one request is made without verifying TLS; its answer is trusted only if it hashes to the pin.
  base::Result<void> bootstrap_root() {
    if (!root_pem_.empty()) return {};
    HttpClient insecure(http_options(false));
    std::string path = "/root/" + url_escape(options_.fingerprint);
    auto resp = PHX_TRY(insecure.send({.method = "GET",
                                       .url = options_.url + path,
                                       .body = {},
                                       .content_type = {},
                                       .accept = "application/json"}));
    json answer = json::parse(resp.body, nullptr, false);
    if (resp.status != 200 || !answer.is_object() || !answer.contains("ca") ||
        !answer["ca"].is_string()) {
      return base::fail(resp.status == 404 ? ErrorKind::kPermission : status_kind(resp.status),
                        "GET " + path + ": step-ca has no root with the pinned fingerprint (HTTP " +
                            std::to_string(resp.status) + "): " + message_of(resp, answer));
    }
    std::string pem = answer["ca"].get<std::string>();
    CertInfo info = PHX_TRY(read_certificate(pem));
    if (info.sha256_hex != options_.fingerprint) {
      return base::fail(ErrorKind::kPermission, "GET " + path +
                                                    ": the root step-ca sent has fingerprint " +
                                                    info.sha256_hex + ", not the pinned one");
    }
    root_pem_ = pem;
    return {};
  }

  base::Result<void> load_provisioner_key() {
    if (provisioner_key_) return {};
    std::string cursor;
    std::vector<std::string> seen;
    for (int page = 0; page < 100; ++page) {
      std::string path = "/provisioners?limit=100";
      if (!cursor.empty()) path += "&cursor=" + url_escape(cursor);
      auto resp = PHX_TRY(http_->send({.method = "GET",
                                       .url = options_.url + path,
                                       .body = {},
                                       .content_type = {},
                                       .accept = "application/json"}));
      json answer = json::parse(resp.body, nullptr, false);
      if (resp.status != 200 || !answer.is_object() || !answer.contains("provisioners") ||
          !answer["provisioners"].is_array()) {
        return base::fail(resp.status == 200 ? ErrorKind::kInternal : status_kind(resp.status),
                          "GET /provisioners: no provisioner list (HTTP " +
                              std::to_string(resp.status) + "): " + message_of(resp, answer));
      }
      for (const json& p : answer["provisioners"]) {
        if (!p.is_object()) continue;
        std::string type = p.value("type", "");
        std::string name = p.value("name", "");
        seen.push_back(name + " (" + type + ")");
        if (name != options_.provisioner || type != "JWK") continue;
        return use_provisioner(p);
      }
      cursor = answer.value("nextCursor", "");
      if (cursor.empty() || answer["provisioners"].empty()) break;
    }
    return base::fail(ErrorKind::kInvalidInput,
                      "step-ca has no JWK provisioner named \"" + options_.provisioner +
                          "\" (it has: " + (seen.empty() ? "none" : base::join(seen, ", ")) + ")");
  }

  base::Result<void> use_provisioner(const json& p) {
    std::string encrypted = p.value("encryptedKey", "");
    if (encrypted.empty()) {
      return base::fail(ErrorKind::kInvalidInput,
                        "step-ca's JWK provisioner \"" + options_.provisioner +
                            "\" publishes no encrypted key: Phoenix cannot make its tokens");
    }
    auto plain = jwe_decrypt_pbes2(encrypted, password_);
    if (!plain) {
      return std::unexpected(std::move(plain).error().with_context(
          "decrypting the key of provisioner \"" + options_.provisioner + "\" with " +
          options_.password_file));
    }
    json jwk = json::parse(*plain, nullptr, false);
    PrivateKey key = PHX_TRY(key_from_jwk(jwk));
    // The kid that step-ca looks the key up by: the published public key's.
    kid_ = p.contains("key") && p["key"].is_object() ? p["key"].value("kid", "") : "";
    if (kid_.empty() && jwk.is_object()) kid_ = jwk.value("kid", "");
    if (kid_.empty()) kid_ = PHX_TRY(jwk_thumbprint(key));
    provisioner_key_ = key;
    return {};
  }

  base::Result<std::string> one_time_token(const std::string& subject,
                                           const std::vector<std::string>& sans) {
    auto now = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    CertInfo root = PHX_TRY(read_certificate(root_pem_));
    json claims = {{"aud", options_.url + "/1.0/sign"},
                   {"exp", now + options_.token_lifetime.count()},
                   {"iat", now},
                   {"iss", options_.provisioner},
                   {"jti", hex_encode(random_bytes(32))},
                   {"nbf", now},
                   {"sans", sans},
                   {"sha", root.sha256_hex},
                   {"sub", subject}};
    json header = {{"kid", kid_}, {"typ", "JWT"}};
    Jws jws = PHX_TRY(jws_sign(provisioner_key_, header, claims.dump()));
    return jws.compact();
  }

  StepCaOptions options_;
  std::string password_;
  std::string root_pem_;
  std::unique_ptr<HttpClient> http_;
  PrivateKey provisioner_key_;
  std::string kid_;
};

std::string file_mode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

}  // namespace

std::optional<std::string> normalize_fingerprint(std::string_view text) {
  return base::normalize_sha256_fingerprint(text);
}

base::Result<std::unique_ptr<CertificateAuthority>> make_step_ca(StepCaOptions o) {
  auto bad = [](const std::string& why) { return base::fail(ErrorKind::kInvalidInput, why); };
  while (o.url.ends_with("/")) o.url.pop_back();
  if (!o.url.starts_with("https://") || o.url.size() <= 8 || o.url.find('@') != std::string::npos ||
      o.url.find_first_of("?#", 8) != std::string::npos) {
    return bad("step_ca.url \"" + o.url +
               "\" is not an https:// URL such as https://ca.internal.example.lan:9000");
  }
  if (o.provisioner.empty()) return bad("step_ca.provisioner_name is not set");
  if (o.fingerprint.empty() && o.root_file.empty() && o.root_pem.empty()) {
    return bad(
        "step-ca's TLS cannot be verified: set step_ca.fingerprint (the root's SHA-256, as "
        "`step certificate fingerprint root_ca.crt` prints it)");
  }
  if (!o.fingerprint.empty()) {
    auto fp = normalize_fingerprint(o.fingerprint);
    if (!fp) return bad("step_ca.fingerprint is not a SHA-256 fingerprint (64 hex digits)");
    o.fingerprint = *fp;
  }
  std::string root_pem;
  if (!o.root_file.empty() || !o.root_pem.empty()) {
    std::string pem = o.root_pem;
    std::string from = o.root_from;
    if (!o.root_file.empty()) {
      auto read = base::read_file(o.root_file);
      if (!read) {
        return std::unexpected(std::move(read).error().with_context("reading step-ca's root"));
      }
      pem = std::move(*read);
      from = o.root_file;
    }
    auto info = read_certificate(pem);
    if (!info) return bad("step-ca's root " + from + " is not a PEM certificate");
    if (!o.fingerprint.empty() && info->sha256_hex != o.fingerprint) {
      return bad("step-ca's root " + from + " has fingerprint " + info->sha256_hex +
                 ", not step_ca.fingerprint");
    }
    root_pem = split_pem_certificates(pem).front();
  }
  if (o.password_file.empty()) {
    return bad(
        "step_ca.provisioner_password_file is not set: put the provisioner's password in a "
        "file readable by its owner only (mode 0600) and name it there");
  }
  struct stat st {};
  if (::stat(o.password_file.c_str(), &st) != 0) {
    return bad("step_ca.provisioner_password_file " + o.password_file + ": " +
               std::strerror(errno));
  }
  if ((st.st_mode & 077) != 0) {
    return bad("step_ca.provisioner_password_file " + o.password_file + " has mode " +
               file_mode(st.st_mode) + ": others can read the password; chmod 600 it");
  }
  auto password = base::read_file(o.password_file);
  if (!password) return std::unexpected(password.error());
  std::string p = *password;
  while (!p.empty() && (p.back() == '\n' || p.back() == '\r')) p.pop_back();
  if (p.empty()) {
    return bad("step_ca.provisioner_password_file " + o.password_file + " is empty");
  }
  return std::unique_ptr<CertificateAuthority>(
      std::make_unique<StepCa>(std::move(o), std::move(p), std::move(root_pem)));
}

}  // namespace phoenix::ca
