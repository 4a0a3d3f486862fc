#include "config/source_tree.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "base/fs.h"

namespace phoenix::config {
namespace fs = std::filesystem;

std::string join_path(std::string_view a, std::string_view b) {
  if (a.empty() || a == ".") return std::string(b);
  if (b.empty()) return std::string(a);
  if (b.front() == '/') return std::string(b);
  std::string out(a);
  if (out.back() != '/') out += '/';
  out += b;
  return out;
}

base::Result<std::string> DiskTree::read(const std::string& path) { return base::read_file(path); }

bool DiskTree::is_file(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

std::vector<std::string> DiskTree::list_dirs(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code ec2;
    if (it->is_directory(ec2)) out.push_back(it->path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

base::Result<std::string> MemoryTree::read(const std::string& path) {
  auto it = files_.find(path);
  if (it == files_.end()) {
    return base::fail(base::ErrorKind::kNotFound,
                      "cannot read " + path + ": No such file or directory");
  }
  return it->second;
}

bool MemoryTree::is_file(const std::string& path) { return files_.count(path) != 0; }

std::vector<std::string> MemoryTree::list_dirs(const std::string& dir) {
  std::set<std::string> out;
  std::string prefix = dir.empty() ? "" : dir + "/";
  for (const auto& [path, content] : files_) {
    if (path.compare(0, prefix.size(), prefix) != 0) continue;
    std::string rest = path.substr(prefix.size());
    std::size_t slash = rest.find('/');
    if (slash != std::string::npos && slash > 0) out.insert(rest.substr(0, slash));
  }
  return {out.begin(), out.end()};
}

}  // namespace phoenix::config
