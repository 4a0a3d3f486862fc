#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "base/strings.h"
#include "base/tally.h"
#include "providers/docker/api.h"

namespace phoenix::docker {

namespace {

using base::ErrorKind;
using nlohmann::json;

// Path segments that name an action or a sub-collection rather than an object, from the path
// templates of specs/docker-engine-api-v1.41.yaml and -v1.56.yaml. kCollectionVerbs follow the
// collection ("/services/create", "/swarm/join"), kObjectVerbs follow an object id or name
// ("/services/{id}/update", "/images/{name}/json").
constexpr std::array<std::string_view, 15> kCollectionVerbs = {
    "create",     "df",    "get",  "init",   "join",   "json",      "leave",  "load",
    "privileges", "prune", "pull", "search", "unlock", "unlockkey", "update",
};
constexpr std::array<std::string_view, 30> kObjectVerbs = {
    "archive", "attach", "attestations", "changes", "connect", "disable", "disconnect", "enable",
    "exec",    "export", "get",          "history", "json",    "kill",    "logs",       "pause",
    "push",    "rename", "resize",       "restart", "set",     "start",   "stats",      "stop",
    "tag",     "top",    "unpause",      "update",  "upgrade", "wait",
};

template <std::size_t N>
bool contains(const std::array<std::string_view, N>& words, std::string_view word) {
  return std::find(words.begin(), words.end(), word) != words.end();
}

// "1", "1.41", "1.41.2": dot-separated decimal numbers.
bool is_api_version(std::string_view text) {
  if (text.empty()) return false;
  for (const std::string& part : base::split(text, '.')) {
    if (part.empty() ||
        !std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return false;
    }
  }
  return true;
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 409:
      return "Conflict";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "";
  }
}

// What the engine said about a failed request: its {"message": ...}, else the body's text
// (a proxy's HTML page, a plain-text panic), else the status's reason phrase.
std::string engine_message(const Response& response) {
  json parsed = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object()) {
    auto it = parsed.find("message");
    if (it != parsed.end() && it->is_string()) return it->get<std::string>();
  }
  constexpr std::size_t kMaxBody = 200;
  std::string_view text = base::trim(response.body);
  if (!text.empty()) {
    std::string out(text.substr(0, kMaxBody));
    std::replace(out.begin(), out.end(), '\n', ' ');
    if (text.size() > kMaxBody) out += "...";
    return out;
  }
  return std::string(reason_phrase(response.status));
}

ErrorKind kind_for_status(int status, std::string_view message) {
  switch (status) {
    case 400:
      return ErrorKind::kInvalidInput;
    case 401:
    case 403:
      return ErrorKind::kPermission;
    case 404:
      return ErrorKind::kNotFound;
    case 409:
      return ErrorKind::kConflict;
    default:
      break;
  }
  if (status == 503 && (message.find("not a swarm manager") != std::string_view::npos ||
                        message.find("not part of a swarm") != std::string_view::npos)) {
    // The node's swarm membership is wrong; a retry gets the same answer.
    return ErrorKind::kConflict;
  }
  if (status >= 500) return ErrorKind::kTransient;
  return ErrorKind::kInvalidInput;
}

}  // namespace

std::string_view to_string(Method method) {
  switch (method) {
    case Method::kGet:
      return "GET";
    case Method::kHead:
      return "HEAD";
    case Method::kPost:
      return "POST";
    case Method::kPut:
      return "PUT";
    case Method::kDelete:
      return "DELETE";
  }
  return "GET";
}

bool is_mutating(Method method) {
  return method == Method::kPost || method == Method::kPut || method == Method::kDelete;
}

int compare_api_versions(std::string_view a, std::string_view b) {
  // Missing or non-numeric components count as 0: "1" equals "1.0".
  auto next = [](std::string_view& text) -> std::uint64_t {
    std::size_t dot = text.find('.');
    std::string_view part = text.substr(0, dot);
    text = dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
    std::uint64_t value = 0;
    std::from_chars(part.data(), part.data() + part.size(), value);
    return value;
  };
  while (!a.empty() || !b.empty()) {
    std::uint64_t x = next(a);
    std::uint64_t y = next(b);
    if (x != y) return x < y ? -1 : 1;
  }
  return 0;
}

std::string route_key(Method method, std::string_view path) {
  std::vector<std::string> segments;
  for (std::string& s : base::split(path.substr(0, path.find('?')), '/')) {
    if (!s.empty()) segments.push_back(std::move(s));
  }
  // Keep the collection, then the verb suffix; whatever lies between is one object id or name
  // (image and plugin names may contain slashes: "/images/library/nginx/json").
  std::size_t suffix = segments.size();
  if (segments.size() == 2 && contains(kCollectionVerbs, segments[1])) {
    suffix = 1;
  } else if (segments.size() >= 3) {
    std::size_t n = segments.size();
    if (segments[n - 1] == "ws" && segments[n - 2] == "attach" && n >= 4) {
      suffix = n - 2;  // /containers/{id}/attach/ws
    } else if (contains(kObjectVerbs, segments[n - 1])) {
      suffix = n - 1;
    }
  }
  std::string out(to_string(method));
  out += ' ';
  if (segments.empty()) out += '/';
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (i == 0 || i >= suffix) {
      out += '/';
      out += segments[i];
    } else if (i == 1) {
      out += "/{id}";
    }
  }
  return out;
}

Engine::Engine(std::unique_ptr<Transport> transport) : transport_(std::move(transport)) {}

base::Result<Response> Engine::send(Request request, std::string_view route_path) {
  ++counts_.total;
  if (is_mutating(request.method)) ++counts_.mutating;
  ++counts_.by_route[route_key(request.method, route_path)];
  base::tally_request("docker", is_mutating(request.method));
  return transport_->send(request);
}

base::Error Engine::http_error(Method method, std::string_view path,
                               const Response& response) const {
  std::string message = engine_message(response);
  ErrorKind kind = kind_for_status(response.status, message);
  std::string text = std::string(to_string(method)) + " " + std::string(path) + " on " +
                     describe() + ": " + std::to_string(response.status);
  if (!message.empty()) text += " " + message;
  return base::Error(kind, std::move(text));
}

base::Result<nlohmann::json> Engine::parse_body(Method method, std::string_view path,
                                                const Response& response) const {
  if (response.body.empty()) return json(nullptr);
  try {
    return json::parse(response.body);
  } catch (const json::parse_error& e) {
    return base::fail(ErrorKind::kInternal,
                      std::string(to_string(method)) + " " + std::string(path) + " on " +
                          describe() + ": the " + std::to_string(response.status) +
                          " response is not JSON (error at byte " + std::to_string(e.byte) + ")");
  }
}

base::Result<std::string> Engine::api_version() {
  if (version_) return *version_;
  // Unversioned paths reach the engine's own current API version.
  Response ping =
      PHX_TRY(send(Request{.method = Method::kGet, .path = "/_ping", .query = {}}, "/_ping"));
  if (ping.status >= 400) return std::unexpected(http_error(Method::kGet, "/_ping", ping));
  std::string server;
  if (auto it = ping.headers.find("api-version"); it != ping.headers.end()) {
    server = std::string(base::trim(it->second));
  }
  if (server.empty()) {
    // Engines behind some proxies lose the header; /version carries the same number.
    Response version =
        PHX_TRY(send(Request{.method = Method::kGet, .path = "/version", .query = {}}, "/version"));
    if (version.status >= 400) {
      return std::unexpected(http_error(Method::kGet, "/version", version));
    }
    json body = PHX_TRY(parse_body(Method::kGet, "/version", version));
    if (!body.is_object() || !body.contains("ApiVersion") || !body["ApiVersion"].is_string()) {
      return base::fail(ErrorKind::kInternal,
                        "Docker Engine at " + describe() +
                            " reports no API version (no API-Version header on GET /_ping, no "
                            "ApiVersion in GET /version)");
    }
    server = body["ApiVersion"].get<std::string>();
  }
  if (!is_api_version(server)) {
    return base::fail(ErrorKind::kInternal, "Docker Engine at " + describe() +
                                                " reports API version \"" + server +
                                                "\", which is not a version number");
  }
  if (compare_api_versions(server, kMinApiVersion) < 0) {
    // The engine's state, not Phoenix's input, is wrong, and a retry cannot change it.
    return base::fail(ErrorKind::kConflict, "Docker Engine at " + describe() + " speaks API " +
                                                server + "; Phoenix needs API " +
                                                std::string(kMinApiVersion) +
                                                " or newer (Docker Engine 20.10 or later)");
  }
  version_ =
      compare_api_versions(server, kMaxApiVersion) > 0 ? std::string(kMaxApiVersion) : server;
  return *version_;
}

base::Result<Response> Engine::exchange(Method method, std::string_view path, const Params& query,
                                        std::optional<std::string> body, const Params& headers) {
  std::string version = PHX_TRY(api_version());
  Request request{
      .method = method,
      .path = "/v" + version + std::string(path),
      .query = query,
      .body = std::move(body),
      .headers = headers,
      .timeout = std::chrono::milliseconds(0),
  };
  return send(std::move(request), path);
}

base::Result<nlohmann::json> Engine::json_call(Method method, std::string_view path,
                                               const Params& query, std::optional<std::string> body,
                                               const Params& headers) {
  Response response = PHX_TRY(exchange(method, path, query, std::move(body), headers));
  if (response.status >= 400) return std::unexpected(http_error(method, path, response));
  return parse_body(method, path, response);
}

base::Result<nlohmann::json> Engine::get(std::string_view path, const Params& query) {
  return json_call(Method::kGet, path, query, std::nullopt, {});
}

base::Result<nlohmann::json> Engine::post(std::string_view path, const nlohmann::json& body,
                                          const Params& query, const Params& headers) {
  std::optional<std::string> text;
  // Invalid UTF-8 in a string is replaced rather than thrown: exceptions stay inside the module.
  if (!body.is_null()) text = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return json_call(Method::kPost, path, query, std::move(text), headers);
}

base::Result<nlohmann::json> Engine::del(std::string_view path, const Params& query) {
  return json_call(Method::kDelete, path, query, std::nullopt, {});
}

base::Result<Response> Engine::call(Method method, std::string_view path, const Params& query,
                                    std::optional<std::string> body) {
  return exchange(method, path, query, std::move(body), {});
}

}  // namespace phoenix::docker
