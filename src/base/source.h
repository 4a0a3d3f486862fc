#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace phoenix::base {

// Where a value came from. `file` indexes a SourceManager; 0 means "no file". Lines and columns
// are 1-based; a line of 0 means the location names a whole file.
struct SourceLoc {
  std::uint32_t file = 0;
  std::uint32_t line = 0;
  std::uint32_t col = 0;

  bool has_file() const { return file != 0; }
  bool has_line() const { return line != 0; }
  friend bool operator==(const SourceLoc&, const SourceLoc&) = default;
};

// Owns the text of every file that was loaded, so that diagnostics can quote source lines long
// after parsing. Paths are kept as the user gave them (relative paths stay relative).
class SourceManager {
 public:
  std::uint32_t add(std::string path, std::string text);
  // A file's number before its text is read; fill() gives both later. Files reserved together
  // may be filled from several threads at once, each its own (nothing is added meanwhile).
  std::uint32_t reserve(std::string path);
  void fill(std::uint32_t file, std::string path, std::string text);

  const std::string& path(std::uint32_t file) const;
  const std::string& text(std::uint32_t file) const;
  // How many files there are; their numbers are 1..size().
  std::size_t size() const { return files_.size(); }
  // The text of `loc`'s line without its newline; empty when unknown.
  std::string_view line_text(SourceLoc loc) const;
  // "path:line:col", "path" or "" depending on what `loc` knows.
  std::string describe(SourceLoc loc) const;

 private:
  struct File {
    std::string path;
    std::string text;
    mutable std::vector<std::uint32_t> line_starts;  // computed on first use
  };
  std::deque<File> files_;
};

}  // namespace phoenix::base
