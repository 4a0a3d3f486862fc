#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include "base/error.h"

namespace phoenix::base {

Result<std::string> read_file(const std::filesystem::path& path);

// Writes `content` to a temporary file beside `path`, flushes it, then renames it over `path`:
// readers see the old file or the new one, never a partial one.
Result<void> write_file_atomic(const std::filesystem::path& path, std::string_view content,
                               std::filesystem::perms mode = std::filesystem::perms::owner_read |
                                                             std::filesystem::perms::owner_write |
                                                             std::filesystem::perms::group_read |
                                                             std::filesystem::perms::others_read);

// Files keyed by relative path ("traefik/dynamic_conf.yml").
using FileTree = std::map<std::string, std::string>;

// Marker that identifies a directory written by write_tree_atomic.
inline constexpr std::string_view kTreeMarker = ".phoenix-render";

enum class TreeWrite {
  kWritten,    // the new tree is in place
  kUnchanged,  // `dir` already held exactly `files`: nothing was written
};

// Publishes `files` as directory `dir` in one step: the tree is written into a sibling temporary
// directory and then swapped into place with a single rename, so `dir` shows either the previous
// complete tree or the new one. An existing `dir` is replaced only if it is empty or was itself
// written by this function; the previous tree is removed afterwards. A `dir` that already holds
// exactly `files` (same contents and modes, nothing else) is left untouched.
Result<TreeWrite> write_tree_atomic(const std::filesystem::path& dir, const FileTree& files);

}  // namespace phoenix::base
