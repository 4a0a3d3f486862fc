#include "base/strings.h"

#include <gtest/gtest.h>

namespace phoenix::base {
namespace {

using Lines = std::vector<std::string>;

TEST(LineDiff, EqualTextsHaveNone) { EXPECT_EQ(line_diff("a\nb\n", "a\nb\n"), Lines{}); }

TEST(LineDiff, ChangesWithContextAndGaps) {
  std::string before = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
  std::string after = "1\n2\nthree\n4\n5\n6\n7\n8\n9\nten\n";
  EXPECT_EQ(line_diff(before, after, 1), (Lines{" 2", "-3", "+three", " 4", "@@", " 9", "+ten"}));
  EXPECT_EQ(line_diff("a\n", ""), (Lines{"-a"}));
  EXPECT_EQ(line_diff("", "a\nb"), (Lines{"+a", "+b"}));
}

TEST(LineDiff, TooLongToCompareIsSaidSo) {
  std::string big;
  for (int i = 0; i < 3000; ++i) big += std::to_string(i) + "\n";
  auto d = line_diff(big, big + "x\n");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0], "(3000 lines before, 3001 after: too long to compare line by line)");
}

}  // namespace
}  // namespace phoenix::base
