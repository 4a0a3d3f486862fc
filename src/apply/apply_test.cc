#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <thread>

#include "apply/executor.h"
#include "apply/journal.h"
#include "apply/lock.h"
#include "fakes/temp_dir.h"

namespace phoenix::apply {
namespace {

namespace fs = std::filesystem;

using fakes::TempDir;

TEST(Journal, RecordsRunsAndActionsAndMarksTheInterrupted) {
  TempDir dir;
  const std::string path = dir.file("journal.db");
  {
    auto j = Journal::open(path);
    ASSERT_TRUE(j.has_value()) << j.error().message();
    auto run = (*j)->begin_run("sync all", "/etc/phoenix");
    ASSERT_TRUE(run.has_value());
    auto a = (*j)->begin_action(*run, "guest/101", "guests");
    ASSERT_TRUE(a.has_value());
    ASSERT_TRUE((*j)->end_action(*a, "changed", "created", "", R"({"output":"script said hi"})")
                    .has_value());
    auto b = (*j)->begin_action(*run, "stack/web", "stacks");
    ASSERT_TRUE(b.has_value());
    // The process "dies" here: the run and its second action stay running.
  }
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u) << "the journal is readable by its owner only";

  auto j = Journal::open(path);
  ASSERT_TRUE(j.has_value());
  auto marked = (*j)->mark_interrupted();
  ASSERT_TRUE(marked.has_value());
  EXPECT_EQ(*marked, 1);
  auto second = (*j)->begin_run("sync all", "/etc/phoenix");
  ASSERT_TRUE((*j)->end_run(*second, "ok", "0 changed").has_value());
  auto runs = (*j)->runs(10);
  ASSERT_TRUE(runs.has_value());
  ASSERT_EQ(runs->size(), 2u);
  EXPECT_EQ((*runs)[0].result, "ok");
  EXPECT_EQ((*runs)[0].summary, "0 changed");
  EXPECT_EQ((*runs)[1].result, "interrupted");
  EXPECT_EQ((*runs)[1].pid, ::getpid());
  auto actions = (*j)->actions((*runs)[1].id);
  ASSERT_TRUE(actions.has_value());
  ASSERT_EQ(actions->size(), 2u);
  EXPECT_EQ((*actions)[0].key, "guest/101");
  EXPECT_EQ((*actions)[0].result, "changed");
  EXPECT_EQ((*actions)[0].detail, "created");
  EXPECT_EQ((*actions)[0].report, R"({"output":"script said hi"})");
  EXPECT_EQ((*actions)[1].result, "interrupted");
  EXPECT_GT((*actions)[1].ended_at, 0);
}

TEST(Journal, AnUnwritableStateDirectoryIsAClearError) {
  auto j = Journal::open("/nonexistent/phoenix/journal.db");
  ASSERT_FALSE(j.has_value());
  EXPECT_TRUE(j.error().message().starts_with("cannot open the journal /nonexistent/phoenix/"))
      << j.error().message();
}

TEST(EstateLock, OneHolderAtATimeAndADeadHoldersLockIsTakenOver) {
  TempDir dir;
  const std::string path = dir.file("lock");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto lock = acquire_lock(path, "sync all");
    char c = lock ? 'y' : 'n';
    (void)::write(ready[1], &c, 1);
    ::pause();  // holds it until killed
    ::_exit(0);
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');

  auto second = acquire_lock(path, "sync all");
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().kind(), base::ErrorKind::kConflict);
  const std::string& m = second.error().message();
  EXPECT_TRUE(m.starts_with("another converge of this estate is running: the lock " + path +
                            " is held by pid " + std::to_string(child) + " on "))
      << m;
  EXPECT_NE(m.find(" UTC (phoenix sync all); wait for it to finish"), std::string::npos) << m;

  ::kill(child, SIGKILL);  // dies holding it
  ::waitpid(child, nullptr, 0);
  auto third = acquire_lock(path, "sync all");
  ASSERT_TRUE(third.has_value()) << third.error().message();
  ASSERT_TRUE(third->taken_over().has_value());
  EXPECT_EQ(third->taken_over()->pid, child);
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST(EstateLock, ReleasedOnDestruction) {
  TempDir dir;
  {
    auto lock = acquire_lock(dir.file("lock"), "sync all");
    ASSERT_TRUE(lock.has_value());
  }
  auto again = acquire_lock(dir.file("lock"), "sync all");
  ASSERT_TRUE(again.has_value());
  EXPECT_FALSE(again->taken_over().has_value()) << "a released lock names no holder";
}

// ---- the executor ----------------------------------------------------------------------------

namespace {

struct Probe {
  std::mutex mu;
  int running = 0, peak = 0;
  std::map<std::string, int> kind_running, kind_peak;
  std::vector<std::string> order;  // starts
};

Task task(Probe& p, std::string key, std::string kind, std::vector<std::string> needs,
          TaskResult::Status status = TaskResult::Status::kChanged) {
  Task t;
  t.key = key;
  t.stage = "s";
  t.kind = kind;
  t.needs = std::move(needs);
  t.run = [&p, key, kind, status] {
    {
      std::lock_guard g(p.mu);
      p.order.push_back(key);
      p.peak = std::max(p.peak, ++p.running);
      p.kind_peak[kind] = std::max(p.kind_peak[kind], ++p.kind_running[kind]);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    std::lock_guard g(p.mu);
    --p.running;
    --p.kind_running[kind];
    TaskResult r;
    r.status = status;
    if (status == TaskResult::Status::kFailed) r.error = key + " broke";
    return r;
  };
  return t;
}

}  // namespace

TEST(Executor, ParallelAlongTheDagWithinItsLimits) {
  Probe p;
  std::vector<Task> tasks = {task(p, "guests", "guest", {})};
  for (int i = 0; i < 6; ++i) {
    tasks.push_back(task(p, "stack/" + std::to_string(i), "stack", {"guests"}));
    tasks.push_back(task(p, "clone/" + std::to_string(i), "clone", {"guests"}));
  }
  ExecutorOptions o;
  o.jobs = 4;
  o.per_kind = {{"clone", 1}};
  auto results = execute(tasks, o);
  ASSERT_EQ(results.size(), 13u);
  for (const auto& [k, r] : results) EXPECT_EQ(r.status, TaskResult::Status::kChanged) << k;
  EXPECT_EQ(p.order.front(), "guests") << "nothing starts before what it needs";
  EXPECT_LE(p.peak, 4) << "up to -j at a time";
  EXPECT_GE(p.peak, 2) << "side by side";
  EXPECT_EQ(p.kind_peak["clone"], 1) << "one clone at a time";
  EXPECT_GE(p.kind_peak["stack"], 2) << "stacks side by side";
}

TEST(Executor, AFailureStopsOnlyWhatNeedsIt) {
  Probe p;
  std::vector<Task> tasks = {task(p, "swarm", "swarm", {}, TaskResult::Status::kFailed),
                             task(p, "core", "core", {"swarm"}),
                             task(p, "stack/a", "stack", {"core"}),
                             task(p, "dns", "dns", {}, TaskResult::Status::kUnchanged),
                             task(p, "gateways", "gw", {"dns"})};
  std::vector<std::string> reported;
  ExecutorOptions o;
  o.on_done = [&](const Task& t, const TaskResult& r) {
    reported.push_back(t.key + " " + std::string(to_string(r.status)));
  };
  auto r = execute(tasks, o);
  EXPECT_EQ(r["swarm"].error, "swarm broke");
  EXPECT_EQ(r["core"].status, TaskResult::Status::kSkipped);
  EXPECT_EQ(r["core"].detail, "not run: it needs swarm, which did not succeed");
  EXPECT_EQ(r["stack/a"].status, TaskResult::Status::kSkipped);
  EXPECT_EQ(r["stack/a"].detail, "not run: it needs core, which did not succeed");
  EXPECT_EQ(r["gateways"].status, TaskResult::Status::kChanged);
  EXPECT_EQ(reported.size(), 5u);
  EXPECT_EQ(std::count(p.order.begin(), p.order.end(), "core"), 0);
}

TEST(Executor, RetriesOnlyWhatARetryMayFix) {
  int calls = 0, hard = 0;
  Task flaky;
  flaky.key = "flaky";
  flaky.attempts = 5;
  flaky.run = [&] {
    TaskResult r;
    if (++calls < 3) {
      r.status = TaskResult::Status::kFailed;
      r.retryable = true;
      r.error = "connection refused";
    }
    return r;
  };
  Task broken;
  broken.key = "broken";
  broken.attempts = 5;
  broken.run = [&] {
    ++hard;
    TaskResult r;
    r.status = TaskResult::Status::kFailed;
    r.error = "invalid input";
    return r;
  };
  ExecutorOptions o;
  o.first_backoff = std::chrono::milliseconds(1);
  auto r = execute({flaky, broken}, o);
  EXPECT_EQ(r["flaky"].status, TaskResult::Status::kUnchanged);
  EXPECT_EQ(r["flaky"].attempts, 3);
  EXPECT_EQ(r["broken"].attempts, 1);
  EXPECT_EQ(hard, 1);
}

TEST(Executor, BadGraphsAreSkippedNotHung) {
  Probe p;
  auto r = execute({task(p, "a", "k", {"b"}), task(p, "b", "k", {"a"}),
                    task(p, "c", "k", {"nothing"}), task(p, "d", "k", {})},
                   {});
  EXPECT_EQ(r["a"].detail, "not run: its needs form a cycle");
  EXPECT_EQ(r["b"].status, TaskResult::Status::kSkipped);
  EXPECT_EQ(r["c"].detail, "not run: it needs nothing (no such task), which did not succeed");
  EXPECT_EQ(r["d"].status, TaskResult::Status::kChanged);
}

}  // namespace
}  // namespace phoenix::apply
