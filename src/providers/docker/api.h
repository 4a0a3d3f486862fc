#pragma once

// The Docker Engine API as Phoenix uses it: a Transport sends one HTTP request to one engine,
// and Engine adds what every call needs on top (the negotiated version prefix, JSON, errors
// that say whether a retry can help, request counts). Engine knows no socket and no libcurl:
// the real transport is EngineClient (engine_client.h); tests may use their own.
//
// The request and response bodies are the Engine API's own JSON (../shared/specs/
// docker-engine-api-v1.41.yaml), so what Phoenix sends can be read against the schema.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"

namespace phoenix::docker {

enum class Method { kGet, kHead, kPost, kPut, kDelete };
std::string_view to_string(Method method);
bool is_mutating(Method method);  // POST, PUT, DELETE

using Params = std::vector<std::pair<std::string, std::string>>;

struct Request {
  Method method = Method::kGet;
  std::string path;  // with the version prefix, "/v1.41/services/create"
  Params query;      // names and values unescaped; the transport escapes them
  std::optional<std::string> body = std::nullopt;  // JSON text, sent as application/json
  Params headers = {};
  std::chrono::milliseconds timeout{0};  // 0: the transport's default
};

struct Response {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names lower-cased
};

// One engine endpoint. send() fails only when no HTTP response arrived (cannot connect, TLS
// failure, timeout, connection dropped); every HTTP status, 4xx and 5xx included, is a Response.
// Errors name the endpoint, the method and the path, and are kTransient or kTimeout when a retry
// can help (connection refused or reset, timeout), kPermission for TLS and socket permission
// failures, kInvalidInput for a malformed endpoint.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual base::Result<Response> send(const Request& request) = 0;
  // The endpoint, for messages: "unix:///var/run/docker.sock", "tcp://10.0.0.11:2376 (TLS)".
  virtual std::string describe() const = 0;
};

// The API versions Phoenix speaks: the oldest it needs and the newest whose schema it was
// checked against (specs/docker-engine-api-v1.41.yaml and -v1.56.yaml).
inline constexpr std::string_view kMinApiVersion = "1.41";
inline constexpr std::string_view kMaxApiVersion = "1.56";

// Compares "1.41" and "1.9" numerically: negative, zero or positive.
int compare_api_versions(std::string_view a, std::string_view b);

// The route of a request for RequestCounts::by_route: the method and the path without version
// prefix or query, object ids and names replaced by {id} ("POST /services/{id}/update"), verbs
// kept ("POST /services/create", "POST /swarm/join"). An image name with slashes is one {id}.
std::string route_key(Method method, std::string_view path);

// Counts of requests sent through one Engine, for `-v`, --output json and the benchmark.
struct RequestCounts {
  std::uint64_t total = 0;
  std::uint64_t mutating = 0;                     // POST, PUT, DELETE
  std::map<std::string, std::uint64_t> by_route;  // "GET /services", "POST /services/{id}/update"
};

// A typed view of one engine. Every call negotiates the API version once (GET /_ping, then
// min(server, kMaxApiVersion); an engine older than kMinApiVersion is an error that names both
// versions), then sends /v<version><path>.
//
// Errors: an HTTP status >= 400 becomes an Error whose message is
//   "<METHOD> <path> on <endpoint>: <status> <engine's message>"
// (the engine's JSON {"message": ...}), with kind kInvalidInput for 400, kPermission for
// 401/403, kNotFound for 404, kConflict for 409, kTransient for 500 and above except the
// engine's "not a swarm manager" / "not part of a swarm" 503s, which are kConflict: retrying
// cannot fix the swarm's state; any other status >= 400 is kInvalidInput. A body that is not
// JSON where JSON was expected is kInternal.
class Engine {
 public:
  explicit Engine(std::unique_ptr<Transport> transport);

  // The negotiated version, e.g. "1.41". Negotiates on first use.
  base::Result<std::string> api_version();

  // GET/DELETE/POST returning the parsed JSON body (null for an empty body). `path` is the API
  // path without the version prefix: "/services", "/nodes/abc/update". A null `body` sends no
  // body (POST /swarm/leave, /containers/{id}/start).
  base::Result<nlohmann::json> get(std::string_view path, const Params& query = {});
  base::Result<nlohmann::json> post(std::string_view path, const nlohmann::json& body,
                                    const Params& query = {}, const Params& headers = {});
  base::Result<nlohmann::json> del(std::string_view path, const Params& query = {});

  // The raw exchange, for calls whose status carries the answer (HEAD, 304 Not Modified).
  base::Result<Response> call(Method method, std::string_view path, const Params& query = {},
                              std::optional<std::string> body = std::nullopt);

  const RequestCounts& counts() const { return counts_; }
  void reset_counts() { counts_ = {}; }
  std::string describe() const { return transport_->describe(); }

 private:
  // Counts the request under the route of `route_path` (the path without version prefix), then
  // sends it.
  base::Result<Response> send(Request request, std::string_view route_path);
  // Negotiates, then sends /v<version><path>.
  base::Result<Response> exchange(Method method, std::string_view path, const Params& query,
                                  std::optional<std::string> body, const Params& headers);
  base::Result<nlohmann::json> json_call(Method method, std::string_view path, const Params& query,
                                         std::optional<std::string> body, const Params& headers);
  base::Error http_error(Method method, std::string_view path, const Response& response) const;
  base::Result<nlohmann::json> parse_body(Method method, std::string_view path,
                                          const Response& response) const;

  std::unique_ptr<Transport> transport_;
  std::optional<std::string> version_;
  RequestCounts counts_;
};

}  // namespace phoenix::docker
