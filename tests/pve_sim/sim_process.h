#pragma once

// Test harness: the real pve-sim binary as a child process on 127.0.0.1, port 0, with its own
// temporary state dir, and a small libcurl client that trusts the certificate it generated.
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace phoenix::pvesim::testing {

inline constexpr const char* kToken = "phoenix@pve!ci";
inline constexpr const char* kSecret = "5ecr3t-0000-1111";

class SimProcess {
 public:
  // Creates a fresh state dir; `start` runs the server in it.
  SimProcess();
  ~SimProcess();  // stops the server (SIGTERM, then SIGKILL) and removes the state dir
  SimProcess(const SimProcess&) = delete;
  SimProcess& operator=(const SimProcess&) = delete;

  // Starts pve-sim with `extra` flags and waits for its "listening" line. Returns false (with a
  // gtest failure) when it does not come up within the deadline.
  bool start(std::vector<std::string> extra = {});
  void stop();

  int port() const { return port_; }
  const std::filesystem::path& state_dir() const { return dir_; }
  std::string base_url() const;

 private:
  std::filesystem::path dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

struct HttpResult {
  int curl_code = 0;  // CURLcode; 0 when an answer came
  long status = 0;
  nlohmann::json body;
  std::string raw;
};

// One HTTPS request to the simulator; `params` go to the query string for GET/DELETE and to a
// form body otherwise. `auth` empty sends no Authorization header.
HttpResult call(const SimProcess& sim, const std::string& method, const std::string& path,
                const std::map<std::string, std::string>& params = {},
                const std::string& auth = std::string("PVEAPIToken=") + kToken + "=" + kSecret);

// Polls the task's status until it is stopped or `deadline` passes; returns the last status.
nlohmann::json wait_task(const SimProcess& sim, const std::string& upid,
                         std::chrono::milliseconds deadline = std::chrono::seconds(20));

}  // namespace phoenix::pvesim::testing
