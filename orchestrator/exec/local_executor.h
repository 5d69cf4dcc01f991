// LocalExecutor: runs attempts as child processes on this machine.
//
// It is the one reaper of its children: Wait() polls a pidfd per child, the
// children's output pipes and an eventfd for Wake(), so it needs no SIGCHLD
// handler and no thread. A child's stdout and stderr go through one pipe to
// the attempt's log file, which is created when the first byte arrives (on
// some file systems a file creation costs more than starting a process). When
// a child ends, whatever is left of its process group is killed before the
// child is reaped (the zombie keeps the group id from being reused), so a
// step leaves no background process behind.
//
// Plugin steps run on its InProcessRunner or PluginHosts (plugin_runner.h);
// their ends come through the same Wait(). A plugin the catalog read from its
// descriptor (exec/plugin_descriptor.h) has its library loaded here when an
// in-process attempt of it first starts; a library that does not match its
// descriptor fails that attempt. A plugin host loads the library itself.
//
// Slots: an attempt takes resources.cpu slots, but one of a built-in step
// type registered as only waiting (exec/builtin.h: sluice/wait) takes none.
//
// Used from the engine's thread only, except Wake().
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "engine/executor.h"
#include "exec/attempt_log.h"
#include "exec/plugin_catalog.h"
#include "exec/plugin_runner.h"
#include "util/secrets.h"

namespace sluice::exec {

class LocalExecutor : public engine::Executor {
 public:
  // `plugins` (may be null when no step uses one) must outlive the executor.
  explicit LocalExecutor(const PluginCatalog* plugins = nullptr);
  // Where plugin steps' progress() reports go (the CLI's status line).
  void SetProgressSink(ProgressSink sink) { progress_ = std::move(sink); }
  ~LocalExecutor() override;

  Result<engine::Started> Start(const engine::AttemptRequest& request) override;
  void Stop(int64_t attempt_id, bool hard) override;
  std::optional<engine::AttemptExit> Wait(engine::TimePoint deadline) override;
  void Wake() override;
  int Slots(const engine::AttemptRequest& request) override;
  Status CheckStart(const engine::AttemptRequest& request) override;
  nlohmann::json CodeIdentity(const engine::AttemptRequest& request) override;
  nlohmann::json ParamsSchema(const engine::AttemptRequest& request) override;
  // exec/service_check.h.
  Result<int> ServicePort() override;
  bool ServiceReady(const engine::ServiceCheck& check) override;

 private:
  struct Child {
    int pid = -1;
    int pidfd = -1;      // -1 when the kernel has no pidfd_open; then Wait() polls
    int output = -1;     // read end of the output pipe; -1 after EOF
    AttemptLog log;      // the log file, opened on the first write
    SecretMask mask;     // the attempt's secrets, shown as ***
  };
  // The plugin and step type a plugin step's request names; null where the
  // catalog has none (or the request is not a plugin step's).
  std::pair<const PluginInfo*, const StepTypeInfo*> TypeOf(const engine::AttemptRequest& r) const;
  // Moves what the pipe holds into the log; false on EOF (the pipe is closed).
  bool Drain(Child& c);
  std::optional<engine::AttemptExit> Reap(int64_t attempt_id);
  // The program to run for argv[0], looked for on `path` (the request's
  // PATH). Names found on a PATH are remembered for the executor's life (one
  // run): a program installed meanwhile earlier on the PATH is not noticed.
  std::string Resolve(const engine::AttemptRequest& r, const std::string& path);
  // Wait() without forgetting unstartable_.
  std::optional<engine::AttemptExit> WaitForEnd(engine::TimePoint deadline);

  std::map<int64_t, Child> children_;  // by attempt id
  std::map<std::string, std::string> programs_;  // PATH + '\0' + name -> file
  // Why CheckStart() refused (a program not on the PATH, a missing workdir),
  // by PATH, workdir and program: asked again only once an attempt has
  // ended, since what it did may have made what was missing. Until then a
  // thousand steps that cannot start cost one search, not a thousand.
  std::map<std::string, Status> unstartable_;
  std::map<std::string, std::string> library_hashes_;  // plugin library path -> SHA-256 of the file
  std::map<const StepTypeInfo*, nlohmann::json> code_identities_;  // asked once a step type: every attempt asks
  // A described plugin's library (path -> its table), loaded when an
  // in-process attempt of it first starts; never unloaded.
  std::map<std::string, std::shared_ptr<PluginInfo>> libraries_;
  int wake_fd_;
  int null_fd_;                        // /dev/null, every child's stdin
  const PluginCatalog* plugins_;
  ProgressSink progress_;
  InProcessRunner in_process_;
  PluginHosts hosts_;
  std::deque<engine::AttemptExit> ended_;  // reported by the next Wait()
};

}  // namespace sluice::exec
