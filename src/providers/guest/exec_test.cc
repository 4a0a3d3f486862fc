#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "base/fs.h"
#include "base/process.h"
#include "fakes/temp_dir.h"
#include "providers/guest/channel.h"

namespace phoenix::guest {
namespace {

namespace fs = std::filesystem;

using fakes::TempDir;

// A stand-in program first in PATH for the test's lifetime.
class StandIn {
 public:
  StandIn(const fs::path& bin, const std::string& name, const std::string& script)
      : old_path_(std::getenv("PATH")) {
    fs::create_directories(bin);
    std::ofstream(bin / name) << script;
    fs::permissions(bin / name, fs::perms::owner_all);
    ::setenv("PATH", (bin.string() + ":" + old_path_).c_str(), 1);
  }
  ~StandIn() { ::setenv("PATH", old_path_.c_str(), 1); }

 private:
  std::string old_path_;
};

// A file owned by whoever runs the test, so that the guest's chown succeeds without root.
FileSpec own_file(unsigned mode = FileSpec{}.mode) {
  FileSpec spec;
  spec.owner = std::to_string(::geteuid());
  spec.group = std::to_string(::getegid());
  spec.mode = mode;
  return spec;
}

// A runner that takes only so much input (a guest agent's 64 KiB) gets a large file in base64
// pieces: every byte arrives, the mode is set, and no run was given more than the limit.
TEST(ExecGuest, WritesLargeFilesInPiecesUnderTheInputLimit) {
  TempDir dir;
  std::size_t largest = 0, runs = 0;
  base::Runner limited = [&, local = base::local_runner()](const std::vector<std::string>& argv,
                                                           std::string_view input) {
    largest = std::max(largest, input.size());
    ++runs;
    return local(argv, input);
  };
  auto guest = exec_guest(limited, "agent guest", 100);
  std::string content;
  for (int i = 0; i < 1000; ++i) content += static_cast<char>((i * 37) % 256);
  FileSpec spec = own_file(0755);
  fs::path file = dir.path() / "bin/tool";
  ASSERT_TRUE(guest->write_file(file.string(), content, spec).has_value());
  EXPECT_EQ(*base::read_file(file), content);
  EXPECT_LE(largest, 100u);
  EXPECT_EQ(runs, 2u + (1000 + 74) / 75);  // begin, 14 pieces of 75 bytes (100 in base64), finish
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_FALSE(fs::exists(file.string() + ".phoenix-tmp"));
}

// Through a runner that may send a command again (a guest agent's exec whose answer was lost),
// the file scripts are idempotent: every piece sent twice still makes the same file. Only the
// last step, which renames the file, goes through the ordinary runner.
TEST(ExecGuest, PiecesSentTwiceMakeTheSameFile) {
  TempDir dir;
  std::size_t once = 0, twice = 0;
  base::Runner plain = [&, local = base::local_runner()](const std::vector<std::string>& argv,
                                                         std::string_view input) {
    ++once;
    return local(argv, input);
  };
  base::Runner again = [&, local = base::local_runner()](const std::vector<std::string>& argv,
                                                         std::string_view input) {
    ++twice;
    (void)local(argv, input);  // its answer lost
    return local(argv, input);
  };
  auto guest = exec_guest(plain, "agent guest", 100, again);
  std::string content;
  for (int i = 0; i < 1001; ++i) content += static_cast<char>((i * 53) % 256);
  FileSpec spec = own_file();
  fs::path file = dir.path() / "bin/tool";
  ASSERT_TRUE(guest->write_file(file.string(), content, spec).has_value());
  EXPECT_EQ(*base::read_file(file), content);
  EXPECT_EQ(once, 1u);                      // finish
  EXPECT_EQ(twice, 1u + (1001 + 74) / 75);  // begin and 14 pieces
  EXPECT_EQ(*guest->read_file(file.string()), content);
  ASSERT_TRUE(guest->write_file(file.string(), "small", spec).has_value());
  EXPECT_EQ(*base::read_file(file), "small");
  EXPECT_EQ(once, 1u);
  EXPECT_FALSE(fs::exists(file.string() + ".phoenix-tmp"));
}

// A large file that compresses goes gzipped, in fewer pieces, and arrives as it was; one that
// does not (random bytes) goes as it is.
TEST(ExecGuest, LargeFilesThatCompressAreSentGzipped) {
  TempDir dir;
  std::size_t runs = 0;
  base::Runner counted = [&, local = base::local_runner()](const std::vector<std::string>& argv,
                                                           std::string_view input) {
    ++runs;
    return local(argv, input);
  };
  auto guest = exec_guest(counted, "agent guest", 48 * 1024);
  std::string text;
  for (int i = 0; text.size() < (2u << 20); ++i)
    text += "line " + std::to_string(i) + " of a log\n";
  FileSpec spec = own_file(0600);
  fs::path file = dir.path() / "etc/big.txt";
  ASSERT_TRUE(guest->write_file(file.string(), text, spec).has_value());
  EXPECT_EQ(*base::read_file(file), text);
  const std::size_t plain_pieces = (text.size() + 36863) / 36864;  // 48 KiB of base64 each
  EXPECT_LT(runs, 2 + plain_pieces / 4) << "gzipped: far fewer pieces";
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_FALSE(fs::exists(file.string() + ".phoenix-tmp"));
  EXPECT_FALSE(fs::exists(file.string() + ".phoenix-tmp.gz"));

  std::string noise;
  std::uint64_t x = 88172645463325252ull;
  while (noise.size() < (1u << 20) + 7) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;  // xorshift: bytes gzip cannot shrink
    noise += static_cast<char>(x & 0xff);
  }
  runs = 0;
  ASSERT_TRUE(guest->write_file(file.string(), noise, spec).has_value());
  EXPECT_EQ(*base::read_file(file), noise);
  EXPECT_EQ(runs, 2 + (noise.size() + 36863) / 36864) << "sent as it is";
}

// A link is made by the channel's script once: checking first makes nothing, a second call
// finds it there, and a link to elsewhere is mended.
TEST(ExecGuest, MakesALinkOnce) {
  TempDir dir;
  auto guest = exec_guest(base::local_runner(), "local sh");
  const std::string link = (dir.path() / "sites enabled/site").string();
  EXPECT_EQ(guest->link(link, "/etc/site's target", true).value(), true);
  EXPECT_FALSE(fs::is_symlink(link));
  EXPECT_EQ(guest->link(link, "/etc/site's target").value(), true);
  EXPECT_EQ(fs::read_symlink(link), fs::path("/etc/site's target"));
  EXPECT_EQ(guest->link(link, "/etc/site's target").value(), false);
  EXPECT_EQ(guest->link(link, "/elsewhere").value(), true);
  EXPECT_EQ(fs::read_symlink(link), fs::path("/elsewhere"));
}

// The files of an exec channel are real files handled by its scripts, here run by the local
// runner: a path with spaces and quotes, content that looks like shell, a key's mode.
TEST(ExecGuest, ReadsWritesAndRemovesFilesThroughCommands) {
  TempDir dir;
  auto guest = exec_guest(base::local_runner(), "test guest");
  fs::path file = dir.path() / "etc/it's here/$(echo no).conf";
  auto missing = guest->read_file(file.string());
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().kind(), base::ErrorKind::kNotFound);
  EXPECT_EQ(missing.error().message(), file.string() + " does not exist in test guest");

  FileSpec key = own_file(0600);
  const std::string content = "a: 'b'\n$(echo no) `x` \"$1\"\n";
  ASSERT_TRUE(guest->write_file(file.string(), content, key).has_value());
  EXPECT_EQ(*base::read_file(file), content);
  EXPECT_EQ(*guest->read_file(file.string()), content);
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_FALSE(fs::exists(file.string() + ".phoenix-tmp"));

  key.mode = 0644;
  ASSERT_TRUE(guest->write_file(file.string(), "", key).has_value());
  EXPECT_EQ(*guest->read_file(file.string()), "");
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);

  ASSERT_TRUE(guest->remove_file(file.string()).has_value());
  EXPECT_FALSE(fs::exists(file));
  EXPECT_TRUE(guest->remove_file(file.string()).has_value()) << "a missing file is not an error";
}

TEST(ExecGuest, AFailedWriteLeavesTheOldFileAndNoTemporary) {
  TempDir dir;
  auto guest = exec_guest(base::local_runner(), "test guest");
  fs::path file = dir.path() / "site.conf";
  FileSpec spec = own_file();
  ASSERT_TRUE(guest->write_file(file.string(), "old\n", spec).has_value());
  spec.owner = "phoenix-no-such-user";
  auto r = guest->write_file(file.string(), "new\n", spec);
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(r.error().message().starts_with("writing " + file.string() +
                                              " in test guest failed (exit 1): "))
      << r.error().message();
  EXPECT_NE(r.error().message().find("phoenix-no-such-user"), std::string::npos);
  EXPECT_EQ(*base::read_file(file), "old\n");
  EXPECT_FALSE(fs::exists(file.string() + ".phoenix-tmp"));
}

TEST(ExecGuest, RunsArgumentVectorsWithInput) {
  auto guest = exec_guest(base::local_runner(), "test guest");
  auto r =
      guest->run({"sh", "-c", "cat; printf '%s|' \"$@\"; exit 4", "sh", "a b", "$HOME"}, "in\n");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->exit_code, 4);
  EXPECT_EQ(r->out, "in\na b|$HOME|");
}

// `pct exec <vmid> -- argv` on the node: a stand-in pct checks the verb, the id and the "--",
// then runs the rest here as the container would.
constexpr const char* kPct =
    "#!/bin/sh\n"
    "[ \"$1\" = exec ] || exit 90\n"
    "[ \"$2\" = 801 ] || { echo \"CT $2 does not exist\" >&2; exit 2; }\n"
    "[ \"$3\" = -- ] || exit 92\n"
    "shift 3\n"
    "exec \"$@\"\n";

TEST(PctGuest, RunsEverythingThroughPctExecOnTheNode) {
  TempDir dir;
  StandIn pct(dir.path() / "bin", "pct", kPct);
  auto guest = pct_guest(base::local_runner(), 801, "local");
  EXPECT_EQ(guest->describe(), "LXC 801 through pct (local)");
  fs::path file = dir.path() / "etc/vllm/vllm.env";
  FileSpec spec = own_file(0640);
  ASSERT_TRUE(guest->write_file(file.string(), "A=1\n", spec).has_value());
  EXPECT_EQ(*guest->read_file(file.string()), "A=1\n");
  auto r = guest->run({"printf", "%s", "x y"}, {});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->out, "x y");

  auto other = pct_guest(base::local_runner(), 802, "local");
  auto err = other->read_file(file.string());
  ASSERT_FALSE(err.has_value());
  EXPECT_EQ(err.error().message(), "reading " + file.string() +
                                       " in LXC 802 through pct (local) failed (exit 2): CT 802 "
                                       "does not exist");
}

// Over SSH to the node: a stand-in ssh checks its options, then hands the one remote command line
// to sh as sshd would; the argument vector must arrive intact, quotes and all.
TEST(PctGuest, ThroughSshTheArgumentsArriveIntact) {
  TempDir dir;
  StandIn ssh(dir.path() / "bin", "ssh",
              "#!/bin/sh\n"
              "[ \"$1 $2 $3 $4\" = \"-o BatchMode=yes -o StrictHostKeyChecking=yes\" ] || exit 90\n"
              "[ \"$5\" = -- ] || exit 91\n"
              "[ \"$6\" = root@node ] || { echo 'ssh: connect: refused' >&2; exit 255; }\n"
              "exec sh -c \"$7\"\n");
  StandIn pct(dir.path() / "bin", "pct", kPct);
  auto guest = pct_guest(base::ssh_runner("root@node"), 801, "ssh root@node");
  fs::path file = dir.path() / "it's a \"file\" $(x).conf";
  FileSpec spec = own_file();
  ASSERT_TRUE(guest->write_file(file.string(), "x='1'\n", spec).has_value());
  EXPECT_EQ(*base::read_file(file), "x='1'\n");
  EXPECT_EQ(*guest->read_file(file.string()), "x='1'\n");
  auto r = guest->run({"printf", "%s|", "a 'b'", "$HOME", ";", "`id`"}, {});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->out, "a 'b'|$HOME|;|`id`|");

  auto down = pct_guest(base::ssh_runner("root@gone"), 801, "ssh root@gone");
  auto err = down->run({"true"}, {});
  ASSERT_FALSE(err.has_value());
  EXPECT_EQ(err.error().kind(), base::ErrorKind::kTransient);
  EXPECT_EQ(err.error().message(), "ssh root@gone failed: ssh: connect: refused");
}

}  // namespace
}  // namespace phoenix::guest
