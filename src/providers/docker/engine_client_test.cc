#include "providers/docker/engine_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace phoenix::docker {
namespace {

namespace fs = std::filesystem;
using base::ErrorKind;
using nlohmann::json;
using std::chrono::milliseconds;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "phoenix-engine-client-XXXXXX").string();
    if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::vector<char*> argv_of(std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return argv;
}

// Runs a program found on PATH with an argument vector (no shell), its output appended to `log`;
// returns its exit status, or -1 if it could not run.
int run(std::vector<std::string> args, const fs::path& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char*> argv = argv_of(args);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A throwaway PKI: a CA that signs the server and the client, and another CA (with a client of
// its own) that nobody trusts.
constexpr std::string_view kOpensslConfig = R"([req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
authorityKeyIdentifier = keyid
[client]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
)";

void make_pki(const fs::path& dir) {
  fs::path config = dir / "openssl.cnf";
  std::ofstream(config) << kOpensslConfig;
  fs::path log = dir / "openssl.log";
  auto openssl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "openssl");
    std::string line;
    for (const std::string& a : args) line += a + " ";
    ASSERT_EQ(run(args, log), 0) << line << "\n" << slurp(log);
  };
  const std::vector<std::string> new_key = {"-newkey", "ec", "-pkeyopt",
                                            "ec_paramgen_curve:prime256v1", "-nodes"};
  auto make_ca = [&](const std::string& name) {
    std::vector<std::string> args = {"req",           "-x509",       "-config",
                                     config.string(), "-extensions", "ca"};
    args.insert(args.end(), new_key.begin(), new_key.end());
    args.insert(args.end(), {"-keyout", (dir / (name + ".key")).string(), "-out",
                             (dir / (name + ".pem")).string(), "-days", "1", "-subj",
                             "/CN=Phoenix test " + name});
    openssl(args);
  };
  auto make_leaf = [&](const std::string& name, const std::string& ca, const std::string& ext,
                       const std::string& cn) {
    std::vector<std::string> args = {"req", "-new", "-config", config.string()};
    args.insert(args.end(), new_key.begin(), new_key.end());
    args.insert(args.end(), {"-keyout", (dir / (name + ".key")).string(), "-out",
                             (dir / (name + ".csr")).string(), "-subj", "/CN=" + cn});
    openssl(args);
    openssl({"x509", "-req", "-in", (dir / (name + ".csr")).string(), "-CA",
             (dir / (ca + ".pem")).string(), "-CAkey", (dir / (ca + ".key")).string(),
             "-set_serial", "2", "-days", "1", "-extfile", config.string(), "-extensions", ext,
             "-out", (dir / (name + ".pem")).string()});
  };
  ASSERT_NO_FATAL_FAILURE(make_ca("ca"));
  ASSERT_NO_FATAL_FAILURE(make_ca("other-ca"));
  ASSERT_NO_FATAL_FAILURE(make_leaf("server", "ca", "server", "localhost"));
  ASSERT_NO_FATAL_FAILURE(make_leaf("client", "ca", "client", "phoenix"));
  ASSERT_NO_FATAL_FAILURE(make_leaf("other-client", "other-ca", "client", "stranger"));
}

// A port on 127.0.0.1 that was free a moment ago and has no listener now.
int closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

// tests/tools/tls_echo_server.py in a process of its own: started with an argument vector, its
// port read from its first line of output within a deadline, killed when this object goes.
class EchoServer {
 public:
  ~EchoServer() { stop(); }

  void start(const fs::path& dir, bool stall) {
    std::vector<std::string> args = {
        "/usr/bin/python3",
        std::string(PHOENIX_SOURCE_DIR) + "/tests/tools/tls_echo_server.py",
        "--cert",
        (dir / "server.pem").string(),
        "--key",
        (dir / "server.key").string(),
        "--ca",
        (dir / "ca.pem").string()};
    if (stall) args.push_back("--stall");
    log_ = dir / "server.log";

    // Close-on-exec, so that no other child inherits them; dup2 into the child's 0 and 1
    // clears the flag there. The server exits when its stdin (our end: stdin_) closes.
    int in[2], out[2];
    ASSERT_EQ(::pipe2(in, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addopen(&actions, 2, log_.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    std::vector<char*> argv = argv_of(args);
    int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = in[1];
    ASSERT_EQ(rc, 0) << "cannot start " << args[0] << ": " << std::strerror(rc);

    std::string line;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!line.ends_with('\n')) {
      auto left =
          std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{.fd = out[0], .events = POLLIN, .revents = 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      char c = 0;
      if (::read(out[0], &c, 1) != 1) break;
      line += c;
    }
    ::close(out[0]);
    port_ = std::atoi(line.c_str());
    ASSERT_GT(port_, 0) << "tls_echo_server.py printed no port: \"" << line << "\"\n"
                        << slurp(log_);
  }

  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = 0;
    }
    if (stdin_ >= 0) {
      ::close(stdin_);
      stdin_ = -1;
    }
  }

  int port() const { return port_; }
  std::string log() const { return slurp(log_); }

 private:
  pid_t pid_ = 0;
  int stdin_ = -1;
  int port_ = 0;
  fs::path log_;
};

// ---------------------------------------------------------------------------------------------
// Endpoints checked before any connection.

base::Error endpoint_error(const Endpoint& endpoint) {
  auto client = make_engine_client(endpoint);
  EXPECT_FALSE(client.has_value()) << endpoint.url;
  return client ? base::Error(ErrorKind::kInternal, "no error") : client.error();
}

TEST(EngineClient, RejectsOtherSchemes) {
  const std::string expected =
      ": expected unix:///path/to/docker.sock, or tcp://host:port with ca_file, cert_file and "
      "key_file for mutual TLS";
  for (std::string url : {"http://10.0.0.11:2375", "https://10.0.0.11:2376", "10.0.0.11:2376",
                          "/var/run/docker.sock", ""}) {
    base::Error error = endpoint_error(Endpoint{.url = url});
    EXPECT_EQ(error.kind(), ErrorKind::kInvalidInput);
    EXPECT_EQ(error.message(), "docker endpoint " + url + expected);
  }
  EXPECT_EQ(endpoint_error(Endpoint{.url = "unix://var/run/docker.sock"}).message(),
            "docker endpoint unix://var/run/docker.sock: the socket path must be absolute, as in "
            "unix:///var/run/docker.sock");
  for (std::string url :
       {"tcp://10.0.0.11", "tcp://10.0.0.11:", "tcp://10.0.0.11:http", "tcp://10.0.0.11:65536",
        "tcp://:2376", "tcp://10.0.0.11:2376/v1.41", "tcp://host?x=1:2376", "tcp://::1:2376"}) {
    EXPECT_EQ(endpoint_error(Endpoint{.url = url}).message(),
              "docker endpoint " + url + ": expected tcp://host:port, as in tcp://10.0.0.11:2376");
  }
}

TEST(EngineClient, NeverShowsCredentialsFromTheUrl) {
  base::Error tcp = endpoint_error(Endpoint{.url = "tcp://admin:s3cret@10.0.0.11:2376"});
  EXPECT_EQ(tcp.message(),
            "docker endpoint tcp://***@10.0.0.11:2376: credentials do not belong in the URL; the "
            "client certificate identifies Phoenix");
  base::Error http = endpoint_error(Endpoint{.url = "http://admin:s3cret@10.0.0.11:2375/x@y"});
  EXPECT_FALSE(contains(http.message(), "s3cret")) << http.message();
}

TEST(EngineClient, RefusesPlainTcp) {
  base::Error none = endpoint_error(Endpoint{.url = "tcp://10.0.0.11:2376"});
  EXPECT_EQ(none.kind(), ErrorKind::kInvalidInput);
  EXPECT_FALSE(none.retryable());
  EXPECT_EQ(none.message(),
            "docker endpoint tcp://10.0.0.11:2376: Phoenix does not talk to an engine over plain "
            "TCP; set ca_file, cert_file and key_file for mutual TLS (missing: ca_file, "
            "cert_file, key_file)");
  EXPECT_TRUE(contains(endpoint_error(Endpoint{.url = "tcp://[fd00::11]:2376"}).message(),
                       "Phoenix does not talk to an engine over plain TCP"));
  base::Error some =
      endpoint_error(Endpoint{.url = "tcp://10.0.0.11:2376", .ca_file = "/etc/phoenix/ca.pem"});
  EXPECT_EQ(some.message(),
            "docker endpoint tcp://10.0.0.11:2376: Phoenix does not talk to an engine over plain "
            "TCP; set ca_file, cert_file and key_file for mutual TLS (missing: cert_file, "
            "key_file)");
}

TEST(EngineClient, MissingUnixSocketIsRetryable) {
  TempDir tmp;
  std::string url = "unix://" + (tmp.path() / "docker.sock").string();
  auto client = make_engine_client(Endpoint{.url = url});
  ASSERT_TRUE(client.has_value()) << client.error().message();
  EXPECT_EQ((*client)->describe(), url);
  auto response = (*client)->send(Request{.method = Method::kGet, .path = "/_ping", .query = {}});
  ASSERT_FALSE(response.has_value());
  EXPECT_EQ(response.error().kind(), ErrorKind::kTransient);
  EXPECT_TRUE(response.error().retryable());
  EXPECT_TRUE(response.error().message().starts_with("GET /_ping on " + url + ": "))
      << response.error().message();
}

TEST(EngineClient, SocketWithoutPermissionIsAPermissionError) {
  TempDir tmp;
  // Only the socket's own mode refuses.
  fs::permissions(tmp.path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec);
  fs::path socket_path = tmp.path() / "docker.sock";
  int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  ASSERT_EQ(::chmod(socket_path.c_str(), 0), 0);
  std::string url = "unix://" + socket_path.string();
  auto attempt = [&]() -> std::string {
    auto client = make_engine_client(Endpoint{.url = url});
    if (!client) return "make_engine_client: " + client.error().message();
    auto response = (*client)->send(Request{.method = Method::kGet, .path = "/_ping", .query = {}});
    if (response) return "no error";
    return std::string(base::to_string(response.error().kind())) + ": " +
           response.error().message();
  };
  std::string outcome;
  if (::geteuid() != 0) {
    outcome = attempt();
  } else {
    // Root passes every permission check: try as nobody, in a child.
    int out[2];
    ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(out[0]);
      if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) {
        ::_exit(2);
      }
      std::string text = attempt();
      ssize_t written = ::write(out[1], text.data(), text.size());
      ::_exit(written == static_cast<ssize_t>(text.size()) ? 0 : 3);
    }
    ::close(out[1]);
    char buffer[1024];
    for (ssize_t n; (n = ::read(out[0], buffer, sizeof buffer)) > 0;) outcome.append(buffer, n);
    ::close(out[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  }
  ::close(listener);
  EXPECT_EQ(outcome, "permission denied: GET /_ping on " + url +
                         ": cannot connect to the socket: Permission denied (the socket admits "
                         "root and the members of its group)");
}

// ---------------------------------------------------------------------------------------------
// The local engine.

TEST(EngineClient, LocalEngine) {
  std::string url = "unix:///var/run/docker.sock";
  if (const char* host = std::getenv("DOCKER_HOST");
      host && std::string(host).starts_with("unix://")) {
    url = host;
  }
  auto client = make_engine_client(Endpoint{.url = url});
  ASSERT_TRUE(client.has_value()) << client.error().message();
  Engine engine(std::move(*client));

  auto version = engine.api_version();
  if (!version) {
    const char* ci = std::getenv("CI");
    std::string why = "no Docker Engine answers on " + url + ": " + version.error().message();
    if (ci != nullptr && std::string(ci) == "true") {
      FAIL() << why << "\nCI=true needs one: start dockerd (scripts/test.sh starts it) or set "
             << "DOCKER_HOST to the unix:// socket of a running engine";
    }
    GTEST_SKIP() << why;
  }
  EXPECT_GE(compare_api_versions(*version, kMinApiVersion), 0) << *version;
  EXPECT_LE(compare_api_versions(*version, kMaxApiVersion), 0) << *version;

  auto about = engine.get("/version");
  ASSERT_TRUE(about.has_value()) << about.error().message();
  ASSERT_TRUE(about->contains("ApiVersion")) << about->dump();
  EXPECT_TRUE((*about)["ApiVersion"].is_string()) << about->dump();

  // A filter with characters that must be escaped in a query: braces, quotes, '=', '"'.
  std::string label = "phoenix.test.nonexistent=" + std::to_string(::getpid()) + "-" +
                      std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
  json filters = {{"label", json::array({label})}};
  auto containers = engine.get("/containers/json", {{"all", "1"}, {"filters", filters.dump()}});
  ASSERT_TRUE(containers.has_value()) << containers.error().message();
  EXPECT_EQ(*containers, json::array());

  auto missing =
      engine.get("/containers/phoenix-test-no-such-container-" + label.substr(25) + "/json");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().kind(), ErrorKind::kNotFound);
  EXPECT_EQ(engine.counts().total, 4u);
}

// ---------------------------------------------------------------------------------------------
// Mutual TLS against tests/tools/tls_echo_server.py.

class EngineClientTls : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tmp_.path().empty()) << "cannot create a temporary directory";
    ASSERT_NO_FATAL_FAILURE(make_pki(tmp_.path()));
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "server log:\n" << server_.log();
    server_.stop();
  }

  std::string file(const std::string& name) const { return (tmp_.path() / name).string(); }
  std::string url() const { return "tcp://127.0.0.1:" + std::to_string(server_.port()); }
  Endpoint endpoint(const std::string& ca = "ca.pem", const std::string& client = "client") const {
    return Endpoint{.url = url(),
                    .ca_file = file(ca),
                    .cert_file = file(client + ".pem"),
                    .key_file = file(client + ".key")};
  }
  std::unique_ptr<Transport> client(const Endpoint& e) {
    auto made = make_engine_client(e);
    EXPECT_TRUE(made.has_value()) << made.error().message();
    return made ? std::move(*made) : nullptr;
  }

  TempDir tmp_;  // destroyed after server_, which writes its log there
  EchoServer server_;
};

TEST_F(EngineClientTls, MutualTlsNegotiatesAndReads) {
  ASSERT_NO_FATAL_FAILURE(server_.start(tmp_.path(), false));
  auto transport = client(endpoint());
  ASSERT_TRUE(transport);
  EXPECT_EQ(transport->describe(), url() + " (TLS)");
  Engine engine(std::move(transport));
  auto version = engine.api_version();
  ASSERT_TRUE(version.has_value()) << version.error().message();
  EXPECT_EQ(*version, "1.41");
  auto about = engine.get("/version");
  ASSERT_TRUE(about.has_value()) << about.error().message();
  EXPECT_EQ((*about)["ApiVersion"], "1.41");
  auto missing = engine.get("/services");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().message(), "GET /services on " + url() + " (TLS): 404 page not found");
}

TEST_F(EngineClientTls, SendsMethodQueryBodyAndHeadersOnOneConnection) {
  ASSERT_NO_FATAL_FAILURE(server_.start(tmp_.path(), false));
  auto transport = client(endpoint());
  ASSERT_TRUE(transport);
  auto echo = [&](Request request) -> json {
    auto response = transport->send(request);
    EXPECT_TRUE(response.has_value()) << response.error().message();
    if (!response) return nullptr;
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->headers["content-type"], "application/json");  // names lower-cased
    return json::parse(response->body);
  };

  json post = echo(Request{.method = Method::kPost,
                           .path = "/v1.41/echo/services/create",
                           .query = {{"filters", R"({"label":["a=b c&d"]})"}, {"all", "1"}},
                           .body = R"({"Name":"web"})",
                           .headers = {{"X-Registry-Auth", "e30="}}});
  EXPECT_EQ(post["method"], "POST");
  EXPECT_EQ(
      post["target"],
      "/v1.41/echo/services/create?filters=%7B%22label%22%3A%5B%22a%3Db%20c%26d%22%5D%7D&all=1");
  EXPECT_EQ(post["body"], R"({"Name":"web"})");
  EXPECT_EQ(post["headers"]["content-type"], "application/json");
  EXPECT_EQ(post["headers"]["x-registry-auth"], "e30=");
  EXPECT_FALSE(post["headers"].contains("expect"));

  json get = echo(Request{.method = Method::kGet, .path = "/v1.41/echo/nodes", .query = {}});
  EXPECT_EQ(get["method"], "GET");
  EXPECT_EQ(get["target"], "/v1.41/echo/nodes");
  EXPECT_FALSE(get["headers"].contains("content-type"));
  // Kept alive: the second request came over the first one's connection.
  EXPECT_EQ(get["client_port"], post["client_port"]);

  json put = echo(Request{.method = Method::kPut, .path = "/v1.41/echo/x", .query = {}});
  EXPECT_EQ(put["method"], "PUT");
  EXPECT_EQ(put["headers"]["content-length"], "0");
  json del = echo(Request{
      .method = Method::kDelete, .path = "/v1.41/echo/networks/n1", .query = {{"force", "true"}}});
  EXPECT_EQ(del["method"], "DELETE");
  EXPECT_EQ(del["target"], "/v1.41/echo/networks/n1?force=true");

  auto head = transport->send(Request{.method = Method::kHead, .path = "/_ping", .query = {}});
  ASSERT_TRUE(head.has_value()) << head.error().message();
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->body, "");
  EXPECT_EQ(head->headers["api-version"], "1.41");
}

TEST_F(EngineClientTls, MissingTlsFilesAreRefusedBeforeConnecting) {
  ASSERT_NO_FATAL_FAILURE(server_.start(tmp_.path(), false));
  base::Error none = endpoint_error(Endpoint{.url = url()});
  EXPECT_EQ(none.kind(), ErrorKind::kInvalidInput);
  EXPECT_EQ(none.message(),
            "docker endpoint " + url() +
                ": Phoenix does not talk to an engine over plain TCP; set ca_file, cert_file and "
                "key_file for mutual TLS (missing: ca_file, cert_file, key_file)");

  Endpoint absent = endpoint();
  absent.key_file = file("nope.key");
  base::Error missing = endpoint_error(absent);
  EXPECT_EQ(missing.kind(), ErrorKind::kInvalidInput);
  EXPECT_EQ(missing.message(),
            "docker endpoint " + url() + ": key_file " + file("nope.key") + " does not exist");

  Endpoint directory = endpoint();
  directory.ca_file = tmp_.path().string();
  EXPECT_EQ(endpoint_error(directory).message(),
            "docker endpoint " + url() + ": ca_file " + tmp_.path().string() + " is a directory");
  // None of these reached the server.
  EXPECT_FALSE(contains(server_.log(), "tls_echo_server:")) << server_.log();
}

TEST_F(EngineClientTls, ServerSignedByAnotherCaIsAPermissionError) {
  ASSERT_NO_FATAL_FAILURE(server_.start(tmp_.path(), false));
  auto transport = client(endpoint("other-ca.pem"));
  ASSERT_TRUE(transport);
  auto response = transport->send(Request{.method = Method::kGet, .path = "/_ping", .query = {}});
  ASSERT_FALSE(response.has_value());
  EXPECT_EQ(response.error().kind(), ErrorKind::kPermission);
  EXPECT_FALSE(response.error().retryable());
  const std::string& message = response.error().message();
  EXPECT_TRUE(message.starts_with("GET /_ping on " + url() + " (TLS): SSL certificate problem"))
      << message;
}

// With TLS 1.3 the server refuses the client certificate after the client's handshake is done:
// the client either reads the server's alert (a permission error) or, when the server's close
// overtakes the alert, sees a dropped connection (retryable, with a hint), whichever wins the
// race. Both happen against dockerd too.
TEST_F(EngineClientTls, ClientCertificateTheServerDoesNotTrustIsRefused) {
  ASSERT_NO_FATAL_FAILURE(server_.start(tmp_.path(), false));
  auto transport = client(endpoint("ca.pem", "other-client"));
  ASSERT_TRUE(transport);
  auto response = transport->send(Request{.method = Method::kGet, .path = "/_ping", .query = {}});
  ASSERT_FALSE(response.has_value());
  const std::string& message = response.error().message();
  EXPECT_TRUE(message.starts_with("GET /_ping on " + url() + " (TLS): ")) << message;
  if (response.error().kind() == ErrorKind::kPermission) {
    EXPECT_TRUE(contains(message, "alert unknown ca")) << message;
  } else {
    EXPECT_EQ(response.error().kind(), ErrorKind::kTransient) << message;
    EXPECT_TRUE(message.ends_with(
        "; the engine dropped a new TLS connection: if this persists, it does not accept the "
        "client certificate " +
        file("other-client.pem")))
        << message;
  }
}

TEST_F(EngineClientTls, ServerNotRunningIsRetryable) {
  int port = closed_port();
  ASSERT_GT(port, 0);
  Endpoint e = endpoint();
  e.url = "tcp://127.0.0.1:" + std::to_string(port);
  auto transport = client(e);
  ASSERT_TRUE(transport);
  auto response = transport->send(Request{.method = Method::kGet, .path = "/_ping", .query = {}});
  ASSERT_FALSE(response.has_value());
  EXPECT_EQ(response.error().kind(), ErrorKind::kTransient) << response.error().message();
  EXPECT_TRUE(response.error().retryable());
  EXPECT_TRUE(response.error().message().starts_with("GET /_ping on " + e.url + " (TLS): "))
      << response.error().message();
}

TEST_F(EngineClientTls, StalledServerTimesOut) {
  ASSERT_NO_FATAL_FAILURE(server_.start(tmp_.path(), true));
  Endpoint e = endpoint();
  e.timeout = std::chrono::minutes(5);  // the request's own timeout must win
  auto transport = client(e);
  ASSERT_TRUE(transport);
  auto response = transport->send(
      Request{.method = Method::kGet, .path = "/_ping", .query = {}, .timeout = milliseconds(300)});
  ASSERT_FALSE(response.has_value());
  EXPECT_EQ(response.error().kind(), ErrorKind::kTimeout) << response.error().message();
  EXPECT_TRUE(response.error().retryable());
  EXPECT_TRUE(response.error().message().starts_with("GET /_ping on " + url() + " (TLS): "))
      << response.error().message();
}

}  // namespace
}  // namespace phoenix::docker
