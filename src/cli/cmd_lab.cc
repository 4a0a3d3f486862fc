// `phoenix lab`: the lab is driven by tools/lab/phoenix_lab.py (LXC containers, a network
// namespace, pve-sim, dnsmasq); this command finds it and hands over, saying where this phoenix
// and its pve-sim are.

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "cli/commands.h"

namespace phoenix::cli {

namespace fs = std::filesystem;

int run_lab(const GlobalOptions& g, const std::vector<std::string>& args) {
  const char* env = std::getenv("PHOENIX_LAB_TOOL");
  std::string tool = env && *env ? env : PHOENIX_LAB_TOOL_DEFAULT;
  if (!fs::exists(tool)) {
    print_error(g, "the lab's driver " + tool +
                       " was not found (set PHOENIX_LAB_TOOL to tools/lab/phoenix_lab.py)");
    return kExitInvalid;
  }
  std::vector<std::string> argv{"/usr/bin/python3", tool};
  argv.insert(argv.end(), args.begin(), args.end());
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!args.empty() && args.front() == "up" && !ec) {
    argv.push_back("--phoenix");
    argv.push_back(self.string());
    fs::path sim = self.parent_path().parent_path() / "tools" / "pve-sim" / "pve-sim";
    if (fs::exists(sim)) {
      argv.push_back("--pve-sim");
      argv.push_back(sim.string());
    }
  }
  if (!args.empty() && args.front() == "status" && g.output == OutputFormat::kJson) {
    argv.push_back("--output");
    argv.push_back("json");
  }
  std::vector<char*> raw;
  for (std::string& a : argv) raw.push_back(a.data());
  raw.push_back(nullptr);
  ::execv(raw[0], raw.data());
  print_error(g, "cannot run " + argv[0] + ": " + std::strerror(errno));
  return kExitInvalid;
}

}  // namespace phoenix::cli
