#pragma once

// Files and commands inside a guest: what delivery (certificates, DNS records, the Traefik and
// Nginx configuration) and the guest features need. Production reaches an LXC through the node
// (`pct push` / `pct exec`) and a VM through its guest agent; tests and the lab use the local
// channel, whose files live below a directory that stands for the guest's root and whose
// commands run on this machine. Every command is an argument vector, never shell text.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/hash.h"
#include "base/process.h"

namespace phoenix::guest {

// Where Phoenix remembers, in a guest, a command it owes after a change (a restart, a reload):
// one file per change, written before the change and removed once the command ran, so that a
// run that fails in between leaves the command to the next run.
inline constexpr const char* kOwedDir = "/var/lib/phoenix/owed";

// The marker of what is owed (a changed path, or "reload after /etc/x.crt"): kOwedDir and the
// first 16 hex digits of its SHA-256.
inline std::string owed_marker(const std::string& what) {
  return std::string(kOwedDir) + "/" + base::sha256_hex(what).substr(0, 16);
}

// Who owns a delivered file, and its mode (0600 for keys).
struct FileSpec {
  std::string owner = "root";
  std::string group = "root";
  unsigned mode = 0644;
};

class GuestChannel {
 public:
  virtual ~GuestChannel() = default;
  // The file's content; kNotFound when it does not exist.
  virtual base::Result<std::string> read_file(const std::string& path) = 0;
  // Replaces the file atomically (written beside it, then renamed), with its owner and mode;
  // missing parent directories are created.
  virtual base::Result<void> write_file(const std::string& path, std::string_view content,
                                        const FileSpec& spec) = 0;
  // Removes the file; a missing file is not an error.
  virtual base::Result<void> remove_file(const std::string& path) = 0;
  // Runs a program in the guest; fails only when it cannot be run (its exit code is in the
  // result).
  virtual base::Result<base::ProcessResult> run(const std::vector<std::string>& argv,
                                                std::string_view input = {}) = 0;
  virtual std::string describe() const = 0;  // "LXC 101 through pct", "local /tmp/lab/101"
  // Makes `path` a symbolic link to `target` unless it already is one; true when it was (or,
  // with `check_only`, would be) made. By default a fixed sh script run in the guest, the paths
  // as its arguments.
  virtual base::Result<bool> link(const std::string& path, const std::string& target,
                                  bool check_only = false);
  // `run`, for a command that may run twice (one that only reads, or the channel's own file
  // scripts): where the channel cannot tell whether a command ran (a guest agent's exec whose
  // answer was lost or was a 500), it sends such a command again.
  virtual base::Result<base::ProcessResult> run_repeatable(const std::vector<std::string>& argv,
                                                           std::string_view input = {}) {
    return run(argv, input);
  }
};

// Files below `root` (a path in the guest, "/etc/x", is `root`/etc/x); commands run here as
// given. Owners are set when running as root, and must then exist.
std::unique_ptr<GuestChannel> local_guest(std::string root);

// A guest reached by running programs in it through `run` (files too: read, written and
// removed by fixed sh scripts in the guest, paths as arguments). `description` names it in
// messages. With `max_input` (bytes, 0: no limit) no program is given more standard input than
// that: a larger file is written in base64 pieces, each at its place in its temporary file,
// then renamed over it as a small one is (a QEMU guest agent takes 64 KiB at a time). `again`,
// when given, runs those fixed scripts instead of `run`: a runner that may send a command again
// when it cannot tell whether it ran (proxmox::agent_runner's repeatable one).
std::unique_ptr<GuestChannel> exec_guest(base::Runner run, std::string description,
                                         std::size_t max_input = 0, base::Runner again = {});

// LXC `vmid` through `pct exec` on the node that `node` runs programs on (locally, or
// base::ssh_runner for a remote node).
std::unique_ptr<GuestChannel> pct_guest(base::Runner node, std::uint32_t vmid,
                                        std::string node_description);

}  // namespace phoenix::guest
