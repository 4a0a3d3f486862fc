#include "api.h"

#include <cstdlib>
#include <thread>

namespace phoenix::pvesim {

using nlohmann::json;

std::string ApiResponse::body() const {
  json j = json::object();
  j["data"] = data;
  if (!errors.is_null()) {
    j["errors"] = errors;
  } else if (status >= 400) {
    j["message"] = message + "\n";
  }
  for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
  return j.dump();
}

Simulator::Simulator(SimOptions opts, ApiSchema schema, std::unique_ptr<StateStore> store,
                     FaultOptions faults)
    : opts_(std::move(opts)),
      schema_(std::move(schema)),
      store_(std::move(store)),
      faults_(faults),
      tasks_(opts_.task_duration, faults_, locks_) {
  register_cluster_routes();
  register_guest_routes("lxc");
  register_guest_routes("qemu");
  register_agent_routes();
  register_firewall_routes();
}

void Simulator::route(const std::string& method, const std::string& path_template, Handler h) {
  routes_[method + " " + path_template] = std::move(h);
}

namespace {

// "PVEAPIToken=user@realm!tokenid=secret" -> {"user@realm!tokenid", "secret"}.
std::pair<std::string, std::string> parse_token(const std::string& header) {
  static constexpr std::string_view kPrefix = "PVEAPIToken=";
  if (!header.starts_with(kPrefix)) return {};
  std::string rest = header.substr(kPrefix.size());
  auto bang = rest.find('!');
  if (bang == std::string::npos) return {};
  auto sep = rest.find_first_of("=:", bang);
  if (sep == std::string::npos) return {};
  return {rest.substr(0, sep), rest.substr(sep + 1)};
}

}  // namespace

ApiResponse Simulator::handle(const std::string& method, const std::string& path,
                              const std::string& authorization, Params params) {
  // The simulator's own routes: neither counted nor subject to the injected faults.
  if (path.starts_with("/_sim/")) return handle_sim(method, path, authorization, params);
  auto match = schema_.match(method, path);
  {
    std::lock_guard lock(stats_mu_);
    ++requests_[method + " " + (match ? match->method->path_template : path)];
  }
  const auto& fo = faults_.options();
  if (fo.latency.count() > 0) std::this_thread::sleep_for(fo.latency);
  if (faults_.drop_request()) {
    std::lock_guard lock(stats_mu_);
    ++drops_injected_;
    ApiResponse r;
    r.drop = true;
    return r;
  }
  if (faults_.fail_request()) {
    {
      std::lock_guard lock(stats_mu_);
      ++faults_injected_;
    }
    int status = faults_.transient_status();
    return ApiResponse::error(status, status == 503 ? "Service Unavailable (simulated)"
                                                    : "Internal Server Error (simulated)");
  }

  auto [user, secret] = parse_token(authorization);
  auto tok = opts_.tokens.find(user);
  if (authorization.empty()) return ApiResponse::error(401, "No ticket");
  if (user.empty() || tok == opts_.tokens.end() || tok->second != secret) {
    return ApiResponse::error(401, "authentication failure");
  }
  if (!match) {
    return ApiResponse::error(501,
                              "Method '" + method + " /api2/json" + path + "' not implemented");
  }
  for (auto& [k, v] : match->path_params) params[k] = v;
  ParamErrors errors = validate_params(*match->method, params);
  if (!errors.empty()) {
    ApiResponse r = ApiResponse::error(400, "Parameter verification failed.");
    r.errors = errors;
    return r;
  }
  auto h = routes_.find(method + " " + match->method->path_template);
  if (h == routes_.end()) {
    return ApiResponse::error(
        501, "Method '" + method + " /api2/json" + path + "' not implemented (by pve-sim)");
  }
  ApiRequest req{.method = method,
                 .path = path,
                 .schema = match->method,
                 .params = std::move(params),
                 .user = user};
  try {
    return h->second(req);
  } catch (const std::exception& e) {
    return ApiResponse::error(500, e.what());
  }
}

ApiResponse Simulator::handle_sim(const std::string& method, const std::string& path,
                                  const std::string& authorization, const Params& params) {
  if (path == "/_sim/stats" && method == "GET") return ApiResponse::ok(stats_json());
  if (path != "/_sim/faults" || (method != "GET" && method != "PUT")) {
    return ApiResponse::error(
        501, "Method '" + method + " /api2/json" + path + "' not implemented (by pve-sim)");
  }
  auto fault_json = [](const FaultOptions& f) {
    return json{{"fail_rate", f.fail_rate},
                {"drop_rate", f.drop_rate},
                {"task_fail_rate", f.task_fail_rate},
                {"lock_rate", f.lock_rate},
                {"latency_ms", f.latency.count()}};
  };
  if (method == "GET") return ApiResponse::ok(fault_json(faults_.options()));
  // Changing them needs a token, as the API does.
  auto [user, secret] = parse_token(authorization);
  auto tok = opts_.tokens.find(user);
  if (user.empty() || tok == opts_.tokens.end() || tok->second != secret) {
    return ApiResponse::error(401, "authentication failure");
  }
  FaultOptions next = faults_.options();
  ParamErrors errors;
  for (const auto& [key, value] : params) {
    double* rate = key == "fail_rate"        ? &next.fail_rate
                   : key == "drop_rate"      ? &next.drop_rate
                   : key == "task_fail_rate" ? &next.task_fail_rate
                   : key == "lock_rate"      ? &next.lock_rate
                                             : nullptr;
    char* end = nullptr;
    double v = std::strtod(value.c_str(), &end);
    bool number = !value.empty() && end == value.c_str() + value.size();
    if (rate != nullptr) {
      if (!number || v < 0 || v > 1)
        errors[key] = "a fraction from 0 to 1";
      else
        *rate = v;
    } else if (key == "latency_ms") {
      if (!number || v < 0 || v > 60000)
        errors[key] = "milliseconds from 0 to 60000";
      else
        next.latency = std::chrono::milliseconds(static_cast<long>(v));
    } else {
      errors[key] =
          "property is not defined in schema and the schema does not allow additional "
          "properties";
    }
  }
  if (!errors.empty()) {
    ApiResponse r = ApiResponse::error(400, "Parameter verification failed.");
    r.errors = errors;
    return r;
  }
  faults_.set_options(next);
  return ApiResponse::ok(fault_json(next));
}

bool Simulator::inject_lock(int vmid) {
  if (!faults_.lock_guest()) return false;
  if (!locks_.hold_for(vmid, opts_.lock_wait + std::chrono::milliseconds(100))) return false;
  std::lock_guard lock(stats_mu_);
  ++locks_injected_;
  return true;
}

json Simulator::stats_json() const {
  std::lock_guard lock(stats_mu_);
  return json{{"requests", requests_},
              {"faults_injected", faults_injected_},
              {"drops_injected", drops_injected_},
              {"locks_injected", locks_injected_},
              {"tasks_started", tasks_.started()},
              {"tasks_failed", tasks_.failed()},
              {"tasks_running", tasks_.running()}};
}

void Simulator::register_cluster_routes() {
  route("GET", "/version", [](const ApiRequest&) {
    return ApiResponse::ok(
        {{"version", "8.2.4"}, {"release", "8.2"}, {"repoid", "faa83925c9641325"}});
  });

  route("GET", "/cluster/nextid", [this](const ApiRequest& req) {
    auto guests = store_->list();
    auto taken = [&](int id) {
      for (const auto& g : guests)
        if (g.vmid == id) return true;
      return false;
    };
    if (auto v = req.params.find("vmid"); v != req.params.end()) {
      int id = std::stoi(v->second);
      if (taken(id)) {
        ApiResponse r = ApiResponse::error(400, "Parameter verification failed.");
        r.errors = {{"vmid", "VM " + std::to_string(id) + " already exists"}};
        return r;
      }
      return ApiResponse::ok(std::to_string(id));
    }
    int id = 100;
    while (taken(id)) ++id;
    return ApiResponse::ok(std::to_string(id));
  });

  route("GET", "/cluster/resources", [this](const ApiRequest& req) {
    std::string type = req.params.contains("type") ? req.params.at("type") : "";
    json out = json::array();
    if (type.empty() || type == "node") {
      out.push_back({{"id", "node/" + opts_.node},
                     {"type", "node"},
                     {"node", opts_.node},
                     {"status", "online"},
                     {"maxcpu", 16},
                     {"maxmem", 68719476736LL},
                     {"level", ""}});
    }
    if (type.empty() || type == "vm") {
      for (const auto& g : store_->list()) {
        json r{{"id", g.type + "/" + std::to_string(g.vmid)},
               {"type", g.type},
               {"vmid", g.vmid},
               {"node", g.node},
               {"status", g.status},
               {"template", g.is_template() ? 1 : 0}};
        auto cfg = [&](const char* k, const char* def) {
          auto it = g.config.find(k);
          return it == g.config.end() ? std::string(def) : it->second;
        };
        r["name"] =
            cfg(g.type == "lxc" ? "hostname" : "name", ("CT" + std::to_string(g.vmid)).c_str());
        r["maxcpu"] = std::stoi(cfg("cores", "1"));
        r["maxmem"] = std::stoll(cfg("memory", "512")) * 1024 * 1024;
        if (g.config.contains("tags")) r["tags"] = g.config.at("tags");
        if (g.config.contains("lock")) r["lock"] = g.config.at("lock");
        r["uptime"] = g.status == "running" ? std::time(nullptr) - g.started_at : 0;
        out.push_back(std::move(r));
      }
    }
    if (type.empty() || type == "storage") {
      out.push_back({{"id", "storage/" + opts_.node + "/local-lvm"},
                     {"type", "storage"},
                     {"storage", "local-lvm"},
                     {"node", opts_.node},
                     {"status", "available"}});
    }
    return ApiResponse::ok(out);
  });

  auto find_task = [this](const ApiRequest& req) -> std::optional<TaskInfo> {
    if (req.params.at("node") != opts_.node) return std::nullopt;
    return tasks_.get(req.params.at("upid"));
  };
  route("GET", "/nodes/{node}/tasks/{upid}/status", [find_task](const ApiRequest& req) {
    auto t = find_task(req);
    if (!t) return ApiResponse::error(500, "no such task");
    return ApiResponse::ok(t->status_json());
  });
  route("GET", "/nodes/{node}/tasks/{upid}/log", [find_task](const ApiRequest& req) {
    auto t = find_task(req);
    if (!t) return ApiResponse::error(500, "no such task");
    std::size_t start = req.params.contains("start") ? std::stoul(req.params.at("start")) : 0;
    std::size_t limit = req.params.contains("limit") ? std::stoul(req.params.at("limit")) : 50;
    json lines = json::array();
    for (std::size_t i = start; i < t->log.size() && lines.size() < limit; ++i) {
      lines.push_back({{"n", i + 1}, {"t", t->log[i]}});
    }
    ApiResponse r = ApiResponse::ok(lines);
    r.extra["total"] = t->log.size();
    return r;
  });
}

}  // namespace phoenix::pvesim
