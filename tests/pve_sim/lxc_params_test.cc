// The parameters Phoenix sends to create and configure each LXC of the example estate pass the
// official API schema, as pve-sim (and Proxmox) check them.

#include <gtest/gtest.h>

#include <map>

#include "config/loader.h"
#include "config/source_tree.h"
#include "pveconf/lxc.h"
#include "schema.h"

namespace phoenix::pvesim {
namespace {

const ApiSchema& schema() {
  static const ApiSchema s = [] {
    auto r = ApiSchema::load(PVE_APIDATA_JSON);
    if (!r) throw std::runtime_error(r.error().describe());
    return std::move(*r);
  }();
  return s;
}

const model::Estate& example() {
  static const config::LoadResult loaded = [] {
    config::LoadOptions options{PHOENIX_SOURCE_DIR "/examples/estate/etc", std::nullopt,
                                std::nullopt};
    config::DiskTree tree;
    return config::load_estate(options, tree);
  }();
  return *loaded.estate;
}

ParamErrors check(const std::string& method, const std::string& path, const pveconf::Params& list) {
  auto m = schema().match(method, path);
  EXPECT_TRUE(m.has_value()) << method << " " << path;
  if (!m) return {};
  Params params(list.begin(), list.end());
  EXPECT_EQ(params.size(), list.size()) << "a parameter is given twice";
  for (auto& [k, v] : m->path_params) params[k] = v;
  return validate_params(*m->method, params);
}

TEST(LxcParams, EveryExampleContainerPassesTheSchema) {
  int checked = 0;
  for (const model::Guest& g : example().guests) {
    if (!g.is_lxc()) continue;
    ++checked;
    EXPECT_EQ(check("POST", "/nodes/pve/lxc", pveconf::lxc_create_params(g)), ParamErrors{})
        << g.label();
    auto config = pveconf::lxc_config(g);
    EXPECT_EQ(check("PUT", "/nodes/pve/lxc/" + std::to_string(g.id) + "/config", config),
              ParamErrors{})
        << g.label();
  }
  EXPECT_EQ(checked, 4);
}

TEST(LxcParams, GpuContainer) {
  const model::Guest* g = example().guest(801);
  ASSERT_NE(g, nullptr);
  std::map<std::string, std::string> p;
  for (const auto& [k, v] : pveconf::lxc_create_params(*g)) p[k] = v;
  EXPECT_EQ(p.at("vmid"), "801");
  EXPECT_EQ(p.at("rootfs"), "quickOS-lxc-disks:128");
  EXPECT_EQ(p.at("net0"),
            "name=eth0,bridge=vmbr0,ip=10.0.0.141/24,gw=10.0.0.1,hwaddr=52:54:00:67:89:A1,"
            "firewall=1");
  EXPECT_EQ(p.at("dev0"), "/dev/nvidia0");
  EXPECT_EQ(p.at("dev1"), "/dev/nvidiactl");
  EXPECT_EQ(p.at("startup"), "order=3,up=5");
  EXPECT_EQ(p.at("onboot"), "1");
  EXPECT_EQ(p.at("unprivileged"), "1");
}

}  // namespace
}  // namespace phoenix::pvesim
