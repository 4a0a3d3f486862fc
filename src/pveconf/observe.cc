#include "pveconf/observe.h"

#include <algorithm>
#include <cctype>

#include "base/strings.h"
#include "pveconf/config.h"

namespace phoenix::pveconf {
namespace {

using nlohmann::json;

std::string text_of(const json& config, const char* key) {
  return config.contains(key) ? config_text(config[key]) : std::string();
}

std::int64_t int_of(const json& config, const char* key, std::int64_t fallback) {
  std::string t = text_of(config, key);
  auto v = base::parse_uint(base::trim(t));
  return v ? static_cast<std::int64_t>(*v) : fallback;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// Indexed keys ("mp0", "mp3", ...) in index order.
std::vector<std::pair<int, std::string>> indexed(const json& config, std::string_view prefix) {
  std::vector<std::pair<int, std::string>> out;
  for (auto it = config.begin(); it != config.end(); ++it) {
    std::string_view k = it.key();
    if (!k.starts_with(prefix) || k.size() == prefix.size()) continue;
    auto n = base::parse_uint(k.substr(prefix.size()));
    if (n) out.emplace_back(static_cast<int>(*n), config_text(it.value()));
  }
  std::sort(out.begin(), out.end());
  return out;
}

json network(const model::Guest& g, const json& desired, const json& config) {
  json net = json::object();
  if (g.is_lxc()) {
    auto p = parse_property_string(text_of(config, "net0"));
    for (const char* k : {"name", "bridge", "ip", "gw"}) {
      if (p.contains(k)) net[k] = p[k];
    }
    if (p.contains("hwaddr")) net["hwaddr"] = upper(p["hwaddr"]);
  } else {
    auto p = parse_property_string(text_of(config, "net0"), "model");
    if (p.contains("bridge")) net["bridge"] = p["bridge"];
    for (const char* model : {"virtio", "e1000", "rtl8139", "vmxnet3"}) {
      if (p.contains(model) && !p[model].empty()) net["hwaddr"] = upper(p[model]);
    }
    auto ip = parse_property_string(text_of(config, "ipconfig0"));
    if (ip.contains("ip")) net["ip"] = ip["ip"];
    if (ip.contains("gw")) net["gw"] = ip["gw"];
  }
  // What the estate does not set is Proxmox's to choose.
  const json want = desired.value("net0", json::object());
  for (auto it = net.begin(); it != net.end();) {
    it = want.contains(it.key()) ? std::next(it) : net.erase(it);
  }
  return net;
}

std::vector<int> gpus(const json& config) {
  constexpr std::string_view kPrefix = "/dev/nvidia";
  std::vector<int> out;
  for (const auto& [n, spec] : indexed(config, "dev")) {
    std::string path = parse_property_string(spec, "path")["path"];
    if (!path.starts_with(kPrefix)) continue;
    // /dev/nvidia<N>, not nvidiactl or nvidia-uvm.
    if (auto gpu = base::parse_uint(std::string_view(path).substr(kPrefix.size()))) {
      out.push_back(static_cast<int>(*gpu));
    }
  }
  return out;
}

}  // namespace

json observed_guest_fields(const model::Guest& g, const json& desired, const json& resource,
                           const json& config) {
  json f = json::object();
  f["hostname"] = text_of(config, g.is_lxc() ? "hostname" : "name");
  if (desired.contains("memory_mb")) f["memory_mb"] = int_of(config, "memory", 512);
  if (desired.contains("cores")) f["cores"] = int_of(config, "cores", 0);
  f["onboot"] = int_of(config, "onboot", 0) == 1;
  if (config.contains("startup")) {
    auto s = parse_property_string(text_of(config, "startup"), "order");
    json st = json::object();
    st["order"] = s.contains("order") ? std::stoll("0" + s["order"]) : 0;
    st["up"] = s.contains("up") ? std::stoll("0" + s["up"]) : 0;
    f["startup"] = st;
  }
  f["template"] = resource.value("template", 0) == 1 || int_of(config, "template", 0) == 1;
  // Creation facts Proxmox does not keep.
  for (const char* k : {"clone_from", "ostemplate", "features"}) {
    if (desired.contains(k)) f[k] = desired[k];
  }
  if (desired.contains("net0") || config.contains("net0")) f["net0"] = network(g, desired, config);
  if (config.contains("nameserver")) {
    std::vector<std::string> ns;
    for (const std::string& w : base::split(text_of(config, "nameserver"), ' ')) {
      if (!w.empty()) ns.push_back(w);
    }
    f["nameserver"] = base::join(ns, " ");
  }
  if (g.is_lxc()) {
    if (desired.contains("swap_mb")) f["swap_mb"] = int_of(config, "swap", 512);
    std::string rootfs = text_of(config, "rootfs");
    if (desired.contains("storage_pool")) f["storage_pool"] = disk_storage(rootfs);
    if (desired.contains("storage_size_gb")) {
      if (auto gb = disk_size_gb(rootfs)) f["storage_size_gb"] = *gb;
    }
    f["unprivileged"] = int_of(config, "unprivileged", 0) == 1;
    f["gpus"] = gpus(config);
    std::vector<std::string> raw;
    for (const auto& [k, v] : raw_lxc_from_api(config)) raw.push_back(k + ": " + v);
    if (!raw.empty() || desired.contains("raw_lxc_via_host_channel")) {
      f["raw_lxc_via_host_channel"] = raw;
    }
    json mps = json::array();
    for (const auto& [n, spec] : indexed(config, "mp")) {
      auto p = parse_property_string(spec, "volume");
      mps.push_back({{"host_path", p["volume"]}, {"container_path", p["mp"]}});
    }
    if (!mps.empty() || desired.contains("mount_points")) f["mount_points"] = mps;
  } else {
    if (desired.contains("disk_size_gb")) {
      if (auto gb = disk_size_gb(text_of(config, "scsi0"))) f["disk_size_gb"] = *gb;
    }
    if (config.contains("ciuser")) f["ciuser"] = text_of(config, "ciuser");
  }
  return f;
}

json observed_firewall_fields(const json& desired, const json& options, const json& rules) {
  json f = json::object();
  f["enable"] = int_of(options, "enable", 0) == 1;
  if (desired.contains("policy_in")) {
    f["policy_in"] = options.contains("policy_in") ? text_of(options, "policy_in") : "DROP";
  }
  if (desired.contains("policy_out")) {
    f["policy_out"] = options.contains("policy_out") ? text_of(options, "policy_out") : "ACCEPT";
  }
  json out = json::array();
  if (rules.is_array()) {
    std::vector<json> sorted(rules.begin(), rules.end());
    std::stable_sort(sorted.begin(), sorted.end(), [](const json& a, const json& b) {
      return a.value("pos", 0) < b.value("pos", 0);
    });
    for (const json& r : sorted) {
      // In the estate's spelling: direction and action in upper case, as compile/ has them.
      std::string type = text_of(r, "type"), action = text_of(r, "action");
      for (std::string* t : {&type, &action}) {
        for (char& c : *t) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      }
      json j = {{"type", type}, {"action", action}};
      for (const char* k : {"source", "dest", "proto", "dport", "iface", "comment"}) {
        if (r.contains(k) && !text_of(r, k).empty()) j[k] = text_of(r, k);
      }
      if (int_of(r, "enable", 0) != 1) j["enable"] = false;
      out.push_back(std::move(j));
    }
  }
  f["rules"] = out;
  return f;
}

}  // namespace phoenix::pveconf
