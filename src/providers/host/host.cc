#include "providers/host/host.h"

#include <filesystem>

#include "base/fs.h"
#include "base/process.h"

namespace phoenix::host {
namespace {

namespace fs = std::filesystem;

class LocalHost final : public HostChannel {
 public:
  explicit LocalHost(std::string root) : root_(std::move(root)) {}

  base::Result<std::string> read_file(const std::string& path) override {
    fs::path p = at(path);
    std::error_code ec;
    if (!fs::exists(p, ec)) {
      return base::fail(base::ErrorKind::kNotFound, p.string() + " does not exist");
    }
    return base::read_file(p);
  }

  base::Result<void> write_file(const std::string& path, std::string_view content) override {
    return base::write_file_atomic(at(path), content);
  }

  std::string describe() const override {
    return root_ == "/" ? "local" : "local (root " + root_ + ")";
  }

 private:
  fs::path at(const std::string& path) const {
    return fs::path(root_) / fs::path(path).relative_path();
  }
  std::string root_;
};

// Over SSH, files are read and written by fixed commands on the node, the path always an argument
// of its own.
class SshHost final : public HostChannel {
 public:
  explicit SshHost(std::string target)
      : target_(std::move(target)), run_(base::ssh_runner(target_, std::chrono::seconds(60))) {}

  base::Result<std::string> read_file(const std::string& path) override {
    auto r =
        PHX_TRY(run_({"sh", "-c", "[ -e \"$1\" ] || exit 66; exec cat -- \"$1\"", "sh", path}, ""));
    if (r.exit_code == 66 && r.out.empty()) {
      return base::fail(base::ErrorKind::kNotFound, path + " does not exist on " + target_);
    }
    if (!r.ok()) return std::unexpected(failure("reading " + path, r));
    return r.out;
  }

  base::Result<void> write_file(const std::string& path, std::string_view content) override {
    auto r = PHX_TRY(run_(
        {"sh", "-c", "cat > \"$1.phoenix-tmp\" && mv -f -- \"$1.phoenix-tmp\" \"$1\"", "sh", path},
        content));
    if (!r.ok()) return std::unexpected(failure("writing " + path, r));
    return {};
  }

  std::string describe() const override { return "ssh " + target_; }

 private:
  base::Error failure(const std::string& what, const base::ProcessResult& r) const {
    std::string err = r.err;
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    return base::Error(base::ErrorKind::kInternal, what + " on " + target_ + " failed (exit " +
                                                       std::to_string(r.exit_code) + "): " + err);
  }
  std::string target_;
  base::Runner run_;
};

}  // namespace

std::unique_ptr<HostChannel> local_host(std::string root) {
  return std::make_unique<LocalHost>(std::move(root));
}

std::unique_ptr<HostChannel> ssh_host(std::string target) {
  return std::make_unique<SshHost>(std::move(target));
}

}  // namespace phoenix::host
