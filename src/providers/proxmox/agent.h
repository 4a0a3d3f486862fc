#pragma once

// Programs run inside a VM through its QEMU guest agent, over the Proxmox API: what reaches a VM
// the way `pct exec` reaches an LXC. POST .../agent/exec starts the program (an argument vector,
// with its standard input as input-data), and .../agent/exec-status is polled until it exits.

#include <chrono>
#include <cstdint>
#include <string>

#include "base/process.h"
#include "providers/proxmox/api.h"

namespace phoenix::proxmox {

// The Proxmox API caps input-data at 64 KiB.
inline constexpr std::size_t kAgentInputLimit = 65536;

// A runner for VM `vmid` on `node`. The program's exit code, output and errors come back as a
// result; the run fails when the agent cannot start it (the VM is down, its agent not running:
// transient), when the input is larger than the API takes, or when it does not exit within
// `timeout`. `pve` must outlive the runner. A `repeatable` runner is for programs that may run
// twice (reads, and Phoenix's own idempotent file scripts): its exec request is sent again after
// any server failure or lost answer, where an ordinary one is only after those that say the
// program was not started.
base::Runner agent_runner(Pve& pve, std::string node, std::uint32_t vmid,
                          std::chrono::milliseconds timeout = std::chrono::minutes(5),
                          std::chrono::milliseconds poll = std::chrono::milliseconds(200),
                          bool repeatable = false);

}  // namespace phoenix::proxmox
