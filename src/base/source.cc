#include "base/source.h"

#include <algorithm>

namespace phoenix::base {

std::uint32_t SourceManager::add(std::string path, std::string text) {
  files_.push_back(File{std::move(path), std::move(text), {}});
  return static_cast<std::uint32_t>(files_.size());
}

std::uint32_t SourceManager::reserve(std::string path) { return add(std::move(path), {}); }

void SourceManager::fill(std::uint32_t file, std::string path, std::string text) {
  if (file == 0 || file > files_.size()) return;
  File& f = files_[file - 1];
  f.path = std::move(path);
  f.text = std::move(text);
  f.line_starts.clear();
}

const std::string& SourceManager::path(std::uint32_t file) const {
  static const std::string kEmpty;
  if (file == 0 || file > files_.size()) return kEmpty;
  return files_[file - 1].path;
}

const std::string& SourceManager::text(std::uint32_t file) const {
  static const std::string kEmpty;
  if (file == 0 || file > files_.size()) return kEmpty;
  return files_[file - 1].text;
}

std::string_view SourceManager::line_text(SourceLoc loc) const {
  if (loc.file == 0 || loc.file > files_.size() || loc.line == 0) return {};
  const File& f = files_[loc.file - 1];
  if (f.line_starts.empty()) {
    f.line_starts.push_back(0);
    for (std::uint32_t i = 0; i < f.text.size(); ++i) {
      if (f.text[i] == '\n') f.line_starts.push_back(i + 1);
    }
  }
  if (loc.line > f.line_starts.size()) return {};
  std::size_t begin = f.line_starts[loc.line - 1];
  std::size_t end = loc.line < f.line_starts.size() ? f.line_starts[loc.line] - 1 : f.text.size();
  std::string_view line(f.text.data() + begin, end - begin);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

std::string SourceManager::describe(SourceLoc loc) const {
  if (!loc.has_file()) return {};
  std::string out = path(loc.file);
  if (loc.has_line()) {
    out +=
        ':' + std::to_string(loc.line) + ':' + std::to_string(std::max<std::uint32_t>(loc.col, 1));
  }
  return out;
}

}  // namespace phoenix::base
