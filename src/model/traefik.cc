#include "model/traefik.h"

#include <array>
#include <cctype>

namespace phoenix::model {
namespace {

struct MatcherSpec {
  std::string_view name;
  int min_args;
  int max_args;
};

// Traefik v3 HTTP matchers (docs: routing/routers, "Rule").
constexpr std::array<MatcherSpec, 11> kMatchers = {{
    {"Host", 1, 1},
    {"HostRegexp", 1, 1},
    {"Path", 1, 1},
    {"PathPrefix", 1, 1},
    {"PathRegexp", 1, 1},
    {"Method", 1, 1},
    {"Header", 2, 2},
    {"HeaderRegexp", 2, 2},
    {"Query", 1, 2},
    {"QueryRegexp", 1, 2},
    {"ClientIP", 1, 1},
}};

class RuleParser {
 public:
  RuleParser(std::string_view text, ParsedRule* out) : text_(text), out_(out) {}

  std::optional<RuleError> run() {
    skip_space();
    if (at_end()) return RuleError{0, "the rule is empty"};
    parse_or(0);
    if (!error_) {
      skip_space();
      if (!at_end()) fail("unexpected '" + std::string(1, text_[pos_]) + "'");
    }
    return error_;
  }

 private:
  bool at_end() const { return pos_ >= text_.size(); }
  void skip_space() {
    while (!at_end() && (text_[pos_] == ' ' || text_[pos_] == '\t')) ++pos_;
  }
  void fail(std::string message) {
    if (!error_) error_ = RuleError{pos_, std::move(message)};
  }
  bool eat(std::string_view token) {
    skip_space();
    if (text_.substr(pos_, token.size()) == token) {
      pos_ += token.size();
      return true;
    }
    return false;
  }

  void parse_or(int depth) {
    parse_and(depth);
    while (!error_ && eat("||")) parse_and(depth);
  }
  void parse_and(int depth) {
    parse_unary(depth);
    while (!error_ && eat("&&")) parse_unary(depth);
  }
  void parse_unary(int depth) {
    if (depth > 64) {
      fail("the rule is nested too deeply");
      return;
    }
    skip_space();
    if (eat("!")) {
      parse_unary(depth + 1);
      return;
    }
    if (eat("(")) {
      parse_or(depth + 1);
      if (!error_ && !eat(")")) fail("expected ')'");
      return;
    }
    parse_matcher();
  }

  void parse_matcher() {
    skip_space();
    std::size_t start = pos_;
    while (!at_end() && (std::isalnum(static_cast<unsigned char>(text_[pos_])) != 0)) ++pos_;
    std::string_view name = text_.substr(start, pos_ - start);
    if (name.empty()) {
      pos_ = start;
      fail(at_end() ? "expected a matcher such as Host(`example.com`) at the end of the rule"
                    : "expected a matcher such as Host(`example.com`)");
      return;
    }
    const MatcherSpec* spec = nullptr;
    for (const MatcherSpec& m : kMatchers) {
      if (m.name == name) spec = &m;
    }
    if (!spec) {
      pos_ = start;
      std::string msg = "unknown matcher \"" + std::string(name) + "\"";
      if (name == "HostSNI" || name == "HostSNIRegexp" || name == "ALPN") {
        msg += " (it is for TCP routers)";
      } else if (name == "Headers" || name == "HeadersRegexp" || name == "PathStrip" ||
                 name == "HostHeader") {
        msg += " (Traefik v1/v2 syntax; v3 has Header, HeaderRegexp, PathPrefix)";
      }
      fail(msg);
      return;
    }
    if (!eat("(")) {
      fail("expected '(' after " + std::string(name));
      return;
    }
    std::vector<std::string> args;
    skip_space();
    if (!eat(")")) {
      while (true) {
        skip_space();
        auto arg = parse_string();
        if (error_) return;
        args.push_back(std::move(*arg));
        if (eat(",")) continue;
        if (eat(")")) break;
        fail("expected ',' or ')' in " + std::string(name) + "()");
        return;
      }
    }
    int n = static_cast<int>(args.size());
    if (n < spec->min_args || n > spec->max_args) {
      pos_ = start;
      std::string want =
          spec->min_args == spec->max_args
              ? std::to_string(spec->min_args)
              : std::to_string(spec->min_args) + " or " + std::to_string(spec->max_args);
      fail(std::string(name) + " takes " + want + " argument" + (spec->max_args == 1 ? "" : "s") +
           ", got " + std::to_string(n) +
           (name == "Host" && n > 1 ? " (Traefik v3 needs Host(`a`) || Host(`b`))" : ""));
      return;
    }
    for (const std::string& a : args) {
      if (a.empty()) {
        pos_ = start;
        fail(std::string(name) + "() has an empty argument");
        return;
      }
    }
    if (name == "Host" && out_) out_->hosts.push_back(args.front());
  }

  std::optional<std::string> parse_string() {
    if (at_end()) {
      fail("expected a quoted argument");
      return std::nullopt;
    }
    char q = text_[pos_];
    if (q != '`' && q != '"') {
      fail("arguments must be quoted with backticks, e.g. Host(`example.com`)");
      return std::nullopt;
    }
    std::size_t open = pos_++;
    std::string out;
    while (!at_end() && text_[pos_] != q) {
      if (q == '"' && text_[pos_] == '\\' && pos_ + 1 < text_.size()) ++pos_;
      out += text_[pos_++];
    }
    if (at_end()) {
      pos_ = open;
      fail("unterminated argument");
      return std::nullopt;
    }
    ++pos_;
    return out;
  }

  std::string_view text_;
  ParsedRule* out_;
  std::size_t pos_ = 0;
  std::optional<RuleError> error_;
};

}  // namespace

std::optional<RuleError> parse_rule(std::string_view rule, ParsedRule* out) {
  return RuleParser(rule, out).run();
}

std::optional<Label> split_label(std::string_view text, base::SourceLoc loc) {
  std::size_t eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0) return std::nullopt;
  return Label{std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)), loc};
}

LabelModel model_labels(const std::vector<Label>& labels) {
  LabelModel m;
  constexpr std::string_view kRouters = "traefik.http.routers.";
  constexpr std::string_view kServices = "traefik.http.services.";
  for (const Label& l : labels) {
    std::string_view key = l.key;
    if (key == "traefik.enable") {
      m.enable = l;
      continue;
    }
    auto split_name = [&](std::string_view prefix) -> std::pair<std::string, std::string> {
      std::string_view rest = key.substr(prefix.size());
      std::size_t dot = rest.find('.');
      if (dot == std::string_view::npos) return {std::string(rest), ""};
      return {std::string(rest.substr(0, dot)), std::string(rest.substr(dot + 1))};
    };
    if (key.starts_with(kRouters)) {
      auto [name, field] = split_name(kRouters);
      LabelRouter& r = m.routers[name];
      if (!r.loc.has_file()) r.loc = l.loc;
      if (field == "rule") r.rule = l;
      if (field == "entrypoints") r.entrypoints = l;
      if (field == "service") r.service = l;
    } else if (key.starts_with(kServices)) {
      auto [name, field] = split_name(kServices);
      LabelService& s = m.services[name];
      if (!s.loc.has_file()) s.loc = l.loc;
      if (field == "loadbalancer.server.port") s.port = l;
    }
  }
  return m;
}

}  // namespace phoenix::model
