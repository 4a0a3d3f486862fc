#include "plan/plan.h"

#include <gtest/gtest.h>

namespace phoenix::plan {
namespace {

using compile::Resource;
using compile::Stage;
using nlohmann::json;

Resource lxc(compile::GuestId id, json fields, std::vector<std::string> deps = {}) {
  return Resource{"lxc/" + std::to_string(id),
                  "lxc",
                  std::to_string(id),
                  Stage::kGuests,
                  id,
                  std::move(deps),
                  std::move(fields)};
}

std::vector<Resource> estate() {
  std::vector<Resource> out;
  out.push_back(lxc(101, {{"memory_mb", 2048}, {"unprivileged", true}}));
  out.push_back(lxc(102, {{"memory_mb", 1024}}, {"lxc/101"}));
  out.push_back(lxc(103, {{"memory_mb", 512}}));
  out.push_back(Resource{"dns/app.phoenix.local",
                         "dns",
                         "app.phoenix.local",
                         Stage::kInfrastructure,
                         std::nullopt,
                         {},
                         {{"ip", "10.0.3.102"}}});
  out.push_back(Resource{"file/102:/etc/x",
                         "file",
                         "102:/etc/x",
                         Stage::kGateways,
                         102,
                         {"lxc/102"},
                         {{"sha256", "abc"}}});
  out.push_back(Resource{"network/traefik-public",
                         "network",
                         "traefik-public",
                         Stage::kSwarm,
                         std::nullopt,
                         {},
                         json::object()});
  // Sorted by id, as compile_estate returns them, so that order is not given for free.
  std::sort(out.begin(), out.end(),
            [](const Resource& a, const Resource& b) { return a.id > b.id; });
  return out;
}

std::vector<std::string> ids(const Plan& p) {
  std::vector<std::string> out;
  for (const Action& a : p.actions) out.push_back(a.id);
  return out;
}

const Action* find(const Plan& p, std::string_view id) {
  for (const Action& a : p.actions) {
    if (a.id == id) return &a;
  }
  return nullptr;
}

TEST(Plan, CreatesInDependencyOrder) {
  auto p = make_plan(estate(), Observed{}, {});
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(ids(*p),
            (std::vector<std::string>{"lxc/101", "lxc/102", "lxc/103", "dns/app.phoenix.local",
                                      "network/traefik-public", "file/102:/etc/x"}));
  for (const Action& a : p->actions) {
    EXPECT_EQ(a.kind, ActionKind::kCreate) << a.id;
    EXPECT_EQ(a.reason, "not present on the platform");
  }
  EXPECT_EQ(p->count(ActionKind::kCreate), 6u);
  EXPECT_TRUE(p->has_changes());
  EXPECT_TRUE(p->errors.empty());
}

TEST(Plan, DependencyBeatsStageAndIdOrder) {
  std::vector<Resource> rs;
  rs.push_back(lxc(101, json::object(), {"lxc/900"}));
  rs.push_back(lxc(900, json::object()));
  auto p = make_plan(rs, Observed{}, {});
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(ids(*p), (std::vector<std::string>{"lxc/900", "lxc/101"}));
}

// The actions are put in plan order where they stand: with many of them in a scrambled order
// (long cycles of the permutation), each must still arrive whole, with its own fields, and a
// deletion still comes after them all.
TEST(Plan, ManyActionsArriveWholeInOrder) {
  constexpr int kCount = 210;
  std::vector<Resource> rs;
  for (int i = 0; i < kCount; ++i) {
    const int n = 1000 + (i * 37) % kCount;  // every number once (37 and 210 are coprime)
    std::vector<std::string> deps;
    if (n % 10 == 0) deps.push_back("lxc/" + std::to_string(n + 1));  // after the next one
    rs.push_back(lxc(static_cast<compile::GuestId>(n), {{"memory_mb", n}}, deps));
  }
  Observed observed;
  observed.resources["lxc/999"] = ObservedResource{{{"memory_mb", 1}}, true};
  auto p = make_plan(rs, observed, {});
  ASSERT_TRUE(p.has_value());
  ASSERT_EQ(p->actions.size(), static_cast<std::size_t>(kCount) + 1);
  std::vector<std::string> expected;
  for (int n = 1000; n < 1000 + kCount; ++n) {
    if (n % 10 == 0) continue;  // placed after n + 1
    expected.push_back("lxc/" + std::to_string(n));
    if (n % 10 == 1) expected.push_back("lxc/" + std::to_string(n - 1));
  }
  expected.push_back("lxc/999");
  EXPECT_EQ(ids(*p), expected);
  for (const Action& a : p->actions) {
    if (a.id == "lxc/999") {
      EXPECT_EQ(a.kind, ActionKind::kDelete);
      continue;
    }
    EXPECT_EQ(a.kind, ActionKind::kCreate) << a.id;
    EXPECT_EQ(a.id, "lxc/" + a.name);
    EXPECT_EQ(a.owner, static_cast<compile::GuestId>(std::stoi(a.name)));
    const int n = std::stoi(a.name);
    EXPECT_EQ(a.deps.size(), n % 10 == 0 ? 1u : 0u) << a.id;
  }
}

TEST(Plan, NoChangesWhenObservedMatchesSnapshot) {
  std::vector<Resource> rs = estate();
  auto observed = parse_snapshot(make_snapshot(rs));
  ASSERT_TRUE(observed.has_value());
  auto p = make_plan(rs, *observed, {});
  ASSERT_TRUE(p.has_value());
  EXPECT_FALSE(p->has_changes());
  EXPECT_EQ(p->count(ActionKind::kNoop), 6u);
  EXPECT_EQ(find(*p, "lxc/101")->reason, "up to date");
}

TEST(Plan, UpdateWithFieldDiff) {
  std::vector<Resource> rs = {lxc(101, {{"memory_mb", 4096}, {"unprivileged", true}})};
  Observed obs;
  obs.resources["lxc/101"].fields = {{"memory_mb", 2048}, {"unprivileged", true}};
  auto p = make_plan(rs, obs, {});
  ASSERT_TRUE(p.has_value());
  ASSERT_EQ(p->actions.size(), 1u);
  const Action& a = p->actions[0];
  EXPECT_EQ(a.kind, ActionKind::kUpdate);
  EXPECT_EQ(a.reason, "1 field differs");
  ASSERT_EQ(a.changes.size(), 1u);
  EXPECT_EQ(a.changes[0].path, "memory_mb");
  EXPECT_EQ(*a.changes[0].before, json(2048));
  EXPECT_EQ(*a.changes[0].after, json(4096));
  EXPECT_FALSE(a.changes[0].forces_replacement);
  std::string text = format_plan(*p, {});
  EXPECT_NE(text.find("      memory_mb: 2048 → 4096\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Plan: 0 to create, 1 to update, 0 to replace, 0 to delete, 0 unchanged.\n"),
            std::string::npos)
      << text;
}

TEST(Plan, ReplaceWhenUnprivilegedChanges) {
  std::vector<Resource> rs = {lxc(101, {{"memory_mb", 2048}, {"unprivileged", true}})};
  Observed obs;
  obs.resources["lxc/101"].fields = {{"memory_mb", 1024}, {"unprivileged", false}};
  auto p = make_plan(rs, obs, {});
  ASSERT_TRUE(p.has_value());
  const Action& a = p->actions.at(0);
  EXPECT_EQ(a.kind, ActionKind::kReplace);
  EXPECT_EQ(a.reason, "a field that cannot change in place differs");
  ASSERT_EQ(a.changes.size(), 2u);
  EXPECT_EQ(a.changes[1].path, "unprivileged");
  EXPECT_TRUE(a.changes[1].forces_replacement);
  EXPECT_FALSE(a.changes[0].forces_replacement);
}

TEST(Plan, ShrinkingADiskIsAnError) {
  std::vector<Resource> rs = {lxc(101, {{"storage_size_gb", 16}})};
  Observed obs;
  obs.resources["lxc/101"].fields = {{"storage_size_gb", 32}};
  auto p = make_plan(rs, obs, {});
  ASSERT_TRUE(p.has_value());
  ASSERT_EQ(p->errors.size(), 1u);
  EXPECT_EQ(p->errors[0],
            "lxc/101: storage_size_gb cannot shrink from 32 to 16; Proxmox only grows disks. Keep "
            "it at 32 or recreate the guest deliberately");
  // Growing is a plain update.
  obs.resources["lxc/101"].fields = {{"storage_size_gb", 8}};
  auto grow = make_plan(rs, obs, {});
  ASSERT_TRUE(grow.has_value());
  EXPECT_TRUE(grow->errors.empty());
  EXPECT_EQ(grow->actions.at(0).kind, ActionKind::kUpdate);
}

TEST(Plan, DeletesOnlyManagedResourcesLast) {
  std::vector<Resource> rs = {lxc(101, json::object())};
  Observed obs;
  obs.resources["lxc/101"].fields = json::object();
  obs.resources["lxc/555"].managed = true;
  obs.resources["lxc/556"].managed = false;
  obs.resources["stack/old"].managed = true;
  auto p = make_plan(rs, obs, {});
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(ids(*p), (std::vector<std::string>{"lxc/101", "stack/old", "lxc/555"}));
  const Action* del = find(*p, "lxc/555");
  ASSERT_NE(del, nullptr);
  EXPECT_EQ(del->kind, ActionKind::kDelete);
  EXPECT_EQ(del->reason, "managed by Phoenix but no longer in the estate");
  EXPECT_EQ(del->owner, std::optional<compile::GuestId>(555));
  EXPECT_EQ(find(*p, "stack/old")->stage, Stage::kStacks);
  EXPECT_EQ(find(*p, "lxc/556"), nullptr);
}

TEST(Plan, SelectionIncludesDependencies) {
  Observed obs;
  obs.resources["lxc/777"].managed = true;
  auto p = make_plan(estate(), obs, PlanOptions{{102}});
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(ids(*p), (std::vector<std::string>{"lxc/101", "lxc/102", "file/102:/etc/x"}));
  auto only101 = make_plan(estate(), obs, PlanOptions{{101}});
  ASSERT_TRUE(only101.has_value());
  EXPECT_EQ(ids(*only101), (std::vector<std::string>{"lxc/101"}));
  auto with_delete = make_plan(estate(), obs, PlanOptions{{777}});
  ASSERT_FALSE(with_delete.has_value());
  EXPECT_EQ(with_delete.error().message(), "guest 777 is not defined in the estate");
  EXPECT_EQ(with_delete.error().kind(), base::ErrorKind::kInvalidInput);
}

TEST(Plan, ParseSnapshotErrors) {
  auto msg = [](const json& doc) {
    auto r = parse_snapshot(doc);
    EXPECT_FALSE(r.has_value()) << doc.dump();
    return r ? std::string() : r.error().message();
  };
  EXPECT_EQ(msg(json::array()),
            "not a Phoenix snapshot: expected an object with \"phoenix_snapshot\": 1");
  EXPECT_EQ(msg(json{{"resources", json::object()}}),
            "not a Phoenix snapshot: expected an object with \"phoenix_snapshot\": 1");
  EXPECT_EQ(msg(json{{"phoenix_snapshot", 2}}),
            "unsupported snapshot version 2; this Phoenix reads version 1");
  EXPECT_EQ(msg(json{{"phoenix_snapshot", "1"}}),
            "unsupported snapshot version \"1\"; this Phoenix reads version 1");
  EXPECT_EQ(msg(json{{"phoenix_snapshot", 1}, {"resources", json::array()}}),
            "\"resources\" must be an object keyed by id");
  EXPECT_EQ(msg(json{{"phoenix_snapshot", 1}, {"resources", {{"lxc/1", 5}}}}),
            "resource \"lxc/1\" must be an object with \"fields\"");
  EXPECT_EQ(msg(json{{"phoenix_snapshot", 1}, {"resources", {{"lxc/1", {{"fields", 1}}}}}}),
            "\"fields\" of resource \"lxc/1\" must be an object");
  EXPECT_EQ(msg(json{{"phoenix_snapshot", 1}, {"resources", {{"lxc/1", {{"managed", "yes"}}}}}}),
            "\"managed\" of resource \"lxc/1\" must be true or false");

  auto ok = parse_snapshot(json::parse(
      R"({"phoenix_snapshot": 1, "resources": {"lxc/1": {"managed": false, "fields": {"a": 1}}}})"));
  ASSERT_TRUE(ok.has_value());
  EXPECT_FALSE(ok->resources.at("lxc/1").managed);
  EXPECT_EQ(ok->resources.at("lxc/1").fields, json({{"a", 1}}));
  auto empty = parse_snapshot(json{{"phoenix_snapshot", 1}});
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->resources.empty());
}

TEST(Plan, FlattenPaths) {
  json fields = json::parse(R"({
    "memory_mb": 2048,
    "net0": {"ip": "10.0.0.1/24", "gw": "10.0.0.1"},
    "tags": ["a", "b"],
    "mounts": [{"host": "/a"}, {"host": "/b", "opts": {"ro": true}}],
    "empty": {},
    "none": []
  })");
  auto flat = flatten(fields);
  std::map<std::string, json> expected = {
      {"memory_mb", 2048},         {"net0.ip", "10.0.0.1/24"},
      {"net0.gw", "10.0.0.1"},     {"tags", json::array({"a", "b"})},
      {"mounts[0].host", "/a"},    {"mounts[1].host", "/b"},
      {"mounts[1].opts.ro", true}, {"empty", json::object()},
      {"none", json::array()},
  };
  EXPECT_EQ(flat, expected);
}

}  // namespace
}  // namespace phoenix::plan
