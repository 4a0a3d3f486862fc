#include "providers/ca/http.h"

#include <curl/curl.h>

#include <array>
#include <cerrno>

#include "base/strings.h"
#include "base/tally.h"
#include "providers/curl_util.h"

namespace phoenix::ca {
namespace {

using base::ErrorKind;

std::size_t collect_header(char* data, std::size_t size, std::size_t count, void* user) {
  std::string_view line(data, size * count);
  try {
    auto* headers = static_cast<std::vector<std::pair<std::string, std::string>>*>(user);
    if (line.starts_with("HTTP/")) {
      headers->clear();  // a new response (after a 100 Continue, say)
    } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
      headers->emplace_back(base::to_lower(base::trim(line.substr(0, colon))),
                            std::string(base::trim(line.substr(colon + 1))));
    }
  } catch (...) {
    return 0;
  }
  return size * count;
}

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return {};
}

HttpClient::HttpClient(HttpOptions options) : options_(std::move(options)) {}

HttpClient::~HttpClient() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

std::string HttpClient::scrub(std::string text) const {
  for (const std::string& secret : options_.secrets) {
    if (secret.empty()) continue;
    for (std::size_t at; (at = text.find(secret)) != std::string::npos;) {
      text.replace(at, secret.size(), "<redacted>");
    }
  }
  return text;
}

base::Result<HttpResponse> HttpClient::send(const HttpRequest& request) {
  PHX_TRY(providers::init_curl_once());
  if (!curl_) {
    curl_ = curl_easy_init();
    if (!curl_) return base::fail(ErrorKind::kInternal, "cannot create a libcurl handle");
  }
  auto* c = static_cast<CURL*>(curl_);
  curl_easy_reset(c);
  HttpResponse resp;
  std::array<char, CURL_ERROR_SIZE> error{};
  curl_slist* headers = nullptr;
  if (!request.content_type.empty()) {
    headers = curl_slist_append(headers, ("Content-Type: " + request.content_type).c_str());
  }
  if (!request.accept.empty()) {
    headers = curl_slist_append(headers, ("Accept: " + request.accept).c_str());
  }
  headers = curl_slist_append(headers, "User-Agent: phoenix");
  curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error.data());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, providers::append_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &resp.headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout.count()));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options_.connect_timeout.count()));
  if (!options_.verify) {
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  } else if (!options_.roots_pem.empty()) {
    curl_blob blob{};
    blob.data = options_.roots_pem.data();
    blob.len = options_.roots_pem.size();
    blob.flags = CURL_BLOB_COPY;
    curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
    curl_easy_setopt(c, CURLOPT_CAINFO, nullptr);
    curl_easy_setopt(c, CURLOPT_CAPATH, nullptr);
  }
  if (request.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (request.method == "POST") {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, request.body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(request.body.size()));
  } else if (request.method != "GET") {
    curl_slist_free_all(headers);
    return base::fail(ErrorKind::kInternal, "unsupported HTTP method " + request.method);
  }
  base::tally_request("ca", request.method == "POST");
  CURLcode code = curl_easy_perform(c);
  curl_slist_free_all(headers);
  if (code != CURLE_OK) {
    auto [kind, text] = providers::classify_failure(c, code, error.data());
    std::string hint = kind == ErrorKind::kTransient    ? " (is it running? a retry may help)"
                       : kind == ErrorKind::kPermission ? " (its certificate does not verify "
                                                          "against the configured root)"
                       : kind == ErrorKind::kTimeout    ? " (a retry may help)"
                                                        : "";
    return base::fail(kind, scrub("cannot reach " + options_.what + ": " + request.method + " " +
                                  request.url + ": " + text + hint));
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
  return resp;
}

}  // namespace phoenix::ca
