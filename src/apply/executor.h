#pragma once

// The executor of a converge: tasks along a DAG, up to `jobs` at a time and at most
// `per_kind[k]` of kind k at a time, a task that fails stops only the tasks that need it (they
// are skipped, saying which), and a task that failed in a way a retry may help is run again,
// with backoff, up to its attempts. It knows nothing of what the tasks do: sync all gives it
// the commands of each stage.

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace phoenix::apply {

struct TaskResult {
  enum class Status { kChanged, kUnchanged, kFailed, kSkipped };
  Status status = Status::kUnchanged;
  std::string detail;      // what it did; for a skipped task, why
  std::string error;       // for a failure
  bool retryable = false;  // a failure a later attempt may not meet
  std::string report;      // the task's own report (JSON text)
  int attempts = 0;
};

std::string_view to_string(TaskResult::Status status);  // changed, unchanged, failed, skipped

struct Task {
  std::string key;                 // "stacks/web": unique
  std::string stage;               // for reports: "stacks"
  std::string kind;                // for limits: "stack", "dns", ...
  std::vector<std::string> needs;  // keys of tasks that must succeed first
  int attempts = 1;                // runs at most, when failures are retryable
  std::function<TaskResult()> run;
};

struct ExecutorOptions {
  int jobs = 4;
  std::map<std::string, int> per_kind;  // kinds not named are bounded by `jobs` only
  std::chrono::milliseconds first_backoff{500};
  std::chrono::milliseconds max_backoff{8000};
  // Called, one at a time (never concurrently), when a task starts an attempt, and when it is
  // done (finished, failed for good, or skipped).
  std::function<void(const Task&, int attempt)> on_start;
  std::function<void(const Task&, const TaskResult&)> on_done;
};

// Runs every task; returns each one's result by key. Tasks naming an unknown key, or a cycle,
// are skipped with that reason (callers build the DAG; this only never hangs on a bad one).
std::map<std::string, TaskResult> execute(const std::vector<Task>& tasks,
                                          const ExecutorOptions& options);

}  // namespace phoenix::apply
