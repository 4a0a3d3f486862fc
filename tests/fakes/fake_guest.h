#pragma once

// A GuestChannel that keeps the guest's files in memory and records every command it is asked
// to run. A command's exit code comes from a script per program (argv[0]): answers are used in
// order, and 0 once the script is used up.

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "providers/guest/channel.h"

namespace phoenix::fakes {

class FakeGuest final : public guest::GuestChannel {
 public:
  struct Answer {
    int exit_code = 0;
    std::string err;
  };

  std::map<std::string, std::string> files;
  std::map<std::string, guest::FileSpec> specs;
  std::vector<std::vector<std::string>> runs;
  std::map<std::string, std::deque<Answer>> answers;  // by argv[0]
  int writes = 0;
  int removes = 0;
  int fail_write = 0;  // when > 0, that write (1 for the first) fails with kPermission

  // The number of runs of a command whose argv[0] is `program`.
  int runs_of(const std::string& program) const {
    int n = 0;
    for (const auto& argv : runs) n += !argv.empty() && argv[0] == program;
    return n;
  }

  base::Result<std::string> read_file(const std::string& path) override {
    auto it = files.find(path);
    if (it == files.end()) {
      return base::fail(base::ErrorKind::kNotFound, path + " does not exist");
    }
    return it->second;
  }

  base::Result<void> write_file(const std::string& path, std::string_view content,
                                const guest::FileSpec& spec) override {
    if (++writes == fail_write) {
      return base::fail(base::ErrorKind::kPermission, "cannot write " + path + ": read-only");
    }
    files[path] = std::string(content);
    specs[path] = spec;
    return {};
  }

  base::Result<void> remove_file(const std::string& path) override {
    ++removes;
    files.erase(path);
    return {};
  }

  base::Result<base::ProcessResult> run(const std::vector<std::string>& argv,
                                        std::string_view) override {
    runs.push_back(argv);
    base::ProcessResult r;
    r.exit_code = 0;
    auto it = answers.find(argv.empty() ? std::string() : argv[0]);
    if (it != answers.end() && !it->second.empty()) {
      r.exit_code = it->second.front().exit_code;
      r.err = it->second.front().err;
      it->second.pop_front();
    }
    return r;
  }

  std::string describe() const override { return "fake guest"; }
};

}  // namespace phoenix::fakes
