#pragma once

// Test harness for the certificate authorities: real servers (pebble, step-ca, dnsmasq) as child
// processes on 127.0.0.1, each test in its own temporary directory, all of it stopped and removed
// when the test ends, whether it passed or not.

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace phoenix::ca::testing {

// A fresh directory under $TMPDIR, removed with everything in it at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A server process in its own process group, its output in `log`. The destructor stops the
// whole group: SIGTERM, then SIGKILL after a deadline. A keeper process does the same if the
// test dies first, even of SIGKILL.
class Child {
 public:
  // Starts argv[0] (an absolute path) with `env` added to the environment.
  static std::unique_ptr<Child> spawn(const std::vector<std::string>& argv,
                                      const std::map<std::string, std::string>& env,
                                      const std::filesystem::path& log);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  bool running();
  void stop();
  std::string log() const;  // what it has printed so far

 private:
  Child() = default;
  pid_t keeper_ = -1;
  pid_t server_ = -1;  // also its process group
  std::filesystem::path log_;
};

// A TCP port on 127.0.0.1 that nothing listens on right now (the kernel's choice for port 0,
// released). `udp_too`: free for UDP as well (a DNS server takes both).
int free_port(bool udp_too = false);

// Polls GET `url` (TLS verified against `roots_file`) until any HTTP answer comes, `child` dies
// or `deadline` passes.
bool wait_for_https(const std::string& url, const std::string& roots_file, Child& child,
                    std::chrono::milliseconds deadline = std::chrono::seconds(30));

// GET `url` verified against `roots_file`: the body, or nullopt unless HTTP 200.
std::optional<std::string> https_get(const std::string& url, const std::string& roots_file);

// The program's absolute path: `env_var` if set, else the first of `candidates` that exists.
std::optional<std::string> find_program(const char* env_var,
                                        const std::vector<std::string>& candidates);

// CI=true: a missing server is a failure there, a skip elsewhere.
bool in_ci();

// A self-signed certificate for 127.0.0.1 and localhost (cert.pem, key.pem in `dir`), made with
// the openssl command, for a test server's own TLS.
bool make_server_cert(const std::filesystem::path& dir);

// dnsmasq on 127.0.0.1:<port>, answering 127.0.0.1 for every name under `domain` (and for
// nothing else), so that a CA validating http-01 comes to 127.0.0.1.
class DnsServer {
 public:
  // nullptr (with a gtest failure) when it cannot be started.
  static std::unique_ptr<DnsServer> start(const std::filesystem::path& dir,
                                          const std::string& domain);
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  std::unique_ptr<Child> child_;
  int port_ = 0;
};

// Runs `argv` and returns its standard output, or nullopt (with a gtest failure) when it fails.
std::optional<std::string> run(const std::vector<std::string>& argv,
                               const std::map<std::string, std::string>& env = {});

}  // namespace phoenix::ca::testing
