#include "providers/docker/engine_client.h"

#include <curl/curl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/strings.h"
#include "providers/curl_util.h"

namespace phoenix::docker {

namespace {

using providers::append_body;
using providers::init_curl_once;

using base::ErrorKind;

constexpr std::string_view kUnixScheme = "unix://";
constexpr std::string_view kTcpScheme = "tcp://";

// The URL as messages may show it: user information, should anyone write it, becomes "***".
std::string redacted(std::string_view url) {
  std::size_t scheme = url.find("://");
  std::size_t start = scheme == std::string_view::npos ? 0 : scheme + 3;
  std::size_t end = url.find('/', start);
  std::size_t at = url.substr(0, end).rfind('@');
  if (at == std::string_view::npos || at < start) return std::string(url);
  return std::string(url.substr(0, start)) + "***" + std::string(url.substr(at));
}

// A DNS name, an IPv4 address or a bracketed IPv6 address: nothing that could change the
// meaning of the https:// URL built from it.
bool is_host(std::string_view host) {
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    return host.substr(1, host.size() - 2).find_first_not_of("0123456789abcdefABCDEF:.") ==
           std::string_view::npos;
  }
  return !host.empty() && host.find_first_not_of(
                              "abcdefghijklmnopqrstuvwxyz"
                              "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") == std::string_view::npos;
}

base::Result<void> check_readable(std::string_view url, std::string_view key,
                                  const std::string& file) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::file_status status = fs::status(file, ec);
  std::string what = "docker endpoint " + std::string(url) + ": " + std::string(key) + " " + file;
  if (status.type() == fs::file_type::not_found) {
    return base::fail(ErrorKind::kInvalidInput, what + " does not exist");
  }
  if (ec) return base::fail(ErrorKind::kInvalidInput, what + ": " + ec.message());
  if (fs::is_directory(status))
    return base::fail(ErrorKind::kInvalidInput, what + " is a directory");
  if (::access(file.c_str(), R_OK) != 0) {
    int err = errno;
    return base::fail(err == EACCES ? ErrorKind::kPermission : ErrorKind::kInvalidInput,
                      what + " cannot be read: " + std::strerror(err));
  }
  return {};
}

std::size_t append_header(char* data, std::size_t size, std::size_t count, void* user) {
  auto* headers = static_cast<std::map<std::string, std::string>*>(user);
  std::string_view line(data, size * count);
  try {
    if (line.starts_with("HTTP/")) {
      headers->clear();  // a new response begins (after a 100 Continue, say)
    } else if (std::size_t colon = line.find(':'); colon != std::string_view::npos) {
      std::string name = base::to_lower(base::trim(line.substr(0, colon)));
      std::string value(base::trim(line.substr(colon + 1)));
      auto [it, inserted] = headers->emplace(std::move(name), value);
      if (!inserted) it->second += ", " + value;
    }
  } catch (...) {
    return 0;
  }
  return size * count;
}

bool is_tls_error(CURLcode code) {
  switch (code) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
      return true;
    default:
      return false;
  }
}

// Whether a retry can help: refused, reset and timed-out connections can, a certificate the
// engine does not accept (or that Phoenix does not accept) cannot.
ErrorKind kind_for(CURLcode code, long os_errno, std::string_view text, bool tls) {
  if (code == CURLE_OPERATION_TIMEDOUT) return ErrorKind::kTimeout;
  if (os_errno == ECONNRESET || os_errno == ECONNREFUSED || os_errno == EPIPE) {
    return ErrorKind::kTransient;  // also when it happened during the TLS handshake
  }
  if (is_tls_error(code)) return ErrorKind::kPermission;
  switch (code) {
    case CURLE_COULDNT_CONNECT:
      return os_errno == EACCES || os_errno == EPERM ? ErrorKind::kPermission
                                                     : ErrorKind::kTransient;
    case CURLE_RECV_ERROR:
      // With TLS 1.3 the engine rejects a client certificate after the handshake, so the
      // rejection arrives as an alert on the first read.
      if (tls && text.find("alert") != std::string_view::npos) return ErrorKind::kPermission;
      return ErrorKind::kTransient;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return ErrorKind::kTransient;
    case CURLE_URL_MALFORMAT:
      return ErrorKind::kInvalidInput;
    default:
      return ErrorKind::kInternal;
  }
}

using SlistPtr = std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)>;

}  // namespace

struct EngineClient::State {
  std::string description;  // "unix:///var/run/docker.sock", "tcp://host:port (TLS)"
  std::string base_url;     // "http://localhost", "https://host:port"
  std::string socket_path;  // unix:// only
  bool tls = false;
  std::string ca_file, cert_file, key_file;
  std::chrono::milliseconds timeout{30000};
  std::chrono::milliseconds connect_timeout{5000};
  CURL* curl = nullptr;
  std::array<char, CURL_ERROR_SIZE> error{};

  State() = default;
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  ~State() {
    if (curl != nullptr) curl_easy_cleanup(curl);
  }
};

EngineClient::EngineClient(std::unique_ptr<State> state) : state_(std::move(state)) {}
EngineClient::~EngineClient() = default;

std::string EngineClient::describe() const { return state_->description; }

base::Result<std::unique_ptr<Transport>> make_engine_client(const Endpoint& endpoint) {
  auto state = std::make_unique<EngineClient::State>();
  std::string_view url = endpoint.url;
  std::string shown = redacted(url);
  auto invalid = [&](const std::string& why) {
    return base::fail(ErrorKind::kInvalidInput, "docker endpoint " + shown + ": " + why);
  };

  if (url.starts_with(kUnixScheme)) {
    std::string_view path = url.substr(kUnixScheme.size());
    if (!path.starts_with('/')) {
      return invalid("the socket path must be absolute, as in unix:///var/run/docker.sock");
    }
    state->socket_path = std::string(path);
    state->base_url = "http://localhost";
    state->description = std::string(url);
  } else if (url.starts_with(kTcpScheme)) {
    std::string_view authority = url.substr(kTcpScheme.size());
    if (authority.find('@') != std::string_view::npos) {
      return invalid(
          "credentials do not belong in the URL; the client certificate identifies Phoenix");
    }
    if (!authority.empty() && authority.back() == '/') authority.remove_suffix(1);
    std::size_t colon = authority.rfind(':');
    std::string_view host =
        colon == std::string_view::npos ? authority : authority.substr(0, colon);
    std::optional<std::uint64_t> port = colon == std::string_view::npos
                                            ? std::nullopt
                                            : base::parse_uint(authority.substr(colon + 1));
    if (!is_host(host) || !port || *port == 0 || *port > 65535) {
      return invalid("expected tcp://host:port, as in tcp://10.0.0.11:2376");
    }
    std::vector<std::string> missing;
    if (endpoint.ca_file.empty()) missing.push_back("ca_file");
    if (endpoint.cert_file.empty()) missing.push_back("cert_file");
    if (endpoint.key_file.empty()) missing.push_back("key_file");
    if (!missing.empty()) {
      return invalid(
          "Phoenix does not talk to an engine over plain TCP; set ca_file, cert_file and "
          "key_file for mutual TLS (missing: " +
          base::join(missing, ", ") + ")");
    }
    PHX_TRY(check_readable(shown, "ca_file", endpoint.ca_file));
    PHX_TRY(check_readable(shown, "cert_file", endpoint.cert_file));
    PHX_TRY(check_readable(shown, "key_file", endpoint.key_file));
    state->tls = true;
    state->ca_file = endpoint.ca_file;
    state->cert_file = endpoint.cert_file;
    state->key_file = endpoint.key_file;
    state->base_url = "https://" + std::string(authority);
    state->description = "tcp://" + std::string(authority) + " (TLS)";
  } else {
    return invalid(
        "expected unix:///path/to/docker.sock, or tcp://host:port with ca_file, cert_file and "
        "key_file for mutual TLS");
  }
  state->timeout = endpoint.timeout;
  state->connect_timeout = endpoint.connect_timeout;

  PHX_TRY(init_curl_once());
  state->curl = curl_easy_init();
  if (state->curl == nullptr) {
    return base::fail(ErrorKind::kInternal, "cannot create a libcurl handle for " + shown);
  }
  return std::unique_ptr<Transport>(new EngineClient(std::move(state)));
}

base::Result<Response> EngineClient::send(const Request& request) {
  State& s = *state_;
  std::string what =
      std::string(to_string(request.method)) + " " + request.path + " on " + s.description;

  // A reset handle forgets the previous request's options but keeps its open connections.
  curl_easy_reset(s.curl);
  s.error[0] = '\0';

  auto escape = [&](const std::string& text) -> std::optional<std::string> {
    char* escaped = curl_easy_escape(s.curl, text.data(), static_cast<int>(text.size()));
    if (escaped == nullptr) return std::nullopt;
    std::string out(escaped);
    curl_free(escaped);
    return out;
  };
  std::string url = s.base_url + request.path;
  for (std::size_t i = 0; i < request.query.size(); ++i) {
    std::optional<std::string> name = escape(request.query[i].first);
    std::optional<std::string> value = escape(request.query[i].second);
    if (!name || !value) return base::fail(ErrorKind::kInternal, what + ": out of memory");
    url += (i == 0 ? "?" : "&") + *name + "=" + *value;
  }

  SlistPtr headers(nullptr, &curl_slist_free_all);
  auto add_header = [&](const std::string& line) {
    curl_slist* next = curl_slist_append(headers.get(), line.c_str());
    if (next == nullptr) return false;
    headers.release();
    headers.reset(next);
    return true;
  };
  bool ok = add_header("Expect:");  // no 100-continue round trip for larger bodies
  if (request.body) ok = ok && add_header("Content-Type: application/json");
  for (const auto& [name, value] : request.headers) {
    if (name.find_first_of("\r\n:") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos) {
      return base::fail(ErrorKind::kInvalidInput,
                        what + ": header " + name + " contains a line break or colon");
    }
    ok = ok && add_header(name + ": " + value);
  }
  if (!ok) return base::fail(ErrorKind::kInternal, what + ": out of memory");

  Response response;
  std::chrono::milliseconds timeout = request.timeout.count() > 0 ? request.timeout : s.timeout;
  CURL* curl = s.curl;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, s.error.data());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_PROXY, "");
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(s.connect_timeout.count()));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &append_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &append_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response.headers);
  if (s.tls) {
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(curl, CURLOPT_CAINFO, s.ca_file.c_str());
    // Only ca_file may vouch for the engine, not the system's store of public CAs.
    curl_easy_setopt(curl, CURLOPT_CAPATH, static_cast<char*>(nullptr));
    curl_easy_setopt(curl, CURLOPT_SSLCERT, s.cert_file.c_str());
    curl_easy_setopt(curl, CURLOPT_SSLKEY, s.key_file.c_str());
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
  } else {
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, s.socket_path.c_str());
  }

  // POSTFIELDS does not copy: request.body outlives curl_easy_perform.
  const char* body = request.body ? request.body->data() : "";
  auto body_size = static_cast<curl_off_t>(request.body ? request.body->size() : 0);
  switch (request.method) {
    case Method::kGet:
      curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
      break;
    case Method::kHead:
      curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
      break;
    case Method::kPost:
    case Method::kPut:
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, body_size);
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
      if (request.method == Method::kPut) curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "PUT");
      break;
    case Method::kDelete:
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "DELETE");
      if (request.body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, body_size);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
      }
      break;
  }

  CURLcode code = curl_easy_perform(curl);
  if (code != CURLE_OK) {
    long os_errno = 0;
    curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno);
    std::string text = s.error[0] != '\0' ? std::string(s.error.data()) : curl_easy_strerror(code);
    ErrorKind kind = kind_for(code, os_errno, text, s.tls);
    if (code == CURLE_COULDNT_CONNECT && os_errno != 0) {
      // libcurl says "Failed to connect to localhost port 80" for a unix socket, and leaves out
      // why in both cases.
      std::string why = std::strerror(static_cast<int>(os_errno));
      text = s.tls ? text + " (" + why + ")" : "cannot connect to the socket: " + why;
      if (kind == ErrorKind::kPermission && !s.tls) {
        text += " (the socket admits root and the members of its group)";
      }
    }
    long new_connections = 0;
    curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &new_connections);
    if (s.tls && kind == ErrorKind::kTransient && new_connections > 0 &&
        (code == CURLE_SEND_ERROR || code == CURLE_RECV_ERROR)) {
      // With TLS 1.3 an engine that refuses the client certificate does so after the client
      // has finished its handshake; when its close overtakes the alert, all the client sees is
      // a dropped connection, exactly as when the engine restarts.
      text +=
          "; the engine dropped a new TLS connection: if this persists, it does not accept "
          "the client certificate " +
          s.cert_file;
    }
    return base::fail(kind, what + ": " + text);
  }
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  response.status = static_cast<int>(status);
  return response;
}

}  // namespace phoenix::docker
