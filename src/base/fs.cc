#include "base/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
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

// Creates `name` below `dir` (AT_FDCWD: a path) with `bits` exactly, not subject to the umask,
// and writes `content`. With Sync::kLater the caller makes it durable later, together with the
// other files it writes. A file that could not be written completely is removed.
Result<void> write_new_file_at(int dir, const char* name, std::string_view content, mode_t bits,
                               const fs::path& shown, Sync sync) {
  int fd = ::openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, bits);
  if (fd < 0) return std::unexpected(errno_error("cannot create", shown, errno));
  auto written = write_fd_fully(fd, content, shown, sync);
  // open() applied the umask; set the mode the caller asked for if it took anything away.
  if (written && (bits & process_umask()) != 0 && ::fchmod(fd, bits) != 0) {
    written = std::unexpected(errno_error("cannot chmod", shown, errno));
  }
  ::close(fd);
  if (!written) ::unlinkat(dir, name, 0);
  return written;
}

Result<void> write_new_file(const fs::path& path, std::string_view content, fs::perms mode) {
  return write_new_file_at(AT_FDCWD, path.c_str(), content, static_cast<mode_t>(mode) & 0777, path,
                           Sync::kFile);
}

// True when the open file `fd` is a regular file with exactly `content` and permission `bits`.
bool fd_has_content(int fd, std::string_view content, mode_t bits) {
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
  // A regular file is read in one go, into a string of its size: no chunks appended and copied
  // as the string grows, and no second read to see the end (configuration files do not change
  // while Phoenix reads them; one that shrank meanwhile ends early, and is read as it is).
  if (S_ISREG(st.st_mode) && st.st_size > 0) {
    // Not zeroed first: the read fills it (a large estate reads megabytes, and every fresh page
    // written twice costs).
    int err = 0;
    out.resize_and_overwrite(static_cast<std::size_t>(st.st_size),
                             [&](char* data, std::size_t size) {
                               std::size_t got = 0;
                               while (got < size) {
                                 ssize_t n = ::read(fd, data + got, size - got);
                                 if (n < 0 && errno == EINTR) continue;
                                 if (n < 0) {
                                   err = errno;
                                   break;
                                 }
                                 if (n == 0) break;
                                 got += static_cast<std::size_t>(n);
                               }
                               return got;
                             });
    ::close(fd);
    if (err != 0) return std::unexpected(errno_error("cannot read", path, err));
    return out;
  }
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

namespace {

// A directory opened for the *at() calls, closed when it goes.
class DirFd {
 public:
  explicit DirFd(int fd = -1) : fd_(fd) {}
  DirFd(DirFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  DirFd& operator=(DirFd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  ~DirFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

DirFd open_dir(int at, const char* path) {
  return DirFd(::openat(at, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
}

// True when `name` below `dir` is a regular file with exactly `content` and permission `bits`.
bool has_content_at(int dir, const std::string& name, std::string_view content, mode_t bits) {
  int fd = ::openat(dir, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  bool same = fd_has_content(fd, content, bits);
  ::close(fd);
  return same;
}

// Creates directory `dir` below `root` and any of its parents that are missing; one that exists
// already is fine (another worker may have made it). Returns 0 or the errno.
int make_dirs_at(int root, const std::string& dir) {
  if (dir.empty() || ::mkdirat(root, dir.c_str(), 0755) == 0 || errno == EEXIST) return 0;
  if (errno != ENOENT) return errno;
  std::size_t slash = dir.rfind('/');
  if (slash == std::string::npos) return ENOENT;
  if (int err = make_dirs_at(root, dir.substr(0, slash)); err != 0) return err;
  if (::mkdirat(root, dir.c_str(), 0755) == 0 || errno == EEXIST) return 0;
  return errno;
}

// True when `dir` holds exactly `files` and the marker, each file with its content and mode
// `bits`, and nothing else: writing the tree again would change nothing.
bool tree_matches(const fs::path& dir, const FileTree& files, mode_t bits) {
  std::unordered_set<std::string_view> dirs;
  for (const auto& [rel, content] : files) {
    for (std::size_t slash = rel.find('/'); slash != std::string::npos;
         slash = rel.find('/', slash + 1)) {
      dirs.insert(std::string_view(rel).substr(0, slash));
    }
  }
  const std::size_t prefix = dir.native().size() + 1;
  std::size_t regular = 0;
  std::error_code ec;
  // The top directory is given 0755 whatever the umask (fchmod); those below, mkdir's mode.
  if ((static_cast<mode_t>(fs::status(dir, ec).permissions()) & 07777) != 0755 || ec) {
    return false;
  }
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::string_view rel = std::string_view(it->path().native()).substr(prefix);
    fs::file_status st = it->symlink_status(ec);
    if (ec) return false;
    if (fs::is_directory(st)) {
      // A directory with the mode render would give it (0755 less the umask, as mkdir does).
      const auto mode = static_cast<mode_t>(st.permissions()) & 07777;
      if (!dirs.contains(rel) || mode != (0755 & ~process_umask())) return false;
    } else if (fs::is_regular_file(st)) {
      if (rel != kTreeMarker && !files.contains(std::string(rel))) return false;
      ++regular;
    } else {
      return false;
    }
  }
  if (ec || regular != files.size() + 1) return false;
  DirFd d = open_dir(AT_FDCWD, dir.c_str());
  if (d.get() < 0) return false;
  return std::all_of(files.begin(), files.end(), [&](const FileTree::value_type& f) {
    return has_content_at(d.get(), f.first, f.second, bits);
  });
}

}  // namespace

Result<TreeWrite> write_tree_atomic(const fs::path& dir, const FileTree& files) {
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

  const auto file_mode = static_cast<mode_t>(fs::perms::owner_read | fs::perms::owner_write |
                                             fs::perms::group_read | fs::perms::others_read);
  // A tree that is already what would be written is left alone: nothing is rewritten, synced
  // or swapped, and every file keeps its inode and modification time.
  if (exists && tree_matches(target, files, file_mode)) return TreeWrite::kUnchanged;

  std::string staging_name = ".";  // built by appending: g++ 12 warns (-Wrestrict) on "." + str
  staging_name += target.filename().string();
  staging_name += ".tmp-";
  staging_name += random_suffix();
  fs::path staging = parent / staging_name;
  if (!fs::create_directory(staging, ec)) {
    return fail(ErrorKind::kPermission, "cannot create " + staging.string() + ": " + ec.message());
  }
  auto cleanup = [&] { fs::remove_all(staging, ec); };
  DirFd out = open_dir(AT_FDCWD, staging.c_str());
  if (out.get() < 0) {
    int err = errno;
    cleanup();
    return std::unexpected(errno_error("cannot open", staging, err));
  }
  DirFd old = exists ? open_dir(AT_FDCWD, target.c_str()) : DirFd();
  // Paths are relative to the two directory descriptors: no path is resolved from the root
  // again for each of the thousands of files a large estate renders.
  //
  // Creating an entry takes its directory's lock in the kernel, so threads that write into one
  // directory only wait on each other (and spin doing it). The files are grouped by directory
  // instead, and each worker takes the next directory, largest first: it creates the directory
  // and writes its files, while another worker does the same for another directory.
  struct Group {
    std::string dir;  // "" for the top
    std::vector<const FileTree::value_type*> files;
  };
  std::vector<Group> groups;
  {
    std::unordered_map<std::string_view, std::size_t> by_dir;
    for (const auto& entry : files) {
      std::string_view rel = entry.first;
      std::size_t slash = rel.rfind('/');
      std::string_view parent = slash == std::string_view::npos ? "" : rel.substr(0, slash);
      auto [it, added] = by_dir.try_emplace(parent, groups.size());
      if (added) groups.push_back({std::string(parent), {}});
      groups[it->second].files.push_back(&entry);
    }
  }
  std::stable_sort(groups.begin(), groups.end(),
                   [](const Group& a, const Group& b) { return a.files.size() > b.files.size(); });
  auto put = [&](const FileTree::value_type& entry) -> Result<void> {
    const auto& [rel, content] = entry;
    // A file whose content is unchanged from the tree being replaced is hard-linked from it
    // instead of written again: it is already on disk, and it keeps its inode and modification
    // time for the programs that watch it.
    if (old.get() >= 0 && has_content_at(old.get(), rel, content, file_mode) &&
        ::linkat(old.get(), rel.c_str(), out.get(), rel.c_str(), 0) == 0) {
      return {};
    }
    return write_new_file_at(out.get(), rel.c_str(), content, file_mode, staging / rel,
                             Sync::kLater);
  };
  auto put_group = [&](const Group& g) -> Result<void> {
    if (int err = make_dirs_at(out.get(), g.dir); err != 0) {
      return std::unexpected(errno_error("cannot create", staging / g.dir, err));
    }
    for (const FileTree::value_type* entry : g.files) PHX_TRY(put(*entry));
    return {};
  };
  constexpr std::size_t kParallelFrom = 64;
  std::size_t workers = std::min<std::size_t>(std::max(1u, std::thread::hardware_concurrency()), 4);
  if (files.size() < kParallelFrom) workers = 1;
  workers = std::min(workers, groups.size());
  std::atomic<std::size_t> next{0};
  std::mutex failure_mutex;
  std::optional<Error> failure;
  auto work = [&] {
    for (std::size_t i = next++; i < groups.size(); i = next++) {
      if (auto w = put_group(groups[i]); !w) {
        std::lock_guard lock(failure_mutex);
        if (!failure) failure = w.error();
        next = groups.size();
        return;
      }
    }
  };
  (void)process_umask();  // read (which sets it for a moment) before the threads start
  std::vector<std::thread> threads;
  for (std::size_t t = 1; t < workers; ++t) threads.emplace_back(work);
  work();
  for (std::thread& t : threads) t.join();
  if (failure) {
    cleanup();
    return std::unexpected(std::move(*failure));
  }
  if (auto w = write_new_file_at(out.get(), kTreeMarker.data(), "written by phoenix render\n",
                                 file_mode, staging / kTreeMarker, Sync::kLater);
      !w) {
    cleanup();
    return std::unexpected(std::move(w.error()));
  }
  ::fchmod(out.get(), 0755);
  // Make the whole tree durable, files and directories, before it becomes visible: one syncfs
  // flushes them together, where an fsync per file costs a device flush apiece (seconds for a
  // large estate on a slow disk). It also flushes whatever else is dirty on that file system.
  if (::syncfs(out.get()) != 0) {
    int err = errno;
    cleanup();
    return std::unexpected(errno_error("cannot sync", staging, err));
  }

  if (!exists) {
    if (::rename(staging.c_str(), target.c_str()) != 0) {
      int err = errno;
      cleanup();
      return std::unexpected(errno_error("cannot move output into", target, err));
    }
    return TreeWrite::kWritten;
  }
  // Swap the two directories in one step, then drop the old tree.
  if (::renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) != 0) {
    int err = errno;
    cleanup();
    return std::unexpected(errno_error("cannot swap output into", target, err));
  }
  fs::remove_all(staging, ec);  // now holds the previous tree
  return TreeWrite::kWritten;
}

}  // namespace phoenix::base
