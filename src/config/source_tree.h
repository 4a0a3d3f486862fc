#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"

namespace phoenix::config {

// How the loader reaches configuration files: the disk in production, memory in fuzzing and in
// tests that build estates on the fly.
class SourceTree {
 public:
  virtual ~SourceTree() = default;
  // The file's content; a kNotFound error when it does not exist. The loader calls it from
  // several threads at once.
  virtual base::Result<std::string> read(const std::string& path) = 0;
  virtual bool is_file(const std::string& path) = 0;
  // Names of the subdirectories of `dir`, sorted; empty when `dir` does not exist.
  virtual std::vector<std::string> list_dirs(const std::string& dir) = 0;
};

class DiskTree final : public SourceTree {
 public:
  base::Result<std::string> read(const std::string& path) override;
  bool is_file(const std::string& path) override;
  std::vector<std::string> list_dirs(const std::string& dir) override;
};

// Files keyed by path; directories are implied by the paths.
class MemoryTree final : public SourceTree {
 public:
  void add(std::string path, std::string content) { files_[std::move(path)] = std::move(content); }
  base::Result<std::string> read(const std::string& path) override;
  bool is_file(const std::string& path) override;
  std::vector<std::string> list_dirs(const std::string& dir) override;

 private:
  std::map<std::string, std::string> files_;
};

// Joins path parts with '/', ignoring empty parts.
std::string join_path(std::string_view a, std::string_view b);

}  // namespace phoenix::config
