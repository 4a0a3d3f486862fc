#include "model/net.h"

#include <gtest/gtest.h>

namespace phoenix::model {
namespace {

TEST(Net, ParseIpv4Accepts) {
  auto ip = parse_ipv4("10.0.3.254");
  ASSERT_TRUE(ip.has_value());
  EXPECT_EQ(ip->bits, 0x0A0003FEu);
  EXPECT_EQ(to_string(*ip), "10.0.3.254");
  EXPECT_EQ(parse_ipv4("0.0.0.0")->bits, 0u);
  EXPECT_EQ(parse_ipv4("255.255.255.255")->bits, 0xFFFFFFFFu);
}

TEST(Net, ParseIpv4Rejects) {
  for (const char* bad : {"010.0.0.1", "10.0.0.01", "00.1.2.3", "256.0.0.1", "1.2.3.256",
                          "1.2.3.4.5", "1.2.3", "1.2.3.", ".1.2.3", "1..2.3", "", "a.b.c.d",
                          "1.2.3.4 ", " 1.2.3.4", "1.2.3.4/24", "1000.1.1.1", "-1.2.3.4"}) {
    EXPECT_FALSE(parse_ipv4(bad).has_value()) << bad;
  }
}

TEST(Net, ParseCidr) {
  auto c = parse_cidr("10.0.3.7/24");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->prefix, 24);
  EXPECT_EQ(to_string(c->network()), "10.0.3.0");
  EXPECT_EQ(to_string(*c), "10.0.3.7/24");
  EXPECT_EQ(c->mask(), 0xFFFFFF00u);
  EXPECT_EQ(parse_cidr("0.0.0.0/0")->mask(), 0u);
  EXPECT_EQ(parse_cidr("1.2.3.4/32")->mask(), 0xFFFFFFFFu);
  EXPECT_FALSE(parse_cidr("10.0.0.1").has_value());
  auto bare = parse_cidr("10.0.0.1", true);
  ASSERT_TRUE(bare.has_value());
  EXPECT_EQ(bare->prefix, 32);
  for (const char* bad :
       {"10.0.0.0/33", "10.0.0.0/", "10.0.0.0/x", "10.0.0.0/100", "10.0.0.256/8", "/8"}) {
    EXPECT_FALSE(parse_cidr(bad).has_value()) << bad;
  }
}

TEST(Net, CidrContains) {
  Cidr net = *parse_cidr("10.0.3.0/24");
  EXPECT_TRUE(net.contains(*parse_ipv4("10.0.3.0")));
  EXPECT_TRUE(net.contains(*parse_ipv4("10.0.3.255")));
  EXPECT_FALSE(net.contains(*parse_ipv4("10.0.4.1")));
  EXPECT_FALSE(net.contains(*parse_ipv4("10.0.2.255")));
  EXPECT_TRUE(parse_cidr("0.0.0.0/0")->contains(*parse_ipv4("192.168.1.1")));
  Cidr host = *parse_cidr("192.168.1.1/32");
  EXPECT_TRUE(host.contains(*parse_ipv4("192.168.1.1")));
  EXPECT_FALSE(host.contains(*parse_ipv4("192.168.1.2")));
  EXPECT_TRUE(parse_cidr("172.16.0.0/12")->contains(*parse_ipv4("172.31.255.1")));
  EXPECT_FALSE(parse_cidr("172.16.0.0/12")->contains(*parse_ipv4("172.32.0.1")));
}

TEST(Net, IsMacAddress) {
  EXPECT_TRUE(is_mac_address("52:54:00:AA:bb:Cc"));
  EXPECT_TRUE(is_mac_address("00:00:00:00:00:00"));
  EXPECT_FALSE(is_mac_address("52:54:00:AA:BB"));
  EXPECT_FALSE(is_mac_address("52:54:00:AA:BB:CC:"));
  EXPECT_FALSE(is_mac_address("52-54-00-AA-BB-CC"));
  EXPECT_FALSE(is_mac_address("52:54:00:AA:BB:CG"));
  EXPECT_FALSE(is_mac_address("525:4:00:AA:BB:CC"));
  EXPECT_FALSE(is_mac_address(""));
}

TEST(Net, IsDnsName) {
  EXPECT_TRUE(is_dns_name("example.com"));
  EXPECT_TRUE(is_dns_name("a"));
  EXPECT_TRUE(is_dns_name("portainer.phoenix.local."));
  EXPECT_TRUE(is_dns_name("x-1.b2"));
  EXPECT_TRUE(is_dns_name(std::string(63, 'a') + ".com"));
  EXPECT_FALSE(is_dns_name(std::string(64, 'a') + ".com"));
  EXPECT_FALSE(is_dns_name(""));
  EXPECT_FALSE(is_dns_name("."));
  EXPECT_FALSE(is_dns_name("a..b"));
  EXPECT_FALSE(is_dns_name(".a"));
  EXPECT_FALSE(is_dns_name("-a.com"));
  EXPECT_FALSE(is_dns_name("a-.com"));
  EXPECT_FALSE(is_dns_name("a_b.com"));
  EXPECT_FALSE(is_dns_name("a b"));
  EXPECT_FALSE(is_dns_name("*.example.com"));
  // 253 characters in all.
  std::string label = std::string(49, 'a');
  std::string name253 = label + "." + label + "." + label + "." + label + "." + label + ".abc";
  ASSERT_EQ(name253.size(), 253u);
  EXPECT_TRUE(is_dns_name(name253));
  EXPECT_FALSE(is_dns_name(name253 + "d"));
}

}  // namespace
}  // namespace phoenix::model
