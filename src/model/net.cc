#include "model/net.h"

#include "base/strings.h"

namespace phoenix::model {

std::optional<Ipv4> parse_ipv4(std::string_view text) {
  std::uint32_t bits = 0;
  int parts = 0;
  std::size_t i = 0;
  while (parts < 4) {
    std::size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
    std::string_view digits = text.substr(start, i - start);
    if (digits.empty() || digits.size() > 3 || (digits.size() > 1 && digits[0] == '0')) {
      return std::nullopt;
    }
    auto v = base::parse_uint(digits);
    if (!v || *v > 255) return std::nullopt;
    bits = (bits << 8) | static_cast<std::uint32_t>(*v);
    ++parts;
    if (parts < 4) {
      if (i >= text.size() || text[i] != '.') return std::nullopt;
      ++i;
    }
  }
  if (i != text.size()) return std::nullopt;
  return Ipv4{bits};
}

std::optional<Cidr> parse_cidr(std::string_view text, bool allow_bare) {
  std::size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    if (!allow_bare) return std::nullopt;
    auto ip = parse_ipv4(text);
    if (!ip) return std::nullopt;
    return Cidr{*ip, 32};
  }
  auto ip = parse_ipv4(text.substr(0, slash));
  std::string_view len = text.substr(slash + 1);
  if (!ip || len.empty() || len.size() > 2) return std::nullopt;
  auto n = base::parse_uint(len);
  if (!n || *n > 32) return std::nullopt;
  return Cidr{*ip, static_cast<int>(*n)};
}

std::string to_string(Ipv4 ip) {
  return std::to_string(ip.bits >> 24) + '.' + std::to_string((ip.bits >> 16) & 255) + '.' +
         std::to_string((ip.bits >> 8) & 255) + '.' + std::to_string(ip.bits & 255);
}

std::string to_string(const Cidr& cidr) {
  return to_string(cidr.addr) + '/' + std::to_string(cidr.prefix);
}

bool is_mac_address(std::string_view text) {
  if (text.size() != 17) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (i % 3 == 2) {
      if (c != ':') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

bool is_dns_name(std::string_view text) {
  if (text.empty() || text.size() > 253) return false;
  if (text.back() == '.') text.remove_suffix(1);  // fully qualified form
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t dot = text.find('.', start);
    std::string_view label =
        text.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      bool ok =
          (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
      if (!ok) return false;
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return true;
}

}  // namespace phoenix::model
