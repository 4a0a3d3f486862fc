#include "config/json_parser.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace phoenix::config {
namespace {

using base::Error;
using base::ErrorKind;
using base::Node;
using base::SourceLoc;

// Deep enough for any real configuration, shallow enough that recursion cannot exhaust the stack.
constexpr int kMaxDepth = 128;

class Parser {
 public:
  Parser(std::string_view text, std::size_t start, std::uint32_t file, base::Diagnostics& diags)
      : text_(text), file_(file), diags_(diags), pos_(start), line_start_(start) {}

  base::Result<Node> parse_document() {
    skip_space();
    if (!error_ && at_end()) fail_here("the file is empty; expected a JSON value");
    Node root;
    if (!error_) parse_value(0, root);
    if (!error_) {
      skip_space();
      if (!at_end()) fail_here("unexpected text after the JSON value");
    }
    if (error_) return std::unexpected(std::move(*error_));
    return root;
  }

 private:
  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }
  SourceLoc here() const {
    return SourceLoc{file_, line_, static_cast<std::uint32_t>(pos_ - line_start_ + 1)};
  }

  void advance() {
    if (text_[pos_] == '\n') {
      ++line_;
      line_start_ = pos_ + 1;
    }
    ++pos_;
  }

  void fail_at(SourceLoc loc, std::string message) {
    if (!error_) error_.emplace(ErrorKind::kInvalidInput, std::move(message), loc);
  }
  void fail_here(std::string message) { fail_at(here(), std::move(message)); }

  void skip_space() {
    const char* data = text_.data();
    std::size_t pos = pos_;
    const std::size_t size = text_.size();
    while (pos < size) {
      char c = data[pos];
      if (c == ' ' || c == '\t' || c == '\r') {
        ++pos;
      } else if (c == '\n') {
        ++pos;
        ++line_;
        line_start_ = pos;
      } else {
        break;
      }
    }
    pos_ = pos;
    if (pos + 1 < size && data[pos] == '/' && (data[pos + 1] == '/' || data[pos + 1] == '*')) {
      fail_here("comments are not allowed in JSON");
    }
  }

  std::string describe_here() const {
    if (at_end()) return "end of file";
    unsigned char c = static_cast<unsigned char>(peek());
    if (c < 0x20 || c >= 0x7f) return "byte 0x" + hex2(c);
    return std::string("'") + static_cast<char>(c) + "'";
  }

  static std::string hex2(unsigned char c) {
    static const char* kHex = "0123456789abcdef";
    return std::string{kHex[c >> 4], kHex[c & 15]};
  }

  // Each parse_* writes its value into `out` where it will stay: values are not moved from
  // temporaries into their parents, which for a large estate is most of the parsing cost.
  void parse_value(int depth, Node& out) {
    if (depth > kMaxDepth) {
      fail_here("values are nested more than " + std::to_string(kMaxDepth) + " levels deep");
      return;
    }
    SourceLoc loc = here();
    char c = peek();
    switch (c) {
      case '{':
        parse_object(depth, out);
        return;
      case '[':
        parse_array(depth, out);
        return;
      case '"': {
        out = Node::string({}, loc);
        parse_string(out.mutable_text());
        return;
      }
      case 't':
        out = parse_literal("true", Node::boolean(true, loc));
        return;
      case 'f':
        out = parse_literal("false", Node::boolean(false, loc));
        return;
      case 'n':
        out = parse_literal("null", Node::null(loc));
        return;
      default:
        if (c == '-' || (c >= '0' && c <= '9')) {
          out = parse_number();
          return;
        }
        if (c == '\'') {
          fail_here("strings must use double quotes in JSON");
        } else {
          fail_here("expected a JSON value, found " + describe_here());
        }
        return;
    }
  }

  Node parse_literal(std::string_view word, Node value) {
    if (text_.substr(pos_, word.size()) != word) {
      fail_here("expected a JSON value, found " + describe_here());
      return {};
    }
    for (std::size_t i = 0; i < word.size(); ++i) advance();
    return value;
  }

  Node parse_number() {
    SourceLoc loc = here();
    std::size_t start = pos_;
    bool integral = true;
    if (peek() == '-') advance();
    if (peek() == '0') {
      advance();
      if (peek() >= '0' && peek() <= '9') {
        fail_here("numbers must not have leading zeros");
        return {};
      }
    } else if (peek() >= '1' && peek() <= '9') {
      while (peek() >= '0' && peek() <= '9') advance();
    } else {
      fail_here("expected a digit, found " + describe_here());
      return {};
    }
    if (peek() == '.') {
      integral = false;
      advance();
      if (!(peek() >= '0' && peek() <= '9')) {
        fail_here("expected a digit after the decimal point, found " + describe_here());
        return {};
      }
      while (peek() >= '0' && peek() <= '9') advance();
    }
    if (peek() == 'e' || peek() == 'E') {
      integral = false;
      advance();
      if (peek() == '+' || peek() == '-') advance();
      if (!(peek() >= '0' && peek() <= '9')) {
        fail_here("expected a digit in the exponent, found " + describe_here());
        return {};
      }
      while (peek() >= '0' && peek() <= '9') advance();
    }
    std::string_view digits = text_.substr(start, pos_ - start);
    if (integral) {
      std::int64_t v = 0;
      auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
      if (ec == std::errc() && p == digits.data() + digits.size()) {
        return Node::integer(v, loc, std::string(digits));
      }
    }
    double d = 0;
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), d);
    if (ec != std::errc()) {
      fail_at(loc, "number " + std::string(digits) + " is out of range");
      return {};
    }
    return Node::real(d, loc, std::string(digits));
  }

  static void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  bool parse_hex4(std::uint32_t& out) {
    out = 0;
    for (int i = 0; i < 4; ++i) {
      char c = peek();
      std::uint32_t v;
      if (c >= '0' && c <= '9') {
        v = static_cast<std::uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v = static_cast<std::uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v = static_cast<std::uint32_t>(c - 'A' + 10);
      } else {
        fail_here("expected a hex digit in \\u escape, found " + describe_here());
        return false;
      }
      out = out * 16 + v;
      advance();
    }
    return true;
  }

  // At an opening quote; decodes the string into `out` (empty) and leaves pos_ after the
  // closing quote.
  void parse_string(std::string& out) {
    // Most strings have no escapes: find the closing quote and take the run in one go.
    const char* data = text_.data();
    std::size_t end = pos_ + 1;
    while (end < text_.size()) {
      unsigned char u = static_cast<unsigned char>(data[end]);
      if (u == '"') {
        out.assign(data + pos_ + 1, end - pos_ - 1);
        pos_ = end + 1;
        return;
      }
      if (u == '\\' || u < 0x20) break;
      ++end;
    }
    SourceLoc open = here();
    advance();
    while (true) {
      if (at_end()) {
        fail_at(open, "unterminated string");
        return;
      }
      char c = peek();
      if (c == '"') {
        advance();
        return;
      }
      if (c == '\n') {
        fail_at(open, "unterminated string (strings cannot span lines)");
        return;
      }
      if (static_cast<unsigned char>(c) < 0x20) {
        fail_here("control character in string; write it as an escape such as \\t");
        return;
      }
      if (c != '\\') {
        // Copy the run of ordinary characters in one go; none of them is a newline.
        std::size_t end = pos_ + 1;
        while (end < text_.size()) {
          unsigned char u = static_cast<unsigned char>(text_[end]);
          if (u == '"' || u == '\\' || u < 0x20) break;
          ++end;
        }
        out.append(text_.data() + pos_, end - pos_);
        pos_ = end;
        continue;
      }
      advance();
      char e = peek();
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          advance();
          std::uint32_t cp;
          if (!parse_hex4(cp)) return;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            std::uint32_t low = 0;
            if (peek() == '\\' && pos_ + 1 < text_.size() && text_[pos_ + 1] == 'u') {
              advance();
              advance();
              if (!parse_hex4(low)) return;
            }
            if (low < 0xDC00 || low > 0xDFFF) {
              fail_here("unpaired UTF-16 surrogate in \\u escape");
              return;
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            fail_here("unpaired UTF-16 surrogate in \\u escape");
            return;
          }
          append_utf8(out, cp);
          continue;
        }
        default:
          fail_here("invalid escape \\" + (at_end() ? std::string() : std::string(1, e)) +
                    " in string");
          return;
      }
      advance();
    }
  }

  // Members and items are gathered on stacks shared by every object and array being parsed
  // (nested ones above the one that holds them), then moved into a vector of exactly their
  // number: one allocation per object or array, no growth and no spare capacity.
  void parse_object(int depth, Node& obj) {
    obj = Node::object(here());
    const std::size_t base = members_.size();
    // Member lookup for duplicate keys: linear for small objects, an index for large ones
    // (lxc_configs can hold thousands of entries).
    std::unordered_map<std::string, std::size_t> index;
    constexpr std::size_t kIndexFrom = 48;
    advance();  // '{'
    skip_space();
    if (peek() == '}') {
      advance();
      return;
    }
    std::string key;
    while (!error_) {
      skip_space();
      if (error_) break;
      if (peek() != '"') {
        if (peek() == '}') {
          fail_here("trailing comma before '}' is not allowed in JSON");
        } else {
          fail_here("expected a member name in double quotes, found " + describe_here());
        }
        break;
      }
      SourceLoc key_loc = here();
      key.clear();
      parse_string(key);
      if (error_) break;
      skip_space();
      if (peek() != ':') {
        fail_here("expected ':' after member name \"" + key + "\", found " + describe_here());
        break;
      }
      advance();
      skip_space();
      if (error_) break;
      const std::size_t count = members_.size() - base;
      if (count == kIndexFrom) {
        for (std::size_t i = 0; i < count; ++i) index.emplace(members_[base + i].key, i);
      }
      std::optional<std::size_t> prev;
      if (count >= kIndexFrom) {
        if (auto it = index.find(key); it != index.end()) prev = it->second;
      } else {
        for (std::size_t i = 0; i < count; ++i) {
          const std::string& k = members_[base + i].key;
          if (k.size() == key.size() && k[0] == key[0] && k == key) prev = i;
        }
      }
      Node value;
      parse_value(depth + 1, value);
      if (error_) break;
      if (prev) {
        Node::Member& first = members_[base + *prev];
        diags_
            .warning("duplicate-key", key_loc, "duplicate key \"" + key + "\"",
                     "remove one of them; the last value is the one used")
            .related.push_back({first.key_loc, "first defined here"});
        first.value = std::move(value);
      } else {
        if (count >= kIndexFrom) index.emplace(key, count);
        members_.push_back(Node::Member{key, key_loc, std::move(value)});
      }
      skip_space();
      if (error_) break;
      if (peek() == ',') {
        advance();
        continue;
      }
      if (peek() == '}') {
        advance();
        break;
      }
      if (at_end()) {
        fail_at(obj.loc(), "unterminated object: missing '}'");
      } else {
        fail_here("expected ',' or '}' after object member, found " + describe_here());
      }
    }
    take_from(members_, base, obj.members());
  }

  void parse_array(int depth, Node& arr) {
    arr = Node::array(here());
    const std::size_t base = items_.size();
    advance();  // '['
    skip_space();
    if (peek() == ']') {
      advance();
      return;
    }
    while (!error_) {
      skip_space();
      if (error_) break;
      if (peek() == ']') {
        fail_here("trailing comma before ']' is not allowed in JSON");
        break;
      }
      if (at_end()) {
        fail_at(arr.loc(), "unterminated array: missing ']'");
        break;
      }
      Node value;
      parse_value(depth + 1, value);
      if (error_) break;
      items_.push_back(std::move(value));
      skip_space();
      if (error_) break;
      if (peek() == ',') {
        advance();
        continue;
      }
      if (peek() == ']') {
        advance();
        break;
      }
      if (at_end()) {
        fail_at(arr.loc(), "unterminated array: missing ']'");
      } else {
        fail_here("expected ',' or ']' after array element, found " + describe_here());
      }
    }
    take_from(items_, base, arr.items());
  }

  // Moves the entries of `stack` from `base` on into `out`, which gets exactly their number, and
  // drops them from the stack. After an error the document is not used: they are only dropped.
  template <typename T>
  void take_from(std::vector<T>& stack, std::size_t base, std::vector<T>& out) {
    const auto first = stack.begin() + static_cast<std::ptrdiff_t>(base);
    if (!error_) {
      out.reserve(stack.size() - base);
      std::move(first, stack.end(), std::back_inserter(out));
    }
    stack.erase(first, stack.end());
  }

  std::string_view text_;
  std::uint32_t file_;
  base::Diagnostics& diags_;
  std::size_t pos_;
  std::uint32_t line_ = 1;
  std::size_t line_start_;
  std::optional<Error> error_;
  std::vector<Node::Member> members_;  // of the objects being parsed, innermost last
  std::vector<Node> items_;            // of the arrays being parsed, innermost last
};

}  // namespace

base::Result<Node> parse_json(std::string_view text, std::uint32_t file, base::Diagnostics& diags) {
  // A UTF-8 byte order mark is tolerated, as editors on some systems write one.
  std::size_t skip = text.substr(0, 3) == "\xEF\xBB\xBF" ? 3 : 0;
  Parser parser(text, skip, file, diags);
  return parser.parse_document();
}

}  // namespace phoenix::config
