#pragma once

// Running a program with an argument vector: never through a shell.

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace phoenix::base {

struct ProcessResult {
  int exit_code = -1;  // -1: killed by a signal or the deadline
  std::string out;
  std::string err;
  bool ok() const { return exit_code == 0; }
};

// Runs argv[0] (looked up in PATH) with `input` on its standard input and both outputs captured.
// Fails only when the program cannot be started, or outlives `timeout` (it is then killed).
Result<ProcessResult> run_process(const std::vector<std::string>& argv,
                                  const std::string& input = {},
                                  std::chrono::milliseconds timeout = std::chrono::minutes(5));

// Runs a program somewhere: on this machine, on another over SSH, or inside a guest through the
// node (`pct exec`). Fails only when the program cannot be run there; its exit code is in the
// result.
using Runner = std::function<Result<ProcessResult>(const std::vector<std::string>& argv,
                                                   std::string_view input)>;

// Programs run here, each with `timeout`.
Runner local_runner(std::chrono::milliseconds timeout = std::chrono::minutes(5));

// Programs run on `target` ("root@10.0.0.13") through ssh in batch mode with the host key checked.
// ssh hands the remote side one command line for the remote user's shell, so each argument is
// quoted as one word: the argument vector arrives as it was given. ssh's own failures (exit 255:
// no connection, refused key) are transient errors, not results.
Runner ssh_runner(std::string target, std::chrono::milliseconds timeout = std::chrono::minutes(5));

// `argv` run through `via` behind `prefix`: {"pct", "exec", "101", "--"} runs it inside LXC 101.
Runner prefixed_runner(Runner via, std::vector<std::string> prefix);

// `text` as one word for a POSIX shell: single-quoted.
std::string shell_quote(std::string_view text);

}  // namespace phoenix::base
