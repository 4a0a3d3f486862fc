#pragma once

// One converge at a time per estate: an exclusive lock on a file in the state directory
// (flock(2), released by the kernel when its holder exits, however it exits), whose content says
// who holds it: pid, host and since when. A second converge finds it held and reports its
// holder; a lock file left by a process that is gone is not held, and is taken over (the
// previous holder is reported).

#include <cstdint>
#include <optional>
#include <string>

#include "base/error.h"

namespace phoenix::apply {

struct LockHolder {
  std::int64_t pid = 0;
  std::string host;
  std::int64_t since = 0;  // Unix seconds
  std::string command;
};

class EstateLock {
 public:
  EstateLock(EstateLock&& other) noexcept;
  EstateLock& operator=(EstateLock&&) = delete;
  ~EstateLock();  // releases it (the file stays, with no holder)

  // What the file said before this process took it, when a holder left it without releasing
  // (killed): the lock was taken over.
  const std::optional<LockHolder>& taken_over() const { return taken_over_; }

 private:
  friend base::Result<EstateLock> acquire_lock(const std::string&, const std::string&);
  EstateLock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
  std::optional<LockHolder> taken_over_;
};

// Takes the lock at `path` for `command`. Fails with kConflict, naming the holder
// ("held by pid 4242 on node-1 since 2026-12-04 15:04:05 UTC (phoenix sync all)"), when another
// process holds it.
base::Result<EstateLock> acquire_lock(const std::string& path, const std::string& command);

// "2026-12-04 15:04:05 UTC".
std::string format_time(std::int64_t unix_seconds);

}  // namespace phoenix::apply
