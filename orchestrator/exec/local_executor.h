// LocalExecutor: runs attempts as child processes on this machine.
//
// It is the one reaper of its children: Wait() polls a pidfd per child plus
// an eventfd for Wake(), so it needs no SIGCHLD handler and no thread. When
// a child ends, whatever is left of its process group is killed before the
// child is reaped (the zombie keeps the group id from being reused), so a
// step leaves no background process behind.
//
// Used from the engine's thread only, except Wake().
#pragma once

#include <map>

#include "engine/executor.h"

namespace sluice::exec {

class LocalExecutor : public engine::Executor {
 public:
  LocalExecutor();
  ~LocalExecutor() override;

  Result<engine::Started> Start(const engine::AttemptRequest& request) override;
  void Stop(int64_t attempt_id, bool hard) override;
  std::optional<engine::AttemptExit> Wait(engine::TimePoint deadline) override;
  void Wake() override;

 private:
  struct Child {
    int pid;
    int pidfd;   // -1 when the kernel has no pidfd_open; then Wait() polls
  };
  std::optional<engine::AttemptExit> Reap(int64_t attempt_id);

  std::map<int64_t, Child> children_;  // by attempt id
  int wake_fd_;
};

}  // namespace sluice::exec
