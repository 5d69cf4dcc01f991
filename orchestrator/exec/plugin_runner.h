// Running plugin steps, for LocalExecutor.
//
// InProcessRunner runs attempts on a pool of worker threads of ours, or on
// the calling thread for a step type declared nonblocking. Cancel
// and timeout set the attempt's cancelled flag; an attempt that ignores it
// past the grace period is reported as abandoned (a thread cannot be killed)
// and its late result is dropped.
//
// PluginHosts runs attempts in `sluice plugin-host` processes: our binary
// again, talking newline-delimited JSON over a socketpair (specs/plugin-abi.md).
// A host serves one attempt at a time and is kept warm for the next attempt
// with the same environment and workdir; a host that crashes fails its attempt
// with the cause and is replaced by a new one when next needed. Hosts leave
// when their socket closes, so they never outlive the orchestrator.
//
// Both are used from the engine's thread only (through LocalExecutor).
#pragma once

#include <poll.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/executor.h"
#include "exec/attempt_log.h"
#include "exec/plugin_catalog.h"
#include "util/secrets.h"

namespace sluice::exec {

// Where a running plugin step's progress() goes: (attempt id, fraction,
// message). Called from any thread; must be thread-safe.
using ProgressSink = std::function<void(int64_t, double, const std::string&)>;

// What one plugin attempt reported. The log file is created on the first line.
struct PluginReport {
  AttemptLog log;
  engine::Outputs outputs;
  std::vector<engine::Metric> metrics;
  std::string failure;
  sluice_status status = SLUICE_STATUS_FAILED;
  SecretMask mask;  // the attempt's secrets, shown as *** in the log, outputs and failure
  // A line the plugin logged.
  void Log(const std::string& line);
  // Raw bytes the host process printed (a secret may be cut across chunks).
  void Output(std::string_view bytes);
  // Appends to the log, opened on the first write.
  void Write(const std::string& text);
  void Close();
  engine::AttemptExit Exit(int64_t attempt_id) const;
};

class InProcessRunner {
 public:
  explicit InProcessRunner(ProgressSink* progress);
  ~InProcessRunner();
  int ready_fd() const { return pool_->event_fd; }  // readable when attempts finished
  void Start(int64_t attempt_id, const StepTypeInfo* type, const engine::AttemptRequest& r);
  void Cancel(int64_t attempt_id);
  // Gives up on an attempt whose thread does not return: it ends now, and
  // what its thread reports from here on goes nowhere.
  std::optional<engine::AttemptExit> Abandon(int64_t attempt_id);
  // One finished attempt, if any.
  std::optional<engine::AttemptExit> TakeFinished();
  bool Has(int64_t attempt_id) const { return running_.count(attempt_id) != 0; }

 private:
  struct Job;
  // What the runner shares with its worker threads. A thread stuck in an
  // abandoned plugin holds it, so it outlives the runner.
  struct Pool {
    Pool();
    ~Pool();
    // Hands a run attempt to TakeFinished. Requires mu.
    void Finished(std::shared_ptr<Job> job);

    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::shared_ptr<Job>> queue;     // GUARDED_BY(mu)
    std::deque<std::shared_ptr<Job>> finished;  // GUARDED_BY(mu)
    int idle = 0;                               // GUARDED_BY(mu)
    bool stopping = false;                      // GUARDED_BY(mu)
    int event_fd;
  };
  static void Work(std::shared_ptr<Pool> pool);
  // Runs the attempt on this thread.
  static void Run(Job* j);

  std::shared_ptr<Pool> pool_;
  std::vector<std::thread> workers_;
  std::map<int64_t, std::shared_ptr<Job>> running_;  // engine thread only
  ProgressSink* progress_;
};

class PluginHosts {
 public:
  PluginHosts(int null_fd, ProgressSink* progress);
  ~PluginHosts();
  // Starts the attempt on an idle host with the same environment and
  // workdir, or a new host. Returns the host's pid.
  Result<int64_t> Start(int64_t attempt_id, const PluginInfo& plugin, const engine::AttemptRequest& r);
  void Cancel(int64_t attempt_id);
  void Kill(int64_t attempt_id);
  bool Has(int64_t attempt_id) const;

  // For poll(): every fd of every host, and what to do when one is ready.
  void AddPollFds(std::vector<pollfd>* fds, std::vector<size_t>* hosts) const;
  // Handles readiness of host `index`'s fds; returns an attempt that ended.
  std::optional<engine::AttemptExit> OnReady(size_t index, short socket_events, short exit_events, short output_events);
  // After OnReady: drops hosts that died while idle.
  void Prune();

 private:
  struct Host;
  std::optional<engine::AttemptExit> Handle(Host& h, const std::string& line);
  std::optional<engine::AttemptExit> Died(Host& h);
  std::vector<std::unique_ptr<Host>> hosts_;
  int null_fd_;
  ProgressSink* progress_;
};

// The plugin-host process: serves run requests from `socket_fd` until it
// closes. Returns the process's exit code.
int PluginHostMain(int socket_fd);

}  // namespace sluice::exec
