#include "ca_env.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace phoenix::ca::testing {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "phoenix-ca-test-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

namespace {

// The keeper: a forked copy of the test that waits for the server to end, and ends the server's
// process group when the test goes away, however it goes (even SIGKILL). Only async-signal-safe
// calls from here on: the test may have other threads.
[[noreturn]] void keep(pid_t server, pid_t test) {
  int since_term_ms = -1;
  while (true) {
    int status = 0;
    if (waitpid(server, &status, WNOHANG) == server) {
      kill(-server, SIGKILL);  // whatever of its group is left
      _exit(0);
    }
    if (since_term_ms < 0 && getppid() != test) {
      kill(-server, SIGTERM);
      since_term_ms = 0;
    }
    if (since_term_ms >= 0 && (since_term_ms += 50) > 10000) kill(-server, SIGKILL);
    poll(nullptr, 0, 50);
  }
}

}  // namespace

std::unique_ptr<Child> Child::spawn(const std::vector<std::string>& argv,
                                    const std::map<std::string, std::string>& env,
                                    const fs::path& log) {
  // Everything the children need is made before fork.
  std::vector<std::string> args = argv;
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    if (!env.contains(kv.substr(0, kv.find('=')))) envs.push_back(kv);
  }
  for (const auto& [k, v] : env) envs.push_back(k + "=" + v);
  std::vector<char*> cenv;
  for (auto& e : envs) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int info[2] = {-1, -1};
  if (out < 0 || in < 0 || pipe2(info, O_CLOEXEC) != 0) {
    for (int fd : {out, in, info[0], info[1]}) {
      if (fd >= 0) close(fd);
    }
    return nullptr;
  }
  pid_t test = getpid();
  pid_t keeper = fork();
  if (keeper == 0) {
    pid_t server = fork();
    if (server == 0) {
      setpgid(0, 0);
      dup2(in, STDIN_FILENO);
      dup2(out, STDOUT_FILENO);
      dup2(out, STDERR_FILENO);
      execve(cargs[0], cargs.data(), cenv.data());
      _exit(127);
    }
    if (server > 0) setpgid(server, server);
    ssize_t n = write(info[1], &server, sizeof server);
    (void)n;
    if (server < 0) _exit(1);
    keep(server, test);
  }
  close(info[1]);
  close(in);
  close(out);
  pid_t server = -1;
  if (keeper > 0) {
    while (read(info[0], &server, sizeof server) < 0 && errno == EINTR) {
    }
  }
  close(info[0]);
  if (keeper < 0 || server <= 0) {
    if (keeper > 0) waitpid(keeper, nullptr, 0);
    return nullptr;
  }
  std::unique_ptr<Child> child(new Child());
  child->keeper_ = keeper;
  child->server_ = server;
  child->log_ = log;
  return child;
}

Child::~Child() { stop(); }

bool Child::running() {
  if (keeper_ <= 0) return false;
  if (waitpid(keeper_, nullptr, WNOHANG) == keeper_) {
    keeper_ = -1;
    return false;
  }
  return true;
}

void Child::stop() {
  if (keeper_ <= 0) return;
  kill(-server_, SIGTERM);
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (waitpid(keeper_, nullptr, WNOHANG) == 0) {
    if (Clock::now() > deadline) {
      kill(-server_, SIGKILL);  // the keeper sees it end and ends too
      waitpid(keeper_, nullptr, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  keeper_ = -1;
}

std::string Child::log() const {
  std::ifstream in(log_);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

namespace {

int bound_port(int type, int port) {
  int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  socklen_t len = sizeof addr;
  int result = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    result = ntohs(addr.sin_port);
  }
  close(fd);
  return result;
}

std::size_t collect(char* data, std::size_t size, std::size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// GET with TLS verified against `roots_file`: {status (0: no answer), body}.
std::pair<long, std::string> get(const std::string& url, const std::string& roots_file) {
  CURL* curl = curl_easy_init();
  std::string body;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CAINFO, roots_file.c_str());
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  long status = 0;
  if (curl_easy_perform(curl) == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  }
  curl_easy_cleanup(curl);
  return {status, body};
}

// Asks the DNS server on 127.0.0.1:`port` for the A record of `name`; true when it answers one.
bool dns_answers(int port, const std::string& name) {
  std::string q = {'\x12', '\x34', '\x01', '\x00', '\x00', '\x01',
                   '\x00', '\x00', '\x00', '\x00', '\x00', '\x00'};
  std::stringstream labels(name);
  for (std::string label; std::getline(labels, label, '.');) {
    q += static_cast<char>(label.size());
    q += label;
  }
  q += std::string("\x00\x00\x01\x00\x01", 5);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  bool ok = false;
  if (sendto(fd, q.data(), q.size(), 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr) ==
      static_cast<ssize_t>(q.size())) {
    pollfd p{fd, POLLIN, 0};
    std::array<unsigned char, 512> buf{};
    if (poll(&p, 1, 200) == 1) {
      ssize_t n = recv(fd, buf.data(), buf.size(), 0);
      // The id matches, it is a response, RCODE 0, ANCOUNT > 0.
      ok = n >= 12 && buf[0] == 0x12 && buf[1] == 0x34 && (buf[2] & 0x80) != 0 &&
           (buf[3] & 0x0f) == 0 && (buf[6] != 0 || buf[7] != 0);
    }
  }
  close(fd);
  return ok;
}

}  // namespace

int free_port(bool udp_too) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    int port = bound_port(SOCK_STREAM, 0);
    if (port <= 0) continue;
    if (!udp_too || bound_port(SOCK_DGRAM, port) == port) return port;
  }
  return -1;
}

bool wait_for_https(const std::string& url, const std::string& roots_file, Child& child,
                    std::chrono::milliseconds deadline) {
  auto until = Clock::now() + deadline;
  while (Clock::now() < until) {
    if (!child.running()) return false;
    if (get(url, roots_file).first != 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::optional<std::string> https_get(const std::string& url, const std::string& roots_file) {
  auto [status, body] = get(url, roots_file);
  if (status != 200) return std::nullopt;
  return body;
}

std::optional<std::string> find_program(const char* env_var,
                                        const std::vector<std::string>& candidates) {
  if (const char* v = std::getenv(env_var); v && *v) {
    if (access(v, X_OK) == 0) return std::string(v);
    return std::nullopt;
  }
  for (const std::string& c : candidates) {
    if (access(c.c_str(), X_OK) == 0) return c;
  }
  return std::nullopt;
}

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

std::optional<std::string> run(const std::vector<std::string>& argv,
                               const std::map<std::string, std::string>& env) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return std::nullopt;
  std::vector<std::string> args = argv;
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    dup2(out[1], STDERR_FILENO);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    execvp(cargs[0], cargs.data());
    _exit(127);
  }
  close(out[1]);
  std::string text;
  std::array<char, 4096> buf{};
  for (ssize_t n; (n = read(out[0], buf.data(), buf.size())) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    text.append(buf.data(), static_cast<std::size_t>(n));
  }
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    ADD_FAILURE() << argv[0] << " failed (status " << status << "); printed: " << text;
    return std::nullopt;
  }
  return text;
}

bool make_server_cert(const fs::path& dir) {
  return run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
              "-nodes", "-days", "2", "-subj", "/CN=phoenix test server", "-addext",
              "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", (dir / "key.pem").string(),
              "-out", (dir / "cert.pem").string()})
      .has_value();
}

std::unique_ptr<DnsServer> DnsServer::start(const fs::path& dir, const std::string& domain) {
  auto dnsmasq = find_program("PHOENIX_DNSMASQ", {"/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"});
  if (!dnsmasq) {
    ADD_FAILURE() << "dnsmasq is not installed (scripts/install-deps.sh installs it)";
    return nullptr;
  }
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto dns = std::make_unique<DnsServer>();
    dns->port_ = free_port(/*udp_too=*/true);
    dns->child_ =
        Child::spawn({*dnsmasq, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                      "--no-hosts", "--no-poll", "--bind-interfaces", "--listen-address=127.0.0.1",
                      "--port=" + std::to_string(dns->port_), "--address=/" + domain + "/127.0.0.1",
                      "--pid-file=", "--log-facility=-"},
                     {}, dir / "dnsmasq.log");
    auto until = Clock::now() + std::chrono::seconds(10);
    while (dns->child_ && dns->child_->running() && Clock::now() < until) {
      if (dns_answers(dns->port_, "probe." + domain)) return dns;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (dns->child_ && dns->child_->running()) {
      ADD_FAILURE() << "dnsmasq does not answer; it said: " << dns->child_->log();
      return nullptr;
    }
    // Exited: most likely the port was taken in between; try another.
  }
  ADD_FAILURE() << "dnsmasq did not start; see " << (dir / "dnsmasq.log");
  return nullptr;
}

}  // namespace phoenix::ca::testing
