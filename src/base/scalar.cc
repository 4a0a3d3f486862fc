#include "base/scalar.h"

#include <charconv>
#include <cstdint>
#include <limits>
#include <string_view>

namespace phoenix::base {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// [-+]?[0-9]+
bool is_core_int(std::string_view s) {
  std::size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i) {
    if (!is_digit(s[i])) return false;
  }
  return true;
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool is_core_float(std::string_view s) {
  std::size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  std::size_t int_digits = 0, frac_digits = 0;
  while (i < s.size() && is_digit(s[i])) ++i, ++int_digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && is_digit(s[i])) ++i, ++frac_digits;
  }
  if (int_digits == 0 && frac_digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    std::size_t exp_digits = 0;
    while (i < s.size() && is_digit(s[i])) ++i, ++exp_digits;
    if (exp_digits == 0) return false;
  }
  return i == s.size();
}

}  // namespace

Node resolve_plain_scalar(const std::string& s, SourceLoc loc) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return Node::null(loc);
  if (s == "true" || s == "True" || s == "TRUE") return Node::boolean(true, loc);
  if (s == "false" || s == "False" || s == "FALSE") return Node::boolean(false, loc);
  if (is_core_int(s)) {
    std::int64_t v = 0;
    const char* b = s.data() + (s[0] == '+' ? 1 : 0);
    auto [p, ec] = std::from_chars(b, s.data() + s.size(), v);
    if (ec == std::errc() && p == s.data() + s.size()) return Node::integer(v, loc, s);
    return Node::string(s, loc);  // too large for an integer: keep the text
  }
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
    std::int64_t v = 0;
    int base = s[1] == 'x' ? 16 : 8;
    auto [p, ec] = std::from_chars(s.data() + 2, s.data() + s.size(), v, base);
    if (ec == std::errc() && p == s.data() + s.size()) return Node::integer(v, loc, s);
  }
  if (is_core_float(s)) {
    double d = 0;
    const char* b = s.data() + (s[0] == '+' ? 1 : 0);
    auto [p, ec] = std::from_chars(b, s.data() + s.size(), d);
    if (ec == std::errc()) return Node::real(d, loc, s);
  }
  if (s == ".inf" || s == ".Inf" || s == ".INF" || s == "+.inf") {
    return Node::real(std::numeric_limits<double>::infinity(), loc, s);
  }
  if (s == "-.inf" || s == "-.Inf" || s == "-.INF") {
    return Node::real(-std::numeric_limits<double>::infinity(), loc, s);
  }
  if (s == ".nan" || s == ".NaN" || s == ".NAN") {
    return Node::real(std::numeric_limits<double>::quiet_NaN(), loc, s);
  }
  return Node::string(s, loc);
}

}  // namespace phoenix::base
