#include "pveconf/config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "compile/desired.h"
#include "config/loader.h"
#include "pveconf/observe.h"
#include "pveconf/vm.h"

namespace phoenix::pveconf {
namespace {

using nlohmann::json;

std::unique_ptr<model::Estate> example() {
  config::DiskTree tree;
  auto r = config::load_estate(
      {(std::filesystem::path(PHOENIX_SOURCE_DIR) / "examples/estate/etc").string(), {}, {}}, tree);
  EXPECT_FALSE(r.diags.has_errors());
  return std::move(r.estate);
}

TEST(PveConfig, PropertyStrings) {
  auto m = parse_property_string("name=eth0,bridge=vmbr0,ip=10.0.0.2/24");
  EXPECT_EQ(m.size(), 3u);
  EXPECT_EQ(m["bridge"], "vmbr0");
  EXPECT_EQ(parse_property_string("/dev/nvidia0", "path")["path"], "/dev/nvidia0");
  EXPECT_EQ(parse_property_string("local-lvm:vm-101-disk-0,size=8G", "volume")["volume"],
            "local-lvm:vm-101-disk-0");
}

TEST(PveConfig, SameValueNormalisesProxmoxFormats) {
  auto lxc = GuestType::kLxc;
  auto vm = GuestType::kQemu;
  EXPECT_TRUE(same_value(lxc, "memory", "2048", "2048"));
  EXPECT_FALSE(same_value(lxc, "memory", "2048", "1024"));
  // Proxmox adds type=veth and a generated MAC; neither is drift when the estate leaves them.
  EXPECT_TRUE(same_value(lxc, "net0", "name=eth0,bridge=vmbr0,ip=10.0.0.2/24,firewall=1",
                         "bridge=vmbr0,firewall=1,hwaddr=BC:24:11:AA:BB:CC,ip=10.0.0.2/24,"
                         "name=eth0,type=veth"));
  EXPECT_FALSE(same_value(lxc, "net0", "name=eth0,bridge=vmbr0,ip=10.0.0.2/24,firewall=1",
                          "name=eth0,bridge=vmbr0,ip=10.0.0.3/24,firewall=1,type=veth"));
  // A MAC the estate sets compares case-insensitively.
  EXPECT_TRUE(same_value(lxc, "net0", "name=eth0,hwaddr=bc:24:11:aa:bb:cc,firewall=1",
                         "firewall=1,hwaddr=BC:24:11:AA:BB:CC,name=eth0,type=veth"));
  EXPECT_FALSE(same_value(lxc, "net0", "name=eth0,firewall=1", "name=eth0,firewall=0"));
  EXPECT_TRUE(same_value(lxc, "features", "keyctl=1,nesting=1", "nesting=1,keyctl=1"));
  EXPECT_FALSE(same_value(lxc, "features", "keyctl=1,nesting=1", "nesting=1"));
  EXPECT_TRUE(same_value(lxc, "dev0", "/dev/nvidia0", "path=/dev/nvidia0"));
  EXPECT_TRUE(same_value(lxc, "startup", "order=3,up=10", "up=10,order=3"));
  EXPECT_TRUE(same_value(lxc, "tags", "phoenix", "phoenix"));
  EXPECT_TRUE(same_value(lxc, "tags", "a;phoenix", "phoenix;a"));
  EXPECT_TRUE(same_value(lxc, "nameserver", "10.0.0.13 1.1.1.1", "10.0.0.13  1.1.1.1"));
  // A VM's interface: the model's value is a MAC Proxmox generates.
  EXPECT_TRUE(same_value(vm, "net0", "virtio,bridge=vmbr0,firewall=1",
                         "virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1"));
  EXPECT_FALSE(same_value(vm, "net0", "virtio,bridge=vmbr0,firewall=1",
                          "e1000=BC:24:11:00:00:01,bridge=vmbr0,firewall=1"));
  EXPECT_TRUE(same_value(vm, "sshkeys", url_encode("ssh-ed25519 AAAA me@host"),
                         "ssh-ed25519%20AAAA%20me%40host%0A"));
  EXPECT_TRUE(same_value(vm, "agent", "enabled=1", "1"));
}

TEST(PveConfig, UrlEncodingRoundTrips) {
  std::string key = "ssh-ed25519 AAAAC3Nza+/= phoenix@host";
  EXPECT_EQ(url_encode(key), "ssh-ed25519%20AAAAC3Nza%2B%2F%3D%20phoenix%40host");
  EXPECT_EQ(url_decode(url_encode(key)), key);
}

TEST(PveConfig, UpdateSetsWhatDiffersAndRemovesWhatPhoenixOwns) {
  Params desired = {{"hostname", "gw"},
                    {"memory", "2048"},
                    {"net0", "name=eth0,bridge=vmbr0,ip=10.0.0.2/24,firewall=1"},
                    {"rootfs", "local-lvm:16"},
                    {"dev0", "/dev/nvidia0"}};
  json observed = {{"hostname", "gw"},
                   {"memory", 1024},
                   {"net0", "name=eth0,bridge=vmbr0,ip=10.0.0.2/24,firewall=1,type=veth"},
                   {"rootfs", "local-lvm:vm-101-disk-0,size=8G"},
                   {"dev0", "path=/dev/nvidia0"},
                   {"dev1", "/dev/nvidia1"},
                   {"mp0", "/srv,mp=/srv"},
                   {"description", "hand-written"},
                   {"digest", "abc"}};
  ConfigUpdate u = config_update(GuestType::kLxc, desired, observed);
  ASSERT_EQ(u.set.size(), 1u);
  EXPECT_EQ(u.set[0], (std::pair<std::string, std::string>{"memory", "2048"}));
  EXPECT_EQ(u.remove, (std::vector<std::string>{"dev1", "mp0"}));
  Params p = u.params();
  EXPECT_EQ(p.back(), (std::pair<std::string, std::string>{"delete", "dev1,mp0"}));
  ASSERT_EQ(u.changes.size(), 3u);
  EXPECT_EQ(u.changes[0].key, "dev1");
  EXPECT_FALSE(u.changes[0].after.has_value());
  EXPECT_EQ(*u.changes[1].before, "1024");

  json converged = observed;
  converged["memory"] = "2048";
  converged.erase("dev1");
  converged.erase("mp0");
  EXPECT_TRUE(config_update(GuestType::kLxc, desired, converged).empty());
}

TEST(PveConfig, DisksOnlyGrow) {
  EXPECT_EQ(disk_size_gb("local-lvm:vm-101-disk-0,size=8G"), 8);
  EXPECT_EQ(disk_size_gb("local:101/vm-101-disk-0.raw,size=512M"), 1);
  EXPECT_EQ(disk_size_gb("local-lvm:vm-101-disk-0,size=1T"), 1024);
  EXPECT_FALSE(disk_size_gb("local-lvm:vm-101-disk-0").has_value());
  EXPECT_EQ(disk_storage("local-lvm:vm-101-disk-0,size=8G"), "local-lvm");

  auto same = disk_resize("rootfs", "local-lvm:vm-101-disk-0,size=8G", 8);
  ASSERT_TRUE(same.has_value());
  EXPECT_FALSE(same->has_value());
  auto grow = disk_resize("rootfs", "local-lvm:vm-101-disk-0,size=8G", 16);
  ASSERT_TRUE(grow.has_value());
  EXPECT_EQ(**grow, "16G");
  auto shrink = disk_resize("rootfs", "local-lvm:vm-101-disk-0,size=32G", 16);
  ASSERT_FALSE(shrink.has_value());
  EXPECT_EQ(shrink.error().kind(), base::ErrorKind::kInvalidInput);
  EXPECT_NE(shrink.error().message().find("only grows"), std::string::npos);
}

TEST(PveConfig, RawLxcLinesWithCompleteIdMaps) {
  model::Guest g;
  g.lxc_options.push_back({"lxc.apparmor.profile=unconfined", {}, true});
  model::IdMap m;
  m.type = {"gid", {}, true};
  m.host_id = {33, {}, true};
  m.container_id = {33, {}, true};
  m.size = {1, {}, true};
  g.id_maps.push_back(m);
  RawLines lines = raw_lxc_lines(g);
  RawLines want = {{"lxc.apparmor.profile", "unconfined"},
                   {"lxc.idmap", "u 0 100000 65536"},
                   {"lxc.idmap", "g 0 100000 33"},
                   {"lxc.idmap", "g 33 33 1"},
                   {"lxc.idmap", "g 34 100034 65502"}};
  EXPECT_EQ(lines, want);
}

TEST(PveConfig, RawLxcReplacesOnlyTheMainSectionsLxcLines) {
  std::string conf =
      "arch: amd64\n"
      "hostname: gw\n"
      "lxc.apparmor.profile: generated\n"
      "memory: 512\n"
      "\n"
      "[before-upgrade]\n"
      "hostname: gw\n"
      "lxc.apparmor.profile: generated\n";
  std::string out = with_raw_lxc(conf, {{"lxc.apparmor.profile", "unconfined"}});
  EXPECT_EQ(out,
            "arch: amd64\n"
            "hostname: gw\n"
            "memory: 512\n"
            "lxc.apparmor.profile: unconfined\n"
            "\n"
            "[before-upgrade]\n"
            "hostname: gw\n"
            "lxc.apparmor.profile: generated\n");
  // Applying the same lines again changes nothing.
  EXPECT_EQ(with_raw_lxc(out, {{"lxc.apparmor.profile", "unconfined"}}), out);
  EXPECT_EQ(with_raw_lxc("hostname: a\n", {}), "hostname: a\n");

  json api = {{"lxc", json::array({json::array({"lxc.apparmor.profile", "unconfined"})})}};
  EXPECT_EQ(raw_lxc_from_api(api), (RawLines{{"lxc.apparmor.profile", "unconfined"}}));
}

TEST(PveConfig, VmParamsFromTheExample) {
  auto e = example();
  VmContext ctx = vm_context(*e);
  EXPECT_EQ(ctx.storage_pool, "quickOS-vm-disks");
  EXPECT_EQ(ssh_public_key_file(*e), "/usr/local/phoenix_hypervisor/etc/keys/phoenix_admin.pub");
  ctx.ssh_public_key = "ssh-ed25519 AAAA phoenix@host\n";
  const model::Guest* vm = e->guest(1001);
  ASSERT_NE(vm, nullptr);
  Params p = vm_config(*vm, ctx);
  auto get = [&](const Params& ps, const std::string& k) {
    for (const auto& [key, v] : ps) {
      if (key == k) return v;
    }
    return std::string("<absent>");
  };
  EXPECT_EQ(get(p, "name"), "Portainer");
  EXPECT_EQ(get(p, "cores"), "4");
  EXPECT_EQ(get(p, "net0"), "virtio,bridge=vmbr0,firewall=1");
  EXPECT_EQ(get(p, "ipconfig0"), "ip=10.0.0.111/24,gw=10.0.0.1");
  EXPECT_EQ(get(p, "ciuser"), "phoenix_user");
  EXPECT_EQ(get(p, "sshkeys"), "ssh-ed25519%20AAAA%20phoenix%40host");
  EXPECT_EQ(get(p, "startup"), "order=4,up=10");
  EXPECT_EQ(vm_disk_gb(*vm, ctx), 64);

  Params t = vm_create_params(*e->guest(9000), ctx);
  EXPECT_EQ(get(t, "vmid"), "9000");
  EXPECT_EQ(get(t, "scsi0"),
            "quickOS-vm-disks:0,import-from=/var/lib/vz/import/noble-server-cloudimg-amd64.img");
  EXPECT_EQ(get(t, "ipconfig0"), "ip=dhcp");
}

// The config Proxmox reports after creating the guest from these parameters shows no drift.
TEST(PveConfig, ObservedFieldsOfAConvergedLxcMatchTheDesired) {
  auto e = example();
  compile::Desired d = compile::compile_estate(*e);
  for (const compile::Resource& r : d.resources) {
    if (r.kind != "lxc") continue;
    const model::Guest* g = e->guest(*r.owner);
    json config = {{"digest", "x"}, {"arch", "amd64"}, {"ostype", "debian"}};
    for (const auto& [k, v] : lxc_create_params(*g)) {
      if (k == "vmid" || k == "ostemplate") continue;
      config[k] = v;
    }
    if (config.contains("rootfs")) {
      config["rootfs"] = disk_storage(config["rootfs"].get<std::string>()) + ":vm-" +
                         std::to_string(g->id) +
                         "-disk-0,size=" + std::to_string(lxc_rootfs_gb(*g)) + "G";
    }
    if (config.contains("net0")) {
      config["net0"] = config["net0"].get<std::string>() + ",type=veth";
    }
    json lxc = json::array();
    for (const auto& [k, v] : raw_lxc_lines(*g)) lxc.push_back({k, v});
    if (!lxc.empty()) config["lxc"] = lxc;
    json resource = {{"vmid", g->id}, {"template", r.fields["template"].get<bool>() ? 1 : 0}};
    json seen = observed_guest_fields(*g, r.fields, resource, config);
    EXPECT_EQ(seen, r.fields) << g->label() << "\nobserved " << seen.dump(1) << "\ndesired "
                              << r.fields.dump(1);
    Params want = lxc_config(*g);
    EXPECT_TRUE(config_update(GuestType::kLxc, want, config).empty()) << g->label();
  }
}

json recorded(const std::string& name) {
  auto path = std::filesystem::path(PHOENIX_SOURCE_DIR) / "tests/pve_recorded" / name;
  std::ifstream in(path);
  return json::parse(in)["data"];
}

// Answers of real Proxmox installations (tests/pve_recorded/README.md says where each comes
// from), read with the estate's spelling of the same settings: no drift.
TEST(PveConfig, RecordedConfigsOfRealProxmoxShowNoDrift) {
  json lxc = recorded("lxc_config_landess.json");
  Params want = {{"hostname", "cloud.landesshome.com"},
                 {"cores", "4"},
                 {"memory", "8192"},
                 {"swap", "8192"},
                 {"net0",
                  "name=eth0,bridge=vmbr0,firewall=0,gw=192.168.105.1,"
                  "gw6=2001:0db8:0a0b:12f0:0000:0000:0000:0001,ip=192.168.105.28/24,"
                  "ip6=2600:0000:0000:0000:0000:0000:0000:0001/64,mtu=1500,tag=77"},
                 {"rootfs", "local-zfs:8"}};
  EXPECT_TRUE(config_update(GuestType::kLxc, want, lxc).empty());
  EXPECT_EQ(disk_size_gb(config_text(lxc["rootfs"])), 8);
  EXPECT_EQ(disk_storage(config_text(lxc["rootfs"])), "local-zfs");
  // Explicit zeros are settings of their own: Phoenix's docker features differ from them.
  want.emplace_back("features", "keyctl=1,nesting=1");
  auto u = config_update(GuestType::kLxc, want, lxc);
  ASSERT_EQ(u.changes.size(), 1u);
  EXPECT_EQ(u.changes[0].key, "features");

  json vm = recorded("qemu_config_cloudinit_lnvps.json");
  Params vm_want = {
      {"cores", "4"},
      {"memory", "4096"},
      {"net0", "virtio,bridge=vmbr0,firewall=1"},
      {"ipconfig0", "ip=10.100.1.174/24,gw=10.100.1.1,ip6=auto"},
      {"sshkeys", url_encode("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILnyd2niY8ht8KRea6M6y+TBx08F7z"
                             "RdhBlKjk7aywMT")},
      {"onboot", "1"},
      {"scsi0", "local-zfs:160"}};
  EXPECT_TRUE(config_update(GuestType::kQemu, vm_want, vm).empty());
  EXPECT_EQ(disk_size_gb(config_text(vm["scsi0"])), 160);
  auto resize = disk_resize("scsi0", config_text(vm["scsi0"]), 100);
  EXPECT_FALSE(resize.has_value());

  // memory is a number in some versions and a string in others.
  json packer = recorded("qemu_config_packer_100.json");
  EXPECT_TRUE(packer["memory"].is_string());
  EXPECT_TRUE(config_update(GuestType::kQemu,
                            {{"memory", "2048"},
                             {"cores", "1"},
                             {"name", "first-vm"},
                             {"net0", "virtio,bridge=vmbr0,firewall=1"}},
                            packer)
                  .empty());
  EXPECT_TRUE(recorded("lxc_config_landess.json")["memory"].is_number());
}

TEST(PveConfig, ObservedFirewallFields) {
  json desired = {{"enable", true}, {"policy_in", "DROP"}, {"rules", json::array()}};
  json options = {{"enable", 1}, {"digest", "x"}};
  json rules = json::array({
      {{"pos", 1}, {"type", "in"}, {"action", "DROP"}, {"enable", 1}, {"proto", "udp"}},
      {{"pos", 0},
       {"type", "in"},
       {"action", "ACCEPT"},
       {"enable", 1},
       {"proto", "tcp"},
       {"dport", "22"},
       {"source", "10.0.0.0/24"},
       {"comment", "SSH"},
       {"digest", "d"},
       {"ipversion", 4}},
  });
  json f = observed_firewall_fields(desired, options, rules);
  EXPECT_EQ(f["enable"], true);
  EXPECT_EQ(f["policy_in"], "DROP");
  ASSERT_EQ(f["rules"].size(), 2u);
  EXPECT_EQ(f["rules"][0], (json{{"type", "IN"},
                                 {"action", "ACCEPT"},
                                 {"proto", "tcp"},
                                 {"dport", "22"},
                                 {"source", "10.0.0.0/24"},
                                 {"comment", "SSH"}}));
}

}  // namespace
}  // namespace phoenix::pveconf
