#include "config/yaml_reader.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <optional>

namespace phoenix::config {
namespace {

using base::ErrorKind;
using base::Node;
using base::SourceLoc;

constexpr int kMaxDepth = 128;
constexpr std::size_t kMaxNodes = 2'000'000;

// yaml-cpp's parser recurses per nesting level; refuse input nested deeper than any real file
// before handing it over, so that hostile input cannot overflow the stack.
std::optional<SourceLoc> find_excessive_flow_nesting(std::string_view text, std::uint32_t file) {
  int depth = 0;
  std::uint32_t line = 1, col = 1;
  char quote = 0;
  bool comment = false;
  for (char c : text) {
    if (c == '\n') {
      ++line;
      col = 1;
      comment = false;
      continue;
    }
    if (!comment) {
      if (quote) {
        if (c == quote) quote = 0;
      } else if (c == '"' || c == '\'') {
        quote = c;
      } else if (c == '#') {
        comment = true;
      } else if (c == '[' || c == '{') {
        if (++depth > kMaxDepth) return SourceLoc{file, line, col};
      } else if ((c == ']' || c == '}') && depth > 0) {
        --depth;
      }
    }
    ++col;
  }
  return std::nullopt;
}

class Converter {
 public:
  explicit Converter(std::uint32_t file) : file_(file) {}

  base::Result<Node> convert(const YAML::Node& y, int depth) {
    SourceLoc loc = loc_of(y);
    if (++count_ > kMaxNodes) {
      return base::fail(ErrorKind::kInvalidInput,
                        "document expands to more than " + std::to_string(kMaxNodes) +
                            " values (alias expansion?)",
                        loc);
    }
    if (depth > kMaxDepth) {
      return base::fail(ErrorKind::kInvalidInput,
                        "values are nested more than " + std::to_string(kMaxDepth) + " levels deep",
                        loc);
    }
    switch (y.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        return Node::null(loc);
      case YAML::NodeType::Scalar:
        // yaml-cpp tags non-plain (quoted or block) scalars "!"; those are always strings.
        if (y.Tag() == "!" || y.Tag() == "tag:yaml.org,2002:str" || y.Tag() == "!!str") {
          return Node::string(y.Scalar(), loc);
        }
        return resolve_plain_scalar(y.Scalar(), loc);
      case YAML::NodeType::Sequence: {
        Node arr = Node::array(loc);
        for (const YAML::Node& item : y) arr.push_back(PHX_TRY(convert(item, depth + 1)));
        return arr;
      }
      case YAML::NodeType::Map: {
        Node obj = Node::object(loc);
        std::vector<Node> merges;
        for (const auto& kv : y) {
          if (!kv.first.IsScalar()) {
            return base::fail(ErrorKind::kInvalidInput, "mapping keys must be plain scalars",
                              loc_of(kv.first));
          }
          const std::string& key = kv.first.Scalar();
          if (key == "<<" && kv.first.Tag() != "!") {
            merges.push_back(PHX_TRY(convert(kv.second, depth + 1)));
            continue;
          }
          if (obj.find(key) != nullptr) {
            return base::fail(ErrorKind::kInvalidInput, "duplicate key \"" + key + "\"",
                              loc_of(kv.first));
          }
          obj.set(key, PHX_TRY(convert(kv.second, depth + 1)), loc_of(kv.first));
        }
        // Merge keys: explicit keys win, then earlier merged maps win over later ones.
        for (const Node& m : merges) {
          std::vector<const Node*> sources;
          if (m.is_object()) {
            sources.push_back(&m);
          } else if (m.is_array()) {
            for (const Node& item : m.items()) sources.push_back(&item);
          }
          for (const Node* src : sources) {
            if (!src->is_object()) {
              return base::fail(ErrorKind::kInvalidInput, "a merge key (<<) needs a mapping",
                                src->loc());
            }
            for (const Node::Member& member : src->members()) {
              if (obj.find(member.key) == nullptr) {
                obj.set(member.key, member.value, member.key_loc);
              }
            }
          }
        }
        return obj;
      }
    }
    return Node::null(loc);
  }

 private:
  SourceLoc loc_of(const YAML::Node& y) const {
    YAML::Mark m = y.Mark();
    if (m.is_null()) return SourceLoc{file_, 0, 0};
    return SourceLoc{file_, static_cast<std::uint32_t>(m.line + 1),
                     static_cast<std::uint32_t>(m.column + 1)};
  }

  std::uint32_t file_;
  std::size_t count_ = 0;
};

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

base::Result<Node> parse_yaml(std::string_view text, std::uint32_t file) {
  if (auto deep = find_excessive_flow_nesting(text, file)) {
    return base::fail(ErrorKind::kInvalidInput,
                      "values are nested more than " + std::to_string(kMaxDepth) + " levels deep",
                      *deep);
  }
  YAML::Node root;
  try {
    std::vector<YAML::Node> docs = YAML::LoadAll(std::string(text));
    if (docs.size() > 1) {
      return base::fail(ErrorKind::kInvalidInput,
                        "the file holds " + std::to_string(docs.size()) +
                            " YAML documents; expected one",
                        SourceLoc{file, 0, 0});
    }
    if (!docs.empty()) root = docs.front();
  } catch (const YAML::Exception& e) {
    SourceLoc loc{file, 0, 0};
    if (!e.mark.is_null()) {
      loc = SourceLoc{file, static_cast<std::uint32_t>(e.mark.line + 1),
                      static_cast<std::uint32_t>(e.mark.column + 1)};
    }
    return base::fail(ErrorKind::kInvalidInput, "YAML syntax error: " + e.msg, loc);
  } catch (const std::exception& e) {
    return base::fail(ErrorKind::kInvalidInput, std::string("YAML syntax error: ") + e.what(),
                      SourceLoc{file, 0, 0});
  }
  try {
    Converter conv(file);
    return conv.convert(root, 0);
  } catch (const std::exception& e) {
    return base::fail(ErrorKind::kInvalidInput, std::string("YAML error: ") + e.what(),
                      SourceLoc{file, 0, 0});
  }
}

}  // namespace phoenix::config
