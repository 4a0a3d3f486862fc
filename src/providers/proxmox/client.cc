#include "providers/proxmox/client.h"

#include <curl/curl.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "base/fs.h"
#include "base/hash.h"
#include "base/strings.h"
#include "providers/curl_util.h"

namespace phoenix::proxmox {
namespace {

using providers::append_body;
using providers::classify_failure;
using providers::init_curl_once;

using base::ErrorKind;

// Keeps the status line's text: Proxmox writes its error message there.
std::size_t status_line(char* data, std::size_t size, std::size_t count, void* user) {
  std::string_view line(data, size * count);
  try {
    if (line.starts_with("HTTP/")) {
      // "HTTP/1.1 500 can't lock file ...\r\n"
      std::size_t first = line.find(' ');
      std::size_t second = first == std::string_view::npos ? first : line.find(' ', first + 1);
      *static_cast<std::string*>(user) = second == std::string_view::npos
                                             ? std::string()
                                             : std::string(base::trim(line.substr(second + 1)));
    }
  } catch (...) {
    return 0;
  }
  return size * count;
}

// Verifies the server by its leaf certificate's SHA-256 instead of a CA chain: Proxmox nodes
// usually present a certificate of their own cluster CA, which users pin by fingerprint.
int verify_fingerprint(int /*preverified*/, X509_STORE_CTX* store) {
  if (X509_STORE_CTX_get_error_depth(store) != 0) return 1;  // decided at the leaf
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  const auto* expected =
      static_cast<const std::string*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  X509* cert = X509_STORE_CTX_get_current_cert(store);
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int len = 0;
  if (!cert || !expected || X509_digest(cert, EVP_sha256(), digest.data(), &len) != 1) return 0;
  bool match = len == expected->size() && std::memcmp(digest.data(), expected->data(), len) == 0;
  if (match) X509_STORE_CTX_set_error(store, X509_V_OK);
  return match ? 1 : 0;
}

CURLcode install_fingerprint_check(CURL* /*curl*/, void* ssl_ctx, void* fingerprint) {
  auto* ctx = static_cast<SSL_CTX*>(ssl_ctx);
  SSL_CTX_set_app_data(ctx, fingerprint);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_fingerprint);
  return CURLE_OK;
}

class PveClient final : public Transport {
 public:
  PveClient() = default;
  PveClient(const PveClient&) = delete;
  PveClient& operator=(const PveClient&) = delete;
  ~PveClient() override {
    if (curl_) curl_easy_cleanup(curl_);
  }

  std::string base_url;     // https://host:8006/api2/json
  std::string description;  // https://host:8006
  std::string auth_header;  // "Authorization: PVEAPIToken=id=secret"
  std::string secret;       // to scrub from anything that could be shown
  ClientOptions options;
  std::string fingerprint;  // raw bytes, when pinned
  CURL* curl_ = nullptr;

  std::string describe() const override { return description; }

  base::Result<Response> send(const Request& request) override {
    if (!curl_) {
      curl_ = curl_easy_init();
      if (!curl_) return base::fail(ErrorKind::kInternal, "cannot create a libcurl handle");
    }
    CURL* c = curl_;
    curl_easy_reset(c);
    std::string form;
    for (const auto& [k, v] : request.params) {
      char* ek = curl_easy_escape(c, k.data(), static_cast<int>(k.size()));
      char* ev = curl_easy_escape(c, v.data(), static_cast<int>(v.size()));
      if (!form.empty()) form += '&';
      form += std::string(ek ? ek : "") + "=" + (ev ? ev : "");
      curl_free(ek);
      curl_free(ev);
    }
    bool has_body = request.method == Method::kPost || request.method == Method::kPut;
    std::string url = base_url + request.path;
    if (!has_body && !form.empty()) url += "?" + form;

    Response resp;
    std::array<char, CURL_ERROR_SIZE> error{};
    curl_slist* headers = curl_slist_append(nullptr, auth_header.c_str());
    headers = curl_slist_append(headers, "Accept: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error.data());
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp.body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, status_line);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &resp.reason);
    auto timeout = request.timeout.count() > 0 ? request.timeout : options.timeout;
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(options.connect_timeout.count()));
    if (!fingerprint.empty()) {
      // The pinned certificate is the whole trust decision: the chain and the host name are
      // not checked against CAs (as Proxmox's own tools do with a fingerprint).
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
      curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, install_fingerprint_check);
      curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, &fingerprint);
    } else if (!options.ca_file.empty()) {
      curl_easy_setopt(c, CURLOPT_CAINFO, options.ca_file.c_str());
      curl_easy_setopt(c, CURLOPT_CAPATH, nullptr);
    } else if (options.insecure) {
      // Only when asked, and only when nothing to verify against was given.
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    switch (request.method) {
      case Method::kGet:
        break;
      case Method::kPost:
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        break;
      case Method::kPut:
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
        break;
      case Method::kDelete:
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
        break;
    }
    if (has_body) {
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, form.c_str());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(form.size()));
    }
    CURLcode code = curl_easy_perform(c);
    curl_slist_free_all(headers);
    if (code != CURLE_OK) {
      auto [kind, text] = classify_failure(c, code, error.data());
      std::string message = std::string(to_string(request.method)) + " " + request.path + " on " +
                            description + ": " + text;
      if (kind == ErrorKind::kPermission) {
        message += fingerprint.empty() ? " (check proxmox_api.ca_file, or pin the node's "
                                         "certificate with proxmox_api.fingerprint)"
                                       : " (the certificate does not match "
                                         "proxmox_api.fingerprint)";
      }
      return base::fail(kind, scrub(message));
    }
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    resp.status = static_cast<int>(status);
    resp.reason = scrub(resp.reason);
    return resp;
  }

 private:
  std::string scrub(std::string text) const {
    if (secret.empty()) return text;
    for (std::size_t at; (at = text.find(secret)) != std::string::npos;) {
      text.replace(at, secret.size(), "<redacted>");
    }
    return text;
  }
};

}  // namespace

std::optional<std::string> parse_fingerprint(std::string_view text) {
  auto hex = base::normalize_sha256_fingerprint(text);
  if (!hex) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < 64; i += 2) {
    out += static_cast<char>(std::stoi(hex->substr(i, 2), nullptr, 16));
  }
  return out;
}

base::Result<std::unique_ptr<Transport>> make_pve_client(const ClientOptions& o) {
  PHX_TRY(init_curl_once());
  auto bad = [](const std::string& why) { return base::fail(ErrorKind::kInvalidInput, why); };
  std::string url = o.url;
  if (url.ends_with("/")) url.pop_back();
  if (url.ends_with("/api2/json")) url.resize(url.size() - 10);
  if (!url.starts_with("https://") || url.size() <= 8 || url.find('@') != std::string::npos) {
    return bad("proxmox_api.url \"" + url +
               "\" is not an https:// URL such as https://10.0.0.13:8006");
  }
  if (o.token_id.find('!') == std::string::npos || o.token_id.find('@') == std::string::npos) {
    return bad("proxmox_api.token_id \"" + o.token_id +
               "\" is not an API token id such as root@pam!phoenix");
  }
  if (o.token_secret_file.empty()) {
    return bad(
        "proxmox_api.token_secret_file is not set: put the token's secret in a file "
        "readable by its owner only (mode 0600) and name it there");
  }
  struct stat st {};
  if (::stat(o.token_secret_file.c_str(), &st) != 0) {
    return bad("proxmox_api.token_secret_file " + o.token_secret_file + ": " +
               std::strerror(errno));
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return bad("proxmox_api.token_secret_file " + o.token_secret_file + " has mode " + mode +
               ": others can read the secret; chmod 600 it");
  }
  auto secret = base::read_file(o.token_secret_file);
  if (!secret) return std::unexpected(secret.error());
  std::string s(base::trim(*secret));
  if (s.empty() || s.find_first_of("\r\n") != std::string::npos) {
    return bad("proxmox_api.token_secret_file " + o.token_secret_file +
               " must hold the secret alone, on one line");
  }
  auto client = std::make_unique<PveClient>();
  if (!o.fingerprint.empty()) {
    auto fp = parse_fingerprint(o.fingerprint);
    if (!fp) {
      return bad(
          "proxmox_api.fingerprint is not a SHA-256 fingerprint (32 bytes in hex, as "
          "`pvenode cert info` prints it)");
    }
    client->fingerprint = *fp;
  }
  if (!o.ca_file.empty() && ::access(o.ca_file.c_str(), R_OK) != 0) {
    return bad("proxmox_api.ca_file " + o.ca_file + ": " + std::strerror(errno));
  }
  client->options = o;
  client->description = url;
  client->base_url = url + "/api2/json";
  client->secret = s;
  client->auth_header = "Authorization: PVEAPIToken=" + o.token_id + "=" + s;
  return std::unique_ptr<Transport>(std::move(client));
}

}  // namespace phoenix::proxmox
