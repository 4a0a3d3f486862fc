#include "apply/executor.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

namespace phoenix::apply {

std::string_view to_string(TaskResult::Status status) {
  switch (status) {
    case TaskResult::Status::kChanged:
      return "changed";
    case TaskResult::Status::kUnchanged:
      return "unchanged";
    case TaskResult::Status::kFailed:
      return "failed";
    case TaskResult::Status::kSkipped:
      return "skipped";
  }
  return "?";
}

namespace {

bool succeeded(const TaskResult& r) {
  return r.status == TaskResult::Status::kChanged || r.status == TaskResult::Status::kUnchanged;
}

}  // namespace

std::map<std::string, TaskResult> execute(const std::vector<Task>& tasks,
                                          const ExecutorOptions& options) {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, TaskResult> done;
  std::map<std::string, const Task*> by_key;
  for (const Task& t : tasks) by_key[t.key] = &t;
  std::set<std::string> running;
  std::map<std::string, int> running_kind;
  std::set<std::string> pending;
  for (const Task& t : tasks) pending.insert(t.key);

  auto finish = [&](const Task& t, TaskResult r) {  // under mu
    done[t.key] = r;
    pending.erase(t.key);
    if (options.on_done) options.on_done(t, r);
  };

  // Marks what can no longer run: a need that failed, was skipped, or does not exist. Returns
  // whether anything changed. Under mu.
  auto skip_blocked = [&]() {
    bool any = false;
    for (auto it = pending.begin(); it != pending.end();) {
      const Task& t = *by_key.at(*it++);
      std::vector<std::string> blocked;
      for (const std::string& n : t.needs) {
        if (!by_key.contains(n)) {
          blocked.push_back(n + " (no such task)");
        } else if (auto d = done.find(n); d != done.end() && !succeeded(d->second)) {
          blocked.push_back(n);
        }
      }
      if (blocked.empty()) continue;
      TaskResult r;
      r.status = TaskResult::Status::kSkipped;
      std::string list;
      for (const std::string& b : blocked) list += (list.empty() ? "" : ", ") + b;
      r.detail = "not run: it needs " + list + ", which did not succeed";
      finish(t, std::move(r));
      any = true;
    }
    return any;
  };

  auto ready = [&](const Task& t) {  // under mu
    if (running.size() >= static_cast<std::size_t>(std::max(1, options.jobs))) return false;
    if (auto lim = options.per_kind.find(t.kind);
        lim != options.per_kind.end() && running_kind[t.kind] >= std::max(1, lim->second)) {
      return false;
    }
    return std::all_of(t.needs.begin(), t.needs.end(), [&](const std::string& n) {
      auto d = done.find(n);
      return d != done.end() && succeeded(d->second);
    });
  };

  std::vector<std::thread> threads;
  std::unique_lock lock(mu);
  while (!pending.empty()) {
    while (skip_blocked()) {
    }
    bool started = false;
    for (const Task& t : tasks) {
      if (!pending.contains(t.key) || running.contains(t.key) || !ready(t)) continue;
      running.insert(t.key);
      ++running_kind[t.kind];
      started = true;
      threads.emplace_back([&, task = &t] {
        TaskResult r;
        auto backoff = options.first_backoff;
        for (int attempt = 1;; ++attempt) {
          {
            std::lock_guard g(mu);
            if (options.on_start) options.on_start(*task, attempt);
          }
          r = task->run();
          r.attempts = attempt;
          if (r.status != TaskResult::Status::kFailed || !r.retryable ||
              attempt >= std::max(1, task->attempts)) {
            break;
          }
          std::this_thread::sleep_for(backoff);
          backoff = std::min(backoff * 2, options.max_backoff);
        }
        std::lock_guard g(mu);
        running.erase(task->key);
        --running_kind[task->kind];
        finish(*task, std::move(r));
        cv.notify_all();
      });
    }
    if (pending.empty()) break;
    if (!started && running.empty()) {
      // Nothing runs and nothing can start: what is left waits on itself (a cycle).
      for (const std::string& k : std::set<std::string>(pending)) {
        TaskResult r;
        r.status = TaskResult::Status::kSkipped;
        r.detail = "not run: its needs form a cycle";
        finish(*by_key.at(k), std::move(r));
      }
      break;
    }
    if (!started) cv.wait(lock);
  }
  lock.unlock();
  for (std::thread& t : threads) t.join();
  return done;
}

}  // namespace phoenix::apply
