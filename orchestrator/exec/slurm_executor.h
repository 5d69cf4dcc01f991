// SlurmExecutor: runs `executor: slurm` attempts as Slurm batch jobs. It is
// given only those (RoutingExecutor sends it the attempts placed on Slurm
// and the local executor the rest); it wraps no other executor.
//
// An attempt becomes: <log base>.request.json (argv, environment, workdir:
// values stay data, never shell text), a two-line batch script that execs
// `sluice exec-step <request>` on the node, and `sbatch --parsable` with the
// step's resources (--cpus-per-task, --mem, --gres=gpu:N) and Slurm settings
// (--partition, --account, --qos, --time, extra arguments). The job's
// output file is the attempt's log. `sluice exec-step` runs the command in
// its own process group, forwards SIGTERM, and writes <log base>.result
// (exit code, signal) when it ends; it never opens the store. A plugin
// step runs on the node in a plugin host (as `isolation: process` does
// locally), and its outputs and metrics travel back in the result file.
//
// A monitor thread looks for result files every 20 ms (a job that wrote a
// clean one has ended), asks `squeue` about the other jobs in flight every
// `poll` (one call for all of them), and reports a job that left the
// pending and running states: COMPLETED or FAILED with the wrapper's exit
// code; TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, PREEMPTED, BOOT_FAIL, DEADLINE or
// CANCELLED (by someone else) as a failed attempt whose reason names Slurm's
// state. Stop() is `scancel` (hard: `--signal=KILL --full`). A job that
// sbatch refuses (an unknown partition, say) fails to start with sbatch's
// own message. Every Slurm command runs with stdin from /dev/null and is
// reaped by WaitChild (process.h).
//
// Slots() is 0: the cluster has its own capacity, so a job waiting in its
// queue holds none of the run's --jobs slots.
//
// Wait() is its own: it blocks on an eventfd that the monitor thread and
// Wake() write. When another executor's Wait() is where the engine blocks
// (RoutingExecutor blocks in the local one's), `on_end` wakes that one.
//
// Threading: as engine::Executor; the monitor thread only queues results,
// writes the eventfd and calls `on_end`.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "engine/executor.h"

namespace sluice::exec {

class SlurmExecutor : public engine::Executor {
 public:
  // `program` is the sluice executable the nodes run (on the shared
  // filesystem); plugin steps find their plugin in `plugin_folders` there.
  // `on_end` (may be empty) is called on the monitor thread each time it
  // queues ends for Wait(); it must be thread-safe and must not block.
  SlurmExecutor(std::string program, std::vector<std::string> plugin_folders, std::function<void()> on_end = {},
                std::chrono::milliseconds poll = std::chrono::milliseconds(500));
  ~SlurmExecutor() override;

  // REQUIRES: request.placement is a Slurm one (RoutingExecutor::Route).
  Result<engine::Started> Start(const engine::AttemptRequest& request) override;
  // Items of one foreach step that start together go as one job array
  // (`sbatch --array`, tasks `<job>_<i>`, each reading its own request).
  std::vector<Result<engine::Started>> StartAll(const std::vector<const engine::AttemptRequest*>& requests) override;
  void Stop(int64_t attempt_id, bool hard) override;
  std::optional<engine::AttemptExit> Wait(engine::TimePoint deadline) override;
  void Wake() override;
  int Slots(const engine::AttemptRequest&) override { return 0; }
  // A job of an attempt that a killed sluice left: followed from here on.
  // NotFound for an attempt that was no Slurm job.
  Status Adopt(const engine::AttemptRecord& attempt) override;

 private:
  struct Job {
    std::string id;           // Slurm's job id
    std::string result_path;  // written by exec-step
    bool stopping = false;
  };
  void Monitor();
  engine::AttemptExit Finish(int64_t attempt_id, const Job& job, const std::string& state);

  std::string program_;
  std::vector<std::string> plugin_folders_;
  std::chrono::milliseconds poll_;
  std::function<void()> on_end_;
  int wake_fd_;                                  // eventfd: an end was queued, or Wake()
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int64_t, Job> jobs_;                  // by attempt id
  std::deque<engine::AttemptExit> ended_;
  bool quit_ = false;
  std::thread monitor_;
};

// `sluice exec-step REQUEST` (or `--array LIST`, for a job array's task):
// what a Slurm job runs. Returns the exit code.
int ExecStepMain(const std::string& path, bool array);

}  // namespace sluice::exec
