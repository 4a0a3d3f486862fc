// Health checks answered from this machine: HTTP(S) on libcurl, with the internal root as the
// only trust anchor for HTTPS, and TCP connections.

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "providers/curl_util.h"
#include "setup/setup.h"

namespace phoenix::setup {
namespace {

class CurlProber final : public Prober {
 public:
  std::optional<std::string> http(const features::HealthCheck& check,
                                  const std::string& ca_pem) override {
    if (auto init = providers::init_curl_once(); !init) return init.error().message();
    CURL* c = curl_easy_init();
    if (!c) return "cannot create a libcurl handle";
    std::string body;
    std::array<char, CURL_ERROR_SIZE> error{};
    curl_slist* headers = nullptr;
    if (!check.host_header.empty()) {
      headers = curl_slist_append(headers, ("Host: " + check.host_header).c_str());
    }
    curl_easy_setopt(c, CURLOPT_URL, check.url.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error.data());
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, providers::append_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    if (check.kind == features::HealthCheck::Kind::kHttps) {
      // The internal root and nothing else: a certificate of any other CA fails the check.
      curl_blob blob{const_cast<char*>(ca_pem.data()), ca_pem.size(), CURL_BLOB_COPY};
      curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
      curl_easy_setopt(c, CURLOPT_CAPATH, nullptr);
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    }
    CURLcode code = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    std::optional<std::string> why;
    if (code != CURLE_OK) {
      why = providers::classify_failure(c, code, error.data()).text;
    } else if (check.expect_status ? status != check.expect_status
                                   : status < 200 || status >= 400) {
      why = "answered " + std::to_string(status) +
            (check.expect_status ? ", expected " + std::to_string(check.expect_status) : "");
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    return why;
  }

  std::optional<std::string> tcp(const std::string& address, int port) override {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    std::string service = std::to_string(port);
    if (int rc = ::getaddrinfo(address.c_str(), service.c_str(), &hints, &res); rc != 0) {
      return "cannot resolve " + address + ": " + ::gai_strerror(rc);
    }
    std::string why = "nothing answers on " + address + ":" + service;
    for (addrinfo* a = res; a; a = a->ai_next) {
      int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) continue;
      int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
      if (rc != 0 && errno == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        if (::poll(&p, 1, 2000) == 1) {
          int err = 0;
          socklen_t len = sizeof err;
          ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
          rc = err == 0 ? 0 : -1;
          if (err) why = address + ":" + service + ": " + std::strerror(err);
        } else {
          why = address + ":" + service + ": no answer within 2 s";
        }
      } else if (rc != 0) {
        why = address + ":" + service + ": " + std::strerror(errno);
      }
      ::close(fd);
      if (rc == 0) {
        ::freeaddrinfo(res);
        return std::nullopt;
      }
    }
    ::freeaddrinfo(res);
    return why;
  }
};

}  // namespace

std::unique_ptr<Prober> curl_prober() { return std::make_unique<CurlProber>(); }

}  // namespace phoenix::setup
