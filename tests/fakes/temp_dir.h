#pragma once

// A temporary directory of the test's own, removed with everything in it when the test ends.

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace phoenix::fakes {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "phoenix-test") {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace phoenix::fakes
