#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "faults.h"

namespace phoenix::pvesim {

// Per-guest config locks, as PVE::AbstractConfig::lock_config takes them: whoever holds the lock
// of a vmid may change that guest; others wait up to a deadline and then fail.
class LockTable {
 public:
  using Clock = std::chrono::steady_clock;

  bool try_acquire(int vmid, std::chrono::milliseconds wait);
  void release(int vmid);
  bool locked(int vmid) const;
  // Takes the lock of `vmid` for `hold` on behalf of nobody (another client's task, as far as
  // callers can tell); it frees itself when the time is up. False when the lock is held already.
  bool hold_for(int vmid, std::chrono::milliseconds hold);
  // Ends such a hold early (nothing when the lock is a real holder's or free).
  void drop_hold(int vmid);

 private:
  // Drops the entry of `vmid` when it is a hold whose time is up.
  void expire(int vmid, Clock::time_point now);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  // vmid -> until when a phantom holds it; nullopt for a holder that calls release().
  std::map<int, std::optional<Clock::time_point>> held_;
};

// The message Proxmox dies with when the config lock of a guest cannot be had in time.
std::string lock_timeout_message(const std::string& type, int vmid);

struct TaskInfo {
  std::string upid;
  std::string node;
  std::string type;  // "vzcreate", "vzstart", ...
  std::string id;    // usually the vmid
  std::string user;  // "user@realm!tokenid"
  unsigned pid = 0;
  unsigned pstart = 0;
  long long starttime = 0;
  bool running = true;
  std::string exitstatus;  // "OK" or the error, once stopped
  std::vector<std::string> log;

  nlohmann::json status_json() const;
};

// Runs each mutating operation as a Proxmox-style worker task: it is given a UPID at once, runs
// for the configured duration on its own thread, then applies its effect and stops with
// exitstatus "OK" or an error. The guest lock passed in is held until the task stops.
class TaskRunner {
 public:
  TaskRunner(std::chrono::milliseconds duration, Faults& faults, LockTable& locks)
      : duration_(duration), faults_(faults), locks_(locks) {}
  ~TaskRunner();
  TaskRunner(const TaskRunner&) = delete;
  TaskRunner& operator=(const TaskRunner&) = delete;

  // `work` runs at the end of the task; its error becomes the exitstatus. `on_failure` runs when
  // the task fails (injected or real), e.g. to remove a half-created guest. `locked_vmid`, when
  // set, is a lock the caller already holds; it is released when the task stops.
  std::string start(const std::string& node, const std::string& type, const std::string& id,
                    const std::string& user, std::optional<int> locked_vmid,
                    std::function<base::Result<void>()> work,
                    std::function<void()> on_failure = {});

  std::optional<TaskInfo> get(const std::string& upid) const;
  std::size_t started() const;
  std::size_t failed() const;
  std::size_t running() const;

 private:
  void finish(const std::string& upid, const std::string& exitstatus);

  std::chrono::milliseconds duration_;
  Faults& faults_;
  LockTable& locks_;
  mutable std::mutex mu_;
  std::map<std::string, TaskInfo> tasks_;
  std::vector<std::thread> threads_;
  unsigned next_pid_ = 0x1000;
  std::size_t failed_ = 0;
};

}  // namespace phoenix::pvesim
