// Launcher: how `sluice serve` starts runs. The server records the run
// (so it can answer with its id, and refuse bad params with 400), then a
// child process `sluice resume <id>` drives it, exactly as `sluice run`
// would; `retry` is a child `sluice retry <id>`. A run's driver output goes
// to <home>/logs/<id>/driver.log. The server itself writes only short
// transactions to the store; each run has one writer, its driver.
//
// Caps: at most `max_active_runs` drivers at once, and at most a pipeline's
// own `max_active_runs` for its runs (counted by pipeline name, over the
// drivers this launcher started; `sluice run` from a shell is not counted).
// A run or retry beyond a cap is recorded in state queued and started, first
// in first out, when a driver exits; a pipeline whose cap holds its runs
// back does not hold back other pipelines' runs. Queued runs stay queued in
// the store when the server stops; Restore() queues them again, by id.
//
// When a driver exits and its run is still pending or running (it could not
// load a plugin, say), the run is marked failed (runs::RunVerbs::
// FailAbandoned: the decisions about a run are the run verbs', here as in
// the CLI). Stop() asks every driver to cancel (SIGTERM, as Ctrl-C does) and
// waits for them; it starts nothing more.
//
// Thread-safe: the API's threads, the scheduler and the launcher's own
// reaper thread call it; each passes the RunsStore of its own connection.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "spec/pipeline.h"
#include "store/runs.h"

namespace sluice::server {

class Launcher {
 public:
  static constexpr int kDefaultMaxActiveRuns = 16;

  // `home` is the state folder (absolute); `program` the sluice executable.
  Launcher(std::string home, std::string program, int max_active_runs = kDefaultMaxActiveRuns);
  ~Launcher();

  // Queues the runs the store holds in state queued (after a restart), in
  // id order, and starts what the caps allow.
  Status Restore(store::RunsStore& runs);
  // Records a run of `p` with `params` and starts its driver, or queues it
  // (state queued) when a cap is reached. `interval`: the data interval of a
  // run a schedule or backfill starts.
  Result<int64_t> Start(store::RunsStore& runs, const spec::Pipeline& p, const spec::ParamValues& params,
                        const std::string& trigger, const std::optional<engine::DataInterval>& interval = std::nullopt);
  // Starts `sluice retry <id>` for a finished run (the caller asked
  // runs::CanRetry: it failed or was cancelled), or queues the retry; true
  // if queued.
  // `pipeline_cap` is the run's spec's max_active_runs.
  Result<bool> Retry(store::RunsStore& runs, const store::RunRow& run, int pipeline_cap);
  // A queued run was cancelled (runs::RunVerbs::Cancel): it leaves the
  // queue, and runs it held back start if the caps allow.
  void Forget(store::RunsStore& runs, int64_t run_id);
  // Cancels every driver still running and waits up to `grace` for them.
  void Stop(std::chrono::milliseconds grace);
  // The state folder.
  const std::string& home() const { return home_; }
  // The driver log of a run started here.
  std::string DriverLog(int64_t run_id) const;

 private:
  struct Child {
    int64_t run_id = 0;
    std::string pipeline;
  };
  struct Queued {
    int64_t run_id = 0;
    std::string pipeline;
    int cap = 0;         // the pipeline's max_active_runs; 0: none
    bool retry = false;  // `sluice retry`, not `sluice resume`
  };

  // REQUIRES: mu_ is held.
  bool HasRoomLocked(const std::string& pipeline, int cap) const;
  Status SpawnLocked(int64_t run_id, const std::string& pipeline, const std::vector<std::string>& args);
  // Starts queued runs, oldest first, while the caps allow. False if the
  // store failed (try again later).
  bool DispatchLocked(store::RunsStore& runs);
  void Reap();

  std::string home_, program_;
  int max_active_runs_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, Child> children_;  // pid -> what it drives
  std::deque<Queued> queue_;
  bool dispatch_again_ = false;    // a dispatch met a store error
  bool stopping_ = false;
  std::thread reaper_;
};

}  // namespace sluice::server
