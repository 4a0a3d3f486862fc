#include <algorithm>
#include <cctype>
#include <thread>

#include "base/strings.h"
#include "base/tally.h"
#include "providers/proxmox/api.h"

namespace phoenix::proxmox {
namespace {

using base::Error;
using base::ErrorKind;
using base::Result;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

bool is_mutating(Method m) { return m != Method::kGet; }

bool contains(std::string_view text, std::string_view what) {
  return text.find(what) != std::string_view::npos;
}

// Whether a failed request was certainly not carried out, so that sending it again is safe.
// `e` is http_error's for an answer (status > 0): a 500 is transient only for a guest lock
// that another task held.
bool not_carried_out(const Error& e, int status) {
  if (status == 0) return e.kind() == ErrorKind::kTransient;
  if (status == 502 || status == 503 || status == 504 || status == 596) return true;
  return status == 500 && e.kind() == ErrorKind::kTransient;
}

Error http_error(const Request& r, const std::string& endpoint, const Response& resp) {
  std::string message = std::string(to_string(r.method)) + " " + r.path + " on " + endpoint + ": " +
                        std::to_string(resp.status);
  json body = json::parse(resp.body, nullptr, false);
  // Proxmox puts its message in the status line; a body's "message" (what servers that cannot
  // set the status line's text send, pve-sim among them) says the same, and wins.
  std::string reason = resp.reason;
  if (!body.is_discarded() && body.is_object() && body.contains("message") &&
      body["message"].is_string() && !body["message"].get<std::string>().empty()) {
    reason = std::string(base::trim(body["message"].get<std::string>()));
  }
  if (!reason.empty()) message += " " + reason;
  if (!body.is_discarded() && body.is_object() && body.contains("errors") &&
      body["errors"].is_object()) {
    std::vector<std::string> parts;
    for (const auto& [k, v] : body["errors"].items()) {
      parts.push_back(k + ": " + (v.is_string() ? v.get<std::string>() : v.dump()));
    }
    if (!parts.empty()) message += " (" + base::join(parts, "; ") + ")";
  }
  ErrorKind kind = ErrorKind::kInternal;
  int s = resp.status;
  if (s == 400) kind = ErrorKind::kInvalidInput;
  if (s == 401 || s == 403) kind = ErrorKind::kPermission;
  if (s == 404 || s == 501) kind = ErrorKind::kNotFound;
  if (s == 502 || s == 503 || s == 504 || s == 596) kind = ErrorKind::kTransient;
  if (s == 500 && contains(reason, "got timeout") && contains(reason, "lock")) {
    kind = ErrorKind::kTransient;  // another task holds the guest's lock
  }
  if (s == 500 && contains(reason, "already exists")) kind = ErrorKind::kConflict;
  if (s == 401) message += " (check proxmox_api.token_id and token_secret_file)";
  return Error(kind, message);
}

bool is_id_segment(std::string_view prev, std::string_view seg) {
  if (prev == "nodes" || prev == "lxc" || prev == "qemu" || prev == "tasks" || prev == "snapshot" ||
      prev == "storage") {
    return true;
  }
  return !seg.empty() && std::all_of(seg.begin(), seg.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c));
  });
}

}  // namespace

std::string_view to_string(Method method) {
  switch (method) {
    case Method::kGet:
      return "GET";
    case Method::kPost:
      return "POST";
    case Method::kPut:
      return "PUT";
    case Method::kDelete:
      return "DELETE";
  }
  return "?";
}

std::optional<Upid> parse_upid(std::string_view text) {
  if (!text.starts_with("UPID:")) return std::nullopt;
  std::vector<std::string> f = base::split(text, ':');
  // UPID, node, pid, pstart, starttime, type, id, user..., trailing empty
  if (f.size() < 8 || f[1].empty()) return std::nullopt;
  Upid u;
  u.text = std::string(text);
  u.node = f[1];
  u.type = f[5];
  u.id = f[6];
  return u;
}

std::string route_key(Method method, std::string_view path) {
  std::string out(to_string(method));
  out += ' ';
  std::vector<std::string> segs = base::split(path, '/');
  std::string prev;
  for (std::size_t i = 0; i < segs.size(); ++i) {
    const std::string& seg = segs[i];
    if (seg.empty()) continue;
    out += '/';
    if (is_id_segment(prev, seg)) {
      out += prev == "nodes"      ? "{node}"
             : prev == "tasks"    ? "{upid}"
             : prev == "snapshot" ? "{snapname}"
             : prev == "storage"  ? "{storage}"
                                  : "{vmid}";
    } else {
      out += seg;
    }
    prev = seg;
  }
  return out;
}

Pve::Pve(std::unique_ptr<Transport> transport, RetryPolicy retry, Sleep sleep)
    : transport_(std::move(transport)), retry_(retry), sleep_(std::move(sleep)) {
  if (!sleep_) sleep_ = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
}

Result<json> Pve::once(const Request& request, int* status) {
  ++counts_.total;
  if (is_mutating(request.method)) ++counts_.mutating;
  ++counts_.by_route[route_key(request.method, request.path)];
  // The guest agent's calls (commands and files in a VM) are POSTs that change nothing on the
  // node: counted apart from the API's own.
  base::tally_request(
      request.path.find("/agent/") == std::string::npos ? "proxmox" : "proxmox-agent",
      is_mutating(request.method));
  auto resp = transport_->send(request);
  if (!resp) return std::unexpected(resp.error());
  *status = resp->status;
  if (resp->status >= 400) return std::unexpected(http_error(request, describe(), *resp));
  if (resp->body.empty()) return json(nullptr);
  json body = json::parse(resp->body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    return base::fail(ErrorKind::kInternal, std::string(to_string(request.method)) + " " +
                                                request.path + " on " + describe() +
                                                ": the answer is not a JSON object");
  }
  return body.contains("data") ? body["data"] : json(nullptr);
}

Result<json> Pve::call(Method method, std::string_view path, const Params& params) {
  return attempts(method, path, params, false);
}

Result<json> Pve::call_repeatable(Method method, std::string_view path, const Params& params) {
  return attempts(method, path, params, true);
}

Result<json> Pve::attempts(Method method, std::string_view path, const Params& params,
                           bool repeatable) {
  Request request{method, std::string(path), params};
  auto backoff = retry_.first_backoff;
  for (int attempt = 1;; ++attempt) {
    int status = 0;
    auto r = once(request, &status);
    if (r) return r;
    const Error& e = r.error();
    // A read changes nothing (nor does a repeatable call, again), so any server-side failure
    // may be retried.
    bool safe = !is_mutating(method) || repeatable ? e.retryable() || status >= 500
                                                   : not_carried_out(e, status);
    if (!safe || attempt >= retry_.attempts) return r;
    ++counts_.retries;
    sleep_(backoff);
    backoff = std::min(backoff * 2, retry_.max_backoff);
  }
}

Result<TaskResult> Pve::wait_task(const std::string& upid, std::chrono::milliseconds deadline,
                                  std::chrono::milliseconds poll) {
  auto parsed = parse_upid(upid);
  if (!parsed) {
    return base::fail(ErrorKind::kInternal, "\"" + upid + "\" is not a Proxmox task id (UPID)");
  }
  // The task runs on the node that started it, which may not be the one the request went to.
  std::string path = "/nodes/" + parsed->node + "/tasks/" + upid + "/status";
  auto end = Clock::now() + deadline;
  while (true) {
    json status = PHX_TRY(get(path));
    if (status.is_object() && status.value("status", "") == "stopped") {
      TaskResult result{*parsed, status.value("exitstatus", "")};
      if (result.exitstatus.empty()) result.exitstatus = "unknown";
      return result;
    }
    if (Clock::now() >= end) {
      return base::fail(ErrorKind::kTimeout, "task " + upid + " on node " + parsed->node +
                                                 " still runs after " +
                                                 std::to_string(deadline.count()) + " ms");
    }
    sleep_(poll);
  }
}

Result<TaskResult> Pve::run_task(Method method, std::string_view path, const Params& params,
                                 std::chrono::milliseconds deadline) {
  json upid = PHX_TRY(call(method, path, params));
  if (!upid.is_string()) {
    return base::fail(ErrorKind::kInternal, std::string(to_string(method)) + " " +
                                                std::string(path) +
                                                " did not answer with a task id (UPID)");
  }
  TaskResult result = PHX_TRY(wait_task(upid.get<std::string>(), deadline));
  if (result.ok()) return result;
  std::string message = std::string(to_string(method)) + " " + std::string(path) + ": task " +
                        result.upid.text + " failed: " + result.exitstatus;
  // The last lines of its log usually say why.
  auto log = get("/nodes/" + result.upid.node + "/tasks/" + result.upid.text + "/log",
                 {{"limit", "1000"}});
  if (log && log->is_array() && !log->empty()) {
    std::string last = log->back().value("t", "");
    if (!last.empty() && last != result.exitstatus) message += " (log: " + last + ")";
  }
  return base::fail(ErrorKind::kInternal, message);
}

}  // namespace phoenix::proxmox
