#include "model/traefik.h"

#include <gtest/gtest.h>

namespace phoenix::model {
namespace {

RuleError rule_error(std::string_view rule) {
  auto e = parse_rule(rule);
  EXPECT_TRUE(e.has_value()) << rule;
  return e ? *e : RuleError{};
}

TEST(TraefikRule, AcceptsV3Rules) {
  for (const char* ok :
       {"Host(`a`) && PathPrefix(`/x`)", "Host(`a`)", "!Host(`a`)",
        "(Host(`a`) || Host(`b`)) && !PathPrefix(`/admin`)", "Host(\"a\") || Host(`b`)",
        "Header(`X-A`, `1`)", "Query(`q`)", "Query(`q`, `v`)", "  Host(`a`)  ",
        "Method(`GET`)&&Path(`/`)", "ClientIP(`10.0.0.0/8`)"}) {
    auto e = parse_rule(ok);
    EXPECT_FALSE(e.has_value()) << ok << ": " << (e ? e->message : "");
  }
}

TEST(TraefikRule, CollectsHosts) {
  ParsedRule parsed;
  ASSERT_FALSE(
      parse_rule("(Host(`a.example.com`) || Host(`b.example.com`)) && PathPrefix(`/x`)", &parsed)
          .has_value());
  EXPECT_EQ(parsed.hosts, (std::vector<std::string>{"a.example.com", "b.example.com"}));
}

TEST(TraefikRule, RejectsV2MultiHost) {
  RuleError e = rule_error("PathPrefix(`/`) && Host(`a`,`b`)");
  EXPECT_EQ(e.message, "Host takes 1 argument, got 2 (Traefik v3 needs Host(`a`) || Host(`b`))");
  EXPECT_EQ(e.offset, 19u);
  EXPECT_NE(e.message.find("v3"), std::string::npos);
}

TEST(TraefikRule, RejectsUnknownMatcher) {
  RuleError e = rule_error("Host(`a`) && Foo(`x`)");
  EXPECT_EQ(e.message, "unknown matcher \"Foo\"");
  EXPECT_EQ(e.offset, 13u);
  RuleError v2 = rule_error("Headers(`a`, `b`)");
  EXPECT_EQ(v2.message,
            "unknown matcher \"Headers\" (Traefik v1/v2 syntax; v3 has Header, HeaderRegexp, "
            "PathPrefix)");
  EXPECT_EQ(v2.offset, 0u);
  RuleError tcp = rule_error("HostSNI(`a`)");
  EXPECT_EQ(tcp.message, "unknown matcher \"HostSNI\" (it is for TCP routers)");
}

TEST(TraefikRule, RejectsMissingOrUnterminatedQuotes) {
  RuleError bare = rule_error("Host(example.com)");
  EXPECT_EQ(bare.message, "arguments must be quoted with backticks, e.g. Host(`example.com`)");
  EXPECT_EQ(bare.offset, 5u);
  RuleError open = rule_error("Host(`example.com)");
  EXPECT_EQ(open.message, "unterminated argument");
  EXPECT_EQ(open.offset, 5u);
}

TEST(TraefikRule, RejectsEmptyAndMalformedRules) {
  RuleError empty = rule_error("");
  EXPECT_EQ(empty.message, "the rule is empty");
  EXPECT_EQ(empty.offset, 0u);
  EXPECT_EQ(rule_error("   ").message, "the rule is empty");
  RuleError dangling = rule_error("Host(`a`) &&");
  EXPECT_EQ(dangling.message,
            "expected a matcher such as Host(`example.com`) at the end of the rule");
  EXPECT_EQ(dangling.offset, 12u);
  RuleError paren = rule_error("(Host(`a`)");
  EXPECT_EQ(paren.message, "expected ')'");
  EXPECT_EQ(paren.offset, 10u);
  RuleError no_paren = rule_error("Host `a`");
  EXPECT_EQ(no_paren.message, "expected '(' after Host");
  RuleError trailing = rule_error("Host(`a`) )");
  EXPECT_EQ(trailing.message, "unexpected ')'");
  EXPECT_EQ(trailing.offset, 10u);
  RuleError empty_arg = rule_error("Host(``)");
  EXPECT_EQ(empty_arg.message, "Host() has an empty argument");
  RuleError none = rule_error("Host()");
  EXPECT_EQ(none.message, "Host takes 1 argument, got 0");
  RuleError header = rule_error("Header(`a`)");
  EXPECT_EQ(header.message, "Header takes 2 arguments, got 1");
  RuleError query = rule_error("Query(`a`, `b`, `c`)");
  EXPECT_EQ(query.message, "Query takes 1 or 2 arguments, got 3");
  RuleError sep = rule_error("Header(`a` `b`)");
  EXPECT_EQ(sep.message, "expected ',' or ')' in Header()");
}

TEST(TraefikRule, DeepNestingIsAnErrorNotACrash) {
  std::string deep = std::string(100, '(') + "Host(`a`)" + std::string(100, ')');
  EXPECT_EQ(rule_error(deep).message, "the rule is nested too deeply");
  std::string bangs = std::string(100, '!') + "Host(`a`)";
  EXPECT_EQ(rule_error(bangs).message, "the rule is nested too deeply");
}

TEST(TraefikLabels, SplitLabel) {
  base::SourceLoc loc{1, 2, 3};
  auto l = split_label("traefik.http.routers.web.rule=Host(`a`) && Query(`x=1`)", loc);
  ASSERT_TRUE(l.has_value());
  EXPECT_EQ(l->key, "traefik.http.routers.web.rule");
  EXPECT_EQ(l->value, "Host(`a`) && Query(`x=1`)");
  EXPECT_EQ(l->loc, loc);
  auto empty_value = split_label("traefik.enable=", loc);
  ASSERT_TRUE(empty_value.has_value());
  EXPECT_EQ(empty_value->value, "");
  EXPECT_FALSE(split_label("no-equals", loc).has_value());
  EXPECT_FALSE(split_label("=value", loc).has_value());
}

TEST(TraefikLabels, ModelLabels) {
  std::vector<Label> labels = {
      {"traefik.enable", "true", {1, 1, 1}},
      {"traefik.http.routers.web.rule", "Host(`a`)", {1, 2, 1}},
      {"traefik.http.routers.web.entrypoints", "websecure", {1, 3, 1}},
      {"traefik.http.routers.web.service", "websvc", {1, 4, 1}},
      {"traefik.http.routers.api.tls", "true", {1, 5, 1}},
      {"traefik.http.services.websvc.loadbalancer.server.port", "8080", {1, 6, 1}},
      {"traefik.http.services.other.loadbalancer.sticky", "true", {1, 7, 1}},
      {"com.example.unrelated", "x", {1, 8, 1}},
  };
  LabelModel m = model_labels(labels);
  EXPECT_TRUE(m.enabled());
  ASSERT_EQ(m.routers.size(), 2u);
  const LabelRouter& web = m.routers.at("web");
  EXPECT_EQ(web.loc, (base::SourceLoc{1, 2, 1}));
  ASSERT_TRUE(web.rule.has_value());
  EXPECT_EQ(web.rule->value, "Host(`a`)");
  EXPECT_EQ(web.entrypoints->value, "websecure");
  EXPECT_EQ(web.service->value, "websvc");
  const LabelRouter& api = m.routers.at("api");
  EXPECT_FALSE(api.rule.has_value());
  EXPECT_EQ(api.loc, (base::SourceLoc{1, 5, 1}));
  ASSERT_EQ(m.services.size(), 2u);
  ASSERT_TRUE(m.services.at("websvc").port.has_value());
  EXPECT_EQ(m.services.at("websvc").port->value, "8080");
  EXPECT_FALSE(m.services.at("other").port.has_value());

  LabelModel off = model_labels({{"traefik.enable", "false", {}}});
  EXPECT_FALSE(off.enabled());
  EXPECT_FALSE(model_labels({}).enabled());
}

}  // namespace
}  // namespace phoenix::model
