#include "providers/proxmox/agent.h"

#include <algorithm>
#include <thread>

namespace phoenix::proxmox {

base::Runner agent_runner(Pve& pve, std::string node, std::uint32_t vmid,
                          std::chrono::milliseconds timeout, std::chrono::milliseconds poll,
                          bool repeatable) {
  std::string at = "/nodes/" + node + "/qemu/" + std::to_string(vmid) + "/agent";
  return [&pve, at, vmid, timeout, poll, repeatable](
             const std::vector<std::string>& argv,
             std::string_view input) -> base::Result<base::ProcessResult> {
    const std::string what = "running " + (argv.empty() ? std::string("nothing") : argv[0]) +
                             " in VM " + std::to_string(vmid) + " through its guest agent";
    if (argv.empty()) return base::fail(base::ErrorKind::kInternal, what + ": no program");
    if (input.size() > kAgentInputLimit) {
      return base::fail(base::ErrorKind::kInvalidInput,
                        what + ": its input (" + std::to_string(input.size()) +
                            " bytes) is larger than the guest agent takes (64 KiB)");
    }
    Params params;
    for (const std::string& a : argv) params.emplace_back("command", a);
    if (!input.empty()) params.emplace_back("input-data", std::string(input));
    auto started = repeatable ? pve.call_repeatable(Method::kPost, at + "/exec", params)
                              : pve.call(Method::kPost, at + "/exec", params);
    if (!started) {
      const base::Error& e = started.error();
      // "QEMU guest agent is not running", "VM 1001 is not running": it may come up.
      bool down = e.message().find("is not running") != std::string::npos;
      return base::fail(down ? base::ErrorKind::kTransient : e.kind(), what + ": " + e.message());
    }
    if (!started->is_object() || !(*started)["pid"].is_number_integer()) {
      return base::fail(base::ErrorKind::kInternal, what + ": the agent answered no pid");
    }
    const std::string pid = std::to_string((*started)["pid"].get<long long>());
    auto deadline = std::chrono::steady_clock::now() + timeout;
    // Most programs are done at once: the first look soon, then less and less often.
    std::chrono::milliseconds wait = std::min(poll, std::chrono::milliseconds(5));
    while (true) {
      auto status = pve.get(at + "/exec-status", {{"pid", pid}});
      if (!status) {
        return base::fail(status.error().kind(), what + ": " + status.error().message());
      }
      const nlohmann::json& s = *status;
      auto flag = [&](const char* key) {
        auto it = s.find(key);
        if (it == s.end()) return false;
        return it->is_boolean() ? it->get<bool>() : it->is_number() && it->get<int>() != 0;
      };
      if (flag("exited")) {
        base::ProcessResult r;
        r.exit_code = s.contains("exitcode") && s["exitcode"].is_number_integer()
                          ? s["exitcode"].get<int>()
                          : -1;
        r.out = s.value("out-data", "");
        r.err = s.value("err-data", "");
        if (flag("out-truncated") || flag("err-truncated")) {
          return base::fail(base::ErrorKind::kInternal, what + ": the agent truncated its output");
        }
        return r;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return base::fail(base::ErrorKind::kTimeout, what + ": it did not exit within " +
                                                         std::to_string(timeout.count() / 1000) +
                                                         " s (agent pid " + pid + ")");
      }
      std::this_thread::sleep_for(wait);
      wait = std::min(poll, wait * 2);
    }
  };
}

}  // namespace phoenix::proxmox
