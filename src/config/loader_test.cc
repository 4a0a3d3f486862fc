#include "config/loader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace phoenix::config {
namespace {

const char* kHypervisor = R"({
  "version": "1.0",
  "domain_name": "phoenix.local",
  "shared_volumes": {
    "firewall": {
      "enabled": true,
      "global_firewall_rules": [{"type": "in", "action": "ACCEPT", "port": 22}]
    }
  },
  "portainer_api": {
    "admin_user": "admin",
    "admin_password": "hunter2-very-secret"
  }
})";

const char* kLxc = R"({
  "lxc_configs": {
    "101": {
      "name": "Nginx",
      "memroy_mb": 2048,
      "memory_mb": 1024,
      "gpu_assignment": "0, 1",
      "ports": ["80:80"]
    },
    "102": {
      "name": "Plain",
      "gpu_assignment": "none"
    }
  }
})";

const char* kVm = R"({
  "vms": [
    {"vmid": 1001, "name": "Docker", "docker_stacks": ["web", {"name": "api", "environment": "staging"}]},
    {"vmid": "1002", "name": "Second", "dependencies": [1001, "101"]}
  ]
})";

LoadResult load(MemoryTree& tree) { return load_estate({"/e/etc", {}, {}}, tree); }

MemoryTree small_estate() {
  MemoryTree tree;
  tree.add("/e/etc/phoenix_hypervisor_config.json", kHypervisor);
  tree.add("/e/etc/phoenix_lxc_configs.json", kLxc);
  tree.add("/e/etc/phoenix_vm_configs.json", kVm);
  return tree;
}

const base::Diagnostic* find_diag(const base::Diagnostics& diags, std::string_view code,
                                  std::string_view message_part = {}) {
  for (const base::Diagnostic& d : diags.all()) {
    if (d.code == code && d.message.find(message_part) != std::string::npos) return &d;
  }
  return nullptr;
}

TEST(Loader, ReadsGuestsWithStringAndIntegerIds) {
  MemoryTree tree = small_estate();
  LoadResult r = load(tree);
  EXPECT_FALSE(r.diags.has_errors());
  for (const auto& d : r.diags.all()) {
    if (d.severity == base::Severity::kError) ADD_FAILURE() << d.code << ": " << d.message;
  }
  ASSERT_EQ(r.estate->guests.size(), 4u);
  const model::Guest* lxc = r.estate->guest(101);
  ASSERT_NE(lxc, nullptr);
  EXPECT_TRUE(lxc->is_lxc());
  EXPECT_EQ(lxc->name.value, "Nginx");
  EXPECT_EQ(lxc->memory_mb.value, 1024);
  EXPECT_EQ(lxc->gpus, (std::vector<int>{0, 1}));
  EXPECT_EQ(lxc->gpu_assignment.value, "0, 1");
  EXPECT_TRUE(r.estate->guest(102)->gpus.empty());

  const model::Guest* vm = r.estate->guest(1001);
  ASSERT_NE(vm, nullptr);
  EXPECT_TRUE(vm->is_vm());
  const model::Guest* vm2 = r.estate->guest(1002);
  ASSERT_NE(vm2, nullptr);
  ASSERT_EQ(vm2->dependencies.size(), 2u);
  EXPECT_EQ(vm2->dependencies[0].id, 1001u);
  EXPECT_EQ(vm2->dependencies[1].id, 101u);
}

TEST(Loader, ReadsDockerStacksInBothForms) {
  MemoryTree tree = small_estate();
  LoadResult r = load(tree);
  const model::Guest* vm = r.estate->guest(1001);
  ASSERT_NE(vm, nullptr);
  ASSERT_EQ(vm->docker_stacks.size(), 2u);
  EXPECT_EQ(vm->docker_stacks[0].name.value, "web");
  EXPECT_FALSE(vm->docker_stacks[0].environment.present);
  EXPECT_EQ(vm->docker_stacks[1].name.value, "api");
  EXPECT_TRUE(vm->docker_stacks[1].environment.present);
  EXPECT_EQ(vm->docker_stacks[1].environment.value, "staging");
}

TEST(Loader, UnknownKeySuggestsClosestKnownKey) {
  MemoryTree tree = small_estate();
  LoadResult r = load(tree);
  const base::Diagnostic* d = find_diag(r.diags, "unknown-key", "memroy_mb");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->severity, base::Severity::kWarning);
  EXPECT_EQ(d->message, "unknown key \"memroy_mb\" in LXC 101; it is ignored");
  EXPECT_EQ(d->hint, "did you mean \"memory_mb\"?");
  EXPECT_EQ(r.estate->sources.describe(d->loc), "/e/etc/phoenix_lxc_configs.json:5:7");
}

TEST(Loader, LegacyPortsKeyIsReportedAsUnused) {
  MemoryTree tree = small_estate();
  LoadResult r = load(tree);
  const base::Diagnostic* d = find_diag(r.diags, "unused-key", "\"ports\"");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->severity, base::Severity::kWarning);
  EXPECT_EQ(d->message, "\"ports\" in LXC 101 is not used by Phoenix");
  EXPECT_EQ(d->hint, "LXC services are reached through Traefik (traefik_service), not ports");
  EXPECT_EQ(find_diag(r.diags, "unknown-key", "ports"), nullptr);
}

TEST(Loader, FirewallUnderSharedVolumesIsAcceptedWithMovedKeyWarning) {
  MemoryTree tree = small_estate();
  LoadResult r = load(tree);
  const model::GlobalFirewall& fw = r.estate->platform.firewall;
  EXPECT_TRUE(fw.present);
  EXPECT_TRUE(fw.enabled.value);
  ASSERT_EQ(fw.rules.size(), 1u);
  EXPECT_EQ(fw.rules[0].port.value, "22");
  EXPECT_EQ(fw.rules[0].action.value, "ACCEPT");
  const base::Diagnostic* d = find_diag(r.diags, "moved-key");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->severity, base::Severity::kWarning);
  EXPECT_EQ(d->message,
            "firewall settings belong at the top level of phoenix_hypervisor_config.json");
  EXPECT_EQ(d->hint,
            "move \"firewall\" out of \"shared_volumes\"; Phoenix reads it here only for "
            "compatibility");
  // shared_volumes holds nothing else, so it is not reported as unused.
  EXPECT_EQ(find_diag(r.diags, "unused-key", "shared_volumes"), nullptr);
  EXPECT_EQ(find_diag(r.diags, "unknown-key", "shared_volumes"), nullptr);
}

TEST(Loader, InlineSecretIsReportedWithoutItsValue) {
  MemoryTree tree = small_estate();
  LoadResult r = load(tree);
  EXPECT_TRUE(r.estate->platform.portainer_api.inline_secret);
  const base::Diagnostic* d = find_diag(r.diags, "inline-secret");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->severity, base::Severity::kWarning);
  EXPECT_EQ(d->message,
            "admin_password is written in the configuration file; Phoenix never reads secrets "
            "from it");
  for (const base::Diagnostic& any : r.diags.all()) {
    EXPECT_EQ(any.message.find("hunter2"), std::string::npos) << any.message;
    EXPECT_EQ(any.hint.find("hunter2"), std::string::npos) << any.hint;
  }
}

TEST(Loader, ExactWarningSet) {
  MemoryTree tree = small_estate();
  LoadResult r = load(tree);
  std::vector<std::string> codes;
  for (const base::Diagnostic& d : r.diags.sorted()) codes.push_back(d.code);
  EXPECT_EQ(codes,
            (std::vector<std::string>{"moved-key", "inline-secret", "unknown-key", "unused-key"}));
}

TEST(Loader, BadIdsAndGpuAssignment) {
  MemoryTree tree;
  tree.add("/e/etc/phoenix_hypervisor_config.json", "{}");
  tree.add("/e/etc/phoenix_lxc_configs.json",
           R"({"lxc_configs": {"12": {}, "103": {"gpu_assignment": "0,x"}}})");
  tree.add("/e/etc/phoenix_vm_configs.json", R"({"vms": [{"vmid": "abc"}]})");
  LoadResult r = load(tree);
  const base::Diagnostic* id = find_diag(r.diags, "bad-guest-id", "lxc_configs");
  ASSERT_NE(id, nullptr);
  EXPECT_EQ(id->message,
            "each key of lxc_configs must be a guest id between 100 and 999999999, "
            "not \"12\"");
  const base::Diagnostic* vmid = find_diag(r.diags, "bad-guest-id", "vmid");
  ASSERT_NE(vmid, nullptr);
  EXPECT_EQ(vmid->message, "vmid must be a guest id between 100 and 999999999, not \"abc\"");
  const base::Diagnostic* gpu = find_diag(r.diags, "bad-gpu-assignment");
  ASSERT_NE(gpu, nullptr);
  EXPECT_EQ(gpu->message,
            "gpu_assignment of LXC 103 must be \"none\" or GPU indexes such as "
            "\"0\" or \"0,1\", not \"0,x\"");
  ASSERT_NE(r.estate->guest(103), nullptr);
  EXPECT_TRUE(r.estate->guest(103)->gpus.empty());
}

TEST(Loader, MissingFileIsAnError) {
  MemoryTree tree;
  LoadResult r = load(tree);
  const base::Diagnostic* d = find_diag(r.diags, "missing-file", "phoenix_hypervisor_config.json");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->message,
            "cannot read /e/etc/phoenix_hypervisor_config.json: No such file or directory");
  EXPECT_NE(r.estate, nullptr);
}

}  // namespace
}  // namespace phoenix::config
