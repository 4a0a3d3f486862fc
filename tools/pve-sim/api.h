#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "faults.h"
#include "schema.h"
#include "state.h"
#include "tasks.h"

namespace phoenix::pvesim {

struct SimOptions {
  std::string node = "pve";
  std::chrono::milliseconds task_duration{200};
  std::chrono::milliseconds lock_wait{10000};
  std::chrono::milliseconds agent_delay{1000};  // a VM's guest agent answers this long after start
  std::map<std::string, std::string> tokens;    // "user@realm!id" -> secret
  // What a VM's agent/exec runs: `agent_exec VMID ARGV...`, input-data on its standard input
  // (a lab points it at whatever stands for the VM). Empty: agent/exec is refused.
  std::string agent_exec;
  // What backs a guest in a lab: `guest_hook start|stop|destroy VMID`, the guest as JSON
  // ({vmid, type, node, config}) on its standard input, run at the end of the task that starts,
  // stops or destroys it; a failure (its exit status and standard error) fails the task and the
  // guest keeps its state. Empty: guests are records only.
  std::string guest_hook;
};

// A program started through a VM's guest agent (agent/exec), as agent/exec-status reports it.
struct AgentExec {
  bool exited = false;
  int exit_code = -1;
  std::string out, err;
};

// A decoded API call, after authentication and schema validation.
struct ApiRequest {
  std::string method;
  std::string path;  // below /api2/json
  const MethodSchema* schema = nullptr;
  Params params;     // path, query and body parameters
  std::string user;  // "user@realm!tokenid"
};

struct ApiResponse {
  int status = 200;
  nlohmann::json data = nullptr;
  std::string message;  // for errors: Proxmox's message (its HTTP reason phrase)
  nlohmann::json errors = nullptr;
  nlohmann::json extra = nlohmann::json::object();  // e.g. "total" of a task log
  bool drop = false;                                // close the connection without answering

  static ApiResponse ok(nlohmann::json data) {
    ApiResponse r;
    r.data = std::move(data);
    return r;
  }
  static ApiResponse error(int status, std::string message) {
    ApiResponse r;
    r.status = status;
    r.message = std::move(message);
    return r;
  }
  std::string body() const;
};

// The simulated API, independent of the HTTP library: authenticates, injects faults, validates
// against the schema and dispatches to the handler of the path template.
class Simulator {
 public:
  Simulator(SimOptions opts, ApiSchema schema, std::unique_ptr<StateStore> store,
            FaultOptions faults);

  // `query` and `body` are already decoded into parameters by the HTTP front.
  ApiResponse handle(const std::string& method, const std::string& path,
                     const std::string& authorization, Params params);

 private:
  using Handler = std::function<ApiResponse(const ApiRequest&)>;
  void route(const std::string& method, const std::string& path_template, Handler h);
  // Runs --guest-hook, when set, for `what` ("start", "stop", "destroy") of `guest`.
  base::Result<void> run_guest_hook(const std::string& what, const Guest& guest);
  void register_cluster_routes();
  void register_guest_routes(const std::string& type);
  void register_agent_routes();
  ApiResponse agent_exec(int vmid, const ApiRequest& req);
  ApiResponse agent_exec_status(const ApiRequest& req);
  void register_firewall_routes();
  // Whether a call that takes the config lock of `vmid` finds it held by another client's
  // (phantom) task instead, per --lock-rate; the phantom keeps it a little longer than the
  // caller waits, so the caller times out as on Proxmox.
  bool inject_lock(int vmid);
  // /_sim/stats (GET, no token) and /_sim/faults (GET; PUT with a token and any of fail_rate,
  // drop_rate, task_fail_rate, lock_rate, latency_ms).
  ApiResponse handle_sim(const std::string& method, const std::string& path,
                         const std::string& authorization, const Params& params);
  nlohmann::json stats_json() const;

  SimOptions opts_;
  ApiSchema schema_;
  std::unique_ptr<StateStore> store_;
  Faults faults_;
  LockTable locks_;
  TaskRunner tasks_;
  std::map<std::string, Handler> routes_;  // "METHOD /path/{template}"
  mutable std::mutex stats_mu_;
  std::map<std::string, std::size_t> requests_;
  std::size_t faults_injected_ = 0;
  std::size_t drops_injected_ = 0;
  std::size_t locks_injected_ = 0;
  std::mutex agent_mu_;
  std::map<long long, std::shared_ptr<AgentExec>> agent_execs_;  // by the agent's pid
  long long next_agent_pid_ = 4000;

  friend class GuestApi;
};

}  // namespace phoenix::pvesim
