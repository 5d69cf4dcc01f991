#include "exec/local_executor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "exec/process.h"

namespace sluice::exec {

LocalExecutor::LocalExecutor() : wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

LocalExecutor::~LocalExecutor() {
  for (auto& [id, c] : children_) {
    ::kill(-c.pid, SIGKILL);
    ::waitpid(c.pid, nullptr, 0);
    if (c.pidfd >= 0) ::close(c.pidfd);
  }
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

Result<engine::Started> LocalExecutor::Start(const engine::AttemptRequest& r) {
  auto pid = Spawn({r.argv, r.env, r.workdir, r.log_path});
  if (!pid.ok()) return pid.status();
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, *pid, 0));
  if (fd >= 0) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  children_[r.attempt_id] = Child{*pid, fd};
  return engine::Started{*pid, ProcessStartTime(*pid)};
}

void LocalExecutor::Stop(int64_t attempt_id, bool hard) {
  auto it = children_.find(attempt_id);
  if (it == children_.end()) return;
  // The whole group: a shell's children get the signal too.
  ::kill(-it->second.pid, hard ? SIGKILL : SIGTERM);
}

void LocalExecutor::Wake() {
  uint64_t one = 1;
  ssize_t n = ::write(wake_fd_, &one, sizeof one);
  (void)n;
}

std::optional<engine::AttemptExit> LocalExecutor::Reap(int64_t attempt_id) {
  Child c = children_.at(attempt_id);
  siginfo_t info{};
  // Has it ended? WNOWAIT leaves the zombie, which keeps the pid and so the
  // process group id from being reused while we kill the group's stragglers.
  if (::waitid(P_PID, c.pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid != c.pid) return std::nullopt;
  ::kill(-c.pid, SIGKILL);
  int status = 0;
  while (::waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (c.pidfd >= 0) ::close(c.pidfd);
  children_.erase(attempt_id);
  engine::AttemptExit e;
  e.attempt_id = attempt_id;
  if (WIFSIGNALED(status)) {
    e.signal = WTERMSIG(status);
    e.exit_code = 128 + e.signal;
  } else {
    e.exit_code = WEXITSTATUS(status);
  }
  return e;
}

std::optional<engine::AttemptExit> LocalExecutor::Wait(engine::TimePoint deadline) {
  std::vector<pollfd> fds;
  std::vector<int64_t> ids;
  bool any_without_fd = false;
  while (true) {
    fds.clear();
    ids.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    for (auto& [id, c] : children_) {
      if (c.pidfd < 0) {
        any_without_fd = true;
        continue;
      }
      fds.push_back({c.pidfd, POLLIN, 0});
      ids.push_back(id);
    }
    if (any_without_fd) {
      for (auto& [id, c] : children_)
        if (c.pidfd < 0)
          if (auto e = Reap(id)) return e;
    }
    auto now = std::chrono::steady_clock::now();
    int timeout_ms = 0;
    if (deadline > now) {
      auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
      timeout_ms = static_cast<int>(std::min<int64_t>(ms, 60000));
    }
    if (any_without_fd) timeout_ms = std::min(timeout_ms, 10);
    int n = ::poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0 && errno != EINTR) return std::nullopt;
    if (n > 0) {
      if (fds[0].revents) {
        uint64_t v;
        ssize_t r = ::read(wake_fd_, &v, sizeof v);
        (void)r;
        return std::nullopt;
      }
      for (size_t i = 1; i < fds.size(); ++i)
        if (fds[i].revents)
          if (auto e = Reap(ids[i - 1])) return e;
    }
    if (n < 0) return std::nullopt;  // EINTR: let the engine look at its flags
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
  }
}

}  // namespace sluice::exec
