// Launcher: how `sluice serve` starts runs. The server records the run
// (so it can answer with its id, and refuse bad params with 400), then a
// child process `sluice resume <id>` drives it, exactly as `sluice run`
// would; `retry` is a child `sluice retry <id>`. A run's driver output goes
// to <home>/logs/<id>/driver.log. The server itself writes only short
// transactions to the store; each run has one writer, its driver.
//
// When a driver exits and its run is still pending or running (it could not
// load a plugin, say), the run is marked failed. Stop() asks every driver to
// cancel (SIGTERM, as Ctrl-C does) and waits for them.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "spec/pipeline.h"
#include "store/store.h"

namespace sluice::server {

class Launcher {
 public:
  // `home` is the state folder (absolute); `program` the sluice executable.
  Launcher(std::string home, std::string program);
  ~Launcher();

  // Records a run of `p` with `params` and starts its driver.
  Result<int64_t> Start(store::Store& store, const spec::Pipeline& p, const spec::ParamValues& params,
                        const std::string& trigger);
  // Starts `sluice retry <id>` (the caller checked that the run has finished).
  Status Retry(int64_t run_id);
  // Cancels every driver still running and waits up to `grace` for them.
  void Stop(std::chrono::milliseconds grace);
  // The driver log of a run started here.
  std::string DriverLog(int64_t run_id) const;

 private:
  Status Spawn(int64_t run_id, const std::vector<std::string>& args);
  void Reap();

  std::string home_, program_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, int64_t> children_;  // pid -> run id
  bool stopping_ = false;
  std::thread reaper_;
};

}  // namespace sluice::server
