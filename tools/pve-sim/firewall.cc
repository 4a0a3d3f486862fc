// The firewall endpoints of the cluster and of each guest, as PVE::API2::Firewall::Cluster, ::VM,
// ::CT and ::Rules implement them: options, and an ordered list of rules addressed by position.
// They run at once and return null (no task), under the firewall's own lock, not the guest's.
#include <algorithm>
#include <functional>
#include <regex>
#include <set>
#include <variant>

#include "api.h"

namespace phoenix::pvesim {

using nlohmann::json;

namespace {

using Rule = std::map<std::string, std::string>;

const char* const kModified =
    "detected modified configuration - file changed by other user? Try again.";

// The fields a rule keeps ($rule_properties of PVE::Firewall, less pos and digest).
const std::vector<std::string>& rule_keys() {
  static const std::vector<std::string> keys = {"type", "action",  "macro",    "iface", "source",
                                                "dest", "proto",   "dport",    "sport", "enable",
                                                "log",  "comment", "icmp-type"};
  return keys;
}

// PVE::Firewall::copy_list_with_digest and copy_opject_with_digest: SHA-1 over each entry's
// "key:value\n" lines in sorted key order.
std::string digest_of(const std::vector<Rule>& rules) {
  std::string text;
  for (const auto& r : rules) {
    for (const auto& [k, v] : r) text += k + ":" + v + "\n";
  }
  return sha1_hex(text);
}

std::string digest_of(const std::map<std::string, std::string>& options) {
  return digest_of(std::vector<Rule>{options});
}

// The {pos} of a rule request, after its digest (when given) was checked: the rule's index, or
// Proxmox's error.
std::variant<std::size_t, ApiResponse> existing_rule(const FwConf& fw, const Params& params) {
  if (auto d = params.find("digest"); d != params.end() && d->second != digest_of(fw.rules)) {
    return ApiResponse::error(500, kModified);
  }
  std::size_t pos = std::stoul(params.at("pos"));
  if (pos >= fw.rules.size()) {
    return ApiResponse::error(500, "no rule at position " + params.at("pos"));
  }
  return pos;
}

json rule_json(const Rule& rule, std::size_t pos, const std::string& digest) {
  json j = json::object();
  for (const auto& [k, v] : rule) {
    if (k == "enable" || k == "ipversion") {
      j[k] = std::stoi(v);
    } else {
      j[k] = v;
    }
  }
  j["pos"] = pos;
  j["digest"] = digest;
  return j;
}

// PVE::Firewall::copy_rule_data: the rule fields among `params`; "" or "-" unsets one.
void copy_rule_data(Rule& rule, const Params& params) {
  for (const auto& k : rule_keys()) {
    auto it = params.find(k);
    if (it == params.end()) continue;
    if (it->second.empty() || it->second == "-") {
      rule.erase(k);
    } else {
      rule[k] = it->second;
    }
  }
}

// 4 or 6 for a list of addresses ("10.0.0.0/24,10.1.0.1"); 0 for aliases and IP sets, whose
// version pve-sim does not know; -1 for a list that mixes both.
int ip_version(const std::string& list) {
  static const std::regex v4(R"(\d+\.\d+\.\d+\.\d+(/\d+)?(-\d+\.\d+\.\d+\.\d+)?)");
  int version = 0;
  std::size_t i = 0;
  while (i <= list.size()) {
    std::size_t j = list.find(',', i);
    if (j == std::string::npos) j = list.size();
    std::string a = list.substr(i, j - i);
    i = j + 1;
    int v = std::regex_match(a, v4) ? 4 : a.find(':') != std::string::npos ? 6 : 0;
    if (v != 0 && version != 0 && v != version) return -1;
    if (v != 0) version = v;
  }
  return version;
}

// The checks of PVE::Firewall::verify_rule that pve-sim makes, in its order; Proxmox raises the
// first problem as a parameter error. Sets ipversion where the addresses tell it.
std::optional<std::pair<std::string, std::string>> verify_rule(Rule& rule, bool guest) {
  auto has = [&](const char* k) { return rule.contains(k) && !rule.at(k).empty(); };
  auto get = [&](const char* k) { return has(k) ? rule.at(k) : std::string(); };
  using Problem = std::pair<std::string, std::string>;
  if (!has("type")) return Problem{"type", "missing property"};
  if (!has("action")) return Problem{"action", "missing property"};
  static const std::regex verdict("ACCEPT|DROP|REJECT");
  if (get("type") != "group" && !std::regex_match(get("action"), verdict)) {
    return Problem{"action", "unknown action '" + get("action") + "'"};
  }
  if (has("iface") && guest && !std::regex_match(get("iface"), std::regex(R"(net\d+)"))) {
    return Problem{"iface", "value does not match the regex pattern 'net\\d+'"};
  }
  static const std::set<std::string> with_ports = {"tcp", "udp", "udplite", "sctp", "dccp",
                                                   "6",   "17",  "136",     "132",  "33"};
  std::string proto = get("proto");
  int version = proto == "icmp" ? 4 : proto == "icmpv6" || proto == "ipv6-icmp" ? 6 : 0;
  for (const char* port : {"dport", "sport"}) {
    if (!has(port)) continue;
    if (proto.empty()) {
      return Problem{"proto",
                     std::string("missing property - '") + port + "' requires this property"};
    }
    bool icmp_dport = std::string(port) == "dport" && (proto == "icmp" || proto == "icmpv6");
    if (!with_ports.contains(proto) && !icmp_dport) {
      return Problem{port, "protocol '" + proto + "' does not support ports"};
    }
  }
  if (has("icmp-type")) {
    if (proto != "icmp" && proto != "icmpv6" && proto != "ipv6-icmp") {
      return Problem{"proto", "missing property - 'icmp-type' requires this property"};
    }
    if (has("dport")) {
      return Problem{"icmp-type", "'icmp-type' cannot be specified together with 'dport'"};
    }
  }
  for (const char* addr : {"source", "dest"}) {
    if (!has(addr)) continue;
    int v = ip_version(get(addr));
    if (v < 0 || (v != 0 && version != 0 && v != version)) {
      return Problem{addr, "detected mixed ipv4/ipv6 addresses in rule"};
    }
    if (v != 0) version = v;
  }
  rule.erase("ipversion");
  if (version != 0) rule["ipversion"] = std::to_string(version);
  return std::nullopt;
}

ApiResponse param_error(const std::string& name, const std::string& message) {
  ApiResponse r = ApiResponse::error(400, "Parameter verification failed.");
  r.errors = {{name, message}};
  return r;
}

std::vector<std::string> split_list(const std::string& list) {
  static const std::regex sep(R"([,;\s]+)");
  std::vector<std::string> out;
  for (std::sregex_token_iterator it(list.begin(), list.end(), sep, -1), end; it != end; ++it) {
    if (!it->str().empty()) out.push_back(it->str());
  }
  return out;
}

std::optional<bool> parse_boolean(std::string v) {
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  if (v == "1" || v == "true" || v == "yes" || v == "on") return true;
  if (v == "0" || v == "false" || v == "no" || v == "off") return false;
  return std::nullopt;
}

}  // namespace

void Simulator::register_firewall_routes() {
  // Where a firewall lives: "cluster", or the vmid of an existing guest on this node.
  using Scope = std::function<std::variant<std::string, ApiResponse>(const ApiRequest&)>;
  Scope cluster = [](const ApiRequest&) -> std::variant<std::string, ApiResponse> {
    return std::string("cluster");
  };
  auto guest_scope = [this](const std::string& type) -> Scope {
    return [this, type](const ApiRequest& req) -> std::variant<std::string, ApiResponse> {
      if (req.params.at("node") != opts_.node) {
        return ApiResponse::error(500, "no such cluster node '" + req.params.at("node") + "'");
      }
      int vmid = std::stoi(req.params.at("vmid"));
      auto g = store_->get(vmid);
      if (!g || g->type != type) {
        return ApiResponse::error(500, "Configuration file 'nodes/" + opts_.node + "/" +
                                           (type == "qemu" ? "qemu-server" : "lxc") + "/" +
                                           std::to_string(vmid) + ".conf' does not exist");
      }
      return std::to_string(vmid);
    };
  };

  // Runs `fn` on the firewall of the request's scope under the firewall lock; `fn` answers, and
  // returns whether to save what it changed.
  using Edit = std::function<bool(FwConf&, ApiResponse&)>;
  auto edit = [this](const std::string& key, const Edit& fn) {
    ApiResponse r = ApiResponse::ok(nullptr);
    auto saved = store_->update_firewall(key, [&](FwConf& fw) { return fn(fw, r); });
    if (!saved) return ApiResponse::error(500, saved.error().message());
    return r;
  };

  auto add = [=, this](const std::string& prefix, Scope scope, bool guest) {
    // The option keys and their types, from the schema of PUT .../options.
    auto put_options = schema_.match(
        "PUT", guest ? "/nodes/n/lxc/100/firewall/options" : "/cluster/firewall/options");
    std::map<std::string, std::string> option_types;
    if (put_options) {
      const auto& props = put_options->method->info->at("parameters").at("properties");
      for (auto it = props.begin(); it != props.end(); ++it) {
        if (it.key() == "node" || it.key() == "vmid" || it.key() == "delete" ||
            it.key() == "digest") {
          continue;
        }
        option_types[it.key()] = it.value().value("type", "string");
      }
    }

    route("GET", prefix + "/options", [=, this](const ApiRequest& req) {
      auto where = scope(req);
      if (auto* r = std::get_if<ApiResponse>(&where)) return *r;
      FwConf fw = store_->firewall(std::get<std::string>(where));
      json out = json::object();
      for (const auto& [k, v] : fw.options) {
        auto t = option_types.find(k);
        bool numeric =
            t != option_types.end() && (t->second == "boolean" || t->second == "integer");
        if (numeric && std::regex_match(v, std::regex(R"(-?\d+)"))) {
          out[k] = std::stoll(v);
        } else {
          out[k] = v;
        }
      }
      out["digest"] = digest_of(fw.options);
      return ApiResponse::ok(out);
    });

    route("PUT", prefix + "/options", [=, this](const ApiRequest& req) {
      auto where = scope(req);
      if (auto* r = std::get_if<ApiResponse>(&where)) return *r;
      return edit(std::get<std::string>(where), [&](FwConf& fw, ApiResponse& r) {
        if (auto d = req.params.find("digest");
            d != req.params.end() && d->second != digest_of(fw.options)) {
          r = ApiResponse::error(500, kModified);
          return false;
        }
        if (auto d = req.params.find("delete"); d != req.params.end()) {
          for (const auto& opt : split_list(d->second)) {
            if (!option_types.contains(opt)) {
              r = param_error("delete", "no such option '" + opt + "'");
              return false;
            }
            fw.options.erase(opt);
          }
        }
        for (const auto& [k, type] : option_types) {
          auto it = req.params.find(k);
          if (it == req.params.end()) continue;
          std::string v = it->second;
          if (type == "boolean") v = parse_boolean(v).value_or(false) ? "1" : "0";
          if (k == "enable" && type == "integer" && std::stoll(v) > 1) v = "1";  // cluster
          fw.options[k] = v;
        }
        return true;
      });
    });

    route("GET", prefix + "/rules", [=, this](const ApiRequest& req) {
      auto where = scope(req);
      if (auto* r = std::get_if<ApiResponse>(&where)) return *r;
      FwConf fw = store_->firewall(std::get<std::string>(where));
      std::string digest = digest_of(fw.rules);
      json out = json::array();
      for (std::size_t i = 0; i < fw.rules.size(); ++i) {
        out.push_back(rule_json(fw.rules[i], i, digest));
      }
      return ApiResponse::ok(out);
    });

    route("GET", prefix + "/rules/{pos}", [=, this](const ApiRequest& req) {
      auto where = scope(req);
      if (auto* r = std::get_if<ApiResponse>(&where)) return *r;
      FwConf fw = store_->firewall(std::get<std::string>(where));
      std::size_t pos = std::stoul(req.params.at("pos"));
      if (pos >= fw.rules.size()) {
        return ApiResponse::error(500, "no rule at position " + req.params.at("pos"));
      }
      return ApiResponse::ok(rule_json(fw.rules[pos], pos, digest_of(fw.rules)));
    });

    // Create: the new rule goes to the top of the list; `pos` and `digest` are accepted and
    // ignored, as Proxmox's create_rule ignores them. Without enable the rule is disabled.
    route("POST", prefix + "/rules", [=, this](const ApiRequest& req) {
      auto where = scope(req);
      if (auto* r = std::get_if<ApiResponse>(&where)) return *r;
      return edit(std::get<std::string>(where), [&](FwConf& fw, ApiResponse& r) {
        Rule rule;
        copy_rule_data(rule, req.params);
        if (auto bad = verify_rule(rule, guest)) {
          r = param_error(bad->first, bad->second);
          return false;
        }
        rule["enable"] = rule.contains("enable") && rule["enable"] != "0" ? "1" : "0";
        fw.rules.insert(fw.rules.begin(), rule);
        return true;
      });
    });

    // Update: with moveto, the rule moves (to moveto when moving up, to moveto - 1 when moving
    // down, last when moveto is past the end) and other parameters are ignored; without it, the
    // given fields are set and those named by `delete` removed.
    route("PUT", prefix + "/rules/{pos}", [=, this](const ApiRequest& req) {
      auto where = scope(req);
      if (auto* r = std::get_if<ApiResponse>(&where)) return *r;
      return edit(std::get<std::string>(where), [&](FwConf& fw, ApiResponse& r) {
        auto found = existing_rule(fw, req.params);
        if (auto* e = std::get_if<ApiResponse>(&found)) {
          r = *e;
          return false;
        }
        std::size_t pos = std::get<std::size_t>(found);
        if (auto m = req.params.find("moveto"); m != req.params.end()) {
          std::size_t moveto = std::stoul(m->second);
          if (moveto == pos) return true;
          // PVE::API2::Firewall::RulesBase::update_rule, step by step.
          std::vector<Rule> moved;
          for (std::size_t i = 0; i < fw.rules.size(); ++i) {
            if (i == pos) continue;
            if (i == moveto) moved.push_back(fw.rules[pos]);
            moved.push_back(fw.rules[i]);
          }
          if (moveto >= fw.rules.size()) moved.push_back(fw.rules[pos]);
          fw.rules = std::move(moved);
          return true;
        }
        Rule rule = fw.rules[pos];
        copy_rule_data(rule, req.params);
        if (auto d = req.params.find("delete"); d != req.params.end()) {
          for (const auto& opt : split_list(d->second)) {
            bool known =
                opt == "pos" || opt == "digest" ||
                std::find(rule_keys().begin(), rule_keys().end(), opt) != rule_keys().end();
            if (!known) {
              r = param_error("delete", "no such property ('" + opt + "')");
              return false;
            }
            if (opt == "type" || opt == "action") {
              r = param_error("delete", "unable to delete required property '" + opt + "'");
              return false;
            }
            rule.erase(opt);
          }
        }
        if (auto bad = verify_rule(rule, guest)) {
          r = param_error(bad->first, bad->second);
          return false;
        }
        if (rule.contains("enable")) rule["enable"] = rule["enable"] != "0" ? "1" : "0";
        rule.try_emplace("enable", "0");  // a rule without the flag is written disabled
        fw.rules[pos] = rule;
        return true;
      });
    });

    route("DELETE", prefix + "/rules/{pos}", [=, this](const ApiRequest& req) {
      auto where = scope(req);
      if (auto* r = std::get_if<ApiResponse>(&where)) return *r;
      return edit(std::get<std::string>(where), [&](FwConf& fw, ApiResponse& r) {
        auto found = existing_rule(fw, req.params);
        if (auto* e = std::get_if<ApiResponse>(&found)) {
          r = *e;
          return false;
        }
        std::size_t pos = std::get<std::size_t>(found);
        fw.rules.erase(fw.rules.begin() + static_cast<std::ptrdiff_t>(pos));
        return true;
      });
    });
  };

  add("/cluster/firewall", cluster, false);
  for (const char* type : {"lxc", "qemu"}) {
    add(std::string("/nodes/{node}/") + type + "/{vmid}/firewall", guest_scope(type), true);
  }
}

}  // namespace phoenix::pvesim
