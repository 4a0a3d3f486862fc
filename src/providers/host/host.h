#pragma once

// The Proxmox node's own side, for what its API cannot do (raw lxc.* keys in
// /etc/pve/lxc/<vmid>.conf). Either Phoenix runs on the node (local), or it reaches the node over
// SSH; a lab points the local channel at a directory that stands for the node's root.

#include <memory>
#include <string>
#include <string_view>

#include "base/error.h"

namespace phoenix::host {

class HostChannel {
 public:
  virtual ~HostChannel() = default;
  // The file's content; kNotFound when it does not exist.
  virtual base::Result<std::string> read_file(const std::string& path) = 0;
  // Replaces the file atomically (a temporary file beside it, then a rename).
  virtual base::Result<void> write_file(const std::string& path, std::string_view content) = 0;
  virtual std::string describe() const = 0;  // "local" or "ssh root@10.0.0.13"
};

// Paths are taken below `root` ("/" on the node itself).
std::unique_ptr<HostChannel> local_host(std::string root);
// `target` is what ssh takes ("root@10.0.0.13"); it runs in batch mode, with the host key checked.
std::unique_ptr<HostChannel> ssh_host(std::string target);

}  // namespace phoenix::host
