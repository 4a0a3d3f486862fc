#include "base/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace phoenix::base {
namespace {

struct Pipe {
  int fd[2] = {-1, -1};
  ~Pipe() {
    for (int f : fd) {
      if (f >= 0) ::close(f);
    }
  }
  void close_end(int i) {
    if (fd[i] >= 0) ::close(fd[i]);
    fd[i] = -1;
  }
};

}  // namespace

Result<ProcessResult> run_process(const std::vector<std::string>& argv, const std::string& input,
                                  std::chrono::milliseconds timeout) {
  if (argv.empty()) return fail(ErrorKind::kInternal, "run_process: empty argument vector");
  // A child that closes its input early must not kill us with SIGPIPE.
  static const bool ignore_sigpipe = [] { return ::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();
  (void)ignore_sigpipe;
  Pipe in, out, err;
  if (::pipe2(in.fd, O_CLOEXEC) != 0 || ::pipe2(out.fd, O_CLOEXEC) != 0 ||
      ::pipe2(err.fd, O_CLOEXEC) != 0) {
    return fail(ErrorKind::kInternal, std::string("pipe: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in.fd[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out.fd[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err.fd[1], 2);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return fail(ErrorKind::kNotFound, "cannot run " + argv[0] + ": " + std::strerror(rc));
  }
  in.close_end(0);
  out.close_end(1);
  err.close_end(1);

  ProcessResult result;
  std::size_t written = 0;
  if (input.empty()) in.close_end(1);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false;
  while (out.fd[0] >= 0 || err.fd[0] >= 0 || in.fd[1] >= 0) {
    std::vector<pollfd> fds;
    if (out.fd[0] >= 0) fds.push_back({out.fd[0], POLLIN, 0});
    if (err.fd[0] >= 0) fds.push_back({err.fd[0], POLLIN, 0});
    if (in.fd[1] >= 0) fds.push_back({in.fd[1], POLLOUT, 0});
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    int n = ::poll(fds.data(), fds.size(), static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    for (const pollfd& p : fds) {
      if (!p.revents) continue;
      if (p.fd == in.fd[1]) {
        ssize_t w = ::write(p.fd, input.data() + written, input.size() - written);
        if (w > 0) written += static_cast<std::size_t>(w);
        if (w < 0 || written == input.size()) in.close_end(1);
        continue;
      }
      char buf[8192];
      ssize_t r = ::read(p.fd, buf, sizeof buf);
      Pipe& which = p.fd == out.fd[0] ? out : err;
      if (r <= 0) {
        which.close_end(0);
      } else {
        (&which == &out ? result.out : result.err).append(buf, static_cast<std::size_t>(r));
      }
    }
  }
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return fail(ErrorKind::kTimeout,
                argv[0] + " did not finish within " + std::to_string(timeout.count()) + " ms");
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

Runner local_runner(std::chrono::milliseconds timeout) {
  return [timeout](const std::vector<std::string>& argv, std::string_view input) {
    return run_process(argv, std::string(input), timeout);
  };
}

Runner ssh_runner(std::string target, std::chrono::milliseconds timeout) {
  return [target = std::move(target), timeout](const std::vector<std::string>& argv,
                                               std::string_view input) -> Result<ProcessResult> {
    std::string remote;
    for (const std::string& a : argv) {
      if (!remote.empty()) remote += ' ';
      remote += shell_quote(a);
    }
    auto r = run_process(
        {"ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "--", target, remote},
        std::string(input), timeout);
    if (r && r->exit_code == 255) {
      std::string err = r->err;
      while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
      return fail(ErrorKind::kTransient, "ssh " + target + " failed: " + err);
    }
    return r;
  };
}

Runner prefixed_runner(Runner via, std::vector<std::string> prefix) {
  return [via = std::move(via), prefix = std::move(prefix)](const std::vector<std::string>& argv,
                                                            std::string_view input) {
    std::vector<std::string> full = prefix;
    full.insert(full.end(), argv.begin(), argv.end());
    return via(full, input);
  };
}

std::string shell_quote(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

}  // namespace phoenix::base
