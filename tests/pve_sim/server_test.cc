// End-to-end tests of the pve-sim binary over HTTPS.
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "sim_process.h"

namespace phoenix::pvesim::testing {
namespace {

using nlohmann::json;

const std::map<std::string, std::string> kCreate = {
    {"vmid", "101"},
    {"ostemplate", "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"},
    {"hostname", "web-1"},
    {"cores", "2"},
    {"memory", "1024"},
    {"rootfs", "local-lvm:8"},
    {"net0", "name=eth0,bridge=vmbr0,ip=10.0.0.5/24,gw=10.0.0.1,firewall=1"},
};

// Creates CT 101 and waits for its task; returns false on any failure.
bool create_ct(SimProcess& sim, std::map<std::string, std::string> params = kCreate) {
  auto r = call(sim, "POST", "/nodes/pve/lxc", params);
  EXPECT_EQ(r.status, 200) << r.raw;
  if (r.status != 200) return false;
  auto t = wait_task(sim, r.body["data"].get<std::string>());
  EXPECT_EQ(t.value("exitstatus", ""), "OK");
  return t.value("exitstatus", "") == "OK";
}

TEST(PveSimServer, RequiresApiToken) {
  SimProcess sim;
  ASSERT_TRUE(sim.start());
  auto none = call(sim, "GET", "/version", {}, "");
  EXPECT_EQ(none.curl_code, 0);
  EXPECT_EQ(none.status, 401);
  auto wrong = call(sim, "GET", "/version", {}, std::string("PVEAPIToken=") + kToken + "=nope");
  EXPECT_EQ(wrong.status, 401);
  auto ok = call(sim, "GET", "/version");
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body["data"]["release"], "8.2");
}

TEST(PveSimServer, CertificateFingerprintIsWritten) {
  SimProcess sim;
  ASSERT_TRUE(sim.start());
  std::ifstream f(sim.state_dir() / "state" / "pve-ssl.fp");
  std::string fp;
  std::getline(f, fp);
  EXPECT_EQ(fp.size(), 32u * 3 - 1) << fp;
}

TEST(PveSimServer, ParameterVerificationFailsLikeProxmox) {
  SimProcess sim;
  ASSERT_TRUE(sim.start());
  auto params = kCreate;
  params["bogus"] = "1";
  params["net0"] = "name=eth0,hwaddr=01:00:5E:00:00:01";
  auto r = call(sim, "POST", "/nodes/pve/lxc", params);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body, json::parse(R"({"data":null,"errors":{
    "bogus":"property is not defined in schema and the schema does not allow additional properties",
    "net0":"invalid format - format error\nnet0.hwaddr: invalid format - value does not look like a valid unicast MAC address\n"}})"));
}

TEST(PveSimServer, CreateLxcRunsTaskThenConfigAndPowerCycle) {
  SimProcess sim;
  ASSERT_TRUE(sim.start({"--task-duration", "300"}));
  auto r = call(sim, "POST", "/nodes/pve/lxc", kCreate);
  ASSERT_EQ(r.status, 200) << r.raw;
  std::string upid = r.body["data"];
  EXPECT_TRUE(upid.starts_with("UPID:pve:")) << upid;
  EXPECT_TRUE(upid.ends_with(":vzcreate:101:phoenix@pve!ci:")) << upid;
  auto running = call(sim, "GET", "/nodes/pve/tasks/" + upid + "/status");
  EXPECT_EQ(running.body["data"]["status"], "running");
  auto done = wait_task(sim, upid);
  EXPECT_EQ(done["status"], "stopped");
  EXPECT_EQ(done["exitstatus"], "OK");
  auto log = call(sim, "GET", "/nodes/pve/tasks/" + upid + "/log");
  EXPECT_EQ(log.body["data"].back()["t"], "TASK OK");

  auto cfg = call(sim, "GET", "/nodes/pve/lxc/101/config");
  ASSERT_EQ(cfg.status, 200);
  EXPECT_EQ(cfg.body["data"]["hostname"], "web-1");
  EXPECT_EQ(cfg.body["data"]["cores"], 2);
  EXPECT_EQ(cfg.body["data"]["rootfs"], "local-lvm:vm-101-disk-0,size=8G");
  EXPECT_EQ(cfg.body["data"]["net0"], kCreate.at("net0"));
  EXPECT_FALSE(cfg.body["data"].contains("lock"));

  auto put = call(sim, "PUT", "/nodes/pve/lxc/101/config",
                  {{"cores", "4"},
                   {"delete", "net0"},
                   {"digest", cfg.body["data"]["digest"].get<std::string>()}});
  EXPECT_EQ(put.status, 200) << put.raw;
  auto stale = call(sim, "PUT", "/nodes/pve/lxc/101/config",
                    {{"cores", "8"}, {"digest", cfg.body["data"]["digest"].get<std::string>()}});
  EXPECT_EQ(stale.status, 500);
  cfg = call(sim, "GET", "/nodes/pve/lxc/101/config");
  EXPECT_EQ(cfg.body["data"]["cores"], 4);
  EXPECT_FALSE(cfg.body["data"].contains("net0"));

  auto start = call(sim, "POST", "/nodes/pve/lxc/101/status/start");
  EXPECT_EQ(wait_task(sim, start.body["data"])["exitstatus"], "OK");
  EXPECT_EQ(call(sim, "GET", "/nodes/pve/lxc/101/status/current").body["data"]["status"],
            "running");
  auto res = call(sim, "GET", "/cluster/resources", {{"type", "vm"}});
  ASSERT_EQ(res.body["data"].size(), 1u);
  EXPECT_EQ(res.body["data"][0]["id"], "lxc/101");
  EXPECT_EQ(res.body["data"][0]["status"], "running");
  EXPECT_EQ(call(sim, "GET", "/cluster/nextid").body["data"], "100");

  auto busy = call(sim, "DELETE", "/nodes/pve/lxc/101");
  EXPECT_EQ(busy.status, 500);
  EXPECT_EQ(busy.body["message"], "unable to destroy CT 101 - container is running\n");
  auto stop = call(sim, "POST", "/nodes/pve/lxc/101/status/stop");
  EXPECT_EQ(wait_task(sim, stop.body["data"])["exitstatus"], "OK");
  auto del = call(sim, "DELETE", "/nodes/pve/lxc/101", {{"purge", "1"}});
  EXPECT_EQ(wait_task(sim, del.body["data"])["exitstatus"], "OK");
  auto gone = call(sim, "GET", "/nodes/pve/lxc/101/config");
  EXPECT_EQ(gone.status, 500);
  EXPECT_EQ(gone.body["message"], "Configuration file 'nodes/pve/lxc/101.conf' does not exist\n");
}

TEST(PveSimServer, ConcurrentOperationFailsToLock) {
  SimProcess sim;
  ASSERT_TRUE(sim.start({"--task-duration", "1500", "--lock-wait", "100"}));
  ASSERT_TRUE(create_ct(sim));
  auto start = call(sim, "POST", "/nodes/pve/lxc/101/status/start");
  ASSERT_EQ(start.status, 200);
  auto put = call(sim, "PUT", "/nodes/pve/lxc/101/config", {{"cores", "3"}});
  EXPECT_EQ(put.status, 500);
  EXPECT_EQ(put.body["message"],
            "can't lock file '/run/lock/lxc/pve-config-101.lock' - got timeout\n");
  EXPECT_EQ(wait_task(sim, start.body["data"])["exitstatus"], "OK");
  EXPECT_EQ(call(sim, "PUT", "/nodes/pve/lxc/101/config", {{"cores", "3"}}).status, 200);
}

TEST(PveSimServer, RestartKeepsGuests) {
  SimProcess sim;
  ASSERT_TRUE(sim.start({"--task-duration", "10"}));
  ASSERT_TRUE(create_ct(sim));
  sim.stop();
  ASSERT_TRUE(sim.start({"--task-duration", "10"}));
  auto cfg = call(sim, "GET", "/nodes/pve/lxc/101/config");
  EXPECT_EQ(cfg.status, 200);
  EXPECT_EQ(cfg.body["data"]["hostname"], "web-1");
  EXPECT_EQ(call(sim, "GET", "/cluster/nextid").body["data"], "100");
  auto again = call(sim, "POST", "/nodes/pve/lxc", kCreate);
  EXPECT_EQ(again.status, 500);
  EXPECT_EQ(again.body["message"],
            "unable to create CT 101 - CT 101 already exists on node 'pve'\n");
}

std::vector<long> statuses(SimProcess& sim, int n) {
  std::vector<long> out;
  for (int i = 0; i < n; ++i) out.push_back(call(sim, "GET", "/version").status);
  return out;
}

TEST(PveSimServer, InjectedFaultsAreDeterministicPerSeed) {
  std::vector<long> first, second;
  {
    SimProcess sim;
    ASSERT_TRUE(sim.start({"--fail-rate", "0.5", "--seed", "42"}));
    first = statuses(sim, 30);
  }
  {
    SimProcess sim;
    ASSERT_TRUE(sim.start({"--fail-rate", "0.5", "--seed", "42"}));
    second = statuses(sim, 30);
  }
  EXPECT_EQ(first, second);
  EXPECT_NE(std::count(first.begin(), first.end(), 200), 0);
  EXPECT_NE(std::count_if(first.begin(), first.end(), [](long s) { return s == 500 || s == 503; }),
            0);
}

TEST(PveSimServer, FaultsChangeWhileRunning) {
  SimProcess sim;
  ASSERT_TRUE(sim.start());
  EXPECT_EQ(call(sim, "GET", "/version").status, 200);
  // Changing them needs the token; bad values are refused as Proxmox refuses parameters.
  EXPECT_EQ(call(sim, "PUT", "/_sim/faults", {{"fail_rate", "1"}}, "").status, 401);
  auto bad = call(sim, "PUT", "/_sim/faults", {{"fail_rate", "2"}, {"bogus", "1"}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.body["errors"]["fail_rate"], "a fraction from 0 to 1");
  EXPECT_TRUE(bad.body["errors"].contains("bogus"));
  auto on = call(sim, "PUT", "/_sim/faults", {{"fail_rate", "1"}, {"lock_rate", "0.5"}});
  ASSERT_EQ(on.status, 200) << on.raw;
  EXPECT_EQ(on.body["data"]["lock_rate"], 0.5);
  auto failed = call(sim, "GET", "/version");
  EXPECT_TRUE(failed.status == 500 || failed.status == 503) << failed.raw;
  // The simulator's own routes are neither faulted nor counted.
  EXPECT_EQ(call(sim, "GET", "/_sim/faults").body["data"]["fail_rate"], 1.0);
  ASSERT_EQ(call(sim, "PUT", "/_sim/faults", {{"fail_rate", "0"}}).status, 200);
  EXPECT_EQ(call(sim, "GET", "/version").status, 200);
  auto stats = call(sim, "GET", "/_sim/stats").body["data"];
  EXPECT_EQ(stats["faults_injected"], 1);
  EXPECT_EQ(stats["requests"], json({{"GET /version", 3}}));
}

TEST(PveSimServer, DroppedConnectionsGetNoAnswer) {
  SimProcess sim;
  ASSERT_TRUE(sim.start({"--drop-rate", "1"}));
  auto r = call(sim, "GET", "/version");
  EXPECT_NE(r.curl_code, 0);
  EXPECT_EQ(r.status, 0);
}

TEST(PveSimServer, FailedTaskLeavesNoGuest) {
  SimProcess sim;
  ASSERT_TRUE(sim.start({"--task-fail-rate", "1", "--task-duration", "10"}));
  auto r = call(sim, "POST", "/nodes/pve/lxc", kCreate);
  ASSERT_EQ(r.status, 200);
  auto t = wait_task(sim, r.body["data"]);
  EXPECT_EQ(t["exitstatus"], "simulated task failure");
  EXPECT_EQ(call(sim, "GET", "/nodes/pve/lxc/101/config").status, 500);
  auto stats = call(sim, "GET", "/_sim/stats");
  EXPECT_EQ(stats.body["data"]["tasks_failed"], 1);
  EXPECT_EQ(stats.body["data"]["requests"]["POST /nodes/{node}/lxc"], 1);
}

TEST(PveSimServer, CloneResizeSnapshotTemplate) {
  SimProcess sim;
  ASSERT_TRUE(sim.start({"--task-duration", "10"}));
  ASSERT_TRUE(create_ct(sim));
  auto resize =
      call(sim, "PUT", "/nodes/pve/lxc/101/resize", {{"disk", "rootfs"}, {"size", "+2G"}});
  ASSERT_EQ(resize.status, 200) << resize.raw;
  EXPECT_EQ(wait_task(sim, resize.body["data"])["exitstatus"], "OK");
  auto shrink = call(sim, "PUT", "/nodes/pve/lxc/101/resize", {{"disk", "rootfs"}, {"size", "4G"}});
  EXPECT_EQ(shrink.status, 500);
  auto snap = call(sim, "POST", "/nodes/pve/lxc/101/snapshot", {{"snapname", "base"}});
  ASSERT_EQ(snap.status, 200) << snap.raw;
  EXPECT_EQ(wait_task(sim, snap.body["data"])["exitstatus"], "OK");
  auto snaps = call(sim, "GET", "/nodes/pve/lxc/101/snapshot");
  ASSERT_EQ(snaps.body["data"].size(), 2u);
  EXPECT_EQ(snaps.body["data"][0]["name"], "base");
  EXPECT_EQ(snaps.body["data"][1]["parent"], "base");
  auto tmpl = call(sim, "POST", "/nodes/pve/lxc/101/template");
  EXPECT_EQ(tmpl.status, 200) << tmpl.raw;
  auto clone =
      call(sim, "POST", "/nodes/pve/lxc/101/clone", {{"newid", "102"}, {"hostname", "web-2"}});
  ASSERT_EQ(clone.status, 200) << clone.raw;
  EXPECT_EQ(wait_task(sim, clone.body["data"])["exitstatus"], "OK");
  auto cfg = call(sim, "GET", "/nodes/pve/lxc/102/config").body["data"];
  EXPECT_EQ(cfg["hostname"], "web-2");
  EXPECT_EQ(cfg["rootfs"], "local-lvm:vm-102-disk-0,size=10G");
  EXPECT_FALSE(cfg.contains("template"));
  EXPECT_EQ(call(sim, "GET", "/nodes/pve/lxc/101/config").body["data"]["template"], 1);
}

}  // namespace
}  // namespace phoenix::pvesim::testing

namespace phoenix::pvesim::testing {
namespace {

TEST(PveSimServer, QemuCreateStartAndConfig) {
  SimProcess sim;
  ASSERT_TRUE(sim.start({"--task-duration", "10"}));
  auto r = call(sim, "POST", "/nodes/pve/qemu",
                {{"vmid", "200"},
                 {"name", "vm-1"},
                 {"cores", "2"},
                 {"memory", "2048"},
                 {"scsi0", "local-lvm:32"},
                 {"ipconfig0", "ip=10.0.0.9/24,gw=10.0.0.1"}});
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_TRUE(r.body["data"].get<std::string>().ends_with(":qmcreate:200:phoenix@pve!ci:"));
  EXPECT_EQ(wait_task(sim, r.body["data"])["exitstatus"], "OK");
  auto cfg = call(sim, "GET", "/nodes/pve/qemu/200/config").body["data"];
  EXPECT_EQ(cfg["scsi0"], "local-lvm:vm-200-disk-0,size=32G");
  auto start = call(sim, "POST", "/nodes/pve/qemu/200/status/start");
  EXPECT_EQ(wait_task(sim, start.body["data"])["exitstatus"], "OK");
  auto res = call(sim, "GET", "/cluster/resources", {{"type", "vm"}}).body["data"];
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0]["id"], "qemu/200");
  EXPECT_EQ(res[0]["name"], "vm-1");
  EXPECT_EQ(call(sim, "GET", "/nodes/pve/lxc/200/config").status, 500);
}

}  // namespace
}  // namespace phoenix::pvesim::testing
