#include "base/strings.h"

#include <algorithm>
#include <charconv>
#include <cstdint>

namespace phoenix::base {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t subst = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::optional<std::string> closest_match(std::string_view word,
                                         std::span<const std::string_view> candidates) {
  std::optional<std::string> best;
  std::size_t best_distance = 0;
  // Allow roughly one edit per three characters, at least two.
  std::size_t limit = std::max<std::size_t>(2, word.size() / 3);
  for (std::string_view c : candidates) {
    std::size_t d = edit_distance(word, c);
    if (d <= limit && (!best || d < best_distance)) {
      best = std::string(c);
      best_distance = d;
    }
  }
  return best;
}

std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    std::size_t pos = text.find(sep, start);
    if (pos == std::string_view::npos) {
      out.emplace_back(text.substr(start));
      return out;
    }
    out.emplace_back(text.substr(start, pos - start));
    start = pos + 1;
  }
}

std::string_view trim(std::string_view text) {
  const char* kSpace = " \t\r\n";
  std::size_t b = text.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return {};
  std::size_t e = text.find_last_not_of(kSpace);
  return text.substr(b, e - b + 1);
}

std::string to_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string join(std::span<const std::string> parts, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

std::string json_quote(std::string_view text) {
  std::string out = "\"";
  for (char ch : text) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          static const char* kHex = "0123456789abcdef";
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
  return out;
}

std::optional<std::uint64_t> parse_uint(std::string_view text) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  std::uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return v;
}

std::vector<std::string> line_diff(std::string_view before, std::string_view after,
                                   std::size_t context) {
  if (before == after) return {};
  auto lines = [](std::string_view t) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < t.size()) {
      std::size_t j = t.find('\n', i);
      if (j == std::string_view::npos) j = t.size();
      out.push_back(t.substr(i, j - i));
      i = j + 1;
    }
    return out;
  };
  std::vector<std::string_view> a = lines(before), b = lines(after);
  const std::size_t n = a.size(), m = b.size();
  if (n * m > 4'000'000) {
    return {"(" + std::to_string(n) + " lines before, " + std::to_string(m) +
            " after: too long to compare line by line)"};
  }
  // Longest common subsequence, then the edit script from its table.
  std::vector<std::vector<std::uint32_t>> lcs(n + 1, std::vector<std::uint32_t>(m + 1, 0));
  for (std::size_t i = n; i-- > 0;) {
    for (std::size_t j = m; j-- > 0;) {
      lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  struct Op {
    char kind;  // ' ', '-', '+'
    std::string_view text;
  };
  std::vector<Op> ops;
  std::size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] == b[j]) {
      ops.push_back({' ', a[i++]});
      ++j;
    } else if (i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1])) {
      ops.push_back({'-', a[i++]});  // a removal before the addition that replaces it
    } else {
      ops.push_back({'+', b[j++]});
    }
  }
  // Only the changes and `context` lines around them.
  std::vector<bool> keep(ops.size(), false);
  for (std::size_t k = 0; k < ops.size(); ++k) {
    if (ops[k].kind == ' ') continue;
    std::size_t lo = k >= context ? k - context : 0;
    std::size_t hi = std::min(ops.size(), k + context + 1);
    for (std::size_t x = lo; x < hi; ++x) keep[x] = true;
  }
  std::vector<std::string> out;
  bool gap = false;
  for (std::size_t k = 0; k < ops.size(); ++k) {
    if (!keep[k]) {
      gap = true;
      continue;
    }
    if (gap && !out.empty()) out.push_back("@@");
    gap = false;
    out.push_back(std::string(1, ops[k].kind) + std::string(ops[k].text));
  }
  return out;
}

}  // namespace phoenix::base
