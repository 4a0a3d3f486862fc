#include "pveconf/lxc.h"

#include <algorithm>

#include "base/strings.h"

namespace phoenix::pveconf {
namespace {

std::string net(const model::NetworkConfig& n, std::string_view default_name,
                const model::Val<std::string>& mac) {
  std::vector<std::string> parts;
  parts.push_back("name=" + (n.name.present ? n.name.value : std::string(default_name)));
  if (n.bridge.present) parts.push_back("bridge=" + n.bridge.value);
  if (n.ip.present) parts.push_back("ip=" + n.ip.value);
  if (n.gw.present) parts.push_back("gw=" + n.gw.value);
  const auto& hw = n.hwaddr.present ? n.hwaddr : mac;
  if (hw.present) parts.push_back("hwaddr=" + hw.value);
  parts.push_back("firewall=1");
  return base::join(parts, ",");
}

}  // namespace

Params lxc_config(const model::Guest& g) {
  Params p;
  if (g.name.present) p.emplace_back("hostname", g.name.value);
  if (g.cores.present) p.emplace_back("cores", std::to_string(g.cores.value));
  if (g.memory_mb.present) p.emplace_back("memory", std::to_string(g.memory_mb.value));
  if (g.swap_mb.present) p.emplace_back("swap", std::to_string(g.swap_mb.value));
  if (g.network.present) p.emplace_back("net0", net(g.network, "eth0", g.mac_address));
  if (g.secondary_network.present) {
    p.emplace_back("net1", net(g.secondary_network, "eth1", model::Val<std::string>{}));
  }
  // Docker inside a container needs nesting and keyctl.
  if (g.has_feature("docker")) p.emplace_back("features", "keyctl=1,nesting=1");
  if (g.unprivileged.present) p.emplace_back("unprivileged", g.unprivileged.value ? "1" : "0");
  if (!g.network.nameservers.empty()) {
    std::vector<std::string> ns;
    for (const auto& n : g.network.nameservers) ns.push_back(n.value);
    p.emplace_back("nameserver", base::join(ns, " "));
  }
  if (g.network.searchdomain.present) p.emplace_back("searchdomain", g.network.searchdomain.value);
  if (g.start_at_boot.present) p.emplace_back("onboot", g.start_at_boot.value ? "1" : "0");
  if (g.boot_order.present) {
    std::string startup = "order=" + std::to_string(g.boot_order.value);
    if (g.boot_delay.present) startup += ",up=" + std::to_string(g.boot_delay.value);
    p.emplace_back("startup", startup);
  }
  p.emplace_back("tags", "phoenix");
  // The GPUs, and the driver's shared devices, passed through as devN entries.
  int dev = 0;
  for (int gpu : g.gpus) {
    p.emplace_back("dev" + std::to_string(dev++), "/dev/nvidia" + std::to_string(gpu));
  }
  if (!g.gpus.empty()) {
    for (const char* d : {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"}) {
      p.emplace_back("dev" + std::to_string(dev++), d);
    }
  }
  int mp = 0;
  for (const auto& m : g.mount_points) {
    if (!m.host_path.present || !m.container_path.present) continue;
    p.emplace_back("mp" + std::to_string(mp++),
                   m.host_path.value + ",mp=" + m.container_path.value);
  }
  return p;
}

std::int64_t lxc_rootfs_gb(const model::Guest& g) {
  return g.storage_size_gb.present ? g.storage_size_gb.value : 8;
}

Params lxc_create_params(const model::Guest& g) {
  Params p;
  p.emplace_back("vmid", std::to_string(g.id));
  if (g.os_template.present) p.emplace_back("ostemplate", g.os_template.value);
  if (g.storage_pool.present) {
    p.emplace_back("rootfs", g.storage_pool.value + ":" + std::to_string(lxc_rootfs_gb(g)));
  }
  for (auto& kv : lxc_config(g)) p.push_back(std::move(kv));
  return p;
}

RawLines raw_lxc_from_api(const nlohmann::json& config) {
  RawLines out;
  if (!config.is_object() || !config.contains("lxc") || !config["lxc"].is_array()) return out;
  for (const auto& pair : config["lxc"]) {
    if (pair.is_array() && pair.size() == 2 && pair[0].is_string() && pair[1].is_string()) {
      out.emplace_back(pair[0].get<std::string>(), pair[1].get<std::string>());
    }
  }
  return out;
}

std::string with_raw_lxc(std::string_view conf, const RawLines& lines) {
  std::string head, tail;
  bool in_main = true;
  std::size_t pos = 0;
  while (pos < conf.size()) {
    std::size_t end = conf.find('\n', pos);
    std::size_t next = end == std::string_view::npos ? conf.size() : end + 1;
    std::string_view line = conf.substr(pos, next - pos);
    if (in_main && line.starts_with('[')) in_main = false;
    if (!in_main) {
      tail += line;
    } else if (!line.starts_with("lxc.")) {
      head += line;
      if (end == std::string_view::npos) head += '\n';
    }
    pos = next;
  }
  // The blank line between the main section and the first snapshot stays after the raw keys.
  while (head.ends_with("\n\n")) head.pop_back();
  for (const auto& [k, v] : lines) head += k + ": " + v + "\n";
  if (!tail.empty()) head += '\n';
  return tail.empty() ? head : head + tail;
}

}  // namespace phoenix::pveconf
