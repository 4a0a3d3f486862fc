#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace phoenix::model {

struct Ipv4 {
  std::uint32_t bits = 0;
  friend auto operator<=>(const Ipv4&, const Ipv4&) = default;
};

struct Cidr {
  Ipv4 addr;
  int prefix = 32;

  std::uint32_t mask() const { return prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix); }
  Ipv4 network() const { return Ipv4{addr.bits & mask()}; }
  bool contains(Ipv4 ip) const { return (ip.bits & mask()) == (addr.bits & mask()); }
};

// Dotted quad, exactly four decimal octets without leading zeros.
std::optional<Ipv4> parse_ipv4(std::string_view text);
// "a.b.c.d/n"; with `allow_bare`, a bare address counts as /32.
std::optional<Cidr> parse_cidr(std::string_view text, bool allow_bare = false);
std::string to_string(Ipv4 ip);
std::string to_string(const Cidr& cidr);

// "52:54:00:AA:BB:CC" (either case).
bool is_mac_address(std::string_view text);
// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, 1-63 chars
// each, 253 in all.
bool is_dns_name(std::string_view text);

}  // namespace phoenix::model
