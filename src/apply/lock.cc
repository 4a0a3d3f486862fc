#include "apply/lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <utility>

#include "apply/journal.h"

namespace phoenix::apply {
namespace {

std::optional<LockHolder> read_holder(int fd) {
  std::string text;
  char buf[512];
  ssize_t n;
  if (::lseek(fd, 0, SEEK_SET) < 0) return std::nullopt;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("pid")) return std::nullopt;
  LockHolder h;
  h.pid = j.value("pid", std::int64_t{0});
  h.host = j.value("host", "");
  h.since = j.value("since", std::int64_t{0});
  h.command = j.value("command", "");
  return h;
}

}  // namespace

std::string format_time(std::int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

EstateLock::EstateLock(EstateLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      path_(std::move(other.path_)),
      taken_over_(std::move(other.taken_over_)) {}

EstateLock::~EstateLock() {
  if (fd_ < 0) return;
  // Nobody holds it any more: the file keeps no stale holder.
  if (::ftruncate(fd_, 0) != 0) {
    // The lock itself goes with the descriptor; a stale text is harmless.
  }
  ::flock(fd_, LOCK_UN);
  ::close(fd_);
}

base::Result<EstateLock> acquire_lock(const std::string& path, const std::string& command) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return base::fail(base::ErrorKind::kPermission,
                      "cannot open the lock " + path + ": " + std::strerror(errno) +
                          " (is the state directory writable? --state-dir chooses another)");
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    auto h = read_holder(fd);
    ::close(fd);
    if (err != EWOULDBLOCK) {
      return base::fail(base::ErrorKind::kInternal,
                        "cannot lock " + path + ": " + std::strerror(err));
    }
    std::string who = h ? "pid " + std::to_string(h->pid) + " on " + h->host + " since " +
                              format_time(h->since) +
                              (h->command.empty() ? "" : " (phoenix " + h->command + ")")
                        : "another process";
    return base::fail(base::ErrorKind::kConflict,
                      "another converge of this estate is running: the lock " + path +
                          " is held by " + who + "; wait for it to finish");
  }
  EstateLock lock(fd, path);
  lock.taken_over_ = read_holder(fd);
  nlohmann::json me = {
      {"pid", ::getpid()}, {"host", host_name()}, {"since", now_seconds()}, {"command", command}};
  std::string text = me.dump() + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, text.data(), text.size(), 0) < 0) {
    return base::fail(base::ErrorKind::kPermission,
                      "cannot write the lock " + path + ": " + std::strerror(errno));
  }
  return lock;
}

}  // namespace phoenix::apply
