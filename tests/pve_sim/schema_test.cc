#include "schema.h"

#include <gtest/gtest.h>

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

ParamErrors check(const std::string& method, const std::string& path, Params params) {
  auto m = schema().match(method, path);
  EXPECT_TRUE(m.has_value()) << method << " " << path;
  if (!m) return {};
  for (auto& [k, v] : m->path_params) params[k] = v;
  return validate_params(*m->method, params);
}

Params create_ct(Params extra = {}) {
  Params p{{"ostemplate", "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}, {"vmid", "101"}};
  for (auto& [k, v] : extra) p[k] = v;
  return p;
}

TEST(PveSchemaMatch, ConcretePathMatchesTemplateAndYieldsPathParams) {
  auto m = schema().match("POST", "/nodes/pve/lxc/101/status/start");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->method->path_template, "/nodes/{node}/lxc/{vmid}/status/start");
  EXPECT_EQ(m->path_params.at("node"), "pve");
  EXPECT_EQ(m->path_params.at("vmid"), "101");
  EXPECT_TRUE(m->method->returns_string());
}

TEST(PveSchemaMatch, LiteralSegmentWinsOverTemplate) {
  auto m = schema().match("GET", "/cluster/nextid");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->method->path_template, "/cluster/nextid");
}

TEST(PveSchemaMatch, UnknownPathAndMethod) {
  EXPECT_EQ(schema().match("GET", "/nodes/pve/nonsense/1").error().kind(),
            base::ErrorKind::kNotFound);
  EXPECT_EQ(schema().match("PATCH", "/version").error().kind(), base::ErrorKind::kInvalidInput);
}

TEST(PveSchemaValidate, ValidCreateHasNoErrors) {
  auto errors = check("POST", "/nodes/pve/lxc",
                      create_ct({{"net0",
                                  "name=eth0,bridge=vmbr0,ip=10.0.0.5/24,gw=10.0.0.1,"
                                  "hwaddr=BC:24:11:00:00:01,firewall=1"},
                                 {"cores", "2"},
                                 {"memory", "1024"},
                                 {"unprivileged", "1"},
                                 {"features", "nesting=1,keyctl=1"},
                                 {"rootfs", "local-lvm:8"},
                                 {"mp0", "local-lvm:10,mp=/srv"},
                                 {"hostname", "web-1"},
                                 {"tags", "phoenix;web"}}));
  EXPECT_TRUE(errors.empty()) << testing::PrintToString(errors);
}

TEST(PveSchemaValidate, UnknownParameter) {
  auto errors = check("POST", "/nodes/pve/lxc/101/status/start", {{"bogus", "1"}});
  EXPECT_EQ(errors, (ParamErrors{{"bogus",
                                  "property is not defined in schema and the schema "
                                  "does not allow additional properties"}}));
}

TEST(PveSchemaValidate, MissingRequired) {
  auto errors = check("POST", "/nodes/pve/lxc", {{"vmid", "101"}});
  EXPECT_EQ(errors, (ParamErrors{{"ostemplate", "property is missing and it is not optional"}}));
}

TEST(PveSchemaValidate, BadInteger) {
  auto errors = check("POST", "/nodes/pve/lxc", create_ct({{"cores", "two"}}));
  EXPECT_EQ(errors, (ParamErrors{{"cores", "type check ('integer') failed - got 'two'"}}));
}

TEST(PveSchemaValidate, OutOfRange) {
  EXPECT_EQ(check("POST", "/nodes/pve/lxc", create_ct({{"cores", "9999"}})),
            (ParamErrors{{"cores", "value must have a maximum value of 8192"}}));
  EXPECT_EQ(check("POST", "/nodes/pve/lxc", create_ct({{"memory", "8"}})),
            (ParamErrors{{"memory", "value must have a minimum value of 16"}}));
  // The named format is checked before the range, as in PVE::JSONSchema::check_prop.
  EXPECT_EQ(check("POST", "/nodes/pve/lxc/99/status/start", {}),
            (ParamErrors{{"vmid", "invalid format - value does not look like a valid VM ID\n"}}));
}

TEST(PveSchemaValidate, BadBoolean) {
  EXPECT_EQ(check("POST", "/nodes/pve/lxc", create_ct({{"onboot", "maybe"}})),
            (ParamErrors{{"onboot", "type check ('boolean') failed - got 'maybe'"}}));
  EXPECT_TRUE(check("POST", "/nodes/pve/lxc", create_ct({{"onboot", "0"}})).empty());
}

TEST(PveSchemaValidate, BadEnum) {
  EXPECT_EQ(check("POST", "/nodes/pve/lxc", create_ct({{"arch", "sparc"}})),
            (ParamErrors{{"arch",
                          "value 'sparc' does not have a value in the enumeration "
                          "'amd64', 'i386', 'arm64', 'armhf', 'riscv32', 'riscv64'"}}));
}

TEST(PveSchemaValidate, BadPropertyStringKey) {
  EXPECT_EQ(check("POST", "/nodes/pve/lxc", create_ct({{"net0", "name=eth0,colour=blue"}})),
            (ParamErrors{{"net0",
                          "invalid format - invalid key in comma-separated list "
                          "property: colour\n"}}));
}

TEST(PveSchemaValidate, PropertyStringMissingRequiredKey) {
  EXPECT_EQ(check("POST", "/nodes/pve/lxc", create_ct({{"net0", "bridge=vmbr0"}})),
            (ParamErrors{{"net0",
                          "invalid format - format error\nnet0.name: property is "
                          "missing and it is not optional\n"}}));
}

TEST(PveSchemaValidate, BadMac) {
  EXPECT_EQ(
      check("POST", "/nodes/pve/lxc", create_ct({{"net0", "name=eth0,hwaddr=01:00:5E:00:00:01"}})),
      (ParamErrors{{"net0",
                    "invalid format - format error\nnet0.hwaddr: invalid format - "
                    "value does not look like a valid unicast MAC address\n"}}));
}

TEST(PveSchemaValidate, Net0WithBadIp) {
  EXPECT_EQ(check("POST", "/nodes/pve/lxc", create_ct({{"net0", "name=eth0,ip=10.0.0.300/24"}})),
            (ParamErrors{{"net0",
                          "invalid format - format error\nnet0.ip: invalid format - "
                          "value does not look like a valid ipv4 network configuration\n"}}));
  EXPECT_TRUE(check("POST", "/nodes/pve/lxc", create_ct({{"net1", "name=eth1,ip=dhcp"}})).empty());
}

TEST(PveSchemaValidate, IndexedParametersMatchOnlyDigits) {
  EXPECT_TRUE(check("POST", "/nodes/pve/lxc", create_ct({{"net12", "name=eth12"}})).empty());
  EXPECT_EQ(check("POST", "/nodes/pve/lxc", create_ct({{"netx", "name=eth0"}})),
            (ParamErrors{{"netx",
                          "property is not defined in schema and the schema does not "
                          "allow additional properties"}}));
}

TEST(PveSchemaValidate, PathParameterFormats) {
  EXPECT_EQ(
      check("GET", "/nodes/bad_node!/lxc/101/config", {}),
      (ParamErrors{{"node", "invalid format - value does not look like a valid node name\n"}}));
}

TEST(PveSchemaValidate, PatternAndMaxLength) {
  EXPECT_EQ(check("POST", "/nodes/pve/lxc", create_ct({{"net0", "name=eth0,bridge=vm br0"}})),
            (ParamErrors{{"net0",
                          "invalid format - format error\nnet0.bridge: value does not "
                          "match the regex pattern\n"}}));
  EXPECT_EQ(check("PUT", "/nodes/pve/lxc/101/config", {{"digest", std::string(41, 'a')}}),
            (ParamErrors{{"digest", "value may only be 40 characters long"}}));
}

TEST(PveSchemaValidate, ConfigIdList) {
  EXPECT_TRUE(check("PUT", "/nodes/pve/lxc/101/config", {{"delete", "net1,mp0"}}).empty());
  EXPECT_EQ(check("PUT", "/nodes/pve/lxc/101/config", {{"delete", "net1,9bad"}}),
            (ParamErrors{{"delete", "invalid format - invalid configuration ID '9bad'\n"}}));
}

TEST(PveSchemaFormats, Named) {
  EXPECT_EQ(check_named_format("ipv4", "10.1.2.3"), "");
  EXPECT_EQ(check_named_format("ipv4", "10.1.2"),
            "value does not look like a valid IPv4 address\n");
  EXPECT_EQ(check_named_format("ipv6", "fd00::1"), "");
  EXPECT_EQ(check_named_format("ipv4-CIDR", "10.0.0.0/33"),
            "value does not look like a valid IPv4 CIDR network\n");
  EXPECT_EQ(check_named_format("mac-addr", "bc:24:11:aa:bb:cc"), "");
  EXPECT_EQ(check_named_format("pve-vmid", "99"), "value does not look like a valid VM ID\n");
  EXPECT_EQ(check_named_format("dns-name", "web-1.example.org"), "");
  EXPECT_EQ(check_named_format("address", "-bad-"),
            "value does not look like a valid address: -bad-\n");
  EXPECT_EQ(check_named_format("pve-storage-id", "local-lvm"), "");
  EXPECT_EQ(check_named_format("pve-volume-id", "local:vztmpl/debian.tar.zst"), "");
  EXPECT_EQ(check_named_format("no-such-format", "anything"), "");
}

}  // namespace
}  // namespace phoenix::pvesim

namespace phoenix::pvesim {
namespace {

TEST(PveSchemaValidate, PropertyStringAliasesAreNotRequiredKeys) {
  auto m = schema().match("POST", "/nodes/pve/qemu");
  ASSERT_TRUE(m.has_value());
  EXPECT_TRUE(validate_params(*m->method, {{"node", "pve"},
                                           {"vmid", "200"},
                                           {"scsi0", "local-lvm:32,iothread=1"},
                                           {"virtio1", "volume=local-lvm:8"}})
                  .empty());
}

TEST(PveSchemaValidate, KeyAliasSetsBothKeys) {
  auto m = schema().match("POST", "/nodes/pve/qemu");
  ASSERT_TRUE(m.has_value());
  EXPECT_TRUE(validate_params(*m->method, {{"node", "pve"},
                                           {"vmid", "200"},
                                           {"net0", "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0"}})
                  .empty());
  EXPECT_EQ(validate_params(
                *m->method,
                {{"node", "pve"}, {"vmid", "200"}, {"net0", "e1000,virtio=BC:24:11:AA:BB:CC"}}),
            (ParamErrors{{"net0", "invalid format - key alias 'model' is already defined\n"}}));
}

}  // namespace
}  // namespace phoenix::pvesim
