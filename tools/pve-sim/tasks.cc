#include "tasks.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace phoenix::pvesim {

bool LockTable::try_acquire(int vmid, std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  auto deadline = Clock::now() + wait;
  for (auto now = Clock::now();; now = Clock::now()) {
    expire(vmid, now);
    auto it = held_.find(vmid);
    if (it == held_.end()) break;
    if (now >= deadline) return false;
    auto until = it->second ? std::min(*it->second, deadline) : deadline;
    cv_.wait_until(lock, until);
  }
  held_[vmid] = std::nullopt;
  return true;
}

void LockTable::release(int vmid) {
  {
    std::lock_guard lock(mu_);
    held_.erase(vmid);
  }
  cv_.notify_all();
}

bool LockTable::locked(int vmid) const {
  std::lock_guard lock(mu_);
  auto it = held_.find(vmid);
  return it != held_.end() && (!it->second || *it->second > Clock::now());
}

bool LockTable::hold_for(int vmid, std::chrono::milliseconds hold) {
  std::lock_guard lock(mu_);
  auto now = Clock::now();
  expire(vmid, now);
  if (held_.contains(vmid)) return false;
  held_[vmid] = now + hold;
  return true;
}

void LockTable::drop_hold(int vmid) {
  {
    std::lock_guard lock(mu_);
    auto it = held_.find(vmid);
    if (it == held_.end() || !it->second) return;
    held_.erase(it);
  }
  cv_.notify_all();
}

void LockTable::expire(int vmid, Clock::time_point now) {
  auto it = held_.find(vmid);
  if (it != held_.end() && it->second && *it->second <= now) held_.erase(it);
}

// PVE::LXC::Config and PVE::QemuConfig name their lock files differently; PVE::Tools::lock_file
// dies with this text when flock does not succeed in time.
std::string lock_timeout_message(const std::string& type, int vmid) {
  std::string file = type == "qemu" ? "/var/lock/qemu-server/lock-" + std::to_string(vmid) + ".conf"
                                    : "/run/lock/lxc/pve-config-" + std::to_string(vmid) + ".lock";
  return "can't lock file '" + file + "' - got timeout";
}

nlohmann::json TaskInfo::status_json() const {
  nlohmann::json j{
      {"upid", upid},     {"node", node},           {"pid", pid},
      {"pstart", pstart}, {"starttime", starttime}, {"type", type},
      {"id", id},         {"user", user},           {"status", running ? "running" : "stopped"}};
  if (auto bang = user.find('!'); bang != std::string::npos) {
    j["user"] = user.substr(0, bang);
    j["tokenid"] = user.substr(bang + 1);
  }
  if (!running) j["exitstatus"] = exitstatus;
  return j;
}

TaskRunner::~TaskRunner() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
}

std::string TaskRunner::start(const std::string& node, const std::string& type,
                              const std::string& id, const std::string& user,
                              std::optional<int> locked_vmid,
                              std::function<base::Result<void>()> work,
                              std::function<void()> on_failure) {
  TaskInfo t;
  t.node = node;
  t.type = type;
  t.id = id;
  t.user = user;
  t.starttime = std::time(nullptr);
  std::lock_guard lock(mu_);
  t.pid = next_pid_++;
  t.pstart = static_cast<unsigned>(t.starttime % 100000000) * 100;  // clock ticks since boot
  char head[64];
  std::snprintf(head, sizeof head, "%08X:%08X:%08X", t.pid, t.pstart,
                static_cast<unsigned>(t.starttime));
  t.upid = "UPID:" + node + ":" + head + ":" + type + ":" + id + ":" + user + ":";
  t.log.push_back("task started by " + user);
  std::string upid = t.upid;
  tasks_[upid] = std::move(t);
  bool fail = faults_.fail_task();
  threads_.emplace_back(
      [this, upid, locked_vmid, fail, work = std::move(work), on_failure = std::move(on_failure)] {
        std::this_thread::sleep_for(duration_);
        std::string exitstatus = "OK";
        if (fail) {
          exitstatus = "simulated task failure";
        } else if (auto r = work(); !r) {
          exitstatus = r.error().message();
        }
        if (exitstatus != "OK" && on_failure) on_failure();
        if (locked_vmid) locks_.release(*locked_vmid);
        finish(upid, exitstatus);
      });
  return upid;
}

void TaskRunner::finish(const std::string& upid, const std::string& exitstatus) {
  std::lock_guard lock(mu_);
  auto& t = tasks_[upid];
  if (exitstatus == "OK") {
    t.log.push_back("TASK OK");
  } else {
    ++failed_;
    t.log.push_back("TASK ERROR: " + exitstatus);
  }
  t.exitstatus = exitstatus;
  t.running = false;
}

std::optional<TaskInfo> TaskRunner::get(const std::string& upid) const {
  std::lock_guard lock(mu_);
  auto it = tasks_.find(upid);
  if (it == tasks_.end()) return std::nullopt;
  return it->second;
}

std::size_t TaskRunner::started() const {
  std::lock_guard lock(mu_);
  return tasks_.size();
}

std::size_t TaskRunner::failed() const {
  std::lock_guard lock(mu_);
  return failed_;
}

std::size_t TaskRunner::running() const {
  std::lock_guard lock(mu_);
  std::size_t n = 0;
  for (const auto& [k, t] : tasks_) n += t.running ? 1 : 0;
  return n;
}

}  // namespace phoenix::pvesim
