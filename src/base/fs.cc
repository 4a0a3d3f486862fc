#include "base/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <vector>

namespace phoenix::base {
namespace fs = std::filesystem;
namespace {

Error errno_error(std::string what, const fs::path& path, int err) {
  ErrorKind kind = ErrorKind::kInternal;
  if (err == ENOENT) kind = ErrorKind::kNotFound;
  if (err == EACCES || err == EPERM) kind = ErrorKind::kPermission;
  return Error(kind, what + " " + path.string() + ": " + std::strerror(err));
}

std::string random_suffix() {
  std::random_device rd;
  std::uniform_int_distribution<unsigned> dist(0, 0xFFFFFF);
  char buf[16];
  std::snprintf(buf, sizeof buf, "%06x", dist(rd));
  return buf;
}

enum class Sync { kFile, kLater };

Result<void> write_fd_fully(int fd, std::string_view content, const fs::path& path, Sync sync) {
  const char* p = content.data();
  std::size_t left = content.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(errno_error("cannot write", path, errno));
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  if (sync == Sync::kFile && ::fsync(fd) != 0) {
    return std::unexpected(errno_error("cannot sync", path, errno));
  }
  return {};
}

mode_t process_umask() {
  static const mode_t mask = [] {
    mode_t m = ::umask(0);
    ::umask(m);
    return m;
  }();
  return mask;
}

// The file is created with `mode` exactly (not subject to the umask). With Sync::kLater the
// caller syncs it later, together with the other files it writes.
Result<void> write_new_file(const fs::path& path, std::string_view content, fs::perms mode,
                            Sync sync = Sync::kFile) {
  const auto bits = static_cast<mode_t>(mode) & 0777;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, bits);
  if (fd < 0) return std::unexpected(errno_error("cannot create", path, errno));
  auto written = write_fd_fully(fd, content, path, sync);
  // open() applied the umask; set the mode the caller asked for if it took anything away.
  if (written && (bits & process_umask()) != 0 && ::fchmod(fd, bits) != 0) {
    written = std::unexpected(errno_error("cannot chmod", path, errno));
  }
  ::close(fd);
  if (!written) {
    ::unlink(path.c_str());
    return written;
  }
  return {};
}

// True when `path` is a regular file with exactly `content` and permission bits `bits`.
bool has_content(const fs::path& path, std::string_view content, mode_t bits) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  struct stat st {};
  bool same = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == bits &&
              static_cast<std::size_t>(st.st_size) == content.size();
  if (same) {
    std::string buf(content.size(), '\0');
    std::size_t got = 0;
    while (got < buf.size()) {
      ssize_t n = ::read(fd, buf.data() + got, buf.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    same = got == buf.size() && buf == content;
  }
  ::close(fd);
  return same;
}

bool is_replaceable(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir / kTreeMarker, ec)) return true;
  return fs::is_empty(dir, ec) && !ec;
}

}  // namespace

Result<std::string> read_file(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::unexpected(errno_error("cannot read", path, errno));
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    return std::unexpected(
        Error(ErrorKind::kInvalidInput, "cannot read " + path.string() + ": it is a directory"));
  }
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return std::unexpected(errno_error("cannot read", path, err));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

Result<void> write_file_atomic(const fs::path& path, std::string_view content, fs::perms mode) {
  fs::path tmp = path;
  tmp += ".tmp-" + random_suffix();
  PHX_TRY(write_new_file(tmp, content, mode));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return std::unexpected(errno_error("cannot rename into", path, err));
  }
  return {};
}

Result<void> write_tree_atomic(const fs::path& dir, const FileTree& files) {
  std::error_code ec;
  fs::path target = dir.has_filename() ? dir : dir.parent_path();
  bool exists = fs::exists(target, ec);
  if (exists && !fs::is_directory(target, ec)) {
    return fail(ErrorKind::kInvalidInput, target.string() + " exists and is not a directory");
  }
  if (exists && !is_replaceable(target)) {
    return fail(ErrorKind::kInvalidInput,
                "refusing to replace " + target.string() +
                    ": it is not empty and was not written by phoenix render; choose a new or "
                    "empty directory");
  }
  fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  if (!fs::is_directory(parent, ec)) {
    return fail(ErrorKind::kNotFound, "parent directory " + parent.string() + " does not exist");
  }

  std::string staging_name = ".";  // built by appending: g++ 12 warns (-Wrestrict) on "." + str
  staging_name += target.filename().string();
  staging_name += ".tmp-";
  staging_name += random_suffix();
  fs::path staging = parent / staging_name;
  if (!fs::create_directory(staging, ec)) {
    return fail(ErrorKind::kPermission, "cannot create " + staging.string() + ": " + ec.message());
  }
  auto cleanup = [&] { fs::remove_all(staging, ec); };
  const auto file_mode = fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                         fs::perms::others_read;
  // A file whose content is unchanged from the tree being replaced is hard-linked from it instead
  // of written again: it is already on disk, so it needs neither a write nor a sync, and it keeps
  // its inode and modification time.
  std::vector<const std::string*> written;
  std::set<fs::path> made_dirs{staging};
  for (const auto& [rel, content] : files) {
    fs::path p = staging / rel;
    if (made_dirs.insert(p.parent_path()).second) {
      fs::create_directories(p.parent_path(), ec);
      if (ec) {
        cleanup();
        return fail(ErrorKind::kInternal, "cannot create " + p.parent_path().string());
      }
    }
    if (exists) {
      fs::path old = target / rel;
      if (has_content(old, content, static_cast<mode_t>(file_mode)) &&
          ::link(old.c_str(), p.c_str()) == 0) {
        continue;
      }
    }
    auto w = write_new_file(p, content, file_mode, Sync::kLater);
    if (!w) {
      cleanup();
      return w;
    }
    written.push_back(&rel);
  }
  auto marker =
      write_new_file(staging / kTreeMarker, "written by phoenix render\n", file_mode, Sync::kLater);
  if (!marker) {
    cleanup();
    return marker;
  }
  // Make every written file durable before the tree becomes visible. Syncing in a second pass,
  // after all writes, lets the first fsync's journal commit carry the rest: the later ones find
  // little left to flush, where an fsync right after each write costs milliseconds apiece.
  // (syncfs would also flush unrelated data on the same file system.)
  for (const std::string* rel : written) {
    fs::path p = staging / *rel;
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    int rc = fd < 0 ? -1 : ::fsync(fd);
    int err = errno;
    if (fd >= 0) ::close(fd);
    if (rc != 0) {
      cleanup();
      return std::unexpected(errno_error("cannot sync", p, err));
    }
  }
  fs::permissions(staging,
                  fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                      fs::perms::others_read | fs::perms::others_exec,
                  ec);

  if (!exists) {
    if (::rename(staging.c_str(), target.c_str()) != 0) {
      int err = errno;
      cleanup();
      return std::unexpected(errno_error("cannot move output into", target, err));
    }
    return {};
  }
  // Swap the two directories in one step, then drop the old tree.
  if (::renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) != 0) {
    int err = errno;
    cleanup();
    return std::unexpected(errno_error("cannot swap output into", target, err));
  }
  fs::remove_all(staging, ec);  // now holds the previous tree
  return {};
}

}  // namespace phoenix::base
