#include "providers/ca/acme.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>

#include "base/fs.h"
#include "base/strings.h"
#include "providers/ca/http.h"

namespace phoenix::ca {
namespace {

using base::ErrorKind;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr std::string_view kProblemPrefix = "urn:ietf:params:acme:error:";

ErrorKind problem_kind(const json& problem, long status) {
  std::string type = problem.is_object() ? problem.value("type", "") : "";
  std::string_view t = type;
  if (t.starts_with(kProblemPrefix)) t.remove_prefix(kProblemPrefix.size());
  if (status >= 500 || t == "badNonce" || t == "rateLimited" || t == "serverInternal" ||
      t == "connection" || t == "dns") {
    return ErrorKind::kTransient;
  }
  if (t == "unauthorized" || t == "accountDoesNotExist" || t == "userActionRequired" ||
      t == "externalAccount" || t == "badRevocationReason") {
    return ErrorKind::kPermission;
  }
  if (t == "rejectedIdentifier" || t == "unsupportedIdentifier" || t == "invalidContact" ||
      t == "unsupportedContact" || t == "badCSR" || t == "caa" || t == "compound") {
    return ErrorKind::kInvalidInput;
  }
  return ErrorKind::kInternal;
}

// What the CA said, for errors: the problem document when there is one, else the body's start.
std::string describe_answer(const HttpResponse& resp, const json& body) {
  if (body.is_object() && (body.contains("type") || body.contains("detail"))) {
    return describe_acme_problem(body);
  }
  std::string text(base::trim(resp.body.substr(0, 200)));
  return text.empty() ? "no details" : text;
}

std::chrono::milliseconds retry_after(const HttpResponse& resp, std::chrono::milliseconds dflt) {
  // Only the delay-seconds form; an HTTP date falls back to the default.
  auto secs = base::parse_uint(resp.header("retry-after"));
  if (!secs) return dflt;
  return std::clamp(std::chrono::milliseconds(*secs * 1000), dflt,
                    std::max(dflt, std::chrono::milliseconds(5000)));
}

// Removes what was published, whatever way issue() leaves.
class PublishedTokens {
 public:
  explicit PublishedTokens(ChallengeResponder* responder) : responder_(responder) {}
  ~PublishedTokens() {
    for (const std::string& t : tokens_) responder_->remove(t);
  }
  PublishedTokens(const PublishedTokens&) = delete;
  PublishedTokens& operator=(const PublishedTokens&) = delete;
  base::Result<void> publish(const std::string& token, const std::string& ka) {
    PHX_TRY(responder_->publish(token, ka));
    tokens_.push_back(token);
    return {};
  }

 private:
  ChallengeResponder* responder_;
  std::vector<std::string> tokens_;
};

class AcmeCa final : public CertificateAuthority {
 public:
  explicit AcmeCa(AcmeOptions options)
      : options_(std::move(options)),
        http_(HttpOptions{.what = "the ACME CA",
                          .roots_pem = options_.roots_pem,
                          .verify = true,
                          .timeout = options_.request_timeout,
                          .connect_timeout = options_.connect_timeout,
                          .secrets = {}}) {}

  std::string describe() const override { return "ACME CA " + options_.directory_url; }

  base::Result<std::string> root_pem() override {
    if (options_.roots_pem.empty()) {
      return base::fail(base::ErrorKind::kInvalidInput,
                        "the ACME CA's root is not known: give its root certificate (roots_file)");
    }
    return options_.roots_pem;
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
  struct Directory {
    std::string new_nonce, new_account, new_order;
  };

  base::Result<IssuedCert> issue_once(const CertRequest& request) {
    std::vector<std::string> names = PHX_TRY(certificate_names(request));
    deadline_ = Clock::now() + options_.timeout;
    PHX_TRY(load_directory());
    PHX_TRY(ensure_account());

    // newOrder, with an "ip" identifier (RFC 8738) for each address.
    json identifiers = json::array();
    for (const std::string& name : names) {
      identifiers.push_back({{"type", is_ip_address(name) ? "ip" : "dns"}, {"value", name}});
    }
    auto order_resp = PHX_TRY(post(dir_.new_order, json{{"identifiers", identifiers}}, "newOrder"));
    std::string order_url = order_resp.header("location");
    json order = PHX_TRY(parse_json(order_resp, "newOrder"));
    if (order_url.empty() || !order.contains("authorizations") || !order.contains("finalize")) {
      return base::fail(ErrorKind::kInternal,
                        "newOrder: the CA's answer lacks the order's URL, authorizations or "
                        "finalize URL");
    }

    PublishedTokens published(options_.responder);
    std::string thumbprint = PHX_TRY(jwk_thumbprint(account_key_));
    // Every challenge is answered first, then each authorization is waited for: the CA
    // validates the names in parallel.
    std::vector<std::pair<std::string, std::string>> pending;  // authorization URL, name
    for (const json& authz_url : order["authorizations"]) {
      if (!authz_url.is_string()) continue;
      auto name = PHX_TRY(answer_challenge(authz_url.get<std::string>(), thumbprint, published));
      if (name) pending.emplace_back(authz_url.get<std::string>(), *name);
    }
    for (const auto& [url, name] : pending) {
      json authz = PHX_TRY(poll(url, "authorization of " + name, {"valid"}));
      if (authz.value("status", "") != "valid") return authz_failed(authz, name);
    }

    order = PHX_TRY(poll(order_url, "order", {"ready", "valid"}));
    if (order.value("status", "") == "valid") {
      return base::fail(ErrorKind::kConflict,
                        "the order at " + order_url + " was already finalized with another key");
    }
    if (order.value("status", "") != "ready") return order_failed(order);
    PrivateKey key = PHX_TRY(generate_key(request.key_type));
    std::string csr = PHX_TRY(make_csr(key, names.front(), names));
    std::string finalize_url = order.value("finalize", "");
    PHX_TRY(post(finalize_url, json{{"csr", base64url_encode(csr)}}, "finalize"));
    order = PHX_TRY(poll(order_url, "order", {"valid"}));
    if (order.value("status", "") != "valid") return order_failed(order);
    std::string cert_url = order.value("certificate", "");
    if (cert_url.empty()) {
      return base::fail(ErrorKind::kInternal, "the valid order has no certificate URL");
    }
    auto cert_resp = PHX_TRY(post(cert_url, std::nullopt, "downloading the certificate",
                                  "application/pem-certificate-chain"));
    return assemble_issued(key, cert_resp.body, names);
  }

  base::Result<void> load_directory() {
    if (!dir_.new_order.empty()) return {};
    auto resp = PHX_TRY(http_.send({.method = "GET",
                                    .url = options_.directory_url,
                                    .body = {},
                                    .content_type = {},
                                    .accept = "application/json"}));
    json body = json::parse(resp.body, nullptr, false);
    if (resp.status != 200 || !body.is_object()) {
      return base::fail(resp.status >= 500 ? ErrorKind::kTransient : ErrorKind::kInvalidInput,
                        "GET " + options_.directory_url + " answered HTTP " +
                            std::to_string(resp.status) +
                            " without an ACME directory: " + describe_answer(resp, body));
    }
    auto url = [&](const char* name) {
      auto it = body.find(name);
      return it != body.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    Directory d{url("newNonce"), url("newAccount"), url("newOrder")};
    if (d.new_nonce.empty() || d.new_account.empty() || d.new_order.empty()) {
      return base::fail(ErrorKind::kInvalidInput,
                        options_.directory_url +
                            " is not an ACME directory (newNonce, newAccount or newOrder missing)");
    }
    dir_ = d;
    return {};
  }

  base::Result<void> ensure_account() {
    if (!account_url_.empty()) return {};
    bool created = false;
    if (!account_key_) {
      std::error_code ec;
      if (std::filesystem::exists(options_.account_key_file, ec)) {
        std::string pem = PHX_TRY(base::read_file(options_.account_key_file));
        auto key = read_private_key_pem(pem);
        if (!key) {
          return base::fail(
              ErrorKind::kInvalidInput,
              "ACME account key " + options_.account_key_file + ": " + key.error().message());
        }
        account_key_ = *key;
      } else {
        account_key_ = PHX_TRY(generate_key(KeyType::kEcP256));
        created = true;
      }
      account_jwk_ = PHX_TRY(public_jwk(account_key_));
    }
    json payload = {{"termsOfServiceAgreed", true}};
    if (!options_.contact.empty()) payload["contact"] = options_.contact;
    auto resp = PHX_TRY(post(dir_.new_account, payload, "newAccount", "", /*use_jwk=*/true));
    account_url_ = resp.header("location");
    if (account_url_.empty()) {
      return base::fail(ErrorKind::kInternal, "newAccount: the CA's answer has no Location");
    }
    if (created) {
      // Written only now: an unreachable CA leaves no file behind.
      std::string pem = PHX_TRY(private_key_pem(account_key_));
      auto written = base::write_file_atomic(
          options_.account_key_file, pem,
          std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
      if (!written) {
        return std::unexpected(std::move(written).error().with_context(
            "saving the ACME account key " + options_.account_key_file));
      }
    }
    return {};
  }

  // Publishes the key authorization of the authorization's http-01 challenge and tells the CA to
  // validate it. Returns the name to wait for, or nullopt when it is already valid.
  base::Result<std::optional<std::string>> answer_challenge(const std::string& url,
                                                            const std::string& thumbprint,
                                                            PublishedTokens& published) {
    auto resp = PHX_TRY(post(url, std::nullopt, "fetching an authorization"));
    json authz = PHX_TRY(parse_json(resp, "authorization"));
    std::string status = authz.value("status", "");
    std::string name = authz.contains("identifier") && authz["identifier"].is_object()
                           ? authz["identifier"].value("value", "")
                           : "";
    if (status == "valid") return std::nullopt;
    if (status != "pending") return authz_failed(authz, name);
    std::optional<json> challenge;
    for (const json& c : authz.value("challenges", json::array())) {
      if (c.is_object() && c.value("type", "") == "http-01") challenge = c;
    }
    if (!challenge) {
      return base::fail(ErrorKind::kInvalidInput, "the CA offers no http-01 challenge for " + name +
                                                      " (the only kind Phoenix answers)");
    }
    std::string token = challenge->value("token", "");
    std::string challenge_url = challenge->value("url", "");
    if (token.empty() || challenge_url.empty() ||
        token.find_first_not_of(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") !=
            std::string::npos) {
      return base::fail(ErrorKind::kInternal,
                        "the http-01 challenge for " + name + " has no usable token or URL");
    }
    if (challenge->value("status", "") == "pending") {
      auto publish = published.publish(token, token + "." + thumbprint);
      if (!publish) {
        return std::unexpected(
            std::move(publish).error().with_context("publishing the http-01 answer for " + name));
      }
      PHX_TRY(post(challenge_url, json::object(), "answering the http-01 challenge for " + name));
    }
    return name;
  }

  std::unexpected<base::Error> authz_failed(const json& authz, const std::string& name) {
    std::string why;
    for (const json& c : authz.value("challenges", json::array())) {
      if (c.is_object() && c.contains("error")) {
        why = c.value("type", "") + " validation failed: " + describe_acme_problem(c["error"]);
        return base::fail(problem_kind(c["error"], 0),
                          "the CA did not authorize " + name + ": " + why);
      }
    }
    return base::fail(ErrorKind::kPermission, "the CA did not authorize " + name +
                                                  ": its authorization is " +
                                                  authz.value("status", "?"));
  }

  // POST-as-GET `url` until its "status" is one of `done` or final ("invalid" and the like, which
  // the caller explains); the deadline fails.
  base::Result<json> poll(const std::string& url, const std::string& what,
                          std::initializer_list<std::string_view> done) {
    while (true) {
      auto resp = PHX_TRY(post(url, std::nullopt, "polling the " + what));
      json obj = PHX_TRY(parse_json(resp, what));
      std::string status = obj.value("status", "");
      if (std::find(done.begin(), done.end(), status) != done.end() || status == "invalid" ||
          status == "deactivated" || status == "expired" || status == "revoked") {
        return obj;
      }
      auto wait = retry_after(resp, options_.poll_interval);
      if (Clock::now() + wait > deadline_) {
        return base::fail(ErrorKind::kTimeout, "the " + what + " is still " + status + " after " +
                                                   std::to_string(options_.timeout.count() / 1000) +
                                                   " s (a retry may help)");
      }
      std::this_thread::sleep_for(wait);
    }
  }

  std::unexpected<base::Error> order_failed(const json& order) {
    std::string why = order.contains("error") ? ": " + describe_acme_problem(order["error"]) : "";
    return base::fail(
        order.contains("error") ? problem_kind(order["error"], 0) : ErrorKind::kInternal,
        "the order became " + order.value("status", "?") + why);
  }

  base::Result<json> parse_json(const HttpResponse& resp, const std::string& what) {
    json body = json::parse(resp.body, nullptr, false);
    if (!body.is_object()) {
      return base::fail(ErrorKind::kInternal, what + ": the CA's answer is not a JSON object");
    }
    return body;
  }

  base::Result<void> fetch_nonce() {
    auto resp = PHX_TRY(http_.send(
        {.method = "HEAD", .url = dir_.new_nonce, .body = {}, .content_type = {}, .accept = {}}));
    nonce_ = resp.header("replay-nonce");
    if (nonce_.empty()) {
      return base::fail(ErrorKind::kInternal, "HEAD " + dir_.new_nonce + " answered HTTP " +
                                                  std::to_string(resp.status) +
                                                  " without a Replay-Nonce");
    }
    return {};
  }

  // A JWS-signed POST (payload nullopt: POST-as-GET). Signed with the account's JWK for
  // newAccount, else with its URL as kid. A badNonce answer is retried with its fresh nonce.
  base::Result<HttpResponse> post(const std::string& url, const std::optional<json>& payload,
                                  const std::string& what, const std::string& accept = "",
                                  bool use_jwk = false) {
    for (int attempt = 0;; ++attempt) {
      if (nonce_.empty()) PHX_TRY(fetch_nonce());
      json header = {{"nonce", nonce_}, {"url", url}};
      if (use_jwk) {
        header["jwk"] = account_jwk_;
      } else {
        header["kid"] = account_url_;
      }
      nonce_.clear();  // each nonce is good for one request
      Jws jws = PHX_TRY(jws_sign(account_key_, header, payload ? payload->dump() : ""));
      auto resp = PHX_TRY(http_.send({.method = "POST",
                                      .url = url,
                                      .body = jws.flattened().dump(),
                                      .content_type = "application/jose+json",
                                      .accept = accept}));
      nonce_ = resp.header("replay-nonce");
      if (resp.status < 400) return resp;
      json problem = json::parse(resp.body, nullptr, false);
      bool bad_nonce = problem.is_object() &&
                       problem.value("type", "") == std::string(kProblemPrefix) + "badNonce";
      if (bad_nonce && attempt < options_.bad_nonce_retries) continue;
      return base::fail(problem_kind(problem, resp.status), what + ": the CA answered HTTP " +
                                                                std::to_string(resp.status) + ": " +
                                                                describe_answer(resp, problem));
    }
  }

  AcmeOptions options_;
  HttpClient http_;
  Directory dir_;
  PrivateKey account_key_;
  json account_jwk_;
  std::string account_url_;
  std::string nonce_;
  Clock::time_point deadline_;
};

}  // namespace

std::string describe_acme_problem(const json& problem) {
  if (!problem.is_object()) return "no details";
  std::string out = problem.value("type", "");
  std::string detail(base::trim(problem.value("detail", "")));
  if (!detail.empty()) out += (out.empty() ? "" : ": ") + detail;
  for (const json& sub : problem.value("subproblems", json::array())) {
    if (!sub.is_object()) continue;
    std::string who;
    if (sub.contains("identifier") && sub["identifier"].is_object()) {
      who = sub["identifier"].value("value", "") + ": ";
    }
    out += "; " + who + describe_acme_problem(sub);
  }
  return out.empty() ? "no details" : out;
}

base::Result<std::unique_ptr<CertificateAuthority>> make_acme_ca(AcmeOptions options) {
  auto bad = [](const std::string& why) { return base::fail(ErrorKind::kInvalidInput, why); };
  if (!options.directory_url.starts_with("https://") || options.directory_url.size() <= 8) {
    return bad("the ACME directory \"" + options.directory_url +
               "\" is not an https:// URL such as https://ca.internal:9000/acme/acme/directory");
  }
  if (!options.responder) return bad("an ACME client needs a ChallengeResponder");
  if (options.account_key_file.empty()) return bad("no ACME account key file given");
  if (options.roots_pem.empty() && !options.roots_file.empty()) {
    auto pem = base::read_file(options.roots_file);
    if (!pem) {
      return std::unexpected(
          std::move(pem).error().with_context("reading the ACME CA's root certificates"));
    }
    if (split_pem_certificates(*pem).empty()) {
      return bad("the ACME CA's root file " + options.roots_file + " holds no PEM certificate");
    }
    options.roots_pem = *pem;
  }
  struct stat st {};
  if (::stat(options.account_key_file.c_str(), &st) == 0) {
    if ((st.st_mode & 077) != 0) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      return bad("the ACME account key " + options.account_key_file + " has mode " + mode +
                 ": others can read the key; chmod 600 it");
    }
  } else if (errno != ENOENT) {
    return bad("the ACME account key " + options.account_key_file + ": " + std::strerror(errno));
  }
  return std::unique_ptr<CertificateAuthority>(std::make_unique<AcmeCa>(std::move(options)));
}

}  // namespace phoenix::ca
