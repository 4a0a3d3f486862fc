#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <fstream>

#include "base/tally.h"
#include "providers/proxmox/api.h"
#include "providers/proxmox/client.h"

namespace phoenix::proxmox {
namespace {

using base::ErrorKind;
using nlohmann::json;

// A fake that keeps the requests it got and answers from a queue.
class FakeTransport : public Transport {
 public:
  struct Answer {
    std::optional<Response> response;
    ErrorKind error = ErrorKind::kTransient;  // when no response
  };
  std::vector<Request>* seen;
  std::deque<Answer>* answers;

  FakeTransport(std::vector<Request>* s, std::deque<Answer>* a) : seen(s), answers(a) {}
  base::Result<Response> send(const Request& r) override {
    seen->push_back(r);
    if (answers->empty()) return base::fail(ErrorKind::kInternal, "no answer scripted");
    Answer a = answers->front();
    answers->pop_front();
    if (!a.response) return base::fail(a.error, "transport failure");
    return *a.response;
  }
  std::string describe() const override { return "https://pve:8006"; }
};

struct Fixture {
  std::vector<Request> seen;
  std::deque<FakeTransport::Answer> answers;
  std::vector<std::chrono::milliseconds> sleeps;
  Pve pve{std::make_unique<FakeTransport>(&seen, &answers), RetryPolicy{},
          [this](std::chrono::milliseconds d) { sleeps.push_back(d); }};

  void ok(json data) { answers.push_back({Response{200, "OK", json{{"data", data}}.dump()}}); }
  void http(int status, std::string reason, std::string body = "{\"data\":null}") {
    answers.push_back({Response{status, std::move(reason), std::move(body)}});
  }
  void fail(ErrorKind kind) { answers.push_back({std::nullopt, kind}); }
};

const char* kUpid = "UPID:pve2:0000ABCD:00112233:65A0B0C0:vzcreate:101:root@pam!phoenix:";

TEST(Pve, UnwrapsDataAndCountsRoutes) {
  Fixture f;
  const auto before = base::request_tallies();
  f.ok(json{{"version", "8.2.4"}});
  auto r = f.pve.get("/version");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ((*r)["version"], "8.2.4");
  f.ok(nullptr);
  ASSERT_TRUE(f.pve.call(Method::kPost, "/nodes/pve/lxc/101/status/start").has_value());
  EXPECT_EQ(f.pve.counts().total, 2u);
  EXPECT_EQ(f.pve.counts().mutating, 1u);
  EXPECT_EQ(f.pve.counts().by_route.at("POST /nodes/{node}/lxc/{vmid}/status/start"), 1u);
  // The process-wide tally (what `sync all` reports) counts them as the Proxmox API's; the
  // guest agent's calls apart.
  f.ok(json{{"pid", 7}});
  ASSERT_TRUE(f.pve.call(Method::kPost, "/nodes/pve/qemu/1001/agent/exec").has_value());
  auto after = base::request_tallies();
  auto grew = [&](const std::string& provider, bool mutating) {
    auto was = before.contains(provider) ? before.at(provider) : base::RequestTally{};
    auto is = after.contains(provider) ? after.at(provider) : base::RequestTally{};
    return mutating ? is.mutating - was.mutating : is.total - was.total;
  };
  EXPECT_EQ(grew("proxmox", false), 2u);
  EXPECT_EQ(grew("proxmox", true), 1u);
  EXPECT_EQ(grew("proxmox-agent", false), 1u);
}

TEST(Pve, ParameterErrorsAreListed) {
  Fixture f;
  f.http(
      400, "Parameter verification failed.",
      R"({"data":null,"errors":{"net0":"invalid format - format error","cores":"value must have a minimum value of 1"}})");
  auto r = f.pve.call(Method::kPost, "/nodes/pve/lxc", {{"vmid", "101"}});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind(), ErrorKind::kInvalidInput);
  EXPECT_EQ(r.error().message(),
            "POST /nodes/pve/lxc on https://pve:8006: 400 Parameter verification failed. "
            "(cores: value must have a minimum value of 1; net0: invalid format - format error)");
  EXPECT_EQ(f.seen.size(), 1u) << "a parameter error is not retried";
}

TEST(Pve, ErrorKinds) {
  struct Case {
    int status;
    const char* reason;
    ErrorKind kind;
  } cases[] = {
      {401, "authentication failure", ErrorKind::kPermission},
      {403, "Permission check failed", ErrorKind::kPermission},
      {501, "Method not implemented", ErrorKind::kNotFound},
      {500, "CT 101 already exists on node 'pve'", ErrorKind::kConflict},
      {500, "unable to parse config", ErrorKind::kInternal},
  };
  for (const Case& c : cases) {
    Fixture f;
    f.http(c.status, c.reason);
    auto r = f.pve.call(Method::kPost, "/nodes/pve/lxc");
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind(), c.kind) << c.status << " " << c.reason;
  }
  Fixture f;
  f.http(401, "authentication failure");
  EXPECT_EQ(f.pve.get("/version").error().message(),
            "GET /version on https://pve:8006: 401 authentication failure (check "
            "proxmox_api.token_id and token_secret_file)");
}

TEST(Pve, ReadsAreRetriedWithBackoff) {
  Fixture f;
  f.fail(ErrorKind::kTimeout);
  f.http(503, "Service Unavailable");
  f.ok(json::array());
  auto r = f.pve.get("/cluster/resources");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(f.seen.size(), 3u);
  EXPECT_EQ(f.sleeps, (std::vector<std::chrono::milliseconds>{std::chrono::milliseconds(200),
                                                              std::chrono::milliseconds(400)}));
  EXPECT_EQ(f.pve.counts().retries, 2u);
}

TEST(Pve, WritesAreRetriedOnlyWhenNotCarriedOut) {
  {
    Fixture f;  // lock contention, then not sent, then 503: none of them carried out
    f.http(500, "can't lock file '/run/lock/lxc/pve-config-101.lock' - got timeout");
    f.fail(ErrorKind::kTransient);
    f.http(503, "Service Unavailable");
    f.ok(kUpid);
    auto r = f.pve.call(Method::kPost, "/nodes/pve/lxc/101/status/start");
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(f.seen.size(), 4u);
  }
  {
    Fixture f;  // sent, no answer: it may have been done, so it is not sent again
    f.fail(ErrorKind::kTimeout);
    auto r = f.pve.call(Method::kPost, "/nodes/pve/lxc", {{"vmid", "101"}});
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind(), ErrorKind::kTimeout);
    EXPECT_EQ(f.seen.size(), 1u);
  }
  {
    Fixture f;  // the retries run out
    for (int i = 0; i < 5; ++i) f.http(503, "Service Unavailable");
    auto r = f.pve.call(Method::kPut, "/nodes/pve/lxc/101/config");
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(r.error().retryable());
    EXPECT_EQ(f.seen.size(), 5u);
  }
}

TEST(Pve, RepeatableWritesAreRetriedAsReads) {
  {
    Fixture f;  // a 500 and a lost answer: it may have run, and may run again
    f.http(500, "Internal Server Error");
    f.fail(ErrorKind::kTimeout);
    f.ok(json{{"pid", 42}});
    auto r = f.pve.call_repeatable(Method::kPost, "/nodes/pve/qemu/1001/agent/exec");
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ((*r)["pid"], 42);
    EXPECT_EQ(f.seen.size(), 3u);
  }
  {
    Fixture f;  // an ordinary write stops at the 500
    f.http(500, "Internal Server Error");
    f.ok(json{{"pid", 42}});
    EXPECT_FALSE(f.pve.call(Method::kPost, "/nodes/pve/qemu/1001/agent/exec").has_value());
    EXPECT_EQ(f.seen.size(), 1u);
  }
  {
    Fixture f;  // a refusal is not retried either way
    f.http(400, "Parameter verification failed.");
    EXPECT_FALSE(f.pve.call_repeatable(Method::kPost, "/nodes/pve/qemu/1001/agent/exec"));
    EXPECT_EQ(f.seen.size(), 1u);
  }
}

TEST(Pve, WaitsForTheTaskOnItsOwnNode) {
  Fixture f;
  f.ok(json{{"status", "running"}});
  f.ok(json{{"status", "running"}});
  f.ok(json{{"status", "stopped"}, {"exitstatus", "WARNINGS: 2"}});
  auto r = f.pve.wait_task(kUpid, std::chrono::seconds(10), std::chrono::milliseconds(100));
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->ok());
  EXPECT_TRUE(r->warnings());
  EXPECT_EQ(r->upid.node, "pve2");
  EXPECT_EQ(f.seen[0].path, std::string("/nodes/pve2/tasks/") + kUpid + "/status");
  EXPECT_EQ(f.sleeps.size(), 2u);
}

TEST(Pve, TaskDeadlineAndFailure) {
  {
    Fixture f;
    f.ok(json{{"status", "running"}});
    auto r = f.pve.wait_task(kUpid, std::chrono::milliseconds(0));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind(), ErrorKind::kTimeout);
    EXPECT_EQ(r.error().message(),
              std::string("task ") + kUpid + " on node pve2 still runs after 0 ms");
  }
  {
    Fixture f;
    f.ok(kUpid);
    f.ok(json{{"status", "stopped"}, {"exitstatus", "unable to create CT 101 - no space"}});
    f.ok(json::array({json{{"n", 1}, {"t", "extracting archive"}},
                      json{{"n", 2}, {"t", "TASK ERROR: no space left on device"}}}));
    auto r =
        f.pve.run_task(Method::kPost, "/nodes/pve/lxc", {{"vmid", "101"}}, std::chrono::seconds(5));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().message(),
              std::string("POST /nodes/pve/lxc: task ") + kUpid +
                  " failed: unable to create CT 101 - no space (log: TASK ERROR: no space left "
                  "on device)");
  }
}

TEST(Pve, UpidsAndRoutes) {
  auto u = parse_upid(kUpid);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->node, "pve2");
  EXPECT_EQ(u->type, "vzcreate");
  EXPECT_EQ(u->id, "101");
  EXPECT_FALSE(parse_upid("UPID:short").has_value());
  EXPECT_FALSE(parse_upid("not a upid").has_value());
  EXPECT_EQ(route_key(Method::kGet, "/nodes/pve/qemu/1001/config"),
            "GET /nodes/{node}/qemu/{vmid}/config");
  EXPECT_EQ(route_key(Method::kGet, "/cluster/resources"), "GET /cluster/resources");
}

class SecretFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("phoenix-pve-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "secret").string();
    std::ofstream(path_) << "s3cr3t-token-value\n";
    ::chmod(path_.c_str(), 0600);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  ClientOptions options() const {
    ClientOptions o;
    o.url = "https://127.0.0.1:8006";
    o.token_id = "root@pam!phoenix";
    o.token_secret_file = path_;
    return o;
  }
  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(SecretFile, ClientOptionsAreChecked) {
  EXPECT_TRUE(make_pve_client(options()).has_value());
  ClientOptions o = options();
  o.url = "http://127.0.0.1:8006";
  EXPECT_EQ(make_pve_client(o).error().message(),
            "proxmox_api.url \"http://127.0.0.1:8006\" is not an https:// URL such as "
            "https://10.0.0.13:8006");
  o = options();
  o.token_id = "root@pam";
  EXPECT_EQ(make_pve_client(o).error().kind(), ErrorKind::kInvalidInput);
  o = options();
  o.fingerprint = "AB:CD";
  EXPECT_EQ(make_pve_client(o).error().message(),
            "proxmox_api.fingerprint is not a SHA-256 fingerprint (32 bytes in hex, as "
            "`pvenode cert info` prints it)");
  ::chmod(path_.c_str(), 0644);
  auto r = make_pve_client(options());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message(), "proxmox_api.token_secret_file " + path_ +
                                     " has mode 0644: others can read the secret; chmod 600 it");
  EXPECT_EQ(r.error().message().find("s3cr3t"), std::string::npos);
}

TEST_F(SecretFile, ConnectionRefusedIsRetryableAndNeverShowsTheSecret) {
  ClientOptions o = options();
  o.url = "https://127.0.0.1:1";  // nothing listens on port 1
  o.connect_timeout = std::chrono::milliseconds(2000);
  auto t = make_pve_client(o);
  ASSERT_TRUE(t.has_value());
  auto r = (*t)->send(Request{Method::kGet, "/version"});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind(), ErrorKind::kTransient);
  EXPECT_NE(r.error().message().find("GET /version on https://127.0.0.1:1: "), std::string::npos)
      << r.error().message();
  EXPECT_EQ(r.error().message().find("s3cr3t"), std::string::npos);
}

TEST(Pve, Fingerprints) {
  auto fp = parse_fingerprint(
      "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:"
      "67:89");
  ASSERT_TRUE(fp.has_value());
  EXPECT_EQ(fp->size(), 32u);
  EXPECT_EQ(static_cast<unsigned char>((*fp)[0]), 0xAB);
  EXPECT_FALSE(parse_fingerprint("zz").has_value());
}

}  // namespace
}  // namespace phoenix::proxmox
