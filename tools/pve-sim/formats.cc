// The named formats of PVE::JSONSchema (and the LXC/QEMU/firewall modules) that Phoenix's
// requests use. Messages are the ones the Perl verifiers die with; formats not listed here are
// accepted, as the simulator must not reject what Proxmox might take.
#include <arpa/inet.h>

#include <functional>
#include <regex>
#include <string>
#include <unordered_map>

#include "schema.h"

namespace phoenix::pvesim {
namespace {

bool re_match(std::string_view v, const char* pattern, bool icase = false) {
  // One compiled regex per pattern: the patterns are string literals with static storage.
  static thread_local std::unordered_map<const char*, std::regex> cache;
  auto it = cache.find(pattern);
  if (it == cache.end()) {
    auto flags = std::regex::ECMAScript | (icase ? std::regex::icase : std::regex::ECMAScript);
    it = cache.emplace(pattern, std::regex(pattern, flags)).first;
  }
  return std::regex_match(v.begin(), v.end(), it->second);
}

bool ipv4(std::string_view v) {
  in_addr a{};
  return inet_pton(AF_INET, std::string(v).c_str(), &a) == 1;
}
bool ipv6(std::string_view v) {
  in6_addr a{};
  return inet_pton(AF_INET6, std::string(v).c_str(), &a) == 1;
}
bool cidr(std::string_view v, bool (*ip)(std::string_view), int max_prefix) {
  auto slash = v.find('/');
  if (slash == std::string_view::npos) return false;
  auto prefix = v.substr(slash + 1);
  if (prefix.empty() || prefix.size() > 3 || !re_match(prefix, R"(\d+)")) return false;
  return ip(v.substr(0, slash)) && std::stoi(std::string(prefix)) <= max_prefix;
}
bool ipv4_cidr(std::string_view v) { return cidr(v, ipv4, 32); }
bool ipv6_cidr(std::string_view v) { return cidr(v, ipv6, 128); }
bool dns_name(std::string_view v) {
  return re_match(
      v,
      R"(([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?\.)*([A-Za-z0-9]([A-Za-z0-9\-]*[A-Za-z0-9])?))");
}
bool volume_id(std::string_view v) {
  return re_match(v, R"([a-z][a-z0-9\-\_\.]*[a-z0-9]:.+)", true);
}

using Check = std::function<std::string(std::string_view)>;

Check die_unless(bool (*ok)(std::string_view), std::string msg) {
  return [ok, msg](std::string_view v) { return ok(v) ? std::string() : msg; };
}

const std::unordered_map<std::string, Check>& formats() {
  static const std::unordered_map<std::string, Check> table = {
      {"pve-vmid", die_unless([](std::string_view v) { return re_match(v, R"([1-9][0-9]{2,8})"); },
                              "value does not look like a valid VM ID\n")},
      {"pve-node", die_unless(
                       [](std::string_view v) {
                         return re_match(v, R"([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)");
                       },
                       "value does not look like a valid node name\n")},
      {"ipv4", die_unless(ipv4, "value does not look like a valid IPv4 address\n")},
      {"ipv6", die_unless(ipv6, "value does not look like a valid IPv6 address\n")},
      {"ip", die_unless([](std::string_view v) { return ipv4(v) || ipv6(v); },
                        "value does not look like a valid IP address\n")},
      {"ipv4-CIDR", die_unless(ipv4_cidr, "value does not look like a valid IPv4 CIDR network\n")},
      {"ipv6-CIDR", die_unless(ipv6_cidr, "value does not look like a valid IPv6 CIDR network\n")},
      {"CIDR", die_unless([](std::string_view v) { return ipv4_cidr(v) || ipv6_cidr(v); },
                          "value does not look like a valid CIDR network\n")},
      {"pve-ipv4-config",
       die_unless([](std::string_view v) { return v == "dhcp" || v == "manual" || ipv4_cidr(v); },
                  "value does not look like a valid ipv4 network configuration\n")},
      {"pve-ipv6-config", die_unless(
                              [](std::string_view v) {
                                return v == "dhcp" || v == "manual" || v == "auto" || ipv6_cidr(v);
                              },
                              "value does not look like a valid ipv6 network configuration\n")},
      {"mac-addr", die_unless(
                       [](std::string_view v) {
                         return re_match(v, R"([a-f0-9][02468ace](?::[a-f0-9]{2}){5})", true);
                       },
                       "value does not look like a valid unicast MAC address\n")},
      {"dns-name", die_unless(dns_name, "value does not look like a valid DNS name\n")},
      {"address",
       [](std::string_view v) {
         return ipv4(v) || ipv6(v) || dns_name(v)
                    ? std::string()
                    : "value does not look like a valid address: " + std::string(v) + "\n";
       }},
      {"email",
       die_unless([](std::string_view v) { return re_match(v, R"([^\s@]+@[^\s@]+\.[^\s@]+)"); },
                  "value does not look like a valid email address\n")},
      {"pve-configid",
       [](std::string_view v) {
         return re_match(v, R"([a-z][a-z0-9_-]+)", true)
                    ? std::string()
                    : "invalid configuration ID '" + std::string(v) + "'\n";
       }},
      {"pve-storage-id",
       [](std::string_view v) {
         return re_match(v, R"([a-z][a-z0-9\-\_\.]*[a-z0-9])", true)
                    ? std::string()
                    : "storage ID '" + std::string(v) + "' contains illegal characters\n";
       }},
      {"pve-volume-id",
       [](std::string_view v) {
         return volume_id(v) ? std::string()
                             : "unable to parse volume ID '" + std::string(v) + "'\n";
       }},
      {"pve-volume-id-or-qm-path",
       [](std::string_view v) {
         return volume_id(v) || v.starts_with("/") || v == "none" || v == "cdrom"
                    ? std::string()
                    : "unable to parse volume ID '" + std::string(v) + "'\n";
       }},
      // STORAGE:SIZE_IN_GiB, a volume id or an absolute path (PVE::LXC::Config).
      {"pve-lxc-mp-string",
       [](std::string_view v) {
         return volume_id(v) || v.starts_with("/")
                    ? std::string()
                    : "unable to parse volume ID '" + std::string(v) + "'\n";
       }},
      {"pve-tag",
       [](std::string_view v) {
         return re_match(v, R"([a-z0-9_][a-z0-9_\-\+\.]*)", true)
                    ? std::string()
                    : "invalid characters in tag '" + std::string(v) + "'\n";
       }},
      {"pve-iface",
       [](std::string_view v) {
         return re_match(v, R"([a-zA-Z][a-zA-Z0-9_]{1,20}([:\.]\d+)?)")
                    ? std::string()
                    : "invalid network interface name '" + std::string(v) + "'\n";
       }},
  };
  return table;
}

}  // namespace

std::string check_named_format(std::string_view format, std::string_view value) {
  const auto& table = formats();
  if (auto it = table.find(std::string(format)); it != table.end()) return it->second(value);
  // "<format>-list": every element of a list split on ',', ';', ' ' or NUL is checked.
  if (format.ends_with("-list")) {
    auto base = table.find(std::string(format.substr(0, format.size() - 5)));
    if (base == table.end()) return "";
    std::size_t i = 0;
    while (i < value.size()) {
      std::size_t j = value.find_first_of(",; \t\n", i);
      if (j == std::string_view::npos) j = value.size();
      if (j > i) {
        if (auto err = base->second(value.substr(i, j - i)); !err.empty()) return err;
      }
      i = j + 1;
    }
  }
  return "";
}

}  // namespace phoenix::pvesim
