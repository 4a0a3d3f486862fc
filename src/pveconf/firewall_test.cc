#include "pveconf/firewall.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace phoenix::pveconf {
namespace {

using nlohmann::json;

FwRule rule(std::string type, std::string action, std::string proto = "", std::string dport = "",
            std::string source = "", std::string comment = "") {
  FwRule r;
  r.type = std::move(type);
  r.action = std::move(action);
  r.proto = std::move(proto);
  r.dport = std::move(dport);
  r.source = std::move(source);
  r.comment = std::move(comment);
  return r;
}

const FwRule kA = rule("in", "ACCEPT", "tcp", "22", "10.0.0.0/24", "SSH");
const FwRule kB = rule("in", "ACCEPT", "tcp", "80,443", "", "web");
const FwRule kC = rule("in", "DROP", "udp", "53");
const FwRule kD = rule("out", "REJECT", "", "", "", "no egress");
const FwRule kE = rule("in", "ACCEPT", "icmp");

bool same_list(const std::vector<FwRule>& a, const std::vector<FwRule>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!same(a[i], b[i])) return false;
  }
  return true;
}

std::string show(const std::vector<FwRule>& list) {
  std::string out;
  for (const FwRule& r : list) out += "[" + describe(r) + "] ";
  return out;
}

// Applies the operations through the requests Proxmox would receive.
std::vector<FwRule> run(std::vector<FwRule> list, const std::vector<FwOp>& ops) {
  for (const FwOp& op : ops) {
    EXPECT_TRUE(simulate(list, op)) << to_string(op);
  }
  return list;
}

std::vector<std::string> strings(const std::vector<FwOp>& ops) {
  std::vector<std::string> out;
  for (const FwOp& op : ops) out.push_back(to_string(op));
  return out;
}

// ---- rules ---------------------------------------------------------------------------------

TEST(PveconfFirewall, FromApiParsesAProxmoxRule) {
  json j = json::parse(R"({"pos":0,"type":"in","action":"ACCEPT","enable":1,"proto":"tcp",
      "dport":"22","source":"10.0.0.0/24","comment":"SSH",
      "digest":"3f1b2c0d9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c","ipversion":4})");
  FwRule r = from_api(j);
  EXPECT_EQ(r.type, "in");
  EXPECT_EQ(r.action, "ACCEPT");
  EXPECT_TRUE(r.enable);
  EXPECT_EQ(r.proto, "tcp");
  EXPECT_EQ(r.dport, "22");
  EXPECT_EQ(r.source, "10.0.0.0/24");
  EXPECT_EQ(r.comment, "SSH");
  EXPECT_EQ(r.dest, "");
  EXPECT_EQ(r.sport, "");
  EXPECT_EQ(r.iface, "");
  EXPECT_EQ(r.macro, "");
  EXPECT_EQ(r.log, "");
  EXPECT_TRUE(same(r, kA));
  EXPECT_EQ(describe(r), "in ACCEPT tcp 22 from 10.0.0.0/24 (SSH)");
}

TEST(PveconfFirewall, FromApiAllFieldsAndDisabled) {
  json j = {{"pos", 3},           {"type", "out"},
            {"action", "DROP"},   {"enable", 0},
            {"macro", "SSH"},     {"iface", "net0"},
            {"dest", "+trusted"}, {"sport", "1024:65535"},
            {"log", "info"},      {"icmp-type", "echo-request"}};
  FwRule r = from_api(j);
  EXPECT_EQ(r.type, "out");
  EXPECT_EQ(r.action, "DROP");
  EXPECT_FALSE(r.enable);
  EXPECT_EQ(r.macro, "SSH");
  EXPECT_EQ(r.iface, "net0");
  EXPECT_EQ(r.dest, "+trusted");
  EXPECT_EQ(r.sport, "1024:65535");
  EXPECT_EQ(r.log, "info");
  EXPECT_EQ(r.icmp_type, "echo-request");
  EXPECT_EQ(describe(r),
            "out SSH(DROP) on net0 to +trusted sport 1024:65535 icmp-type echo-request log info "
            "disabled");
}

TEST(PveconfFirewall, FromApiEnableAbsentIsDisabled) {
  EXPECT_FALSE(from_api(json{{"type", "in"}, {"action", "ACCEPT"}}).enable);
  EXPECT_TRUE(from_api(json{{"type", "in"}, {"action", "ACCEPT"}, {"enable", true}}).enable);
  EXPECT_TRUE(from_api(json{{"type", "in"}, {"action", "ACCEPT"}, {"enable", "1"}}).enable);
  // An enabled desired rule differs from a disabled one.
  FwRule off = kA;
  off.enable = false;
  EXPECT_FALSE(same(kA, off));
}

TEST(PveconfFirewall, FromApiToleratesOddTypes) {
  FwRule r = from_api(json{{"type", "in"}, {"action", "ACCEPT"}, {"dport", 22}, {"comment", {1}}});
  EXPECT_EQ(r.dport, "22");
  EXPECT_EQ(r.comment, "");
  EXPECT_EQ(from_api(json("not a rule")).type, "");
}

TEST(PveconfFirewall, RulesFromApiFollowPos) {
  json list = json::array({{{"pos", 1}, {"type", "in"}, {"action", "DROP"}, {"enable", 1}},
                           {{"pos", 0}, {"type", "in"}, {"action", "ACCEPT"}, {"enable", 1}}});
  std::vector<FwRule> rules = rules_from_api(list);
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[0].action, "ACCEPT");
  EXPECT_EQ(rules[1].action, "DROP");
  EXPECT_TRUE(rules_from_api(json::object()).empty());
}

TEST(PveconfFirewall, FromDesired) {
  compile::FirewallRule d{"IN", "accept", "10.0.0.0/24", "", "TCP", "80, 443", "net0", "web\n"};
  FwRule r = from_desired(d);
  EXPECT_EQ(r.type, "in");
  EXPECT_EQ(r.action, "ACCEPT");
  EXPECT_TRUE(r.enable);
  EXPECT_EQ(r.proto, "tcp");
  EXPECT_EQ(r.dport, "80,443");
  EXPECT_EQ(r.iface, "net0");
  EXPECT_EQ(r.comment, "web");

  compile::FirewallRuleset set;
  set.rules = {d, {"OUT", "DROP", "", "1.2.3.4", "", "", "", ""}};
  std::vector<FwRule> rules = rules_from_desired(set);
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[1].type, "out");
  EXPECT_EQ(rules[1].dest, "1.2.3.4");
}

TEST(PveconfFirewall, SameNormalisesAsProxmox) {
  // What Phoenix sends and what Proxmox lists back are the same rule.
  compile::FirewallRule d{"IN", "ACCEPT", "10.0.0.0/24", "", "TCP", "80, 443", "", "  web  "};
  json listed = {
      {"pos", 0},       {"type", "in"},      {"action", "ACCEPT"},      {"enable", 1},
      {"proto", "tcp"}, {"dport", "80,443"}, {"source", "10.0.0.0/24"}, {"comment", "web"},
      {"ipversion", 4}};
  EXPECT_TRUE(same(from_desired(d), from_api(listed)));
  // Comments compare exactly (after trimming), the rest field by field.
  EXPECT_FALSE(same(kA, rule("in", "ACCEPT", "tcp", "22", "10.0.0.0/24", "ssh")));
  EXPECT_FALSE(same(kA, rule("out", "ACCEPT", "tcp", "22", "10.0.0.0/24", "SSH")));
  EXPECT_FALSE(same(kA, rule("in", "ACCEPT", "tcp", "2222", "10.0.0.0/24", "SSH")));
  EXPECT_TRUE(same(kA, rule("IN", "accept", "TCP", " 22", "10.0.0.0/24", "SSH")));
  FwRule with_log = kA;
  with_log.log = "info";
  EXPECT_FALSE(same(kA, with_log));
  // A group's name is kept as written.
  EXPECT_EQ(normalized(rule("group", "webservers")).action, "webservers");
}

TEST(PveconfFirewall, ToParams) {
  EXPECT_EQ(to_params(kA), (Params{{"type", "in"},
                                   {"action", "ACCEPT"},
                                   {"enable", "1"},
                                   {"source", "10.0.0.0/24"},
                                   {"proto", "tcp"},
                                   {"dport", "22"},
                                   {"comment", "SSH"}}));
  FwRule off = kD;
  off.enable = false;
  off.iface = "net1";
  EXPECT_EQ(to_params(off), (Params{{"type", "out"},
                                    {"action", "REJECT"},
                                    {"enable", "0"},
                                    {"iface", "net1"},
                                    {"comment", "no egress"}}));
}

// ---- Proxmox's request semantics -----------------------------------------------------------

TEST(PveconfFirewall, SimulatorFollowsProxmox) {
  const std::vector<FwRule> abcd = {kA, kB, kC, kD};
  auto put = [](std::size_t pos, std::size_t moveto) {
    return FwCall{"PUT", pos, {{"moveto", std::to_string(moveto)}}};
  };
  std::vector<FwRule> l = abcd;
  ASSERT_TRUE(simulate(l, put(0, 2)));  // down: lands at moveto - 1
  EXPECT_TRUE(same_list(l, {kB, kA, kC, kD})) << show(l);
  l = abcd;
  ASSERT_TRUE(simulate(l, put(3, 1)));  // up: lands at moveto
  EXPECT_TRUE(same_list(l, {kA, kD, kB, kC})) << show(l);
  l = abcd;
  ASSERT_TRUE(simulate(l, put(1, 9)));  // past the end: last
  EXPECT_TRUE(same_list(l, {kA, kC, kD, kB})) << show(l);
  l = abcd;
  ASSERT_TRUE(simulate(l, put(2, 2)));
  EXPECT_TRUE(same_list(l, abcd));
  EXPECT_FALSE(simulate(l, put(4, 0)));  // no rule at position 4
  EXPECT_FALSE(simulate(l, FwCall{"DELETE", 4, {}}));
  EXPECT_FALSE(simulate(l, FwCall{"PUT", 0, {{"comment", "x"}}}));
  ASSERT_TRUE(simulate(l, FwCall{"DELETE", 1, {}}));
  EXPECT_TRUE(same_list(l, {kA, kC, kD})) << show(l);

  // POST always adds at the top; without enable=1 the rule is disabled.
  ASSERT_TRUE(simulate(l, FwCall{"POST", std::nullopt, to_params(kE)}));
  EXPECT_TRUE(same_list(l, {kE, kA, kC, kD})) << show(l);
  ASSERT_TRUE(simulate(l, FwCall{"POST", std::nullopt, {{"type", "in"}, {"action", "DROP"}}}));
  EXPECT_FALSE(l[0].enable);
}

TEST(PveconfFirewall, CallsOfEachOperation) {
  std::vector<FwCall> c = calls({FwOpKind::kInsert, 2, 0, kA});
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].method, "POST");
  EXPECT_EQ(path(c[0]), "rules");
  EXPECT_EQ(c[0].params, to_params(kA));
  EXPECT_EQ(c[1].method, "PUT");
  EXPECT_EQ(path(c[1]), "rules/0");
  EXPECT_EQ(c[1].params, (Params{{"moveto", "3"}}));

  c = calls({FwOpKind::kInsert, 0, 0, kA});
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].method, "POST");

  c = calls({FwOpKind::kMove, 3, 1, kA});
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].method, "PUT");
  EXPECT_EQ(path(c[0]), "rules/3");
  EXPECT_EQ(c[0].params, (Params{{"moveto", "1"}}));

  c = calls({FwOpKind::kDelete, 4, 0, kA});
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].method, "DELETE");
  EXPECT_EQ(path(c[0]), "rules/4");
  EXPECT_TRUE(c[0].params.empty());
}

// ---- reconciliation ------------------------------------------------------------------------

TEST(PveconfFirewall, EqualListsNeedNothing) {
  EXPECT_TRUE(reconcile_rules({}, {}).empty());
  EXPECT_TRUE(reconcile_rules({kA, kB, kC}, {kA, kB, kC}).empty());
  EXPECT_TRUE(reconcile_rules({kA, kA, kB, kA}, {kA, kA, kB, kA}).empty());
  // Equal as Proxmox compares them.
  EXPECT_TRUE(
      reconcile_rules({kA}, {rule("IN", "accept", "TCP", "22", "10.0.0.0/24", "SSH")}).empty());
}

TEST(PveconfFirewall, AddToEmpty) {
  std::vector<FwOp> ops = reconcile_rules({}, {kA, kB, kC});
  EXPECT_EQ(strings(ops), (std::vector<std::string>{
                              "add rule 0: in ACCEPT tcp 22 from 10.0.0.0/24 (SSH)",
                              "add rule 1: in ACCEPT tcp 80,443 (web)",
                              "add rule 2: in DROP udp 53",
                          }));
  EXPECT_TRUE(same_list(run({}, ops), {kA, kB, kC}));
}

TEST(PveconfFirewall, RemoveExtras) {
  FwRule x = rule("in", "ACCEPT", "tcp", "8080");
  std::vector<FwOp> ops = reconcile_rules({kA, x, kB, kD}, {kA, kB});
  EXPECT_EQ(strings(ops), (std::vector<std::string>{
                              "remove rule 3: out REJECT (no egress)",
                              "remove rule 1: in ACCEPT tcp 8080",
                          }));
  EXPECT_TRUE(same_list(run({kA, x, kB, kD}, ops), {kA, kB}));
  // Everything goes.
  ops = reconcile_rules({kA, kB, kC}, {});
  EXPECT_EQ(ops.size(), 3u);
  EXPECT_TRUE(run({kA, kB, kC}, ops).empty());
}

TEST(PveconfFirewall, ReorderMovesOnlyWhatIsOutOfPlace) {
  // The first rule belongs last: one move down, not three up.
  std::vector<FwOp> ops = reconcile_rules({kA, kB, kC, kD}, {kB, kC, kD, kA});
  EXPECT_EQ(strings(ops), (std::vector<std::string>{
                              "move rule 0 to 3: in ACCEPT tcp 22 from 10.0.0.0/24 (SSH)",
                          }));
  EXPECT_EQ(ops[0].moveto, 4u);
  EXPECT_TRUE(same_list(run({kA, kB, kC, kD}, ops), {kB, kC, kD, kA}));

  ops = reconcile_rules({kA, kB, kC, kD}, {kD, kA, kB, kC});
  EXPECT_EQ(strings(ops), (std::vector<std::string>{
                              "move rule 3 to 0: out REJECT (no egress)",
                          }));
  EXPECT_TRUE(same_list(run({kA, kB, kC, kD}, ops), {kD, kA, kB, kC}));

  // A full reversal keeps one rule and moves the others.
  ops = reconcile_rules({kA, kB, kC, kD}, {kD, kC, kB, kA});
  EXPECT_EQ(ops.size(), 3u);
  for (const FwOp& op : ops) EXPECT_EQ(op.kind, FwOpKind::kMove);
  EXPECT_TRUE(same_list(run({kA, kB, kC, kD}, ops), {kD, kC, kB, kA}));
}

TEST(PveconfFirewall, Duplicates) {
  // One of three identical rules too many.
  std::vector<FwOp> ops = reconcile_rules({kA, kA, kB, kA}, {kA, kB, kA});
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops[0].kind, FwOpKind::kDelete);
  EXPECT_TRUE(same_list(run({kA, kA, kB, kA}, ops), {kA, kB, kA}));

  // One too few: created, not taken from elsewhere.
  ops = reconcile_rules({kA, kB}, {kA, kB, kA});
  EXPECT_EQ(strings(ops), (std::vector<std::string>{
                              "add rule 2: in ACCEPT tcp 22 from 10.0.0.0/24 (SSH)",
                          }));
  EXPECT_TRUE(same_list(run({kA, kB}, ops), {kA, kB, kA}));

  ops = reconcile_rules({kB, kA, kA}, {kA, kA, kB});
  EXPECT_EQ(ops.size(), 1u);
  EXPECT_TRUE(same_list(run({kB, kA, kA}, ops), {kA, kA, kB}));
}

TEST(PveconfFirewall, Mixed) {
  FwRule x = rule("in", "ACCEPT", "tcp", "8080");
  FwRule a_disabled = kA;
  a_disabled.enable = false;
  // A rule switched off by hand, a stray one, the order changed, one missing.
  const std::vector<FwRule> observed = {x, kC, a_disabled, kB, kA, kD};
  const std::vector<FwRule> desired = {kA, kB, kC, kE, kD};
  std::vector<FwOp> ops = reconcile_rules(observed, desired);
  // After the deletions: C B A D. A and D stay; B, then C, go in after A; E is created.
  EXPECT_EQ(strings(ops), (std::vector<std::string>{
                              "remove rule 2: in ACCEPT tcp 22 from 10.0.0.0/24 disabled (SSH)",
                              "remove rule 0: in ACCEPT tcp 8080",
                              "move rule 1 to 2: in ACCEPT tcp 80,443 (web)",
                              "move rule 0 to 2: in DROP udp 53",
                              "add rule 3: in ACCEPT icmp",
                          }));
  std::vector<FwRule> result = run(observed, ops);
  EXPECT_TRUE(same_list(result, desired)) << show(result);
  EXPECT_TRUE(reconcile_rules(result, desired).empty());
}

TEST(PveconfFirewall, RandomListsConverge) {
  const std::vector<FwRule> alphabet = {kA, kB, kC, kD, kE};
  std::mt19937 rng(20240611);
  for (int iteration = 0; iteration < 3000; ++iteration) {
    // Few letters make duplicates common; more make missing and stray rules common.
    std::size_t letters = 2 + static_cast<std::size_t>(iteration % 4);
    std::uniform_int_distribution<std::size_t> pick(0, letters - 1), length(0, 9);
    auto random_letters = [&] {
      std::vector<std::size_t> word(length(rng));
      for (std::size_t& l : word) l = pick(rng);
      return word;
    };
    std::vector<std::size_t> have = random_letters(), want = random_letters();
    std::vector<FwRule> observed, desired;
    for (std::size_t l : have) observed.push_back(alphabet[l]);
    for (std::size_t l : want) desired.push_back(alphabet[l]);
    std::vector<FwOp> ops = reconcile_rules(observed, desired);

    std::vector<FwRule> result = observed;
    for (const FwOp& op : ops) ASSERT_TRUE(simulate(result, op)) << to_string(op);
    ASSERT_TRUE(same_list(result, desired)) << "observed " << show(observed) << "\ndesired "
                                            << show(desired) << "\nresult " << show(result);
    ASSERT_TRUE(reconcile_rules(desired, desired).empty());
    ASSERT_TRUE(reconcile_rules(result, desired).empty());

    // Only the surplus is deleted, only the shortfall created, and no rule of a longest common
    // subsequence is touched: nothing could be done with fewer operations.
    std::size_t deletes = 0, inserts = 0, moves = 0, common = 0;
    for (const FwOp& op : ops) {
      deletes += op.kind == FwOpKind::kDelete;
      inserts += op.kind == FwOpKind::kInsert;
      moves += op.kind == FwOpKind::kMove;
    }
    for (std::size_t l = 0; l < alphabet.size(); ++l) {
      common += static_cast<std::size_t>(std::min(std::count(have.begin(), have.end(), l),
                                                  std::count(want.begin(), want.end(), l)));
    }
    std::vector<std::vector<std::size_t>> lcs(have.size() + 1,
                                              std::vector<std::size_t>(want.size() + 1, 0));
    for (std::size_t i = 1; i <= have.size(); ++i) {
      for (std::size_t j = 1; j <= want.size(); ++j) {
        lcs[i][j] = have[i - 1] == want[j - 1] ? lcs[i - 1][j - 1] + 1
                                               : std::max(lcs[i - 1][j], lcs[i][j - 1]);
      }
    }
    ASSERT_EQ(deletes, observed.size() - common);
    ASSERT_EQ(inserts, desired.size() - common);
    ASSERT_EQ(moves + inserts, desired.size() - lcs[have.size()][want.size()]);
  }
}

// ---- options -------------------------------------------------------------------------------

TEST(PveconfFirewall, OptionsFromApiDefaults) {
  FwOptions o = options_from_api(json::object());
  EXPECT_EQ(o.enable, false);
  EXPECT_EQ(o.policy_in, "DROP");
  EXPECT_EQ(o.policy_out, "ACCEPT");
  o = options_from_api(
      json{{"enable", 1}, {"policy_in", "ACCEPT"}, {"policy_out", "REJECT"}, {"digest", "ab"}});
  EXPECT_EQ(o.enable, true);
  EXPECT_EQ(o.policy_in, "ACCEPT");
  EXPECT_EQ(o.policy_out, "REJECT");
}

TEST(PveconfFirewall, OptionsUpdate) {
  compile::FirewallRuleset cluster;
  cluster.enabled = true;
  cluster.policy_in = "DROP";
  cluster.policy_out = "ACCEPT";
  FwOptions want = from_desired(cluster);

  // Converged, though Proxmox lists no policy: its defaults are what the estate wants.
  EXPECT_TRUE(options_update(want, options_from_api(json{{"enable", 1}})).empty());
  EXPECT_EQ(options_update(want, options_from_api(json::object())), (Params{{"enable", "1"}}));
  EXPECT_EQ(options_update(want, options_from_api(json{{"enable", 1}, {"policy_in", "ACCEPT"}})),
            (Params{{"policy_in", "DROP"}}));
  EXPECT_EQ(options_update(want, options_from_api(json{{"policy_out", "DROP"}})),
            (Params{{"enable", "1"}, {"policy_out", "ACCEPT"}}));

  // A guest's ruleset sets no policy: whatever Proxmox has stays.
  compile::FirewallRuleset guest;
  guest.guest = 101;
  guest.enabled = false;
  FwOptions guest_want = from_desired(guest);
  EXPECT_TRUE(guest_want.policy_in.empty());
  EXPECT_TRUE(options_update(guest_want, options_from_api(json{{"policy_in", "ACCEPT"}})).empty());
  EXPECT_EQ(options_update(guest_want, options_from_api(json{{"enable", 1}})),
            (Params{{"enable", "0"}}));

  // Nothing desired, nothing to do.
  EXPECT_TRUE(options_update(FwOptions{}, options_from_api(json{{"enable", 1}})).empty());
  // Policies compare without regard to case.
  FwOptions lower;
  lower.policy_in = "drop";
  EXPECT_TRUE(options_update(lower, options_from_api(json::object())).empty());
}

}  // namespace
}  // namespace phoenix::pveconf
