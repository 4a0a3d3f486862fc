// pve-sim's guests over HTTPS: the Proxmox config file with its raw lxc.* lines, disk sizes and
// resizing, snapshots, deletion, the QEMU guest agent and injected lock contention.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "base/fs.h"
#include "base/hash.h"
#include "providers/guest/channel.h"
#include "providers/proxmox/agent.h"
#include "providers/proxmox/client.h"
#include "sim_process.h"

namespace phoenix::pvesim::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Params = std::map<std::string, std::string>;

const Params kCt = {{"vmid", "101"},
                    {"ostemplate", "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"},
                    {"hostname", "web-1"},
                    {"cores", "2"},
                    {"description", "web: front\nsecond line"},
                    {"rootfs", "local-lvm:8"},
                    {"mp0", "local-lvm:4,mp=/srv"}};

const Params kVm = {{"vmid", "200"},
                    {"name", "vm-1"},
                    {"agent", "enabled=1,fstrim_cloned_disks=1"},
                    {"scsi0", "local-lvm:0,import-from=/var/lib/vz/template/disk.qcow2"},
                    {"net0", "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0"},
                    {"ipconfig0", "ip=10.0.0.9/24,gw=10.0.0.1"}};

// Runs the call and waits for its task; returns the task's exitstatus, or the error message.
std::string run(SimProcess& sim, const std::string& method, const std::string& path,
                const Params& params = {}) {
  auto r = call(sim, method, path, params);
  if (r.status != 200) return r.body.value("message", r.raw);
  return wait_task(sim, r.body["data"]).value("exitstatus", "");
}

std::string read(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

using base::sha1_hex;

TEST(PveSimGuest, ConfigFileKeepsRawLxcLines) {
  SimProcess sim;
  ASSERT_TRUE(sim.start({"--task-duration", "10"}));
  ASSERT_EQ(run(sim, "POST", "/nodes/pve/lxc", kCt), "OK");
  fs::path conf = sim.state_dir() / "state" / "etc" / "pve" / "lxc" / "101.conf";
  EXPECT_EQ(read(conf),
            "#web%3A front\n"
            "#second line\n"
            "arch: amd64\n"
            "cores: 2\n"
            "hostname: web-1\n"
            "mp0: local-lvm:vm-101-disk-1,mp=/srv,size=4G\n"
            "ostype: debian\n"
            "rootfs: local-lvm:vm-101-disk-0,size=8G\n");

  // The host channel appends raw keys, in either of the forms Proxmox reads.
  std::ofstream(conf, std::ios::app) << "lxc.cgroup2.devices.allow: c 195:* rwm\n"
                                     << "lxc.idmap = u 0 100000 65536\n";
  auto cfg = call(sim, "GET", "/nodes/pve/lxc/101/config").body["data"];
  EXPECT_EQ(cfg["lxc"], json::parse(R"([["lxc.cgroup2.devices.allow", "c 195:* rwm"],
                                        ["lxc.idmap", "u 0 100000 65536"]])"));
  EXPECT_EQ(cfg["digest"], sha1_hex(read(conf)));
  EXPECT_EQ(cfg["description"], "web: front\nsecond line");

  ASSERT_EQ(call(sim, "PUT", "/nodes/pve/lxc/101/config",
                 {{"cores", "3"}, {"digest", cfg["digest"].get<std::string>()}})
                .status,
            200);
  std::string text = read(conf);
  EXPECT_NE(text.find("cores: 3\n"), std::string::npos) << text;
  EXPECT_TRUE(
      text.ends_with("lxc.cgroup2.devices.allow: c 195:* rwm\nlxc.idmap: u 0 100000 65536\n"))
      << text;
  EXPECT_EQ(call(sim, "GET", "/nodes/pve/lxc/101/config").body["data"]["lxc"].size(), 2u);

  // A clone takes the raw lines along; deleting a guest removes its file.
  ASSERT_EQ(run(sim, "POST", "/nodes/pve/lxc/101/clone", {{"newid", "102"}}), "OK");
  EXPECT_EQ(call(sim, "GET", "/nodes/pve/lxc/102/config").body["data"]["lxc"], cfg["lxc"]);
  ASSERT_EQ(run(sim, "DELETE", "/nodes/pve/lxc/101"), "OK");
  EXPECT_FALSE(fs::exists(conf));

  // A restart keeps the file as it is.
  fs::path conf102 = conf.parent_path() / "102.conf";
  std::string before = read(conf102);
  sim.stop();
  ASSERT_TRUE(sim.start({"--task-duration", "10"}));
  EXPECT_EQ(read(conf102), before);
}

TEST(PveSimGuest, QemuConfigFileAndDisks) {
  SimProcess sim;
  ASSERT_TRUE(sim.start({"--task-duration", "10"}));
  ASSERT_EQ(run(sim, "POST", "/nodes/pve/qemu", kVm), "OK");
  auto cfg = call(sim, "GET", "/nodes/pve/qemu/200/config").body["data"];
  EXPECT_EQ(cfg["scsi0"], "local-lvm:vm-200-disk-0,size=2G");
  EXPECT_FALSE(cfg.contains("lxc"));
  fs::path conf = sim.state_dir() / "state" / "etc" / "pve" / "qemu-server" / "200.conf";
  EXPECT_NE(read(conf).find("scsi0: local-lvm:vm-200-disk-0,size=2G\n"), std::string::npos);
  EXPECT_EQ(cfg["digest"], sha1_hex(read(conf)));

  // New disks take the lowest free number; the default key comes first, the rest sorted.
  ASSERT_EQ(
      run(sim, "POST", "/nodes/pve/qemu/200/config", {{"scsi1", "local-lvm:20,ssd=1,discard=on"}}),
      "OK");
  EXPECT_EQ(call(sim, "GET", "/nodes/pve/qemu/200/config").body["data"]["scsi1"],
            "local-lvm:vm-200-disk-1,discard=on,size=20G,ssd=1");

  // Templates and clones: the clone's disks are its own, of the source's sizes.
  ASSERT_EQ(run(sim, "POST", "/nodes/pve/qemu/200/template"), "OK");
  EXPECT_EQ(call(sim, "GET", "/nodes/pve/qemu/200/config").body["data"]["scsi0"],
            "local-lvm:base-200-disk-0,size=2G");
  ASSERT_EQ(run(sim, "POST", "/nodes/pve/qemu/200/clone", {{"newid", "201"}, {"name", "vm-2"}}),
            "OK");
  auto clone = call(sim, "GET", "/nodes/pve/qemu/201/config").body["data"];
  EXPECT_EQ(clone["scsi0"], "local-lvm:vm-201-disk-0,size=2G");
  EXPECT_EQ(clone["scsi1"], "local-lvm:vm-201-disk-1,discard=on,size=20G,ssd=1");
}

TEST(PveSimGuest, ResizeGrowsOnly) {
  SimProcess sim;
  ASSERT_TRUE(sim.start({"--task-duration", "10"}));
  ASSERT_EQ(run(sim, "POST", "/nodes/pve/lxc", kCt), "OK");
  const std::string resize = "/nodes/pve/lxc/101/resize";
  auto rootfs = [&] {
    return call(sim, "GET", "/nodes/pve/lxc/101/config").body["data"]["rootfs"];
  };
  EXPECT_EQ(run(sim, "PUT", resize, {{"disk", "rootfs"}, {"size", "+2G"}}), "OK");
  EXPECT_EQ(rootfs(), "local-lvm:vm-101-disk-0,size=10G");
  EXPECT_EQ(run(sim, "PUT", resize, {{"disk", "rootfs"}, {"size", "12G"}}), "OK");
  EXPECT_EQ(rootfs(), "local-lvm:vm-101-disk-0,size=12G");
  auto shrink = call(sim, "PUT", resize, {{"disk", "rootfs"}, {"size", "4G"}});
  EXPECT_EQ(shrink.status, 500);
  EXPECT_EQ(shrink.body["message"], "unable to shrink disk size\n");
  auto same = call(sim, "PUT", resize, {{"disk", "rootfs"}, {"size", "12G"}});
  EXPECT_EQ(same.body["message"], "disk is already at specified size\n");
  EXPECT_EQ(rootfs(), "local-lvm:vm-101-disk-0,size=12G");
  EXPECT_EQ(call(sim, "GET", "/nodes/pve/lxc/101/status/current").body["data"]["maxdisk"],
            12LL << 30);

  // qemu-server checks inside its task.
  ASSERT_EQ(run(sim, "POST", "/nodes/pve/qemu", kVm), "OK");
  EXPECT_EQ(run(sim, "PUT", "/nodes/pve/qemu/200/resize", {{"disk", "scsi0"}, {"size", "1G"}}),
            "shrinking disks is not supported");
  EXPECT_EQ(run(sim, "PUT", "/nodes/pve/qemu/200/resize", {{"disk", "scsi0"}, {"size", "+3G"}}),
            "OK");
  EXPECT_EQ(call(sim, "GET", "/nodes/pve/qemu/200/config").body["data"]["scsi0"],
            "local-lvm:vm-200-disk-0,size=5G");
}

TEST(PveSimGuest, SnapshotsListCurrentLast) {
  SimProcess sim;
  ASSERT_TRUE(sim.start({"--task-duration", "10"}));
  ASSERT_EQ(run(sim, "POST", "/nodes/pve/lxc", kCt), "OK");
  const std::string snap = "/nodes/pve/lxc/101/snapshot";
  ASSERT_EQ(run(sim, "POST", snap, {{"snapname", "one"}, {"description", "first"}}), "OK");
  ASSERT_EQ(run(sim, "POST", snap, {{"snapname", "two"}}), "OK");
  EXPECT_EQ(run(sim, "POST", snap, {{"snapname", "two"}}), "snapshot name 'two' already used");
  EXPECT_EQ(run(sim, "POST", snap, {{"snapname", "current"}}),
            "unable to use snapshot name 'current' (reserved name)\n");

  auto list = call(sim, "GET", snap).body["data"];
  ASSERT_EQ(list.size(), 3u) << list;
  EXPECT_EQ(list[0]["name"], "one");
  EXPECT_EQ(list[0]["description"], "first");
  EXPECT_TRUE(list[0]["snaptime"].is_number());
  EXPECT_FALSE(list[0].contains("parent"));
  EXPECT_EQ(list[1]["name"], "two");
  EXPECT_EQ(list[1]["parent"], "one");
  EXPECT_EQ(list[2]["name"], "current");
  EXPECT_EQ(list[2]["parent"], "two");
  EXPECT_EQ(list[2]["running"], 0);
  EXPECT_EQ(list[2]["description"], "You are here!");
  EXPECT_EQ(list[2]["digest"],
            call(sim, "GET", "/nodes/pve/lxc/101/config").body["data"]["digest"]);
  std::string text = read(sim.state_dir() / "state" / "etc" / "pve" / "lxc" / "101.conf");
  EXPECT_NE(text.find("\nparent: two\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\n\n[one]\n#first\narch: amd64\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\n\n[two]\narch: amd64\n"), std::string::npos) << text;

  EXPECT_EQ(run(sim, "DELETE", snap + "/nope"), "snapshot 'nope' does not exist");
  EXPECT_EQ(run(sim, "DELETE", snap + "/one"), "OK");
  list = call(sim, "GET", snap).body["data"];
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["name"], "two");
  EXPECT_FALSE(list[0].contains("parent"));
  EXPECT_EQ(run(sim, "DELETE", snap + "/two"), "OK");
  list = call(sim, "GET", snap).body["data"];
  ASSERT_EQ(list.size(), 1u);
  EXPECT_FALSE(list[0].contains("parent"));
}

TEST(PveSimGuest, DeleteRefusesRunningGuestsButNotTemplates) {
  SimProcess sim;
  ASSERT_TRUE(sim.start({"--task-duration", "10"}));
  ASSERT_EQ(run(sim, "POST", "/nodes/pve/qemu", kVm), "OK");
  ASSERT_EQ(run(sim, "POST", "/nodes/pve/qemu/200/status/start"), "OK");
  auto busy = call(sim, "DELETE", "/nodes/pve/qemu/200", {{"purge", "1"}});
  EXPECT_EQ(busy.status, 500);
  EXPECT_EQ(busy.body["message"], "VM 200 is running - destroy failed\n");
  ASSERT_EQ(run(sim, "POST", "/nodes/pve/qemu/200/status/stop"), "OK");
  ASSERT_EQ(run(sim, "POST", "/nodes/pve/qemu/200/template"), "OK");
  EXPECT_EQ(run(sim, "DELETE", "/nodes/pve/qemu/200",
                {{"purge", "1"}, {"destroy-unreferenced-disks", "1"}}),
            "OK");
  EXPECT_FALSE(fs::exists(sim.state_dir() / "state" / "etc" / "pve" / "qemu-server" / "200.conf"));

  auto ct = kCt;
  ct["protection"] = "1";
  ct["start"] = "1";
  ASSERT_EQ(run(sim, "POST", "/nodes/pve/lxc", ct), "OK");
  EXPECT_EQ(run(sim, "DELETE", "/nodes/pve/lxc/101"),
            "can't remove CT 101 - protection mode enabled\n");
  ASSERT_EQ(call(sim, "PUT", "/nodes/pve/lxc/101/config", {{"delete", "protection"}}).status, 200);
  EXPECT_EQ(run(sim, "DELETE", "/nodes/pve/lxc/101"),
            "unable to destroy CT 101 - container is running\n");
  EXPECT_EQ(run(sim, "DELETE", "/nodes/pve/lxc/101", {{"force", "1"}}), "OK");
  EXPECT_EQ(call(sim, "GET", "/nodes/pve/lxc/101/config").status, 500);
}

TEST(PveSimGuest, GuestAgentAnswersOnceTheVmIsUp) {
  SimProcess sim;
  ASSERT_TRUE(sim.start({"--task-duration", "10", "--agent-delay", "3000"}));
  ASSERT_EQ(run(sim, "POST", "/nodes/pve/qemu", kVm), "OK");
  const std::string ping = "/nodes/pve/qemu/200/agent/ping";
  auto off = call(sim, "POST", ping);
  EXPECT_EQ(off.status, 500);
  EXPECT_EQ(off.body["message"], "VM 200 is not running\n");
  ASSERT_EQ(run(sim, "POST", "/nodes/pve/qemu/200/status/start"), "OK");
  EXPECT_EQ(call(sim, "POST", ping).body["message"], "QEMU guest agent is not running\n");

  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  HttpResult up;
  while (std::chrono::steady_clock::now() < deadline) {
    up = call(sim, "POST", ping);
    if (up.status == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(up.status, 200) << up.raw;
  EXPECT_EQ(up.body["data"], json::parse(R"({"result": {}})"));
  auto ifs = call(sim, "GET", "/nodes/pve/qemu/200/agent/network-get-interfaces");
  ASSERT_EQ(ifs.status, 200) << ifs.raw;
  const auto& result = ifs.body["data"]["result"];
  ASSERT_EQ(result.size(), 2u) << result;
  EXPECT_EQ(result[0]["name"], "lo");
  EXPECT_EQ(result[1], json::parse(R"({"name": "eth0", "hardware-address": "bc:24:11:aa:bb:cc",
      "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "10.0.0.9", "prefix": 24}]})"));
  EXPECT_EQ(call(sim, "POST", "/nodes/pve/qemu/200/agent", {{"command", "ping"}}).status, 200);

  // Without the agent in the config, or with it disabled.
  ASSERT_EQ(call(sim, "PUT", "/nodes/pve/qemu/200/config", {{"agent", "0"}}).status, 200);
  EXPECT_EQ(call(sim, "POST", ping).body["message"], "QEMU guest agent is not running\n");
  ASSERT_EQ(call(sim, "PUT", "/nodes/pve/qemu/200/config", {{"delete", "agent"}}).status, 200);
  EXPECT_EQ(call(sim, "POST", ping).body["message"], "No QEMU guest agent configured\n");
  EXPECT_EQ(call(sim, "POST", "/nodes/pve/qemu/299/agent/ping").body["message"],
            "Configuration file 'nodes/pve/qemu-server/299.conf' does not exist\n");
}

// A VM reached through its guest agent as Phoenix reaches it (proxmox::agent_runner under
// guest::exec_guest), through pve-sim's agent/exec and agent/exec-status: `command` given once
// per argument (an array parameter, checked against the schema), the input as input-data. The
// VM is this machine: --agent-exec runs the argument vector after the vmid.
TEST(PveSimGuest, AgentExecRunsArgumentVectorsForPhoenixsChannel) {
  SimProcess sim;
  fs::path vm = sim.state_dir() / "vm-exec";
  {
    std::ofstream script(vm);
    script << "#!/bin/sh\n[ \"$1\" = 200 ] || exit 99\nshift\nexec \"$@\"\n";
  }
  fs::permissions(vm, fs::perms::owner_all);
  ASSERT_TRUE(
      sim.start({"--task-duration", "10", "--agent-delay", "0", "--agent-exec", vm.string()}));
  ASSERT_EQ(run(sim, "POST", "/nodes/pve/qemu", kVm), "OK");

  fs::path secret = sim.state_dir() / "token";
  {
    std::ofstream out(secret);
    out << kSecret << "\n";
  }
  fs::permissions(secret, fs::perms::owner_read | fs::perms::owner_write);
  auto transport = proxmox::make_pve_client({.url = sim.base_url(),
                                             .token_id = kToken,
                                             .token_secret_file = secret.string(),
                                             .insecure = true});
  ASSERT_TRUE(transport.has_value()) << transport.error().message();
  proxmox::Pve pve(std::move(*transport));
  auto guest = guest::exec_guest(proxmox::agent_runner(pve, "pve", 200, std::chrono::seconds(20),
                                                       std::chrono::milliseconds(20)),
                                 "VM 200 through its guest agent");

  auto stopped = guest->run({"true"}, {});
  ASSERT_FALSE(stopped.has_value());
  EXPECT_EQ(stopped.error().kind(), base::ErrorKind::kTransient) << stopped.error().message();

  ASSERT_EQ(run(sim, "POST", "/nodes/pve/qemu/200/status/start"), "OK");
  auto r = guest->run(
      {"sh", "-c", "cat; printf '%s|' \"$@\"; echo oops >&2; exit 3", "sh", "a b", "$HOME", "it's"},
      "input\n");
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "input\na b|$HOME|it's|");
  EXPECT_EQ(r->err, "oops\n");

  fs::path file = sim.state_dir() / "etc" / "docker" / "ssl" / "server.key";
  guest::FileSpec key;
  key.owner = std::to_string(::geteuid());
  key.group = std::to_string(::getegid());
  key.mode = 0600;
  ASSERT_TRUE(guest->write_file(file.string(), "KEY\n", key).has_value());
  EXPECT_EQ(*base::read_file(file), "KEY\n");
  EXPECT_EQ(fs::status(file).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(*guest->read_file(file.string()), "KEY\n");
  ASSERT_TRUE(guest->remove_file(file.string()).has_value());
  auto missing = guest->read_file(file.string());
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().kind(), base::ErrorKind::kNotFound);

  auto big = guest->run({"cat"}, std::string(proxmox::kAgentInputLimit + 1, 'x'));
  ASSERT_FALSE(big.has_value());
  EXPECT_EQ(big.error().kind(), base::ErrorKind::kInvalidInput);
  // An unknown pid, as QEMU's agent answers once a process's end was reported.
  EXPECT_EQ(call(sim, "GET", "/nodes/pve/qemu/200/agent/exec-status", {{"pid", "1"}}).status, 500);
}

std::vector<long> lock_run(SimProcess& sim) {
  std::vector<long> out;
  for (int i = 0; i < 12; ++i) {
    out.push_back(
        call(sim, "PUT", "/nodes/pve/lxc/101/config", {{"cores", std::to_string(i % 4 + 1)}})
            .status);
  }
  return out;
}

TEST(PveSimGuest, InjectedLockContentionFailsLikeProxmox) {
  SimProcess sim;
  ASSERT_TRUE(sim.start({"--task-duration", "10"}));
  ASSERT_EQ(run(sim, "POST", "/nodes/pve/lxc", kCt), "OK");
  ASSERT_EQ(run(sim, "POST", "/nodes/pve/qemu", kVm), "OK");
  sim.stop();

  ASSERT_TRUE(sim.start({"--task-duration", "10", "--lock-rate", "1", "--lock-wait", "100"}));
  auto ct = call(sim, "PUT", "/nodes/pve/lxc/101/config", {{"cores", "4"}});
  EXPECT_EQ(ct.status, 500);
  EXPECT_EQ(ct.body["message"],
            "can't lock file '/run/lock/lxc/pve-config-101.lock' - got timeout\n");
  auto vm = call(sim, "POST", "/nodes/pve/qemu/200/status/start");
  EXPECT_EQ(vm.status, 500);
  EXPECT_EQ(vm.body["message"],
            "can't lock file '/var/lock/qemu-server/lock-200.conf' - got timeout\n");
  // Reads take no lock; nor does the firewall, which has its own.
  EXPECT_EQ(call(sim, "GET", "/nodes/pve/lxc/101/config").status, 200);
  EXPECT_EQ(call(sim, "PUT", "/nodes/pve/lxc/101/firewall/options", {{"enable", "1"}}).status, 200);
  EXPECT_EQ(call(sim, "GET", "/_sim/stats").body["data"]["locks_injected"], 2);
  sim.stop();

  // The same seed, the same contention.
  std::vector<long> first, second;
  ASSERT_TRUE(sim.start({"--lock-rate", "0.5", "--lock-wait", "50", "--seed", "7"}));
  first = lock_run(sim);
  sim.stop();
  ASSERT_TRUE(sim.start({"--lock-rate", "0.5", "--lock-wait", "50", "--seed", "7"}));
  second = lock_run(sim);
  EXPECT_EQ(first, second);
  EXPECT_NE(std::count(first.begin(), first.end(), 200), 0);
  EXPECT_NE(std::count(first.begin(), first.end(), 500), 0);
}

}  // namespace
}  // namespace phoenix::pvesim::testing
