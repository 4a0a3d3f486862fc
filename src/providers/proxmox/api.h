#pragma once

// The Proxmox VE API as Phoenix uses it: a Transport sends one request to
// https://<host>:8006/api2/json, and Pve adds what every call needs on top: the {"data": ...}
// envelope, errors that say whether a retry can help, retries with backoff, and waiting for the
// asynchronous task (UPID) a mutating call starts. Pve knows no socket: the real transport is
// PveClient (client.h); tests use pve-sim or their own fake.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"

namespace phoenix::proxmox {

enum class Method { kGet, kPost, kPut, kDelete };
std::string_view to_string(Method method);

// Parameters in order; Proxmox takes them as a form (POST/PUT) or a query (GET/DELETE).
using Params = std::vector<std::pair<std::string, std::string>>;

struct Request {
  Method method = Method::kGet;
  std::string path;  // below /api2/json: "/nodes/pve/lxc"
  Params params = {};
  std::chrono::milliseconds timeout{0};  // 0: the transport's default
};

struct Response {
  int status = 0;
  std::string reason;  // the status line's text: Proxmox puts its error message there
  std::string body;
};

// One Proxmox API endpoint. send() fails only when no complete HTTP response arrived, and says
// whether the request reached the server:
//   kTransient  it did not (cannot connect, TLS handshake failed before sending): safe to retry
//               any request;
//   kTimeout    it was sent but the answer did not come (timeout, connection dropped): the
//               outcome is unknown, so only reads are retried; a caller of a mutating request
//               re-observes instead;
//   kPermission TLS verification failed (wrong CA or fingerprint);
//   kInvalidInput the endpoint itself is wrong.
// Messages never contain the token secret.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual base::Result<Response> send(const Request& request) = 0;
  virtual std::string describe() const = 0;  // "https://10.0.0.13:8006"
};

// A UPID: "UPID:<node>:<pid>:<pstart>:<starttime>:<type>:<id>:<user>:".
struct Upid {
  std::string text;
  std::string node;
  std::string type;  // "vzcreate", "vzstart", ...
  std::string id;    // the guest id, or empty
};
std::optional<Upid> parse_upid(std::string_view text);

// How a finished task ended. exitstatus is "OK", "WARNINGS: <n>", or an error message.
struct TaskResult {
  Upid upid;
  std::string exitstatus;
  bool ok() const { return exitstatus == "OK" || warnings(); }
  bool warnings() const { return exitstatus.starts_with("WARNINGS"); }
};

struct RetryPolicy {
  int attempts = 5;  // including the first
  std::chrono::milliseconds first_backoff{200};
  std::chrono::milliseconds max_backoff{5000};
};

struct RequestCounts {
  std::uint64_t total = 0;
  std::uint64_t mutating = 0;
  std::uint64_t retries = 0;
  std::map<std::string, std::uint64_t> by_route;  // "POST /nodes/{node}/lxc"
};

// "POST /nodes/pve/lxc/101/status/start" -> "POST /nodes/{node}/lxc/{vmid}/status/start".
std::string route_key(Method method, std::string_view path);

// Errors: an HTTP status >= 400 becomes an Error whose message is
//   "<METHOD> <path> on <endpoint>: <status> <Proxmox's message>"
// with the parameter errors of a 400 listed ("net0: invalid format"). Kinds: 400 kInvalidInput,
// 401/403 kPermission, 404/501 kNotFound, a lock timeout ("can't lock file ... got timeout")
// kTransient, "already exists" kConflict, 502/503/504/596 kTransient, other 5xx kInternal.
class Pve {
 public:
  using Sleep = std::function<void(std::chrono::milliseconds)>;

  explicit Pve(std::unique_ptr<Transport> transport, RetryPolicy retry = {}, Sleep sleep = {});

  // The "data" of the answer. Transient failures are retried with exponential backoff: for GET
  // every transport failure and every 5xx; for POST/PUT/DELETE only those that say the request
  // was not carried out
  // (not sent, a lock timeout, 502/503/504/596).
  base::Result<nlohmann::json> call(Method method, std::string_view path,
                                    const Params& params = {});
  // A POST/PUT/DELETE that may be sent again whatever became of the last one, because what it
  // does is idempotent (a guest agent's command that writes the same bytes to the same place):
  // retried as a read is.
  base::Result<nlohmann::json> call_repeatable(Method method, std::string_view path,
                                               const Params& params = {});
  base::Result<nlohmann::json> get(std::string_view path, const Params& params = {}) {
    return call(Method::kGet, path, params);
  }

  // Polls the task on the node named in its UPID until it stops or `deadline` passes (a
  // kTimeout error naming the task). A task that ended with an error is a TaskResult, not an
  // Error: the caller decides.
  base::Result<TaskResult> wait_task(
      const std::string& upid, std::chrono::milliseconds deadline,
      std::chrono::milliseconds poll = std::chrono::milliseconds(250));

  // A mutating call that starts a task, then its wait; a task that failed is an Error
  // (kInternal) quoting its exit status and the task's last log line.
  base::Result<TaskResult> run_task(Method method, std::string_view path, const Params& params,
                                    std::chrono::milliseconds deadline);

  const RequestCounts& counts() const { return counts_; }
  std::string describe() const { return transport_->describe(); }

 private:
  // One attempt; `status` receives the HTTP status (0 when no answer arrived).
  base::Result<nlohmann::json> once(const Request& request, int* status);
  base::Result<nlohmann::json> attempts(Method method, std::string_view path, const Params& params,
                                        bool repeatable);

  std::unique_ptr<Transport> transport_;
  RetryPolicy retry_;
  Sleep sleep_;
  RequestCounts counts_;
};

}  // namespace phoenix::proxmox
