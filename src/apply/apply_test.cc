#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

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

}  // namespace
}  // namespace phoenix::apply
