#include "base/node.h"

#include <gtest/gtest.h>

namespace phoenix::base {
namespace {

Node sample() {
  Node obj = Node::object(SourceLoc{1, 2, 3});
  Node list = Node::array();
  list.push_back(Node::string("a long string that does not fit in place"));
  list.push_back(Node::integer(42, {}, "42"));
  obj.set("list", std::move(list));
  obj.set("ratio", Node::real(0.5, {}, "0.50"));
  obj.set("flag", Node::boolean(true));
  obj.set("nothing", Node::null());
  return obj;
}

TEST(Node, CopiesAndMovesKeepEveryKind) {
  Node a = sample();
  Node copy = a;
  EXPECT_EQ(copy, a);
  EXPECT_EQ(copy.loc(), (SourceLoc{1, 2, 3}));
  Node moved = std::move(copy);
  EXPECT_EQ(moved, a);
  ASSERT_NE(moved.find("list"), nullptr);
  EXPECT_EQ(moved.find("list")->items()[0].text(), "a long string that does not fit in place");
  EXPECT_EQ(moved.find("list")->items()[1].as_int(), 42);
  EXPECT_EQ(moved.find("ratio")->text(), "0.50");
  EXPECT_TRUE(moved.find("flag")->as_bool());
  EXPECT_EQ(moved.find("nothing")->text(), "null");
}

TEST(Node, AssigningANodeOneOfItsOwnValuesKeepsThatValue) {
  Node a = sample();
  a = *a.find("list");  // copy from a part of itself
  ASSERT_TRUE(a.is_array());
  EXPECT_EQ(a.items()[0].text(), "a long string that does not fit in place");
  Node b = sample();
  b = std::move(*b.find("list"));  // move from a part of itself
  ASSERT_TRUE(b.is_array());
  EXPECT_EQ(b.size(), 2u);
  Node c = sample();
  Node& self = c;
  c = self;
  c = std::move(self);
  EXPECT_EQ(c, sample());
}

TEST(Node, ChangingKindReplacesTheStorage) {
  Node n = Node::string("text");
  n = Node::array();
  EXPECT_TRUE(n.items().empty());
  EXPECT_EQ(n.text(), "");
  n = Node::integer(7);
  EXPECT_EQ(n.text(), "7");
  EXPECT_TRUE(n.members().empty());
  n = Node::object();
  n.set("k", Node::string("v"));
  EXPECT_EQ(n.size(), 1u);
}

TEST(Node, WritesThroughAnotherKindsAccessorAreDropped) {
  Node s = Node::string("keep");
  s.items().push_back(Node::string("lost"));
  s.members().push_back({"k", {}, Node::null()});
  s.set("k", Node::string("lost"));
  EXPECT_EQ(s.text(), "keep");
  EXPECT_EQ(s.size(), 0u);
  EXPECT_EQ(s.find("k"), nullptr);
  Node list = Node::array();
  list.mutable_text() = "lost";
  list.push_back(Node::boolean(false));
  EXPECT_EQ(list.text(), "");
  EXPECT_EQ(list.size(), 1u);
  EXPECT_FALSE(list.erase("k"));
}

}  // namespace
}  // namespace phoenix::base
