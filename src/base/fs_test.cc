#include "base/fs.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <vector>

namespace phoenix::base {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    path_ = fs::temp_directory_path() / ("phoenix-fs-test-" + std::to_string(::getpid()) + "-" +
                                         std::to_string(stamp) + "-" + std::to_string(counter++));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::set<std::string> entries(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    out.insert(fs::relative(e.path(), dir).string());
  }
  return out;
}

std::string slurp(const fs::path& p) {
  auto r = read_file(p);
  EXPECT_TRUE(r.has_value()) << p;
  return r ? *r : std::string();
}

TEST(Fs, WriteFileAtomicReplacesContentAndLeavesNoTempFile) {
  TempDir tmp;
  fs::path file = tmp.path() / "out.txt";
  ASSERT_TRUE(write_file_atomic(file, "first\n").has_value());
  EXPECT_EQ(slurp(file), "first\n");
  ASSERT_TRUE(write_file_atomic(file, "second, longer\n").has_value());
  EXPECT_EQ(slurp(file), "second, longer\n");
  EXPECT_EQ(entries(tmp.path()), (std::set<std::string>{"out.txt"}));
}

TEST(Fs, WriteFileAtomicAppliesMode) {
  TempDir tmp;
  fs::path file = tmp.path() / "secret";
  ASSERT_TRUE(
      write_file_atomic(file, "x", fs::perms::owner_read | fs::perms::owner_write).has_value());
  EXPECT_EQ(fs::status(file).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
}

TEST(Fs, ReadFileErrors) {
  TempDir tmp;
  auto missing = read_file(tmp.path() / "nope");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().kind(), ErrorKind::kNotFound);
  auto dir = read_file(tmp.path());
  ASSERT_FALSE(dir.has_value());
  EXPECT_EQ(dir.error().message(), "cannot read " + tmp.path().string() + ": it is a directory");
}

TEST(Fs, WriteTreeAtomicCreatesNewDirectory) {
  TempDir tmp;
  fs::path out = tmp.path() / "render";
  ASSERT_TRUE(write_tree_atomic(out, {{"a.txt", "A"}, {"sub/b.txt", "B"}}).has_value());
  EXPECT_EQ(entries(out), (std::set<std::string>{".phoenix-render", "a.txt", "sub", "sub/b.txt"}));
  EXPECT_EQ(slurp(out / "a.txt"), "A");
  EXPECT_EQ(slurp(out / "sub/b.txt"), "B");
  EXPECT_EQ(entries(tmp.path()).count("render"), 1u);
  // Nothing but the output directory itself is left beside it.
  std::set<std::string> top;
  for (const auto& e : fs::directory_iterator(tmp.path())) top.insert(e.path().filename().string());
  EXPECT_EQ(top, (std::set<std::string>{"render"}));
}

TEST(Fs, WriteTreeAtomicReplacesItsOwnPreviousTree) {
  TempDir tmp;
  fs::path out = tmp.path() / "render";
  ASSERT_TRUE(write_tree_atomic(out, {{"old.txt", "old"}, {"d/x.txt", "x"}}).has_value());
  ASSERT_TRUE(write_tree_atomic(out, {{"new.txt", "new"}}).has_value());
  EXPECT_EQ(entries(out), (std::set<std::string>{".phoenix-render", "new.txt"}));
  EXPECT_EQ(slurp(out / "new.txt"), "new");
  std::set<std::string> top;
  for (const auto& e : fs::directory_iterator(tmp.path())) top.insert(e.path().filename().string());
  EXPECT_EQ(top, (std::set<std::string>{"render"}));
}

ino_t inode(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_ino;
}

TEST(Fs, WriteTreeAtomicKeepsUnchangedFilesAndRewritesChangedOnes) {
  TempDir tmp;
  fs::path out = tmp.path() / "render";
  ASSERT_TRUE(
      write_tree_atomic(
          out,
          {{"same.txt", "same"}, {"d/edited.txt", "v1"}, {"chmodded.txt", "c"}, {"grown.txt", "g"}})
          .has_value());
  ino_t same = inode(out / "same.txt");
  ino_t edited = inode(out / "d/edited.txt");
  ino_t chmodded = inode(out / "chmodded.txt");
  fs::permissions(out / "chmodded.txt", fs::perms::owner_all);
  // Same size, different bytes: the comparison must read the content, not just the size.
  ASSERT_TRUE(write_tree_atomic(out, {{"same.txt", "same"},
                                      {"d/edited.txt", "v2"},
                                      {"chmodded.txt", "c"},
                                      {"grown.txt", "gg"}})
                  .has_value());
  EXPECT_EQ(inode(out / "same.txt"), same);
  EXPECT_NE(inode(out / "d/edited.txt"), edited);
  EXPECT_NE(inode(out / "chmodded.txt"), chmodded);
  EXPECT_EQ(slurp(out / "same.txt"), "same");
  EXPECT_EQ(slurp(out / "d/edited.txt"), "v2");
  EXPECT_EQ(slurp(out / "grown.txt"), "gg");
  EXPECT_EQ(fs::status(out / "chmodded.txt").permissions(),
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                fs::perms::others_read);
  struct stat st {};
  ASSERT_EQ(::stat((out / "same.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u) << "the previous tree's link must be gone";
}

TEST(Fs, WriteTreeAtomicReplacesAnEmptyDirectory) {
  TempDir tmp;
  fs::path out = tmp.path() / "empty";
  fs::create_directory(out);
  ASSERT_TRUE(write_tree_atomic(out, {{"a", "1"}}).has_value());
  EXPECT_EQ(entries(out), (std::set<std::string>{".phoenix-render", "a"}));
}

TEST(Fs, WriteTreeAtomicRefusesForeignDirectoryWithoutTouchingIt) {
  TempDir tmp;
  fs::path out = tmp.path() / "home";
  fs::create_directory(out);
  { std::ofstream(out / "precious.txt") << "keep me"; }
  auto r = write_tree_atomic(out, {{"a.txt", "A"}});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind(), ErrorKind::kInvalidInput);
  EXPECT_EQ(r.error().message(),
            "refusing to replace " + out.string() +
                ": it is not empty and was not written by phoenix render; choose a new or empty "
                "directory");
  EXPECT_EQ(entries(out), (std::set<std::string>{"precious.txt"}));
  EXPECT_EQ(slurp(out / "precious.txt"), "keep me");
  std::set<std::string> top;
  for (const auto& e : fs::directory_iterator(tmp.path())) top.insert(e.path().filename().string());
  EXPECT_EQ(top, (std::set<std::string>{"home"}));
}

TEST(Fs, WriteTreeAtomicRefusesAFile) {
  TempDir tmp;
  fs::path out = tmp.path() / "file";
  ASSERT_TRUE(write_file_atomic(out, "x").has_value());
  auto r = write_tree_atomic(out, {{"a", "1"}});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message(), out.string() + " exists and is not a directory");
  EXPECT_EQ(slurp(out), "x");
}

TEST(Fs, WriteTreeAtomicWritesALargeTreeOnSeveralThreads) {
  TempDir tmp;
  fs::path out = tmp.path() / "out";
  FileTree files;  // enough files for the threads (64 or more), in nested directories
  for (int i = 0; i < 300; ++i) {
    files["d" + std::to_string(i % 7) + "/e" + std::to_string(i % 3) + "/f" + std::to_string(i)] =
        std::string(static_cast<std::size_t>(i * 13), static_cast<char>('a' + i % 26));
  }
  files["deep/a/b/c/d/leaf"] = "in directories that hold no file of their own";
  ASSERT_TRUE(write_tree_atomic(out, files).has_value());
  for (const auto& [rel, content] : files) EXPECT_EQ(slurp(out / rel), content) << rel;
  std::size_t regular = 0;
  for (const auto& e : fs::recursive_directory_iterator(out)) regular += e.is_regular_file();
  EXPECT_EQ(regular, files.size() + 1);  // and the marker
}

TEST(Fs, WriteTreeAtomicThatFailsOnOneOfManyFilesLeavesNothing) {
  TempDir tmp;
  fs::path out = tmp.path() / "out";
  FileTree files;
  for (int i = 0; i < 200; ++i) files["f" + std::to_string(i)] = "x";
  files["f150/inner"] = "y";  // "f150" is a file: creating the directory "f150" fails
  auto w = write_tree_atomic(out, files);
  ASSERT_FALSE(w.has_value());
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(entries(tmp.path()).empty()) << "the staging directory was left behind";
}

mode_t test_umask() {
  mode_t m = ::umask(0);
  ::umask(m);
  return m;
}

TEST(Fs, WriteTreeAtomicLeavesAnIdenticalTreeUntouched) {
  TempDir tmp;
  fs::path out = tmp.path() / "out";
  const FileTree files = {{"a.txt", "A"}, {"sub/b.txt", "B"}, {"sub/deeper/c.txt", "C"}};
  auto first = write_tree_atomic(out, files);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, TreeWrite::kWritten);
  ino_t dir = inode(out);
  ino_t a = inode(out / "a.txt");
  ino_t c = inode(out / "sub/deeper/c.txt");
  auto again = write_tree_atomic(out, files);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, TreeWrite::kUnchanged);
  EXPECT_EQ(inode(out), dir) << "the directory was swapped";
  EXPECT_EQ(inode(out / "a.txt"), a);
  EXPECT_EQ(inode(out / "sub/deeper/c.txt"), c);
  std::set<std::string> top;
  for (const auto& e : fs::directory_iterator(tmp.path())) top.insert(e.path().filename().string());
  EXPECT_EQ(top, (std::set<std::string>{"out"}));
}

// Anything in the old tree that the new one would not have makes it a real write, which leaves
// exactly the new tree.
TEST(Fs, WriteTreeAtomicRewritesATreeThatDiffersInAnyWay) {
  const FileTree files = {{"a.txt", "A"}, {"sub/b.txt", "B"}};
  const std::set<std::string> expected = {".phoenix-render", "a.txt", "sub", "sub/b.txt"};
  struct Case {
    const char* what;
    std::function<void(const fs::path&)> change;
  };
  const std::vector<Case> cases = {
      {"a stray file", [](const fs::path& o) { std::ofstream(o / "sub/stray") << "x"; }},
      {"a stray directory", [](const fs::path& o) { fs::create_directory(o / "empty"); }},
      {"a missing file", [](const fs::path& o) { fs::remove(o / "sub/b.txt"); }},
      {"a file's mode",
       [](const fs::path& o) { fs::permissions(o / "a.txt", fs::perms::owner_all); }},
      {"a file's bytes", [](const fs::path& o) { std::ofstream(o / "a.txt") << "Z"; }},
      {"a directory's mode",
       [](const fs::path& o) { fs::permissions(o / "sub", fs::perms::owner_all); }},
      {"the top directory's mode",
       [](const fs::path& o) { fs::permissions(o, fs::perms::owner_all); }},
      {"a symbolic link for a file",
       [](const fs::path& o) {
         fs::rename(o / "a.txt", o.parent_path() / "outside");
         fs::create_symlink(o.parent_path() / "outside", o / "a.txt");
       }},
  };
  for (const Case& c : cases) {
    TempDir tmp;
    fs::path out = tmp.path() / "out";
    ASSERT_TRUE(write_tree_atomic(out, files).has_value());
    c.change(out);
    auto w = write_tree_atomic(out, files);
    ASSERT_TRUE(w.has_value()) << c.what;
    EXPECT_EQ(*w, TreeWrite::kWritten) << c.what;
    EXPECT_EQ(entries(out), expected) << c.what;
    EXPECT_EQ(slurp(out / "a.txt"), "A") << c.what;
    EXPECT_EQ(fs::symlink_status(out / "a.txt").permissions(),
              fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                  fs::perms::others_read)
        << c.what;
    EXPECT_EQ(static_cast<mode_t>(fs::status(out / "sub").permissions()), 0755 & ~test_umask())
        << c.what;
    EXPECT_EQ(static_cast<mode_t>(fs::status(out).permissions()), 0755u) << c.what;
  }
}

TEST(Fs, ReadFileReadsALargeFileWhole) {
  TempDir tmp;
  std::string big(3 * 1024 * 1024 + 17, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 % 251);
  fs::path file = tmp.path() / "big";
  ASSERT_TRUE(write_file_atomic(file, big).has_value());
  EXPECT_EQ(slurp(file), big);
}

}  // namespace
}  // namespace phoenix::base
