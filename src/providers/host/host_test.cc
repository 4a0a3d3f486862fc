#include "providers/host/host.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "base/fs.h"
#include "base/process.h"
#include "fakes/temp_dir.h"

namespace phoenix::host {
namespace {

namespace fs = std::filesystem;

using fakes::TempDir;

TEST(Process, RunsAnArgumentVectorWithoutAShell) {
  auto r = base::run_process({"printf", "%s|", "a b", "$HOME", "'q'"});
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->out, "a b|$HOME|'q'|");
}

TEST(Process, FeedsInputAndReportsExitCodeAndStderr) {
  auto r = base::run_process({"sh", "-c", "cat; echo oops >&2; exit 3"}, "hello\n");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "hello\n");
  EXPECT_EQ(r->err, "oops\n");
}

TEST(Process, MissingProgramAndDeadline) {
  auto missing = base::run_process({"phoenix-no-such-program"});
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().kind(), base::ErrorKind::kNotFound);
  auto slow = base::run_process({"sleep", "5"}, "", std::chrono::milliseconds(200));
  ASSERT_FALSE(slow.has_value());
  EXPECT_EQ(slow.error().kind(), base::ErrorKind::kTimeout);
}

TEST(HostChannel, LocalReadsAndWritesBelowItsRoot) {
  TempDir root;
  auto host = local_host(root.path().string());
  auto missing = host->read_file("/etc/pve/lxc/101.conf");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().kind(), base::ErrorKind::kNotFound);
  fs::create_directories(root.path() / "etc/pve/lxc");
  ASSERT_TRUE(host->write_file("/etc/pve/lxc/101.conf", "hostname: a\n").has_value());
  EXPECT_EQ(*base::read_file(root.path() / "etc/pve/lxc/101.conf"), "hostname: a\n");
  EXPECT_EQ(*host->read_file("/etc/pve/lxc/101.conf"), "hostname: a\n");
  EXPECT_NE(host->describe().find(root.path().string()), std::string::npos);
}

TEST(HostChannel, ShellQuoting) {
  EXPECT_EQ(base::shell_quote("/etc/pve/lxc/101.conf"), "'/etc/pve/lxc/101.conf'");
  EXPECT_EQ(base::shell_quote("it's; rm -rf /"), "'it'\\''s; rm -rf /'");
}

// The SSH channel through a stand-in `ssh` first in PATH: it checks the options and that the
// destination comes after "--", then runs the remote command with sh, as sshd would.
TEST(HostChannel, SshPassesQuotedCommandsAndContentOnStdin) {
  TempDir dir;
  fs::path bin = dir.path() / "bin";
  fs::create_directories(bin);
  {
    std::ofstream ssh(bin / "ssh");
    ssh << "#!/bin/sh\n"
           "[ \"$1 $2 $3 $4\" = \"-o BatchMode=yes -o StrictHostKeyChecking=yes\" ] || exit 90\n"
           "[ \"$5\" = -- ] || exit 91\n"
           "[ \"$6\" = root@node ] || exit 92\n"
           "exec sh -c \"$7\"\n";
  }
  fs::permissions(bin / "ssh", fs::perms::owner_all);
  std::string old_path = std::getenv("PATH");
  ::setenv("PATH", (bin.string() + ":" + old_path).c_str(), 1);
  auto host = ssh_host("root@node");
  fs::path file = dir.path() / "it's here.conf";
  auto missing = host->read_file(file.string());
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().kind(), base::ErrorKind::kNotFound) << missing.error().message();
  ASSERT_TRUE(host->write_file(file.string(), "a: 'b'\n$(echo no)\n").has_value());
  EXPECT_EQ(*base::read_file(file), "a: 'b'\n$(echo no)\n");
  EXPECT_EQ(*host->read_file(file.string()), "a: 'b'\n$(echo no)\n");
  EXPECT_FALSE(fs::exists(file.string() + ".phoenix-tmp"));
  ::setenv("PATH", old_path.c_str(), 1);
}

}  // namespace
}  // namespace phoenix::host
