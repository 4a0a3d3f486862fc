#include "provision/provision.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

namespace phoenix::provision {
namespace {

model::Guest guest(model::GuestId id, std::vector<model::GuestId> deps = {},
                   std::optional<model::GuestId> clone = std::nullopt) {
  model::Guest g;
  g.id = id;
  for (auto d : deps) g.dependencies.push_back({d, {}});
  if (clone) g.clone_from = model::GuestRef{*clone, {}};
  return g;
}

TEST(Provision, CreationOrderPutsDependenciesAndCloneSourcesFirst) {
  model::Estate e;
  e.guests = {guest(1002, {1001}, 9000), guest(1001, {103}, 9000), guest(9000), guest(103)};
  e.reindex();
  std::vector<model::GuestId> ids;
  for (const model::Guest* g : creation_order(e, {1002})) ids.push_back(g->id);
  EXPECT_EQ(ids, (std::vector<model::GuestId>{9000, 103, 1001, 1002}));
  auto users = dependents(e, 9000);
  ASSERT_EQ(users.size(), 2u);
}

TEST(Provision, RunInOrderRespectsDependenciesInParallel) {
  // 1 and 2 are independent; 3 needs both; 4 needs 3.
  std::vector<model::Guest> gs = {guest(1), guest(2), guest(3, {1, 2}), guest(4, {3})};
  std::vector<const model::Guest*> order;
  for (const auto& g : gs) order.push_back(&g);
  std::mutex mu;
  std::vector<model::GuestId> finished;
  std::atomic<int> running{0}, peak{0};
  auto results = run_in_order(order, 4, [&](const model::Guest& g) -> base::Result<void> {
    int now = ++running;
    int p = peak.load();
    while (now > p && !peak.compare_exchange_weak(p, now)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    {
      std::lock_guard lock(mu);
      for (const auto& d : g.dependencies) {
        EXPECT_NE(std::find(finished.begin(), finished.end(), d.id), finished.end())
            << g.id << " ran before " << d.id;
      }
      finished.push_back(g.id);
    }
    --running;
    return {};
  });
  EXPECT_EQ(finished.size(), 4u);
  EXPECT_EQ(peak.load(), 2);  // 1 and 2 together, then 3, then 4
  for (const auto& [id, r] : results) EXPECT_TRUE(r.has_value()) << id;
}

TEST(Provision, AFailureStopsOnlyWhatDependsOnIt) {
  std::vector<model::Guest> gs = {guest(1), guest(2), guest(3, {1}), guest(4, {2})};
  std::vector<const model::Guest*> order;
  for (const auto& g : gs) order.push_back(&g);
  std::atomic<int> calls{0};
  auto results = run_in_order(order, 1, [&](const model::Guest& g) -> base::Result<void> {
    ++calls;
    if (g.id == 1) return base::fail(base::ErrorKind::kInternal, "boom");
    return {};
  });
  EXPECT_EQ(calls.load(), 3);  // 3 is never attempted
  EXPECT_FALSE(results.at(1).has_value());
  EXPECT_FALSE(results.at(3).has_value());
  EXPECT_NE(results.at(3).error().message().find("not attempted"), std::string::npos);
  EXPECT_TRUE(results.at(2).has_value());
  EXPECT_TRUE(results.at(4).has_value());
}

}  // namespace
}  // namespace phoenix::provision
