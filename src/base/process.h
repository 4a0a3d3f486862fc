#pragma once

// Running a program with an argument vector: never through a shell.

#include <chrono>
#include <string>
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

}  // namespace phoenix::base
