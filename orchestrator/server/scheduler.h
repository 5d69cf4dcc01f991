// Scheduler: fires the `on.schedule` entries of the catalog's pipelines.
// The last fire time handled for each (pipeline, "<cron> <timezone>") is in
// the store, so a restart knows what it missed:
//   - a schedule seen for the first time starts counting from now;
//   - on start, fire times missed while no server ran start one run, for
//     the newest (`catchup: true`, the default), one run each (`catchup:
//     all`, at most the newest 1,000) or none (`catchup: false`);
//   - while the server runs, every fire time starts a run, unless the
//     schedule's `overlap` is forbid and a run of the pipeline is active
//     (skipped), or replace (the active runs are cancelled first).
// Each run gets its data interval: from the fire time before to the one it
// is for. Scheduled runs use the params' defaults; a pipeline with a required
// param cannot be scheduled (logged, skipped).
#pragma once

#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "server/catalog.h"
#include "server/launcher.h"
#include "store/access.h"

namespace sluice::server {

class Scheduler {
 public:
  Scheduler(Catalog* catalog, Launcher* launcher, std::string db_path);
  ~Scheduler();

 private:
  void Loop();
  void Tick(store::AccessStore& fires, store::RunsStore& runs, int64_t now_s);
  // The schedule's `overlap` against the pipeline's active runs: true to
  // start the run (allow; none active; replace, once they are cancelled),
  // false to skip the fire (forbid, or a store error), logged either way.
  bool MayFire(store::RunsStore& runs, const spec::Pipeline& p, const spec::Schedule& s, int64_t now_s);
  // Starts a run of `p` for fire time `at` of `s` (Unix seconds), with the
  // data interval from the fire time before it, as `overlap` allows.
  void Fire(store::RunsStore& runs, const spec::Pipeline& p, const spec::Schedule& s, int64_t at, int64_t now_s);

  Catalog* catalog_;
  Launcher* launcher_;
  std::string db_path_;
  std::set<std::string> handled_;  // schedules handled since start
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace sluice::server
