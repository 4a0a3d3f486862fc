#include "model/interpolate.h"

#include <gtest/gtest.h>

namespace phoenix::model {
namespace {

using Vars = std::map<std::string, std::string, std::less<>>;

const Vars kVars = {{"HOST", "example.com"}, {"PORT", "8080"}, {"EMPTY", ""}};

TEST(Interpolate, BracedAndBareReferences) {
  InterpolationResult r = interpolate("http://${HOST}:$PORT/x", kVars);
  EXPECT_EQ(r.text, "http://example.com:8080/x");
  EXPECT_TRUE(r.unset.empty());
  EXPECT_FALSE(r.error.has_value());
  // A bare name ends at the first character that cannot be part of a name.
  EXPECT_EQ(interpolate("$HOST.$PORT-", kVars).text, "example.com.8080-");
}

TEST(Interpolate, DoubleDollarIsALiteralDollar) {
  InterpolationResult r = interpolate("cost: $$5 and $${HOST}", kVars);
  EXPECT_EQ(r.text, "cost: $5 and ${HOST}");
  EXPECT_TRUE(r.unset.empty());
  EXPECT_EQ(interpolate("a $ b $", kVars).text, "a $ b $");
}

TEST(Interpolate, ColonDashDefaultAppliesToUnsetAndEmpty) {
  EXPECT_EQ(interpolate("${MISSING:-d}", kVars).text, "d");
  EXPECT_EQ(interpolate("${EMPTY:-d}", kVars).text, "d");
  EXPECT_EQ(interpolate("${HOST:-d}", kVars).text, "example.com");
  EXPECT_EQ(interpolate("${MISSING:-}", kVars).text, "");
  EXPECT_TRUE(interpolate("${MISSING:-d}", kVars).unset.empty());
}

TEST(Interpolate, DashDefaultAppliesToUnsetOnly) {
  EXPECT_EQ(interpolate("${MISSING-d}", kVars).text, "d");
  EXPECT_EQ(interpolate("[${EMPTY-d}]", kVars).text, "[]");
  EXPECT_EQ(interpolate("${PORT-d}", kVars).text, "8080");
}

TEST(Interpolate, RequiredVariables) {
  InterpolationResult missing = interpolate("x ${TOKEN:?set TOKEN first} y", kVars);
  ASSERT_TRUE(missing.error.has_value());
  EXPECT_EQ(*missing.error, "required variable TOKEN is not set: set TOKEN first");
  InterpolationResult empty = interpolate("${EMPTY:?}", kVars);
  ASSERT_TRUE(empty.error.has_value());
  EXPECT_EQ(*empty.error, "required variable EMPTY is not set");
  // Without the colon an empty value is accepted.
  InterpolationResult empty_ok = interpolate("[${EMPTY?need it}]", kVars);
  EXPECT_FALSE(empty_ok.error.has_value());
  EXPECT_EQ(empty_ok.text, "[]");
  InterpolationResult set = interpolate("${HOST:?x}", kVars);
  EXPECT_FALSE(set.error.has_value());
  EXPECT_EQ(set.text, "example.com");
}

TEST(Interpolate, MalformedReferences) {
  InterpolationResult unterminated = interpolate("a ${HOST", kVars);
  ASSERT_TRUE(unterminated.error.has_value());
  EXPECT_EQ(*unterminated.error, "unterminated \"${\" in \"a ${HOST\"");
  InterpolationResult bad = interpolate("${1X}", kVars);
  ASSERT_TRUE(bad.error.has_value());
  EXPECT_EQ(*bad.error, "invalid variable reference \"${1X}\"");
  InterpolationResult empty = interpolate("${}", kVars);
  ASSERT_TRUE(empty.error.has_value());
  EXPECT_EQ(*empty.error, "invalid variable reference \"${}\"");
  InterpolationResult op = interpolate("${HOST+x}", kVars);
  ASSERT_TRUE(op.error.has_value());
  EXPECT_EQ(*op.error, "invalid variable reference \"${HOST+x}\"");
}

TEST(Interpolate, CollectsUnsetVariables) {
  InterpolationResult r = interpolate("${A}-$B-${HOST}-${C:-c}-$A", kVars);
  EXPECT_EQ(r.text, "--example.com-c-");
  EXPECT_EQ(r.unset, (std::vector<std::string>{"A", "B", "A"}));
  EXPECT_FALSE(r.error.has_value());
}

}  // namespace
}  // namespace phoenix::model
