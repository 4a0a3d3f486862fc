#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "providers/docker/api.h"

namespace phoenix::docker {
namespace {

using base::ErrorKind;
using nlohmann::json;

Response json_response(int status, const json& body) {
  return Response{.status = status, .body = body.dump(), .headers = {}};
}

Response engine_error(int status, std::string message) {
  return json_response(status, json{{"message", std::move(message)}});
}

// An engine that knows its API version and answers /_ping and /version from it, as dockerd does;
// every other request gets the answers scripted for "METHOD /path" (the path as sent, version
// prefix included), in order, the last one repeating; unscripted requests succeed with "{}".
// Every request is recorded.
class FakeEngine final : public Transport {
 public:
  explicit FakeEngine(std::string version) : version_(std::move(version)) {}

  void on(Method method, const std::string& path, base::Result<Response> answer) {
    answers_[std::string(to_string(method)) + " " + path].push_back(std::move(answer));
  }
  void set_ping_header(bool on) { ping_header_ = on; }

  base::Result<Response> send(const Request& request) override {
    requests_.push_back(request);
    auto it = answers_.find(std::string(to_string(request.method)) + " " + request.path);
    if (it != answers_.end() && !it->second.empty()) {
      base::Result<Response> answer = it->second.front();
      if (it->second.size() > 1) it->second.pop_front();
      return answer;
    }
    if (request.method == Method::kGet && request.path == "/_ping") {
      Response ping{.status = 200, .body = "OK", .headers = {}};
      if (ping_header_) ping.headers["api-version"] = version_;
      return ping;
    }
    if (request.method == Method::kGet && request.path == "/version") {
      return json_response(200, json{{"ApiVersion", version_}, {"Version", "fake"}});
    }
    return json_response(200, json::object());
  }

  std::string describe() const override { return "fake://engine"; }

  const std::vector<Request>& requests() const { return requests_; }
  std::vector<std::string> sent() const {
    std::vector<std::string> out;
    for (const Request& r : requests_)
      out.push_back(std::string(to_string(r.method)) + " " + r.path);
    return out;
  }

 private:
  std::string version_;
  bool ping_header_ = true;
  std::map<std::string, std::deque<base::Result<Response>>> answers_;
  std::vector<Request> requests_;
};

// An Engine over a FakeEngine that the test can still reach.
struct Fixture {
  explicit Fixture(std::string version = "1.41") {
    auto owned = std::make_unique<FakeEngine>(std::move(version));
    fake = owned.get();
    engine = std::make_unique<Engine>(std::move(owned));
  }
  FakeEngine* fake = nullptr;
  std::unique_ptr<Engine> engine;
};

TEST(Engine, MethodNamesAndMutation) {
  EXPECT_EQ(to_string(Method::kGet), "GET");
  EXPECT_EQ(to_string(Method::kHead), "HEAD");
  EXPECT_EQ(to_string(Method::kPost), "POST");
  EXPECT_EQ(to_string(Method::kPut), "PUT");
  EXPECT_EQ(to_string(Method::kDelete), "DELETE");
  EXPECT_FALSE(is_mutating(Method::kGet));
  EXPECT_FALSE(is_mutating(Method::kHead));
  EXPECT_TRUE(is_mutating(Method::kPost));
  EXPECT_TRUE(is_mutating(Method::kPut));
  EXPECT_TRUE(is_mutating(Method::kDelete));
}

TEST(Engine, CompareApiVersionsIsNumeric) {
  EXPECT_GT(compare_api_versions("1.41", "1.9"), 0);
  EXPECT_LT(compare_api_versions("1.9", "1.41"), 0);
  EXPECT_EQ(compare_api_versions("1.41", "1.41"), 0);
  EXPECT_EQ(compare_api_versions("1", "1.0"), 0);
  EXPECT_GT(compare_api_versions("2.0", "1.99"), 0);
  EXPECT_GT(compare_api_versions("1.100", "1.56"), 0);
  EXPECT_LT(compare_api_versions("1.41", "1.41.1"), 0);
}

TEST(Engine, NegotiatesFromThePingHeaderOnce) {
  Fixture f("1.45");
  auto version = f.engine->api_version();
  ASSERT_TRUE(version.has_value()) << version.error().message();
  EXPECT_EQ(*version, "1.45");
  ASSERT_TRUE(f.engine->get("/info").has_value());
  EXPECT_EQ(*f.engine->api_version(), "1.45");
  EXPECT_EQ(f.fake->sent(), (std::vector<std::string>{"GET /_ping", "GET /v1.45/info"}));
}

TEST(Engine, NegotiationFallsBackToVersionWithoutHeader) {
  Fixture f("1.43");
  f.fake->set_ping_header(false);
  auto version = f.engine->api_version();
  ASSERT_TRUE(version.has_value()) << version.error().message();
  EXPECT_EQ(*version, "1.43");
  EXPECT_EQ(f.fake->sent(), (std::vector<std::string>{"GET /_ping", "GET /version"}));
}

TEST(Engine, RejectsAnEngineOlderThanTheMinimum) {
  Fixture f("1.40");
  auto version = f.engine->api_version();
  ASSERT_FALSE(version.has_value());
  EXPECT_EQ(version.error().kind(), ErrorKind::kConflict);
  EXPECT_FALSE(version.error().retryable());
  EXPECT_EQ(version.error().message(),
            "Docker Engine at fake://engine speaks API 1.40; Phoenix needs API 1.41 or newer "
            "(Docker Engine 20.10 or later)");
  // Nothing else is sent to an engine Phoenix cannot speak to.
  auto services = f.engine->get("/services");
  ASSERT_FALSE(services.has_value());
  EXPECT_EQ(services.error().message(), version.error().message());
  EXPECT_EQ(f.fake->sent(), (std::vector<std::string>{"GET /_ping", "GET /_ping"}));
}

TEST(Engine, AcceptsTheMinimumAndCapsANewerEngineAtTheMaximum) {
  EXPECT_EQ(*Fixture("1.41").engine->api_version(), "1.41");
  EXPECT_EQ(*Fixture("1.56").engine->api_version(), "1.56");
  EXPECT_EQ(*Fixture("1.99").engine->api_version(), "1.56");
  EXPECT_EQ(*Fixture("1.100").engine->api_version(), "1.56");
  Fixture f("2.3");
  ASSERT_TRUE(f.engine->get("/info").has_value());
  EXPECT_EQ(f.fake->requests().back().path, "/v1.56/info");
}

TEST(Engine, NegotiationFailures) {
  {
    Fixture f;
    f.fake->on(Method::kGet, "/_ping", engine_error(500, "daemon is starting"));
    auto version = f.engine->api_version();
    ASSERT_FALSE(version.has_value());
    EXPECT_EQ(version.error().kind(), ErrorKind::kTransient);
    EXPECT_EQ(version.error().message(), "GET /_ping on fake://engine: 500 daemon is starting");
  }
  {
    Fixture f;
    f.fake->on(Method::kGet, "/_ping",
               std::unexpected(base::Error(ErrorKind::kTimeout, "GET /_ping on fake: timed out")));
    auto version = f.engine->api_version();
    ASSERT_FALSE(version.has_value());
    EXPECT_EQ(version.error().kind(), ErrorKind::kTimeout);
    EXPECT_TRUE(version.error().retryable());
    EXPECT_EQ(version.error().message(), "GET /_ping on fake: timed out");
  }
  {
    Fixture f;
    f.fake->set_ping_header(false);
    f.fake->on(Method::kGet, "/version", json_response(200, json{{"Version", "20.10"}}));
    auto version = f.engine->api_version();
    ASSERT_FALSE(version.has_value());
    EXPECT_EQ(version.error().kind(), ErrorKind::kInternal);
    EXPECT_EQ(version.error().message(),
              "Docker Engine at fake://engine reports no API version (no API-Version header on "
              "GET /_ping, no ApiVersion in GET /version)");
  }
  {
    Fixture f("one.forty");
    auto version = f.engine->api_version();
    ASSERT_FALSE(version.has_value());
    EXPECT_EQ(version.error().kind(), ErrorKind::kInternal);
    EXPECT_EQ(version.error().message(),
              "Docker Engine at fake://engine reports API version \"one.forty\", which is not a "
              "version number");
  }
}

TEST(Engine, NegotiationIsRetriedAfterAFailure) {
  Fixture f;
  f.fake->on(Method::kGet, "/_ping", engine_error(503, "starting"));
  f.fake->on(Method::kGet, "/_ping",
             Response{.status = 200, .body = "OK", .headers = {{"api-version", "1.44"}}});
  EXPECT_FALSE(f.engine->api_version().has_value());
  EXPECT_EQ(*f.engine->api_version(), "1.44");
}

TEST(Engine, PrefixesTheVersionAndPassesQueryBodyAndHeaders) {
  Fixture f;
  Params filters = {{"filters", R"({"label":["phoenix.stack=web"]})"}};
  ASSERT_TRUE(f.engine->get("/services", filters).has_value());
  ASSERT_TRUE(
      f.engine->post("/services/create", json{{"Name", "web"}}, {}, {{"X-Registry-Auth", "e30="}})
          .has_value());
  ASSERT_TRUE(f.engine->post("/swarm/leave", nullptr, {{"force", "1"}}).has_value());
  ASSERT_TRUE(f.engine->del("/networks/n1").has_value());
  ASSERT_TRUE(f.engine->call(Method::kHead, "/images/nginx/json").has_value());

  const std::vector<Request>& r = f.fake->requests();
  ASSERT_EQ(r.size(), 6u);
  EXPECT_EQ(r[1].path, "/v1.41/services");
  EXPECT_EQ(r[1].query, filters);
  EXPECT_EQ(r[1].body, std::nullopt);
  EXPECT_EQ(r[2].method, Method::kPost);
  EXPECT_EQ(r[2].path, "/v1.41/services/create");
  EXPECT_EQ(r[2].body, std::optional<std::string>(R"({"Name":"web"})"));
  EXPECT_EQ(r[2].headers, (Params{{"X-Registry-Auth", "e30="}}));
  EXPECT_EQ(r[3].path, "/v1.41/swarm/leave");
  EXPECT_EQ(r[3].query, (Params{{"force", "1"}}));
  EXPECT_EQ(r[3].body, std::nullopt);  // a null JSON body sends nothing
  EXPECT_EQ(r[4].method, Method::kDelete);
  EXPECT_EQ(r[4].path, "/v1.41/networks/n1");
  EXPECT_EQ(r[5].method, Method::kHead);
  EXPECT_EQ(r[5].path, "/v1.41/images/nginx/json");
  for (const Request& request : r) EXPECT_EQ(request.timeout.count(), 0);
}

TEST(Engine, ParsesJsonAndAnEmptyBodyIsNull) {
  Fixture f;
  f.fake->on(Method::kGet, "/v1.41/services",
             json_response(200, json::array({json{{"ID", "abc"}}})));
  f.fake->on(Method::kPost, "/v1.41/containers/abc/start",
             Response{.status = 204, .body = "", .headers = {}});
  f.fake->on(Method::kPost, "/v1.41/containers/abc/stop",
             Response{.status = 304, .body = "", .headers = {}});
  auto services = f.engine->get("/services");
  ASSERT_TRUE(services.has_value());
  EXPECT_EQ(*services, json::parse(R"([{"ID":"abc"}])"));
  auto started = f.engine->post("/containers/abc/start", nullptr);
  ASSERT_TRUE(started.has_value());
  EXPECT_TRUE(started->is_null());
  auto stopped = f.engine->post("/containers/abc/stop", nullptr);  // 304: already stopped
  ASSERT_TRUE(stopped.has_value());
  EXPECT_TRUE(stopped->is_null());
}

TEST(Engine, ABodyThatIsNotJsonIsInternal) {
  Fixture f;
  f.fake->on(Method::kGet, "/v1.41/info",
             Response{.status = 200, .body = "<html>proxy login</html>", .headers = {}});
  f.fake->on(Method::kGet, "/v1.41/nodes",
             Response{.status = 200, .body = R"([{"ID": "n1"})", .headers = {}});
  auto info = f.engine->get("/info");
  ASSERT_FALSE(info.has_value());
  EXPECT_EQ(info.error().kind(), ErrorKind::kInternal);
  EXPECT_FALSE(info.error().retryable());
  EXPECT_EQ(info.error().message(),
            "GET /info on fake://engine: the 200 response is not JSON (error at byte 1)");
  auto nodes = f.engine->get("/nodes");
  ASSERT_FALSE(nodes.has_value());
  EXPECT_EQ(nodes.error().message(),
            "GET /nodes on fake://engine: the 200 response is not JSON (error at byte 14)");
}

TEST(Engine, MapsHttpStatusesToErrorKinds) {
  struct Case {
    Method method = Method::kGet;
    std::string path = {};
    Response response = {};
    ErrorKind kind = ErrorKind::kInternal;
    bool retryable = false;
    std::string message = {};
  };
  const std::string not_manager =
      "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to "
      "connect this node to swarm and try again.";
  const std::vector<Case> cases = {
      {Method::kPost, "/services/create",
       engine_error(400, "invalid mount config for type \"bind\": bind source path does not exist"),
       ErrorKind::kInvalidInput, false,
       "POST /services/create on fake://engine: 400 invalid mount config for type \"bind\": bind "
       "source path does not exist"},
      {Method::kGet, "/info", engine_error(401, "unauthorized"), ErrorKind::kPermission, false,
       "GET /info on fake://engine: 401 unauthorized"},
      {Method::kPost, "/plugins/pull", engine_error(403, "authorization denied by plugin"),
       ErrorKind::kPermission, false,
       "POST /plugins/pull on fake://engine: 403 authorization denied by plugin"},
      {Method::kGet, "/services/web", engine_error(404, "service web not found"),
       ErrorKind::kNotFound, false,
       "GET /services/web on fake://engine: 404 service web not found"},
      {Method::kPost, "/networks/create",
       engine_error(409, "network with name frontend already exists"), ErrorKind::kConflict, false,
       "POST /networks/create on fake://engine: 409 network with name frontend already exists"},
      {Method::kPost, "/services/abc/update",
       engine_error(500, "rpc error: code = Unknown desc = update out of sequence"),
       ErrorKind::kTransient, true,
       "POST /services/abc/update on fake://engine: 500 rpc error: code = Unknown desc = update "
       "out of sequence"},
      {Method::kGet, "/nodes", engine_error(503, not_manager), ErrorKind::kConflict, false,
       "GET /nodes on fake://engine: 503 " + not_manager},
      {Method::kPost, "/swarm/leave", engine_error(503, "This node is not part of a swarm"),
       ErrorKind::kConflict, false,
       "POST /swarm/leave on fake://engine: 503 This node is not part of a swarm"},
      {Method::kGet, "/services",
       engine_error(503, "rpc error: code = Unavailable desc = the raft has no leader"),
       ErrorKind::kTransient, true,
       "GET /services on fake://engine: 503 rpc error: code = Unavailable desc = the raft has no "
       "leader"},
      // Not the engine's JSON: a proxy's text, or nothing at all.
      {Method::kGet, "/info",
       Response{.status = 502, .body = "upstream connect error\n", .headers = {}},
       ErrorKind::kTransient, true, "GET /info on fake://engine: 502 upstream connect error"},
      {Method::kDelete, "/networks/n1", Response{.status = 504, .body = "", .headers = {}},
       ErrorKind::kTransient, true, "DELETE /networks/n1 on fake://engine: 504 Gateway Timeout"},
      {Method::kGet, "/info", Response{.status = 418, .body = "", .headers = {}},
       ErrorKind::kInvalidInput, false, "GET /info on fake://engine: 418"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    Fixture f;
    f.fake->on(c.method, "/v1.41" + c.path, c.response);
    base::Result<json> result = c.method == Method::kGet ? f.engine->get(c.path)
                                : c.method == Method::kDelete
                                    ? f.engine->del(c.path)
                                    : f.engine->post(c.path, json::object());
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().kind(), c.kind);
    EXPECT_EQ(result.error().retryable(), c.retryable);
    EXPECT_EQ(result.error().message(), c.message);
  }
}

TEST(Engine, TransportErrorsPassThroughUnchanged) {
  Fixture f;
  ASSERT_TRUE(f.engine->api_version().has_value());
  f.fake->on(Method::kGet, "/v1.41/services",
             std::unexpected(base::Error(
                 ErrorKind::kTransient, "GET /v1.41/services on fake://engine: connection reset")));
  auto services = f.engine->get("/services");
  ASSERT_FALSE(services.has_value());
  EXPECT_EQ(services.error().kind(), ErrorKind::kTransient);
  EXPECT_TRUE(services.error().retryable());
  EXPECT_EQ(services.error().message(), "GET /v1.41/services on fake://engine: connection reset");
}

TEST(Engine, CallReturnsEveryStatusAsAResponse) {
  Fixture f;
  f.fake->on(Method::kHead, "/v1.41/images/nginx:1.25/json",
             Response{.status = 404, .body = "", .headers = {}});
  auto head = f.engine->call(Method::kHead, "/images/nginx:1.25/json");
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->status, 404);
  f.fake->on(Method::kGet, "/v1.41/nowhere", engine_error(404, "page not found"));
  auto missing = f.engine->call(Method::kGet, "/nowhere");
  ASSERT_TRUE(missing.has_value());
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(missing->body, R"({"message":"page not found"})");
}

TEST(Engine, CountsRequestsByRoute) {
  Fixture f;
  ASSERT_TRUE(f.engine->get("/services").has_value());
  ASSERT_TRUE(f.engine->get("/services").has_value());
  ASSERT_TRUE(f.engine->get("/nodes").has_value());
  ASSERT_TRUE(
      f.engine->post("/services/abc123/update", json::object(), {{"version", "7"}}).has_value());
  ASSERT_TRUE(f.engine->post("/services/create", json::object()).has_value());
  ASSERT_TRUE(f.engine->post("/swarm/join", json::object()).has_value());
  ASSERT_TRUE(f.engine->del("/networks/frontend").has_value());
  // A failed request counts too: it was sent.
  f.fake->on(Method::kGet, "/v1.41/tasks",
             std::unexpected(base::Error(ErrorKind::kTimeout, "timed out")));
  ASSERT_FALSE(f.engine->get("/tasks").has_value());

  const RequestCounts& counts = f.engine->counts();
  EXPECT_EQ(counts.total, 9u);
  EXPECT_EQ(counts.mutating, 4u);
  EXPECT_EQ(counts.by_route, (std::map<std::string, std::uint64_t>{
                                 {"DELETE /networks/{id}", 1},
                                 {"GET /_ping", 1},
                                 {"GET /nodes", 1},
                                 {"GET /services", 2},
                                 {"GET /tasks", 1},
                                 {"POST /services/create", 1},
                                 {"POST /services/{id}/update", 1},
                                 {"POST /swarm/join", 1},
                             }));

  f.engine->reset_counts();
  EXPECT_EQ(f.engine->counts().total, 0u);
  EXPECT_TRUE(f.engine->counts().by_route.empty());
  // The negotiated version survives the reset: no second _ping.
  ASSERT_TRUE(f.engine->get("/info").has_value());
  EXPECT_EQ(f.engine->counts().by_route, (std::map<std::string, std::uint64_t>{{"GET /info", 1}}));
}

TEST(Engine, FallbackNegotiationCountsBothRequests) {
  Fixture f;
  f.fake->set_ping_header(false);
  ASSERT_TRUE(f.engine->api_version().has_value());
  EXPECT_EQ(f.engine->counts().total, 2u);
  EXPECT_EQ(f.engine->counts().mutating, 0u);
  EXPECT_EQ(f.engine->counts().by_route,
            (std::map<std::string, std::uint64_t>{{"GET /_ping", 1}, {"GET /version", 1}}));
}

TEST(Engine, RouteKeyReplacesIdsAndKeepsVerbs) {
  const std::vector<std::pair<std::pair<Method, std::string>, std::string>> cases = {
      {{Method::kGet, "/_ping"}, "GET /_ping"},
      {{Method::kGet, "/services"}, "GET /services"},
      {{Method::kGet, "/services/"}, "GET /services"},
      {{Method::kGet, "/services/web"}, "GET /services/{id}"},
      {{Method::kPost, "/services/create"}, "POST /services/create"},
      {{Method::kPost, "/services/x1y2z3/update"}, "POST /services/{id}/update"},
      {{Method::kGet, "/services/web/logs"}, "GET /services/{id}/logs"},
      {{Method::kDelete, "/services/web"}, "DELETE /services/{id}"},
      {{Method::kGet, "/nodes"}, "GET /nodes"},
      {{Method::kPost, "/nodes/n1/update"}, "POST /nodes/{id}/update"},
      {{Method::kDelete, "/networks/frontend"}, "DELETE /networks/{id}"},
      {{Method::kPost, "/networks/frontend/connect"}, "POST /networks/{id}/connect"},
      {{Method::kPost, "/networks/prune"}, "POST /networks/prune"},
      {{Method::kGet, "/swarm"}, "GET /swarm"},
      {{Method::kPost, "/swarm/init"}, "POST /swarm/init"},
      {{Method::kPost, "/swarm/join"}, "POST /swarm/join"},
      {{Method::kPost, "/swarm/leave"}, "POST /swarm/leave"},
      {{Method::kPost, "/swarm/update"}, "POST /swarm/update"},
      {{Method::kGet, "/swarm/unlockkey"}, "GET /swarm/unlockkey"},
      {{Method::kGet, "/containers/json"}, "GET /containers/json"},
      {{Method::kGet, "/containers/4fa6e0f0c678/json"}, "GET /containers/{id}/json"},
      {{Method::kPost, "/containers/4fa6e0f0c678/start"}, "POST /containers/{id}/start"},
      {{Method::kGet, "/containers/4fa6e0f0c678/attach/ws"}, "GET /containers/{id}/attach/ws"},
      {{Method::kGet, "/images/json"}, "GET /images/json"},
      {{Method::kPost, "/images/create"}, "POST /images/create"},
      {{Method::kGet, "/images/nginx:1.25/json"}, "GET /images/{id}/json"},
      {{Method::kGet, "/images/registry.local:5000/team/app:2/json"}, "GET /images/{id}/json"},
      {{Method::kPost, "/images/team/app/push"}, "POST /images/{id}/push"},
      {{Method::kDelete, "/images/team/app:2"}, "DELETE /images/{id}"},
      {{Method::kGet, "/distribution/library/nginx/json"}, "GET /distribution/{id}/json"},
      {{Method::kPost, "/exec/e1/start"}, "POST /exec/{id}/start"},
      {{Method::kPost, "/secrets/create"}, "POST /secrets/create"},
      {{Method::kPost, "/secrets/s1/update"}, "POST /secrets/{id}/update"},
      {{Method::kPut, "/volumes/data"}, "PUT /volumes/{id}"},
      {{Method::kGet, "/system/df"}, "GET /system/df"},
  };
  for (const auto& [request, route] : cases) {
    EXPECT_EQ(route_key(request.first, request.second), route) << request.second;
  }
}

}  // namespace
}  // namespace phoenix::docker
