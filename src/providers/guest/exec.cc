// A guest reached only by running programs in it (`pct exec` on the node, locally or over SSH;
// lxc-attach in a lab): its files are read, written and removed by small fixed sh scripts run
// in the guest, each path, owner and mode passed as an argument of its own, so no
// configuration text ever becomes shell text. One program run per operation: through pct over
// SSH, each run is a round trip.

#include <cstdio>

#include "providers/guest/channel.h"

namespace phoenix::guest {
namespace {

// Exit status of the read script when the file does not exist (sysexits' EX_NOINPUT).
constexpr int kMissing = 66;

// $1 path: the content, or exit 66 when there is none.
constexpr const char* kReadScript = "[ -e \"$1\" ] || exit 66; exec cat -- \"$1\"";

// $1 path, $2 owner:group, $3 octal mode; the content on stdin. Written beside the file with
// only its owner able to read it, given its owner and mode, then renamed over it: readers see
// the old file or the new one, and a key is never readable by others, not even while it is
// written. Whatever fails, the temporary file goes.
constexpr const char* kWriteScript =
    "set -e; t=\"$1.phoenix-tmp\"; trap 'rm -f -- \"$t\"' EXIT; "
    "mkdir -p -- \"$(dirname -- \"$1\")\"; "
    "(umask 077 && cat > \"$t\"); chown -- \"$2\" \"$t\"; chmod -- \"$3\" \"$t\"; "
    "mv -f -- \"$t\" \"$1\"";

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

class ExecGuest final : public GuestChannel {
 public:
  ExecGuest(base::Runner run, std::string description)
      : run_(std::move(run)), description_(std::move(description)) {}

  base::Result<std::string> read_file(const std::string& path) override {
    auto r = PHX_TRY(reach(run_({"sh", "-c", kReadScript, "sh", path}, {})));
    if (r.exit_code == kMissing && r.out.empty()) {
      return base::fail(base::ErrorKind::kNotFound, path + " does not exist in " + description_);
    }
    if (!r.ok()) return std::unexpected(failure("reading " + path, r));
    return std::move(r.out);
  }

  base::Result<void> write_file(const std::string& path, std::string_view content,
                                const FileSpec& spec) override {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", spec.mode & 07777);
    auto r = PHX_TRY(reach(run_(
        {"sh", "-c", kWriteScript, "sh", path, spec.owner + ":" + spec.group, mode}, content)));
    if (!r.ok()) return std::unexpected(failure("writing " + path, r));
    return {};
  }

  base::Result<void> remove_file(const std::string& path) override {
    auto r = PHX_TRY(reach(run_({"rm", "-f", "--", path}, {})));
    if (!r.ok()) return std::unexpected(failure("removing " + path, r));
    return {};
  }

  base::Result<base::ProcessResult> run(const std::vector<std::string>& argv,
                                        std::string_view input) override {
    return reach(run_(argv, input));
  }

  std::string describe() const override { return description_; }

 private:
  // A runner that could not run the command at all (no `pct` here, ssh refused): never a
  // missing file, whatever the runner said; a program that is not there is a setting to fix.
  static base::Result<base::ProcessResult> reach(base::Result<base::ProcessResult> r) {
    if (r || r.error().kind() != base::ErrorKind::kNotFound) return r;
    return base::fail(base::ErrorKind::kInvalidInput, r.error().message());
  }

  base::Error failure(const std::string& what, const base::ProcessResult& r) const {
    return base::Error(base::ErrorKind::kInternal, what + " in " + description_ + " failed (exit " +
                                                       std::to_string(r.exit_code) +
                                                       "): " + trimmed(r.err));
  }

  base::Runner run_;
  std::string description_;
};

}  // namespace

std::unique_ptr<GuestChannel> exec_guest(base::Runner run, std::string description) {
  return std::make_unique<ExecGuest>(std::move(run), std::move(description));
}

std::unique_ptr<GuestChannel> pct_guest(base::Runner node, std::uint32_t vmid,
                                        std::string node_description) {
  std::string id = std::to_string(vmid);
  base::Runner pct = [run = base::prefixed_runner(std::move(node), {"pct", "exec", id, "--"})](
                         const std::vector<std::string>& argv,
                         std::string_view input) -> base::Result<base::ProcessResult> {
    auto r = run(argv, input);
    if (!r && r.error().kind() == base::ErrorKind::kNotFound) {
      return base::fail(base::ErrorKind::kInvalidInput,
                        r.error().message() +
                            " (Phoenix reaches LXCs with pct on the Proxmox node: run it on the "
                            "node, or set proxmox_api.host_ssh)");
    }
    return r;
  };
  return exec_guest(std::move(pct), "LXC " + id + " through pct (" + node_description + ")");
}

}  // namespace phoenix::guest
