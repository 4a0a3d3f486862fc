#include "render/yaml_emit.h"

#include <gtest/gtest.h>

#include "config/yaml_reader.h"

namespace phoenix::render {
namespace {

using base::Node;

TEST(YamlEmit, QuotesStringsThatWouldReadBackAsSomethingElse) {
  for (const char* quoted :
       {"true",    "false", "True",  "null",   "~",           "8080",      "-1", "0.5", "1e3",
        "0x1F",    ".inf",  "yes",   "no",     "on",          "off",       "Y",  "",    ": x",
        "a: b",    "a:",    "a #b",  "#x",     "`cmd`",       "Host(`a`)", "-",  "- x", "*alias",
        "&anchor", "!tag",  "|",     ">",      "'q'",         "\"q\"",     "%x", "@x",  "[a]",
        "{a}",     "a,b",   " lead", "trail ", "line\nbreak", "tab\there", "?x"}) {
    EXPECT_FALSE(is_plain_safe(quoted)) << "[" << quoted << "]";
  }
  for (const char* plain : {"hello", "nginx:latest", "http://x:80/y", "a#b", "-x", "--flag",
                            "/path/to/x", "a b", "traefik.http.routers.web.rule", "1.2.3.4",
                            "10.0.0.1/24", "x=y", "caf\xC3\xA9", "nan", "v1.2"}) {
    EXPECT_TRUE(is_plain_safe(plain)) << "[" << plain << "]";
  }
}

TEST(YamlEmit, ScalarsAtTopLevel) {
  EXPECT_EQ(emit_yaml(Node::string("8080")), "\"8080\"\n");
  EXPECT_EQ(emit_yaml(Node::string("hello")), "hello\n");
  EXPECT_EQ(emit_yaml(Node::integer(8080)), "8080\n");
  EXPECT_EQ(emit_yaml(Node::boolean(true)), "true\n");
  EXPECT_EQ(emit_yaml(Node::null()), "null\n");
  EXPECT_EQ(emit_yaml(Node::real(0.5, {}, "0.50")), "0.50\n");
  EXPECT_EQ(emit_yaml(Node::array()), "[]\n");
  EXPECT_EQ(emit_yaml(Node::object()), "{}\n");
  EXPECT_EQ(emit_yaml(Node::string("a\"b\\c\n")), "\"a\\\"b\\\\c\\n\"\n");
}

TEST(YamlEmit, NestedLayoutWithSortedKeys) {
  Node root = Node::object();
  Node services = Node::object();
  Node web = Node::object();
  web.set("image", Node::string("nginx:1.27"));
  Node ports = Node::array();
  ports.push_back(Node::string("80:80"));
  ports.push_back(Node::integer(443));
  web.set("ports", std::move(ports));
  Node env = Node::object();
  env.set("Z_LAST", Node::string("true"));
  env.set("A_FIRST", Node::string("x y"));
  web.set("environment", std::move(env));
  Node nets = Node::array();
  Node net_obj = Node::object();
  net_obj.set("name", Node::string("backend"));
  net_obj.set("aliases", Node::array());
  net_obj.set("driver", Node::string("overlay"));
  nets.push_back(std::move(net_obj));
  Node inner = Node::array();
  inner.push_back(Node::string("a"));
  inner.push_back(Node::string("b"));
  nets.push_back(std::move(inner));
  web.set("networks", std::move(nets));
  web.set("deploy", Node::object());
  services.set("web", std::move(web));
  root.set("version", Node::string("3.8"));
  root.set("services", std::move(services));

  EXPECT_EQ(emit_yaml(root),
            "services:\n"
            "  web:\n"
            "    deploy: {}\n"
            "    environment:\n"
            "      A_FIRST: x y\n"
            "      Z_LAST: \"true\"\n"
            "    image: nginx:1.27\n"
            "    networks:\n"
            "    - aliases: []\n"
            "      driver: overlay\n"
            "      name: backend\n"
            "    -\n"
            "      - a\n"
            "      - b\n"
            "    ports:\n"
            "    - \"80:80\"\n"
            "    - 443\n"
            "version: \"3.8\"\n");
}

TEST(YamlEmit, QuotesKeysWhenNeeded) {
  Node root = Node::object();
  root.set("8080", Node::string("x"));
  root.set("a: b", Node::integer(1));
  root.set("plain", Node::null());
  EXPECT_EQ(emit_yaml(root), "\"8080\": x\n\"a: b\": 1\nplain: null\n");
}

void expect_round_trip(const Node& original) {
  std::string text = emit_yaml(original);
  auto back = config::parse_yaml(text, 1);
  ASSERT_TRUE(back.has_value()) << back.error().message() << "\n" << text;
  EXPECT_TRUE(*back == original) << text;
}

TEST(YamlEmit, RoundTripsATrickyDocument) {
  // Keys in sorted order, since the emitter sorts them and Node equality is ordered.
  Node root = Node::object();
  Node strings = Node::array();
  for (const char* s : {"true",
                        "8080",
                        "yes",
                        "",
                        ": x",
                        "a #b",
                        "`x`",
                        "null",
                        "~",
                        "-",
                        "- x",
                        "a: b",
                        "0x10",
                        "1e5",
                        ".nan",
                        "  spaced  ",
                        "line\nbreak\ttab",
                        "quote\"back\\slash",
                        "caf\xC3\xA9",
                        "\x01",
                        "#",
                        "@",
                        "{}",
                        "[]",
                        "Host(`a.example.com`) && PathPrefix(`/x`)",
                        "${VAR:-d}",
                        "*",
                        "&",
                        "!",
                        "|",
                        ">",
                        "%",
                        "'",
                        "-x",
                        "?",
                        "x:y",
                        "no",
                        "OFF",
                        "plain text"}) {
    strings.push_back(Node::string(s));
  }
  root.set("a_strings", std::move(strings));
  Node numbers = Node::object();
  numbers.set("d", Node::real(0.5, {}, "0.50"));
  numbers.set("f", Node::boolean(false));
  numbers.set("i", Node::integer(-42));
  numbers.set("n", Node::null());
  root.set("b_numbers", std::move(numbers));
  Node nested = Node::array();
  Node item = Node::object();
  item.set("k", Node::string("v"));
  Node sub = Node::array();
  Node deep = Node::object();
  deep.set("x", Node::array());
  deep.set("y", Node::object());
  sub.push_back(std::move(deep));
  item.set("list", std::move(sub));
  nested.push_back(std::move(item));
  Node pair = Node::array();
  pair.push_back(Node::integer(1));
  Node inner_pair = Node::array();
  inner_pair.push_back(Node::string("z"));
  pair.push_back(std::move(inner_pair));
  nested.push_back(std::move(pair));
  root.set("c_nested", std::move(nested));
  Node odd_keys = Node::object();
  odd_keys.set("", Node::string("empty key"));
  odd_keys.set("8080", Node::string("numeric key"));
  odd_keys.set("a #b", Node::string("comment key"));
  odd_keys.set("true", Node::string("bool key"));
  root.set("d_keys", std::move(odd_keys));
  expect_round_trip(root);
}

TEST(YamlEmit, RoundTripsAMergeKeyLookalike) {
  // A literal "<<" key must not turn into a YAML merge key when read back.
  Node root = Node::object();
  root.set("<<", Node::string("x"));
  expect_round_trip(root);
}

}  // namespace
}  // namespace phoenix::render
