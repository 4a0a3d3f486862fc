#include "config/json_parser.h"

#include <gtest/gtest.h>

#include <string>

namespace phoenix::config {
namespace {

using base::Node;
using base::SourceLoc;

Node parse_ok(std::string_view text, base::Diagnostics& diags) {
  auto r = parse_json(text, 1, diags);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message());
  return r ? std::move(*r) : Node();
}

Node parse_ok(std::string_view text) {
  base::Diagnostics diags;
  Node n = parse_ok(text, diags);
  EXPECT_TRUE(diags.empty());
  return n;
}

base::Error parse_err(std::string_view text) {
  base::Diagnostics diags;
  auto r = parse_json(text, 7, diags);
  EXPECT_FALSE(r.has_value()) << text;
  if (r) return base::Error(base::ErrorKind::kInternal, "parsed");
  return r.error();
}

TEST(JsonParser, ParsesValues) {
  Node n = parse_ok(R"({"s": "x", "i": -42, "d": 0.50, "e": 1e3, "t": true, "f": false,
    "n": null, "a": [1, [], {}], "o": {"k": "v"}})");
  ASSERT_TRUE(n.is_object());
  EXPECT_EQ(n.size(), 9u);
  EXPECT_EQ(n.find("s")->text(), "x");
  EXPECT_TRUE(n.find("i")->is_int());
  EXPECT_EQ(n.find("i")->as_int(), -42);
  EXPECT_EQ(n.find("d")->kind(), Node::Kind::kDouble);
  EXPECT_DOUBLE_EQ(n.find("d")->as_double(), 0.5);
  EXPECT_EQ(n.find("d")->text(), "0.50");
  EXPECT_EQ(n.find("e")->kind(), Node::Kind::kDouble);
  EXPECT_DOUBLE_EQ(n.find("e")->as_double(), 1000.0);
  EXPECT_TRUE(n.find("t")->is_bool());
  EXPECT_TRUE(n.find("t")->as_bool());
  EXPECT_FALSE(n.find("f")->as_bool());
  EXPECT_TRUE(n.find("n")->is_null());
  ASSERT_TRUE(n.find("a")->is_array());
  EXPECT_EQ(n.find("a")->size(), 3u);
  EXPECT_EQ(n.find("o")->find("k")->text(), "v");
  // Members keep document order.
  EXPECT_EQ(n.members()[0].key, "s");
  EXPECT_EQ(n.members()[8].key, "o");
}

TEST(JsonParser, RecordsLocationsOfValuesAndKeys) {
  Node n = parse_ok("{\n  \"vmid\": 101,\n  \"tags\": [\"a\",\n    \"b\"]\n}\n");
  EXPECT_EQ(n.loc(), (SourceLoc{1, 1, 1}));
  const Node::Member* vmid = n.find_member("vmid");
  ASSERT_NE(vmid, nullptr);
  EXPECT_EQ(vmid->key_loc, (SourceLoc{1, 2, 3}));
  EXPECT_EQ(vmid->value.loc(), (SourceLoc{1, 2, 11}));
  const Node* tags = n.find("tags");
  EXPECT_EQ(n.find_member("tags")->key_loc, (SourceLoc{1, 3, 3}));
  EXPECT_EQ(tags->loc(), (SourceLoc{1, 3, 11}));
  EXPECT_EQ(tags->items()[0].loc(), (SourceLoc{1, 3, 12}));
  EXPECT_EQ(tags->items()[1].loc(), (SourceLoc{1, 4, 5}));
}

TEST(JsonParser, ToleratesByteOrderMark) {
  Node n = parse_ok("\xEF\xBB\xBF{\"a\": 1}");
  EXPECT_EQ(n.find_member("a")->key_loc, (SourceLoc{1, 1, 2}));
}

TEST(JsonParser, DecodesEscapes) {
  Node n = parse_ok(R"(["\"\\\/\b\f\n\r\t", "\u00e9\u20AC", "\ud83d\ude00", "\u0041"])");
  EXPECT_EQ(n.items()[0].text(), "\"\\/\b\f\n\r\t");
  EXPECT_EQ(n.items()[1].text(), "\xC3\xA9\xE2\x82\xAC");
  EXPECT_EQ(n.items()[2].text(), "\xF0\x9F\x98\x80");
  EXPECT_EQ(n.items()[3].text(), "A");
}

TEST(JsonParser, RejectsBadEscapes) {
  base::Error lone = parse_err(R"(["\ud83d x"])");
  EXPECT_EQ(lone.message(), "unpaired UTF-16 surrogate in \\u escape");
  base::Error low = parse_err(R"(["\ude00"])");
  EXPECT_EQ(low.message(), "unpaired UTF-16 surrogate in \\u escape");
  base::Error hex = parse_err(R"(["\u12g4"])");
  EXPECT_EQ(hex.message(), "expected a hex digit in \\u escape, found 'g'");
  EXPECT_EQ(hex.loc(), (SourceLoc{7, 1, 7}));
  base::Error esc = parse_err(R"(["\q"])");
  EXPECT_EQ(esc.message(), "invalid escape \\q in string");
}

TEST(JsonParser, TrailingCommaErrors) {
  base::Error obj = parse_err("{\"a\": 1,\n}");
  EXPECT_EQ(obj.message(), "trailing comma before '}' is not allowed in JSON");
  EXPECT_EQ(obj.loc(), (SourceLoc{7, 2, 1}));
  base::Error arr = parse_err("[1, 2, ]");
  EXPECT_EQ(arr.message(), "trailing comma before ']' is not allowed in JSON");
  EXPECT_EQ(arr.loc(), (SourceLoc{7, 1, 8}));
}

TEST(JsonParser, CommentErrors) {
  base::Error line = parse_err("{\n  // note\n  \"a\": 1}");
  EXPECT_EQ(line.message(), "comments are not allowed in JSON");
  EXPECT_EQ(line.loc(), (SourceLoc{7, 2, 3}));
  base::Error block = parse_err("[1, /* x */ 2]");
  EXPECT_EQ(block.message(), "comments are not allowed in JSON");
  EXPECT_EQ(block.loc(), (SourceLoc{7, 1, 5}));
}

TEST(JsonParser, SingleQuotesError) {
  base::Error e = parse_err("{\"a\": 'x'}");
  EXPECT_EQ(e.message(), "strings must use double quotes in JSON");
  EXPECT_EQ(e.loc(), (SourceLoc{7, 1, 7}));
  base::Error key = parse_err("{'a': 1}");
  EXPECT_EQ(key.message(), "expected a member name in double quotes, found '''");
  EXPECT_EQ(key.loc(), (SourceLoc{7, 1, 2}));
}

TEST(JsonParser, UnterminatedStringErrors) {
  base::Error eof = parse_err("{\"a\": \"abc");
  EXPECT_EQ(eof.message(), "unterminated string");
  EXPECT_EQ(eof.loc(), (SourceLoc{7, 1, 7}));
  base::Error nl = parse_err("[\n  \"abc\n\"]");
  EXPECT_EQ(nl.message(), "unterminated string (strings cannot span lines)");
  EXPECT_EQ(nl.loc(), (SourceLoc{7, 2, 3}));
}

TEST(JsonParser, NumberErrors) {
  base::Error lead = parse_err("{\"vmid\": 0101}");
  EXPECT_EQ(lead.message(), "numbers must not have leading zeros");
  EXPECT_EQ(lead.loc(), (SourceLoc{7, 1, 11}));
  base::Error neg = parse_err("[-01]");
  EXPECT_EQ(neg.message(), "numbers must not have leading zeros");
  base::Error dot = parse_err("[1.]");
  EXPECT_EQ(dot.message(), "expected a digit after the decimal point, found ']'");
  base::Error exp = parse_err("[1e]");
  EXPECT_EQ(exp.message(), "expected a digit in the exponent, found ']'");
  base::Error minus = parse_err("[-x]");
  EXPECT_EQ(minus.message(), "expected a digit, found 'x'");
  // Zero itself and big integers that do not fit int64 are fine.
  Node ok = parse_ok("[0, -0, 0.5, 99999999999999999999]");
  EXPECT_EQ(ok.items()[0].as_int(), 0);
  EXPECT_EQ(ok.items()[3].kind(), Node::Kind::kDouble);
}

TEST(JsonParser, OtherSyntaxErrors) {
  EXPECT_EQ(parse_err("").message(), "the file is empty; expected a JSON value");
  EXPECT_EQ(parse_err("  \n ").message(), "the file is empty; expected a JSON value");
  base::Error after = parse_err("{} x");
  EXPECT_EQ(after.message(), "unexpected text after the JSON value");
  EXPECT_EQ(after.loc(), (SourceLoc{7, 1, 4}));
  EXPECT_EQ(parse_err("[tru]").message(), "expected a JSON value, found 't'");
  EXPECT_EQ(parse_err("{\"a\" 1}").message(), "expected ':' after member name \"a\", found '1'");
  base::Error unterminated = parse_err("\n {\"a\": 1");
  EXPECT_EQ(unterminated.message(), "unterminated object: missing '}'");
  EXPECT_EQ(unterminated.loc(), (SourceLoc{7, 2, 2}));
  EXPECT_EQ(parse_err("[1").message(), "unterminated array: missing ']'");
  EXPECT_EQ(parse_err("[1 2]").message(), "expected ',' or ']' after array element, found '2'");
  EXPECT_EQ(parse_err("[\"a\tb\"]").message(),
            "control character in string; write it as an escape such as \\t");
  EXPECT_EQ(parse_err("[\x01]").message(), "expected a JSON value, found byte 0x01");
}

TEST(JsonParser, NestingLimit) {
  std::string ok = std::string(128, '[') + std::string(128, ']');
  EXPECT_TRUE(parse_ok(ok).is_array());
  std::string deep = std::string(200, '[') + std::string(200, ']');
  base::Error e = parse_err(deep);
  EXPECT_EQ(e.message(), "values are nested more than 128 levels deep");
  EXPECT_EQ(e.loc(), (SourceLoc{7, 1, 130}));
}

TEST(JsonParser, DuplicateKeyWarnsAndLastWins) {
  base::Diagnostics diags;
  Node n = parse_ok("{\"a\": 1,\n \"a\": 2}", diags);
  EXPECT_EQ(n.size(), 1u);
  EXPECT_EQ(n.find("a")->as_int(), 2);
  ASSERT_EQ(diags.all().size(), 1u);
  const base::Diagnostic& d = diags.all()[0];
  EXPECT_EQ(d.severity, base::Severity::kWarning);
  EXPECT_EQ(d.code, "duplicate-key");
  EXPECT_EQ(d.message, "duplicate key \"a\"");
  EXPECT_EQ(d.hint, "remove one of them; the last value is the one used");
  EXPECT_EQ(d.loc, (SourceLoc{1, 2, 2}));
  ASSERT_EQ(d.related.size(), 1u);
  EXPECT_EQ(d.related[0].loc, (SourceLoc{1, 1, 2}));
  EXPECT_EQ(d.related[0].message, "first defined here");
}

// Members and items are gathered on the parser's shared stacks: nested objects and arrays inside
// a large object (past the size where duplicate keys are found through an index) keep their own
// members, in order, and a duplicate far down the object still replaces the first value.
TEST(JsonParser, LargeObjectWithNestedValuesAndADuplicate) {
  std::string text = "{";
  for (int i = 0; i < 100; ++i) {
    text += "\"k" + std::to_string(i) + "\": {\"n\": " + std::to_string(i) + ", \"list\": [" +
            std::to_string(i) + ", [\"x\", {\"deep\": true}], {}]},\n";
  }
  text += "\"k10\": \"again\"}";
  base::Diagnostics diags;
  Node n = parse_ok(text, diags);
  ASSERT_EQ(n.size(), 100u);
  EXPECT_EQ(n.members().capacity(), 100u);  // no spare room left over from growing
  for (int i = 0; i < 100; ++i) {
    const Node::Member& m = n.members()[static_cast<std::size_t>(i)];
    ASSERT_EQ(m.key, "k" + std::to_string(i));
    if (i == 10) continue;
    ASSERT_EQ(m.value.size(), 2u);
    EXPECT_EQ(m.value.find("n")->as_int(), i);
    const Node* list = m.value.find("list");
    ASSERT_EQ(list->size(), 3u);
    EXPECT_EQ(list->items()[0].as_int(), i);
    ASSERT_EQ(list->items()[1].size(), 2u);
    EXPECT_EQ(list->items()[1].items()[0].text(), "x");
    EXPECT_TRUE(list->items()[1].items()[1].find("deep")->as_bool());
    EXPECT_TRUE(list->items()[2].is_object());
    EXPECT_EQ(list->items()[2].size(), 0u);
  }
  EXPECT_EQ(n.find("k10")->text(), "again");
  ASSERT_EQ(diags.all().size(), 1u);
  EXPECT_EQ(diags.all()[0].message, "duplicate key \"k10\"");
  EXPECT_EQ(diags.all()[0].loc, (SourceLoc{1, 101, 1}));
}

// A syntax error deep inside nested values leaves the parser's stacks to be dropped, and the
// error is reported where it is.
TEST(JsonParser, ErrorInsideNestedValues) {
  base::Error e = parse_err("{\"a\": [1, {\"b\": [2, 3,]}], \"c\": 4}");
  EXPECT_EQ(e.message(), "trailing comma before ']' is not allowed in JSON");
}

}  // namespace
}  // namespace phoenix::config
