// The reaper (exec/process.h): WaitChild, PollChild and ChildEnded decode
// how a child ended, exit code or signal, and every child's stdin is /dev/null.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "exec/process.h"

namespace sluice::exec {
namespace {

// Spawns `sh -c script`, its output to `output_fd` (or /dev/null).
int SpawnShell(const std::string& script, int output_fd = -1) {
  int null_out = output_fd >= 0 ? -1 : ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  SpawnRequest r{"/bin/sh", {"sh", "-c", script}, {"PATH=/usr/bin:/bin"}, "/", -1, output_fd >= 0 ? output_fd : null_out};
  auto pid = Spawn(r);
  if (null_out >= 0) ::close(null_out);
  EXPECT_TRUE(pid.ok()) << pid.status().message();
  return pid.ok() ? *pid : -1;
}

TEST(ProcessTest, WaitChildGivesTheExitCode) {
  ChildEnd end = WaitChild(SpawnShell("exit 3"));
  EXPECT_EQ(end.code, 3);
  EXPECT_EQ(end.signal, 0);
}

TEST(ProcessTest, WaitChildGivesASignalAs128PlusItsNumber) {
  ChildEnd end = WaitChild(SpawnShell("kill -TERM $$"));
  EXPECT_EQ(end.code, 128 + SIGTERM);
  EXPECT_EQ(end.signal, SIGTERM);
}

TEST(ProcessTest, WaitChildOfAPidThatIsNoChildOfOursGivesMinusOne) {
  int pid = SpawnShell("exit 0");
  WaitChild(pid);
  ChildEnd again = WaitChild(pid);  // reaped already
  EXPECT_EQ(again.code, -1);
  EXPECT_EQ(again.signal, 0);
}

TEST(ProcessTest, PollChildIsEmptyWhileTheChildRunsAndReapsItOnceItEnded) {
  int pid = SpawnShell("exec sleep 30");
  EXPECT_FALSE(PollChild(pid));
  EXPECT_FALSE(ChildEnded(pid));
  ::kill(pid, SIGKILL);
  std::optional<ChildEnd> end;
  for (int i = 0; i < 500 && !end; ++i) {
    if (!ChildEnded(pid)) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    else end = PollChild(pid);
  }
  ASSERT_TRUE(end);
  EXPECT_EQ(end->code, 128 + SIGKILL);
  EXPECT_EQ(end->signal, SIGKILL);
  EXPECT_FALSE(PollChild(pid));  // reaped: no longer ours
}

TEST(ProcessTest, ChildEndedLeavesTheChildForWaitChildToReap) {
  int pid = SpawnShell("exit 7");
  for (int i = 0; i < 500 && !ChildEnded(pid); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(ChildEnded(pid));
  EXPECT_TRUE(ChildEnded(pid));  // asked twice: still there
  EXPECT_EQ(WaitChild(pid).code, 7);
}

TEST(ProcessTest, AChildSpawnedWithoutAStdinReadsDevNull) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  int pid = SpawnShell("readlink /proc/self/fd/0", fds[1]);
  ::close(fds[1]);
  std::string out;
  char buf[256];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  EXPECT_EQ(WaitChild(pid).code, 0);
  EXPECT_EQ(out, "/dev/null\n");
}

TEST(ProcessTest, AChildInheritsNoDescriptorBeyondItsStdioEvenOneWithoutCloseOnExec) {
  // A listening socket of the gateway or of sluice serve, inherited by a
  // replica or a step, would keep its port taken after the server is gone.
  int leaked = ::open("/dev/null", O_RDONLY);  // no O_CLOEXEC
  ASSERT_GE(leaked, 3);
  std::string fd = std::to_string(leaked);
  EXPECT_EQ(WaitChild(SpawnShell("test -e /proc/self/fd/" + fd + " && exit 1; exit 0")).code, 0);
  ::close(leaked);
}

}  // namespace
}  // namespace sluice::exec
