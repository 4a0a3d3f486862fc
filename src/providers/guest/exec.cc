// A guest reached only by running programs in it (`pct exec` on the node, locally or over SSH;
// lxc-attach in a lab): its files are read, written and removed by small fixed sh scripts run
// in the guest, each path, owner and mode passed as an argument of its own, so no
// configuration text ever becomes shell text. One program run per operation: through pct over
// SSH, each run is a round trip.

#include <zlib.h>

#include <algorithm>
#include <cstdio>

#include "base/tally.h"
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

// The same in pieces: begin ($1 path) makes the directory and an empty temporary file that only
// root reads; put ($1 path, $2 piece size, $3 piece number) writes a base64 piece from stdin at
// its place in it, so that sending a piece again writes the same bytes again; finish ($1 path,
// $2 owner:group, $3 mode) gives it its owner and mode and renames it over the file. Whatever
// fails, the temporary file goes (finish's trap, or the caller's abandon).
constexpr const char* kBeginScript =
    "set -e; mkdir -p -- \"$(dirname -- \"$1\")\"; (umask 077 && : > \"$1.phoenix-tmp\")";
constexpr const char* kPutScript =
    "set -e; base64 -d | dd of=\"$1.phoenix-tmp\" bs=\"$2\" seek=\"$3\" conv=notrunc "
    "iflag=fullblock status=none";
constexpr const char* kFinishScript =
    "set -e; t=\"$1.phoenix-tmp\"; trap 'rm -f -- \"$t\"' EXIT; chown -- \"$2\" \"$t\"; "
    "chmod -- \"$3\" \"$t\"; mv -f -- \"$t\" \"$1\"";

// finish for pieces that are the file gzipped: the temporary file is unpacked (only root
// reads it, as before) into the file's own temporary, then as finish.
constexpr const char* kFinishGzipScript =
    "set -e; t=\"$1.phoenix-tmp\"; trap 'rm -f -- \"$t\" \"$t.gz\"' EXIT; "
    "mv -f -- \"$t\" \"$t.gz\"; (umask 077 && gzip -dc -- \"$t.gz\" > \"$t\"); "
    "chown -- \"$2\" \"$t\"; chmod -- \"$3\" \"$t\"; mv -f -- \"$t\" \"$1\"";

// Files from this size on are gzipped before they are sent in pieces, when that saves a quarter
// of the pieces or more (a 54 MB Go binary gzips to 26 MB: 520 agent execs instead of 1,100).
constexpr std::size_t kGzipFrom = 1 << 20;

// `in` in gzip's format (zlib's deflate, level 6: what `gzip` does by default).
std::string gzip(std::string_view in) {
  z_stream z{};
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return {};
  std::string out(deflateBound(&z, in.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return rc == Z_STREAM_END ? out : std::string();
}

std::string base64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                 (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

class ExecGuest final : public GuestChannel {
 public:
  ExecGuest(base::Runner run, std::string description, std::size_t max_input, base::Runner again)
      : run_(std::move(run)),
        again_(again ? std::move(again) : run_),
        description_(std::move(description)),
        max_input_(max_input) {}

  base::Result<std::string> read_file(const std::string& path) override {
    auto r = PHX_TRY(reach(again_({"sh", "-c", kReadScript, "sh", path}, {})));
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
    if (max_input_ > 0 && content.size() > max_input_) {
      return write_in_pieces(path, content, spec.owner + ":" + spec.group, mode);
    }
    auto r = PHX_TRY(reach(again_(
        {"sh", "-c", kWriteScript, "sh", path, spec.owner + ":" + spec.group, mode}, content)));
    if (!r.ok()) return std::unexpected(failure("writing " + path, r));
    return {};
  }

  base::Result<void> remove_file(const std::string& path) override {
    auto r = PHX_TRY(reach(again_({"rm", "-f", "--", path}, {})));
    if (!r.ok()) return std::unexpected(failure("removing " + path, r));
    return {};
  }

  base::Result<base::ProcessResult> run(const std::vector<std::string>& argv,
                                        std::string_view input) override {
    return reach(run_(argv, input));
  }

  std::string describe() const override { return description_; }

  base::Result<base::ProcessResult> run_repeatable(const std::vector<std::string>& argv,
                                                   std::string_view input) override {
    return reach(again_(argv, input));
  }

 private:
  base::Result<void> write_in_pieces(const std::string& path, std::string_view content,
                                     const std::string& owner, const std::string& mode) {
    auto step = [&](const base::Runner& runner, std::vector<std::string> argv,
                    std::string_view input) -> base::Result<void> {
      auto r = reach(runner(argv, input));
      if (r && r->ok()) return {};
      run_({"rm", "-f", "--", path + ".phoenix-tmp"}, {});  // abandon
      if (!r) return std::unexpected(r.error());
      return std::unexpected(failure("writing " + path, *r));
    };
    std::string packed;
    if (content.size() >= kGzipFrom) {
      packed = gzip(content);
      if (packed.empty() || packed.size() > content.size() / 4 * 3) packed.clear();
    }
    std::string_view sent = packed.empty() ? content : std::string_view(packed);
    PHX_TRY(step(again_, {"sh", "-c", kBeginScript, "sh", path}, {}));
    // base64 makes 4 bytes of 3, and each piece a whole number of groups.
    const std::size_t piece = std::max<std::size_t>(3, max_input_ / 4 * 3 / 3 * 3);
    for (std::size_t at = 0, n = 0; at < sent.size(); at += piece, ++n) {
      PHX_TRY(step(again_,
                   {"sh", "-c", kPutScript, "sh", path, std::to_string(piece), std::to_string(n)},
                   base64(sent.substr(at, piece))));
    }
    // Not repeatable: once it has renamed the file, it would find no temporary file to rename.
    return step(
        run_,
        {"sh", "-c", packed.empty() ? kFinishScript : kFinishGzipScript, "sh", path, owner, mode},
        {});
  }

  // A runner that could not run the command at all (no `pct` here, ssh refused): never a
  // missing file, whatever the runner said; a program that is not there is a setting to fix.
  static base::Result<base::ProcessResult> reach(base::Result<base::ProcessResult> r) {
    base::tally_request("guest", false);
    if (r || r.error().kind() != base::ErrorKind::kNotFound) return r;
    return base::fail(base::ErrorKind::kInvalidInput, r.error().message());
  }

  base::Error failure(const std::string& what, const base::ProcessResult& r) const {
    return base::Error(base::ErrorKind::kInternal, what + " in " + description_ + " failed (exit " +
                                                       std::to_string(r.exit_code) +
                                                       "): " + trimmed(r.err));
  }

  base::Runner run_;
  base::Runner again_;  // for the idempotent scripts: may send a command again
  std::string description_;
  std::size_t max_input_;
};

// $1 path, $2 target, $3 "check" or "make": exit 3 when $1 already links to $2; else 0 once it
// does (or, checking, would be made).
constexpr const char* kLinkScript =
    "[ -L \"$1\" ] && [ \"$(readlink -- \"$1\")\" = \"$2\" ] && exit 3; "
    "[ \"$3\" = check ] && exit 0; "
    "mkdir -p -- \"$(dirname -- \"$1\")\" && ln -sfn -- \"$2\" \"$1\"";

}  // namespace

base::Result<bool> GuestChannel::link(const std::string& path, const std::string& target,
                                      bool check_only) {
  auto r = PHX_TRY(
      run_repeatable({"sh", "-c", kLinkScript, "sh", path, target, check_only ? "check" : "make"}));
  if (r.exit_code == 3) return false;
  if (r.ok()) return true;
  return base::fail(base::ErrorKind::kInternal,
                    "cannot link " + path + " to " + target + " in " + describe() + ": " + r.err);
}

std::unique_ptr<GuestChannel> exec_guest(base::Runner run, std::string description,
                                         std::size_t max_input, base::Runner again) {
  return std::make_unique<ExecGuest>(std::move(run), std::move(description), max_input,
                                     std::move(again));
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
