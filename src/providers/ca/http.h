#pragma once

// HTTPS for the certificate authorities' clients, on libcurl. The server is verified against the
// roots given (PEM, in memory), else the system's; verification is off only when asked for
// (step-ca's bootstrap, which then checks what it fetched against a pinned fingerprint).

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"

namespace phoenix::ca {

struct HttpOptions {
  std::string what;       // the server, as errors name it: "the ACME CA", "step-ca"
  std::string roots_pem;  // trust anchors; empty: the system's store
  bool verify = true;
  std::chrono::milliseconds timeout{30'000};
  std::chrono::milliseconds connect_timeout{10'000};
  // Strings (passwords, tokens) to replace with <redacted> in anything an error shows.
  std::vector<std::string> secrets;
};

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD or POST
  std::string url;
  std::string body;
  std::string content_type;
  std::string accept;
};

struct HttpResponse {
  long status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case

  // The first header of that (lower-case) name, or "".
  std::string header(std::string_view name) const;
};

class HttpClient {
 public:
  explicit HttpClient(HttpOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Fails when no HTTP answer came: kTransient when the server could not be reached (the
  // request never left), kPermission when its certificate does not verify, kTimeout when the
  // answer did not come in time. Any HTTP status is an answer.
  base::Result<HttpResponse> send(const HttpRequest& request);

  std::string scrub(std::string text) const;

 private:
  HttpOptions options_;
  void* curl_ = nullptr;  // CURL*
};

}  // namespace phoenix::ca
