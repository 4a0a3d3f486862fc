#include "pveconf/vm.h"

#include "base/strings.h"
#include "pveconf/config.h"

namespace phoenix::pveconf {
namespace {

std::string startup(const model::Guest& g) {
  std::string s = "order=" + std::to_string(g.boot_order.value);
  if (g.boot_delay.present) s += ",up=" + std::to_string(g.boot_delay.value);
  return s;
}

}  // namespace

VmContext vm_context(const model::Estate& e) {
  VmContext ctx;
  const base::Node& d = e.vm_defaults;
  if (d.is_object()) {
    auto integer = [&](const char* key, std::int64_t& out) {
      if (const base::Node* n = d.find(key); n && n->is_int()) out = n->as_int();
    };
    auto text = [&](const char* key, std::string& out) {
      if (const base::Node* n = d.find(key); n && n->is_string()) out = n->text();
    };
    integer("cores", ctx.cores);
    integer("memory_mb", ctx.memory_mb);
    integer("disk_size_gb", ctx.disk_size_gb);
    text("storage_pool", ctx.storage_pool);
    text("network_bridge", ctx.bridge);
    text("image_dir", ctx.image_dir);
  }
  return ctx;
}

std::string ssh_public_key_file(const model::Estate& e) {
  const base::Node& users = e.platform.users;
  if (!users.is_object()) return {};
  const base::Node* f = users.find("ssh_public_key_file");
  return f && f->is_string() ? f->text() : std::string();
}

Params vm_config(const model::Guest& g, const VmContext& ctx) {
  Params p;
  p.emplace_back("name", g.name.value);
  p.emplace_back("cores", std::to_string(g.cores.present ? g.cores.value : ctx.cores));
  p.emplace_back("memory", std::to_string(g.memory_mb.present ? g.memory_mb.value : ctx.memory_mb));
  p.emplace_back("agent", "enabled=1");
  std::string bridge = g.network.bridge.present ? g.network.bridge.value : ctx.bridge;
  std::string net = "virtio";
  if (g.network.hwaddr.present) net += "=" + g.network.hwaddr.value;
  p.emplace_back("net0", net + ",bridge=" + bridge + ",firewall=1");
  if (g.network.ip.present) {
    std::string ip = "ip=" + g.network.ip.value;
    if (g.network.gw.present) ip += ",gw=" + g.network.gw.value;
    p.emplace_back("ipconfig0", ip);
  }
  if (!g.network.nameservers.empty()) {
    std::vector<std::string> ns;
    for (const auto& n : g.network.nameservers) ns.push_back(n.value);
    p.emplace_back("nameserver", base::join(ns, " "));
  }
  if (g.network.searchdomain.present) p.emplace_back("searchdomain", g.network.searchdomain.value);
  if (g.username.present) p.emplace_back("ciuser", g.username.value);
  if (!ctx.ssh_public_key.empty()) {
    std::string key(base::trim(ctx.ssh_public_key));
    p.emplace_back("sshkeys", url_encode(key));
  }
  if (g.start_at_boot.present) p.emplace_back("onboot", g.start_at_boot.value ? "1" : "0");
  if (g.boot_order.present) p.emplace_back("startup", startup(g));
  p.emplace_back("tags", "phoenix");
  return p;
}

Params vm_create_params(const model::Guest& g, const VmContext& ctx) {
  Params p;
  p.emplace_back("vmid", std::to_string(g.id));
  for (auto& kv : vm_config(g, ctx)) p.push_back(std::move(kv));
  std::string image = g.template_image.value;
  if (!image.starts_with('/')) image = ctx.image_dir + "/" + image;
  p.emplace_back("scsihw", "virtio-scsi-pci");
  p.emplace_back(kVmDisk, ctx.storage_pool + ":0,import-from=" + image);
  p.emplace_back("ide2", ctx.storage_pool + ":cloudinit");
  p.emplace_back("boot", std::string("order=") + kVmDisk);
  p.emplace_back("serial0", "socket");
  p.emplace_back("vga", "serial0");
  p.emplace_back("ostype", "l26");
  return p;
}

std::int64_t vm_disk_gb(const model::Guest& g, const VmContext& ctx) {
  return g.disk_size_gb.present ? g.disk_size_gb.value : ctx.disk_size_gb;
}

}  // namespace phoenix::pveconf
