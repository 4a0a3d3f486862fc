#pragma once

// A GuestChannel standing for a small Debian system, with state: files with owner and mode,
// symbolic links, installed and installable packages, systemd units (enabled, active) and the
// commands of the recipes. It answers the commands setup/ runs (dpkg-query, apt-get, stat,
// chown, chmod, readlink, ln, mkdir, rm, test, systemctl, sh -c for a path test or a directory's
// files) as Debian does, and records every command, so that a test sees what a run changed.
// Other programs succeed unless `fails` names them (or them and their first argument); their
// runs are recorded too.

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/strings.h"
#include "providers/guest/channel.h"

namespace phoenix::fakes {

class FakeSystem final : public guest::GuestChannel {
 public:
  struct File {
    std::string content;
    guest::FileSpec spec;
  };
  struct Unit {
    bool enabled = false;
    bool active = false;
    int starts = 0, restarts = 0, reloads = 0;
  };

  std::map<std::string, File> files;
  std::map<std::string, std::string> links;  // path -> target
  std::set<std::string> installed;
  std::set<std::string> available;    // what apt-get can install
  std::map<std::string, Unit> units;  // "nginx" (no .service)
  std::set<std::string> fails;        // programs ("nginx" or "systemctl restart") that exit 1
  std::vector<std::vector<std::string>> runs;  // every command, in order
  int daemon_reloads = 0;

  int runs_count(const std::string& program) const {
    int n = 0;
    for (const auto& argv : runs) n += !argv.empty() && argv[0] == program;
    return n;
  }

  // Runs that change something (everything but the reads setup/ makes to look).
  std::vector<std::string> changes() const {
    static const std::set<std::string> kReads = {"dpkg-query", "stat", "readlink", "test", "sh"};
    std::vector<std::string> out;
    for (const auto& argv : runs) {
      if (argv.empty() || kReads.contains(argv[0])) continue;
      if (argv[0] == "systemctl" && argv.size() > 1 &&
          (argv[1] == "is-enabled" || argv[1] == "is-active")) {
        continue;
      }
      out.push_back(base::join(argv, " "));
    }
    return out;
  }

  base::Result<std::string> read_file(const std::string& path) override {
    auto it = files.find(path);
    if (it == files.end()) return base::fail(base::ErrorKind::kNotFound, path + " does not exist");
    return it->second.content;
  }

  base::Result<void> write_file(const std::string& path, std::string_view content,
                                const guest::FileSpec& spec) override {
    runs.push_back({"<write>", path});
    files[path] = {std::string(content), spec};
    return {};
  }

  base::Result<void> remove_file(const std::string& path) override {
    runs.push_back({"<remove>", path});
    files.erase(path);
    return {};
  }

  base::Result<base::ProcessResult> run(const std::vector<std::string>& argv,
                                        std::string_view) override {
    runs.push_back(argv);
    base::ProcessResult r;
    r.exit_code = 0;
    const std::string& p = argv.at(0);
    auto exit = [&](int code, std::string out = {}) {
      r.exit_code = code;
      r.out = std::move(out);
      return r;
    };
    // Phoenix's own listing of a directory's files (not a recipe's program: `fails` is not asked).
    if (p == "sh" && argv.size() == 5 && argv[2].starts_with("for f in")) {
      std::string out;
      for (const auto& [path, file] : files) {
        if (path.starts_with(argv[4] + "/") &&
            path.find('/', argv[4].size() + 1) == std::string::npos) {
          out += file.content;
        }
      }
      return exit(0, out);
    }
    if (fails.contains(p) || (argv.size() > 1 && fails.contains(p + " " + argv[1]))) return exit(1);
    if (p == "dpkg-query") {
      std::string out;
      for (std::size_t i = 3; i < argv.size(); ++i) {
        if (installed.contains(argv[i])) out += argv[i] + " ii \n";
      }
      return exit(out.empty() ? 1 : 0, out);
    }
    if (p == "env" && argv.size() > 2 && argv[2] == "apt-get") {
      for (std::size_t i = 3; i < argv.size(); ++i) {
        if (argv[i].starts_with("-") || argv[i] == "install") continue;
        if (!available.contains(argv[i])) return exit(100);
        installed.insert(argv[i]);
      }
      return r;
    }
    if (p == "stat") {
      auto it = files.find(argv.back());
      if (it == files.end()) return exit(1);
      char mode[8];
      std::snprintf(mode, sizeof mode, "%o", it->second.spec.mode);
      return exit(0, it->second.spec.owner + ":" + it->second.spec.group + ":" + mode + "\n");
    }
    if (p == "chown") {
      auto parts = base::split(argv[2], ':');
      files.at(argv[3]).spec.owner = parts[0];
      files.at(argv[3]).spec.group = parts[1];
      return r;
    }
    if (p == "chmod") {
      files.at(argv[3]).spec.mode = static_cast<unsigned>(std::stoul(argv[2], nullptr, 8));
      return r;
    }
    if (p == "readlink") {
      auto it = links.find(argv.back());
      return it == links.end() ? exit(1) : exit(0, it->second + "\n");
    }
    if (p == "ln") {
      links[argv.back()] = argv[argv.size() - 2];
      return r;
    }
    if (p == "mkdir") return r;
    if (p == "rm") {
      auto dash = std::find(argv.begin(), argv.end(), "--");
      for (auto it = dash == argv.end() ? argv.end() - 1 : dash + 1; it != argv.end(); ++it) {
        files.erase(*it);
        links.erase(*it);
      }
      return r;
    }
    if (p == "test" && argv.size() == 3 && argv[1] == "-e") {
      return exit(exists(argv[2]) ? 0 : 1);
    }
    if (p == "sh" && argv.size() == 5) return exit(exists(argv[4]) ? 0 : 1);  // absent check
    if (p == "systemctl") {
      const std::string& verb = argv.at(1);
      if (verb == "daemon-reload") {
        ++daemon_reloads;
        return r;
      }
      Unit& u = units[argv.back()];
      if (verb == "is-enabled")
        return exit(u.enabled ? 0 : 1, u.enabled ? "enabled\n" : "disabled\n");
      if (verb == "is-active") return exit(u.active ? 0 : 3);
      if (verb == "enable") u.enabled = true;
      if (verb == "start") ++u.starts, u.active = true;
      if (verb == "restart") ++u.restarts, u.active = true;
      if (verb == "reload") ++u.reloads;
      return r;
    }
    return r;
  }

  std::string describe() const override { return "fake system"; }

 private:
  bool exists(const std::string& path) const {
    return files.contains(path) || links.contains(path);
  }
};

}  // namespace phoenix::fakes
