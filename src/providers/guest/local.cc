#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <filesystem>

#include "base/fs.h"
#include "providers/guest/channel.h"

namespace phoenix::guest {
namespace {

namespace fs = std::filesystem;

class LocalGuest final : public GuestChannel {
 public:
  explicit LocalGuest(std::string root) : root_(std::move(root)) {}

  base::Result<std::string> read_file(const std::string& path) override {
    fs::path p = at(path);
    std::error_code ec;
    if (!fs::exists(p, ec)) {
      return base::fail(base::ErrorKind::kNotFound, p.string() + " does not exist");
    }
    return base::read_file(p);
  }

  base::Result<void> write_file(const std::string& path, std::string_view content,
                                const FileSpec& spec) override {
    fs::path p = at(path);
    std::error_code ec;
    fs::create_directories(p.parent_path(), ec);
    if (ec) {
      return base::fail(base::ErrorKind::kPermission,
                        "cannot create " + p.parent_path().string() + ": " + ec.message());
    }
    PHX_TRY(base::write_file_atomic(p, content, static_cast<fs::perms>(spec.mode)));
    if (::geteuid() == 0) {
      const passwd* pw = ::getpwnam(spec.owner.c_str());
      const group* gr = ::getgrnam(spec.group.c_str());
      if (!pw || !gr) {
        return base::fail(base::ErrorKind::kInvalidInput, "cannot give " + p.string() + " to " +
                                                              spec.owner + ":" + spec.group +
                                                              ": no such user or group here");
      }
      if (::chown(p.c_str(), pw->pw_uid, gr->gr_gid) != 0) {
        return base::fail(base::ErrorKind::kPermission, "cannot chown " + p.string());
      }
    }
    return {};
  }

  base::Result<void> remove_file(const std::string& path) override {
    std::error_code ec;
    fs::remove(at(path), ec);
    if (ec) return base::fail(base::ErrorKind::kPermission, "cannot remove " + at(path).string());
    return {};
  }

  base::Result<base::ProcessResult> run(const std::vector<std::string>& argv,
                                        std::string_view input) override {
    return base::run_process(argv, std::string(input));
  }

  std::string describe() const override { return "local " + root_; }

  // The link is made below the root, its target as given (a path in the guest).
  base::Result<bool> link(const std::string& path, const std::string& target,
                          bool check_only) override {
    std::error_code ec;
    if (fs::is_symlink(at(path), ec) && fs::read_symlink(at(path), ec) == fs::path(target)) {
      return false;
    }
    if (check_only) return true;
    fs::create_directories(at(path).parent_path(), ec);
    fs::remove(at(path), ec);
    fs::create_symlink(target, at(path), ec);
    if (ec) {
      return base::fail(base::ErrorKind::kPermission,
                        "cannot link " + at(path).string() + " to " + target + ": " + ec.message());
    }
    return true;
  }

 private:
  fs::path at(const std::string& path) const {
    return fs::path(root_) / fs::path(path).relative_path();
  }
  std::string root_;
};

}  // namespace

std::unique_ptr<GuestChannel> local_guest(std::string root) {
  return std::make_unique<LocalGuest>(std::move(root));
}

}  // namespace phoenix::guest
