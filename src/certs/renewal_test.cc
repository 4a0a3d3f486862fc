#include "certs/renewal.h"

#include <gtest/gtest.h>

namespace phoenix::certs {
namespace {

compile::Certificate want() {
  compile::Certificate c;
  c.name = "gateway";
  c.common_name = "gw.lan";
  c.sans = {"gw.lan", "10.0.0.153", "www.lan"};
  return c;
}

constexpr std::int64_t kDay = 86400;

TEST(Renewal, IssuesWhatIsMissing) {
  auto d = decide(want(), std::nullopt, 1000);
  EXPECT_EQ(d.verdict, Verdict::kIssue);
  EXPECT_EQ(d.reason, "missing");
}

TEST(Renewal, KeepsUntilTwoThirdsOfTheLifetime) {
  Held h{{"www.lan", "gw.lan", "10.0.0.153"}, 0, 90 * kDay};
  auto early = decide(want(), h, 59 * kDay);
  EXPECT_EQ(early.verdict, Verdict::kKeep) << early.reason;
  EXPECT_EQ(early.renew_at, 60 * kDay);
  EXPECT_EQ(decide(want(), h, 60 * kDay).verdict, Verdict::kRenew);
  auto expired = decide(want(), h, 91 * kDay);
  EXPECT_EQ(expired.verdict, Verdict::kRenew);
  EXPECT_EQ(expired.reason, "expired on 1970-04-01 00:00:00 UTC");
  // A 24-hour certificate (step-ca's default) renews after 16 hours.
  Held day{{"gw.lan", "www.lan", "10.0.0.153"}, 1000, 1000 + kDay};
  EXPECT_EQ(decide(want(), day, 1000 + 16 * 3600 - 1).verdict, Verdict::kKeep);
  EXPECT_EQ(decide(want(), day, 1000 + 16 * 3600).verdict, Verdict::kRenew);
}

TEST(Renewal, RenewsWhenTheNamesChange) {
  Held h{{"gw.lan", "old.lan", "10.0.0.153"}, 0, 90 * kDay};
  auto d = decide(want(), h, kDay);
  EXPECT_EQ(d.verdict, Verdict::kRenew);
  EXPECT_EQ(d.reason, "names changed: +www.lan -old.lan");
  EXPECT_EQ(wanted_names(want()), (std::vector<std::string>{"10.0.0.153", "gw.lan", "www.lan"}));
}

}  // namespace
}  // namespace phoenix::certs
