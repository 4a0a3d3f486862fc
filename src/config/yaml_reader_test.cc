#include "config/yaml_reader.h"

#include <gtest/gtest.h>

#include <string>

namespace phoenix::config {
namespace {

using base::Node;
using base::SourceLoc;

Node parse_ok(std::string_view text) {
  auto r = parse_yaml(text, 3);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message());
  return r ? std::move(*r) : Node();
}

TEST(YamlReader, TypesPlainScalarsButNotQuotedOnes) {
  Node n = parse_ok(
      "port: 8080\n"
      "quoted_port: \"8080\"\n"
      "single: '8080'\n"
      "flag: true\n"
      "quoted_flag: \"true\"\n"
      "nothing: ~\n"
      "empty:\n"
      "ratio: 0.50\n"
      "hex: 0x1F\n"
      "word: hello\n"
      "block: |\n"
      "  42\n");
  EXPECT_TRUE(n.find("port")->is_int());
  EXPECT_EQ(n.find("port")->as_int(), 8080);
  EXPECT_TRUE(n.find("quoted_port")->is_string());
  EXPECT_EQ(n.find("quoted_port")->text(), "8080");
  EXPECT_TRUE(n.find("single")->is_string());
  EXPECT_TRUE(n.find("flag")->is_bool());
  EXPECT_TRUE(n.find("flag")->as_bool());
  EXPECT_TRUE(n.find("quoted_flag")->is_string());
  EXPECT_TRUE(n.find("nothing")->is_null());
  EXPECT_TRUE(n.find("empty")->is_null());
  EXPECT_EQ(n.find("ratio")->kind(), Node::Kind::kDouble);
  EXPECT_EQ(n.find("ratio")->text(), "0.50");
  EXPECT_EQ(n.find("hex")->as_int(), 31);
  EXPECT_EQ(n.find("word")->text(), "hello");
  EXPECT_TRUE(n.find("block")->is_string());
  EXPECT_EQ(n.find("block")->text(), "42\n");
}

TEST(YamlReader, RecordsLocations) {
  Node n = parse_ok(
      "services:\n"
      "  web:\n"
      "    image: nginx\n"
      "    ports:\n"
      "      - 80\n");
  const Node* web = n.find("services")->find("web");
  ASSERT_NE(web, nullptr);
  EXPECT_EQ(n.find("services")->find_member("web")->key_loc, (SourceLoc{3, 2, 3}));
  EXPECT_EQ(web->find_member("image")->key_loc, (SourceLoc{3, 3, 5}));
  EXPECT_EQ(web->find("image")->loc(), (SourceLoc{3, 3, 12}));
  EXPECT_EQ(web->find("ports")->items()[0].loc(), (SourceLoc{3, 5, 9}));
}

TEST(YamlReader, ExpandsMergeKeys) {
  Node n = parse_ok(
      "base: &base\n"
      "  a: 1\n"
      "  b: 2\n"
      "other: &other\n"
      "  b: 20\n"
      "  c: 30\n"
      "x:\n"
      "  <<: [*base, *other]\n"
      "  a: 100\n");
  const Node* x = n.find("x");
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->find("<<"), nullptr);
  EXPECT_EQ(x->find("a")->as_int(), 100);  // explicit key wins
  EXPECT_EQ(x->find("b")->as_int(), 2);    // earlier merged map wins
  EXPECT_EQ(x->find("c")->as_int(), 30);
  EXPECT_EQ(x->size(), 3u);

  Node single = parse_ok("d: &d {k: v}\ne:\n  <<: *d\n");
  EXPECT_EQ(single.find("e")->find("k")->text(), "v");
}

TEST(YamlReader, MergeKeyNeedsAMapping) {
  auto in_list = parse_yaml("x:\n  <<: [5]\n", 3);
  ASSERT_FALSE(in_list.has_value());
  EXPECT_EQ(in_list.error().message(), "a merge key (<<) needs a mapping");
  // A scalar merge value must be rejected too, not silently dropped.
  auto r = parse_yaml("x:\n  <<: 5\n", 3);
  ASSERT_FALSE(r.has_value()) << "x has " << r->find("x")->size() << " members";
  EXPECT_EQ(r.error().message(), "a merge key (<<) needs a mapping");
  EXPECT_EQ(r.error().loc(), (SourceLoc{3, 2, 7}));
}

TEST(YamlReader, QuotedMergeKeyIsAnOrdinaryKey) {
  Node n = parse_ok("\"<<\": x\n");
  ASSERT_NE(n.find("<<"), nullptr);
  EXPECT_EQ(n.find("<<")->text(), "x");
}

TEST(YamlReader, DuplicateKeyIsAnError) {
  auto r = parse_yaml("a: 1\na: 2\n", 3);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message(), "duplicate key \"a\"");
  EXPECT_EQ(r.error().loc(), (SourceLoc{3, 2, 1}));
}

TEST(YamlReader, SyntaxErrorHasALocation) {
  auto r = parse_yaml("a: 1\nb: [1, 2\n", 3);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind(), base::ErrorKind::kInvalidInput);
  EXPECT_TRUE(r.error().message().starts_with("YAML syntax error: ")) << r.error().message();
  EXPECT_EQ(r.error().loc().file, 3u);
  EXPECT_TRUE(r.error().loc().has_line());
}

TEST(YamlReader, RejectsDeepFlowNesting) {
  std::string deep = "a: " + std::string(200, '[') + std::string(200, ']') + "\n";
  auto r = parse_yaml(deep, 3);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message(), "values are nested more than 128 levels deep");
  // The mapping is level 1, so the 128th bracket opens level 129.
  EXPECT_EQ(r.error().loc(), (SourceLoc{3, 1, 4 + 127}));
  // Brackets inside quotes and comments do not count.
  std::string quoted = "a: \"" + std::string(200, '[') + "\" # " + std::string(200, '{') + "\n";
  EXPECT_EQ(parse_ok(quoted).find("a")->text(), std::string(200, '['));
}

TEST(YamlReader, RejectsMultipleDocuments) {
  auto r = parse_yaml("a: 1\n---\nb: 2\n", 3);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message(), "the file holds more than one YAML document; expected one");
  EXPECT_EQ(r.error().loc(), (SourceLoc{3, 2, 1}));  // where the second document starts
}

TEST(YamlReader, EmptyDocumentIsNull) {
  EXPECT_TRUE(parse_ok("").is_null());
  EXPECT_TRUE(parse_ok("# only a comment\n").is_null());
}

}  // namespace
}  // namespace phoenix::config
