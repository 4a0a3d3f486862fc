// The firewall endpoints of pve-sim over HTTPS: guest (LXC and QEMU) and cluster options and
// rules, with Proxmox's ordering, digests and errors.
#include <gtest/gtest.h>

#include <filesystem>

#include "sim_process.h"

namespace phoenix::pvesim::testing {
namespace {

using nlohmann::json;
using Params = std::map<std::string, std::string>;

bool create_lxc(SimProcess& sim, const std::string& vmid) {
  auto r = call(sim, "POST", "/nodes/pve/lxc",
                {{"vmid", vmid},
                 {"ostemplate", "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"},
                 {"hostname", "ct-" + vmid},
                 {"rootfs", "local-lvm:8"}});
  EXPECT_EQ(r.status, 200) << r.raw;
  return r.status == 200 && wait_task(sim, r.body["data"]).value("exitstatus", "") == "OK";
}

bool create_vm(SimProcess& sim, const std::string& vmid) {
  auto r = call(sim, "POST", "/nodes/pve/qemu",
                {{"vmid", vmid}, {"name", "vm-" + vmid}, {"scsi0", "local-lvm:8"}});
  EXPECT_EQ(r.status, 200) << r.raw;
  return r.status == 200 && wait_task(sim, r.body["data"]).value("exitstatus", "") == "OK";
}

// The comments of the rules, top to bottom.
std::vector<std::string> comments(SimProcess& sim, const std::string& rules) {
  std::vector<std::string> out;
  auto list = call(sim, "GET", rules);
  for (const auto& r : list.body["data"]) out.push_back(r.value("comment", ""));
  return out;
}

TEST(PveSimFirewall, GuestOptionsAreStoredAndReturnedWhenSet) {
  SimProcess sim;
  ASSERT_TRUE(sim.start({"--task-duration", "10"}));
  ASSERT_TRUE(create_lxc(sim, "101"));
  const std::string options = "/nodes/pve/lxc/101/firewall/options";

  auto empty = call(sim, "GET", options);
  ASSERT_EQ(empty.status, 200) << empty.raw;
  EXPECT_EQ(empty.body["data"].size(), 1u) << empty.raw;  // only the digest
  std::string digest = empty.body["data"]["digest"];
  EXPECT_EQ(digest.size(), 40u);

  auto put = call(sim, "PUT", options,
                  {{"enable", "1"},
                   {"policy_in", "DROP"},
                   {"policy_out", "ACCEPT"},
                   {"macfilter", "false"},
                   {"log_level_in", "info"},
                   {"digest", digest}});
  ASSERT_EQ(put.status, 200) << put.raw;
  EXPECT_TRUE(put.body["data"].is_null());
  auto got = call(sim, "GET", options).body["data"];
  EXPECT_EQ(got["enable"], 1);
  EXPECT_EQ(got["macfilter"], 0);
  EXPECT_EQ(got["policy_in"], "DROP");
  EXPECT_EQ(got["policy_out"], "ACCEPT");
  EXPECT_EQ(got["log_level_in"], "info");
  EXPECT_FALSE(got.contains("dhcp"));
  EXPECT_NE(got["digest"], digest);

  auto stale = call(sim, "PUT", options, {{"enable", "0"}, {"digest", digest}});
  EXPECT_EQ(stale.status, 500);
  EXPECT_EQ(stale.body["message"],
            "detected modified configuration - file changed by other user? Try again.\n");
  auto bogus = call(sim, "PUT", options, {{"delete", "bogus"}});
  EXPECT_EQ(bogus.status, 400);
  EXPECT_EQ(bogus.body["errors"]["delete"], "no such option 'bogus'");
  ASSERT_EQ(call(sim, "PUT", options, {{"delete", "macfilter,log_level_in"}}).status, 200);
  got = call(sim, "GET", options).body["data"];
  EXPECT_FALSE(got.contains("macfilter"));
  EXPECT_FALSE(got.contains("log_level_in"));
  EXPECT_EQ(got["enable"], 1);
}

TEST(PveSimFirewall, RulesGoOnTopAndMoveAsInProxmox) {
  SimProcess sim;
  ASSERT_TRUE(sim.start({"--task-duration", "10"}));
  ASSERT_TRUE(create_vm(sim, "200"));
  const std::string rules = "/nodes/pve/qemu/200/firewall/rules";

  for (const char* c : {"c", "b", "a"}) {
    auto r = call(sim, "POST", rules,
                  {{"type", "in"},
                   {"action", "ACCEPT"},
                   {"proto", "tcp"},
                   {"dport", "22"},
                   {"enable", "1"},
                   {"comment", c}});
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_TRUE(r.body["data"].is_null());
  }
  EXPECT_EQ(comments(sim, rules), (std::vector<std::string>{"a", "b", "c"}));
  // pos is accepted and ignored on create, as Proxmox's create_rule ignores it; without enable
  // the rule is disabled.
  ASSERT_EQ(call(sim, "POST", rules,
                 {{"type", "out"}, {"action", "DROP"}, {"pos", "2"}, {"comment", "d"}})
                .status,
            200);
  auto list = call(sim, "GET", rules).body["data"];
  ASSERT_EQ(list.size(), 4u);
  EXPECT_EQ(list[0], json::parse(R"({"pos":0,"type":"out","action":"DROP","enable":0,
                                     "comment":"d","digest":")" +
                                 list[0]["digest"].get<std::string>() + "\"}"));
  EXPECT_EQ(list[1]["enable"], 1);
  EXPECT_EQ(list[1]["dport"], "22");
  EXPECT_EQ(list[3]["pos"], 3);
  for (const auto& r : list) EXPECT_EQ(r["digest"], list[0]["digest"]);
  std::string digest = list[0]["digest"];

  auto one = call(sim, "GET", rules + "/1");
  ASSERT_EQ(one.status, 200) << one.raw;
  EXPECT_EQ(one.body["data"]["comment"], "a");
  EXPECT_EQ(one.body["data"]["pos"], 1);
  auto none = call(sim, "GET", rules + "/9");
  EXPECT_EQ(none.status, 500);
  EXPECT_EQ(none.body["message"], "no rule at position 9\n");

  // d a b c: moving down lands one before moveto, moving up lands at moveto, past the end last.
  ASSERT_EQ(call(sim, "PUT", rules + "/0", {{"moveto", "2"}, {"digest", digest}}).status, 200);
  EXPECT_EQ(comments(sim, rules), (std::vector<std::string>{"a", "d", "b", "c"}));
  auto stale = call(sim, "PUT", rules + "/0", {{"moveto", "3"}, {"digest", digest}});
  EXPECT_EQ(stale.status, 500);
  EXPECT_EQ(stale.body["message"],
            "detected modified configuration - file changed by other user? Try again.\n");
  ASSERT_EQ(call(sim, "PUT", rules + "/3", {{"moveto", "0"}}).status, 200);
  EXPECT_EQ(comments(sim, rules), (std::vector<std::string>{"c", "a", "d", "b"}));
  ASSERT_EQ(call(sim, "PUT", rules + "/0", {{"moveto", "10"}}).status, 200);
  EXPECT_EQ(comments(sim, rules), (std::vector<std::string>{"a", "d", "b", "c"}));

  // Update fields; delete some; required ones stay.
  ASSERT_EQ(call(sim, "PUT", rules + "/0",
                 {{"source", "10.0.0.0/24"}, {"delete", "dport"}, {"comment", "a2"}})
                .status,
            200);
  auto a = call(sim, "GET", rules + "/0").body["data"];
  EXPECT_EQ(a["comment"], "a2");
  EXPECT_EQ(a["source"], "10.0.0.0/24");
  EXPECT_EQ(a["ipversion"], 4);
  EXPECT_FALSE(a.contains("dport"));
  EXPECT_EQ(a["enable"], 1);
  auto required = call(sim, "PUT", rules + "/0", {{"delete", "action"}});
  EXPECT_EQ(required.status, 400);
  EXPECT_EQ(required.body["errors"]["delete"], "unable to delete required property 'action'");

  auto del = call(sim, "DELETE", rules + "/1");
  ASSERT_EQ(del.status, 200) << del.raw;
  EXPECT_TRUE(del.body["data"].is_null());
  EXPECT_EQ(comments(sim, rules), (std::vector<std::string>{"a2", "b", "c"}));
  EXPECT_EQ(call(sim, "DELETE", rules + "/3").body["message"], "no rule at position 3\n");
  EXPECT_EQ(call(sim, "DELETE", rules + "/0", {{"digest", digest}}).status, 500);
}

TEST(PveSimFirewall, RulesAreVerifiedLikeProxmox) {
  SimProcess sim;
  ASSERT_TRUE(sim.start({"--task-duration", "10"}));
  ASSERT_TRUE(create_lxc(sim, "101"));
  const std::string rules = "/nodes/pve/lxc/101/firewall/rules";
  auto no_proto = call(sim, "POST", rules, {{"type", "in"}, {"action", "ACCEPT"}, {"dport", "80"}});
  EXPECT_EQ(no_proto.status, 400);
  EXPECT_EQ(no_proto.body["errors"],
            json({{"proto", "missing property - 'dport' requires this property"}}));
  auto iface = call(sim, "POST", rules, {{"type", "in"}, {"action", "ACCEPT"}, {"iface", "eth0"}});
  EXPECT_EQ(iface.status, 400);
  EXPECT_EQ(iface.body["errors"],
            json({{"iface", "value does not match the regex pattern 'net\\d+'"}}));
  auto action = call(sim, "POST", rules, {{"type", "in"}, {"action", "allow"}});
  EXPECT_EQ(action.status, 400);
  EXPECT_EQ(action.body["errors"], json({{"action", "unknown action 'allow'"}}));
  auto missing = call(sim, "POST", rules, {{"action", "ACCEPT"}});
  EXPECT_EQ(missing.status, 400);
  EXPECT_EQ(missing.body["errors"]["type"], "property is missing and it is not optional");
  EXPECT_EQ(call(sim, "GET", rules).body["data"].size(), 0u);
  auto group = call(sim, "POST", rules, {{"type", "group"}, {"action", "webservers"}});
  EXPECT_EQ(group.status, 200) << group.raw;
}

TEST(PveSimFirewall, ClusterFirewallPersistsInItsOwnFile) {
  SimProcess sim;
  ASSERT_TRUE(sim.start());
  auto put = call(sim, "PUT", "/cluster/firewall/options",
                  {{"enable", "1"}, {"policy_in", "DROP"}, {"ebtables", "0"}});
  ASSERT_EQ(put.status, 200) << put.raw;
  ASSERT_EQ(call(sim, "POST", "/cluster/firewall/rules",
                 {{"type", "in"},
                  {"action", "ACCEPT"},
                  {"iface", "vmbr0"},
                  {"proto", "tcp"},
                  {"dport", "8006"},
                  {"enable", "1"}})
                .status,
            200);
  EXPECT_TRUE(std::filesystem::exists(sim.state_dir() / "state" / "firewall" / "cluster.json"));
  sim.stop();
  ASSERT_TRUE(sim.start());
  auto options = call(sim, "GET", "/cluster/firewall/options").body["data"];
  EXPECT_EQ(options["enable"], 1);
  EXPECT_EQ(options["ebtables"], 0);
  EXPECT_EQ(options["policy_in"], "DROP");
  auto rules = call(sim, "GET", "/cluster/firewall/rules").body["data"];
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0]["iface"], "vmbr0");
  EXPECT_EQ(rules[0]["dport"], "8006");
  ASSERT_EQ(call(sim, "PUT", "/cluster/firewall/rules/0", {{"enable", "0"}}).status, 200);
  EXPECT_EQ(call(sim, "GET", "/cluster/firewall/rules/0").body["data"]["enable"], 0);
  ASSERT_EQ(call(sim, "DELETE", "/cluster/firewall/rules/0").status, 200);
  EXPECT_EQ(call(sim, "GET", "/cluster/firewall/rules").body["data"].size(), 0u);
}

TEST(PveSimFirewall, GoesWithItsGuest) {
  SimProcess sim;
  ASSERT_TRUE(sim.start({"--task-duration", "10"}));
  auto gone = call(sim, "GET", "/nodes/pve/lxc/150/firewall/rules");
  EXPECT_EQ(gone.status, 500);
  EXPECT_EQ(gone.body["message"], "Configuration file 'nodes/pve/lxc/150.conf' does not exist\n");
  EXPECT_EQ(
      call(sim, "PUT", "/nodes/pve/qemu/150/firewall/options", {{"enable", "1"}}).body["message"],
      "Configuration file 'nodes/pve/qemu-server/150.conf' does not exist\n");

  ASSERT_TRUE(create_lxc(sim, "150"));
  ASSERT_EQ(call(sim, "POST", "/nodes/pve/lxc/150/firewall/rules",
                 {{"type", "in"}, {"action", "DROP"}, {"enable", "1"}})
                .status,
            200);
  // A clone takes the firewall along.
  auto clone = call(sim, "POST", "/nodes/pve/lxc/150/clone", {{"newid", "151"}});
  ASSERT_EQ(clone.status, 200) << clone.raw;
  EXPECT_EQ(wait_task(sim, clone.body["data"])["exitstatus"], "OK");
  EXPECT_EQ(call(sim, "GET", "/nodes/pve/lxc/151/firewall/rules").body["data"].size(), 1u);

  auto del = call(sim, "DELETE", "/nodes/pve/lxc/150");
  EXPECT_EQ(wait_task(sim, del.body["data"])["exitstatus"], "OK");
  EXPECT_FALSE(std::filesystem::exists(sim.state_dir() / "state" / "firewall" / "150.json"));
  ASSERT_TRUE(create_lxc(sim, "150"));
  EXPECT_EQ(call(sim, "GET", "/nodes/pve/lxc/150/firewall/rules").body["data"].size(), 0u);
}

}  // namespace
}  // namespace phoenix::pvesim::testing
