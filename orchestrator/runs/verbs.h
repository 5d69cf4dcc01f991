// Run verbs: what may be done with a stored run, decided once, for the CLI
// (`sluice run`, `resume`, `retry`, `cancel`), the API (start, cancel,
// retry) and `sluice serve`'s launcher alike: which verb applies to a run in
// which state and why not (Refusal), taking a run out of `sluice serve`'s
// queue, which process drives a run and whether it still lives, taking over
// a run whose driver is gone (and killing what is left of its attempts),
// retry's plan (--from, --reload), cancelling, and failing a run its driver
// left unfinished.
//
// Nothing here prints, exits or parses arguments. Errors of the store come
// back as a Status; a verb that does not apply to the run as it is comes
// back as a Refusal (the why, and the facts a message needs), which each
// front end words: the CLI with its command hints, the API as a 409.
// Driving a run (executor, engine, progress) stays with the caller: `sluice
// run`, `resume` and `retry` drive in their own process, `sluice serve`
// starts a child `sluice resume ID` or `sluice retry ID` that does.
//
// Threads: a RunVerbs works on one RunsStore and, like it, is used by one
// thread; the free functions are pure (DriverAlive reads /proc).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/executor.h"
#include "engine/types.h"
#include "spec/pipeline.h"
#include "store/runs.h"

namespace sluice::runs {

// The pipeline and params a stored run was started with (or, after `retry
// --reload`, goes on with).
struct StoredRun {
  store::RunRow row;
  spec::Pipeline pipeline;
  spec::ParamValues params;
};

// Reads run `id` and parses the spec stored with it. NotFound for no such run.
Result<StoredRun> LoadStoredRun(store::RunsStore& runs, int64_t id);

// The run's driver: true if a process other than this one is recorded as
// driving the run and is still that process (pid and start time; a reused
// pid is another process). The one liveness check for every caller.
bool DriverAlive(const store::RunRow& row);
// A run left pending or running by a driver that is gone (kill -9, a
// reboot): shown as interrupted; `sluice resume` finishes it.
bool Interrupted(const store::RunRow& row);

// Why a verb does not apply to a run as it is now.
struct Refusal {
  enum class Why {
    kNone,
    kQueued,          // `sluice serve` queued it behind a cap; it has not started
    kQueuedForRetry,  // `sluice serve` queued a retry of it
    kUnfinished,      // pending or running, and no live process drives it
    kDriven,          // pending or running, and driver_pid, alive, drives it
    kFinished,        // it ended: `state` says how
    kNothingToRetry,  // no failed or cancelled step, and none named or changed
    kNoSuchStep,      // retry --from names a step the spec does not have
  };
  Why why = Why::kNone;
  engine::RunState state = engine::RunState::kPending;  // the run's, when refused
  int64_t driver_pid = 0;                               // kDriven
  std::string hint;                                     // kNoSuchStep: " (did you mean 'x'?)"
  explicit operator bool() const { return why != Why::kNone; }
};

// The rules. Each reads only the row (and, for a run not finished, whether
// its driver lives).
//
// resume: a run not finished whose driver is gone. A run queued as a first
// start is kQueued until RunVerbs::Claim takes it; a queued retry is
// resumed by retry, not here.
Refusal CanResume(const store::RunRow& row);
// retry: a run that ended. A queued retry is kQueuedForRetry until Claim
// takes it. A succeeded run has no failed step to run again, so only a
// retry that names steps (`names_steps`: --from, or --reload's changed
// ones) applies to it.
Refusal CanRetry(const store::RunRow& row, bool names_steps);
// cancel: a run queued (cancelled where it waits) or not finished.
Refusal CanCancel(const store::RunRow& row);

// What `retry` runs again. Steps in `rerun` go back to pending with all
// their items; of the steps in `failed_items`, only the items that did not
// succeed (failed, cancelled, skipped) do.
struct RetryPlan {
  Refusal refused;  // kNothingToRetry, kNoSuchStep
  std::vector<std::string> rerun, failed_items;
  std::vector<std::string> changed;  // --reload: the steps whose definition changed
  size_t steps() const { return rerun.size() + failed_items.size(); }
};
// The roots run again with everything downstream of them: the step `from`
// if given, else the failed and cancelled ones; and the `changed` steps
// (each a step of `p`). Downstream steps and named roots run whole; an
// unnamed failed foreach step runs only its items that did not succeed, and
// so do the steps after it in the same call with foreach.
RetryPlan PlanRetry(const spec::Pipeline& p, const std::vector<engine::StepRecord>& records, const std::string& from,
                    const std::vector<std::string>& changed);
// `retry --reload`: the steps of `now` whose definition (its YAML, without
// positions, keys sorted) differs from the one in `before_text`, the spec
// the run had; every step when env, defaults or secrets changed.
std::vector<std::string> ChangedSteps(const std::string& before_text, const spec::Pipeline& now);

// How the spec file a run was started from compares with the spec stored
// with the run (which resume and retry go on with).
enum class SpecFile { kSame, kChanged, kGone };
SpecFile CompareSpecFile(const store::RunRow& row);

// `retry --reload`, first half: the run's spec file as it is now, checked
// as `sluice run` checks it. Its LoadPipeline error as is (InvalidSpec or
// IoError), or Incompatible when it now names another pipeline.
Result<spec::Pipeline> ReloadSpec(const store::RunRow& row);
// Second half: the run's stored params applied to `p` (params new to it take
// their defaults); errors as ResolveParams', naming `via` ("by run 7").
Result<spec::ParamValues> CarryParams(const store::RunRow& row, const spec::Pipeline& p, const std::string& via);

// What resume hands the engine.
struct Resumption {
  Refusal refused;                               // nothing was changed but a claim
  bool claimed = false;                          // it was queued by `sluice serve`; this call took it
  std::vector<engine::StepRecord> records;
  std::vector<engine::AttemptRecord> adopt;      // cluster jobs left running: followed, not submitted again
};

// What retry hands the engine.
struct RetryStart {
  RetryPlan plan;                             // plan.refused: nothing was changed
  std::vector<engine::StepRecord> records;    // after the reset
};

struct Cancellation {
  Refusal refused;          // kFinished: nothing was changed
  bool was_queued = false;  // it had not started, and is cancelled now
  bool driven = false;      // a live driver was asked to stop; it polls the request
  int64_t driver_pid = 0;   // that driver
};

class RunVerbs {
 public:
  // `home` is the state folder (SLUICE_HOME): leftovers are told by it.
  // `clock` (the system's if null) outlives this object; `runs` too.
  RunVerbs(store::RunsStore& runs, std::string home, engine::Clock* clock = nullptr);

  // Records a run of `p` (its file made absolute; steps run in its folder)
  // with `params`: pending, or queued when `sluice serve` starts it later.
  // `interval`: the data interval of a run a schedule or backfill starts.
  // The run's concurrency group is rendered from `params` (its error is
  // RenderConcurrencyGroup's, InvalidSpec).
  Result<int64_t> Create(const spec::Pipeline& p, const spec::ParamValues& params, int jobs,
                         const std::string& trigger = "cli", bool queued = false,
                         const std::optional<engine::DataInterval>& interval = std::nullopt);
  // Records this process as the run's driver (pid and start time).
  Status BecomeDriver(int64_t run_id);

  // Takes a run out of `sluice serve`'s queue to drive it here: a queued
  // first start becomes pending, a queued retry goes back to the state it
  // had. Reads `row` again; true if this call took it (false: cancelled, or
  // started by someone else, meanwhile).
  Result<bool> Claim(store::RunRow* row);

  // resume: claims a queued first start, checks CanResume, takes the run
  // over (killing what is left of its lost attempts) and loads its steps.
  // `row` is read again after a claim.
  Result<Resumption> Resume(store::RunRow* row);
  // retry, first half: claims a queued retry and checks CanRetry.
  Result<Refusal> CheckRetry(store::RunRow* row, bool names_steps);
  // Second half: plans the retry (PlanRetry; with `reload` the steps whose
  // definition changed run again too, and `reload` and `reload_params`
  // replace the run's spec and params, in the store and in `run`), makes
  // this process the run's driver, resets the steps, takes the run over and
  // loads its steps.
  // REQUIRES: CheckRetry refused nothing.
  Result<RetryStart> Retry(StoredRun* run, const std::string& from, std::optional<spec::Pipeline> reload = std::nullopt,
                           spec::ParamValues reload_params = {});

  // cancel: a queued run is cancelled now; a run not finished gets the
  // cancel request its driver polls (`driven` says whether one lives; if
  // not, CancelUndriven finishes the job).
  Result<Cancellation> Cancel(const store::RunRow& row);
  // A run no live process drives: takes it over, kills what is left of its
  // attempts, and marks its unfinished steps and the run cancelled.
  Status CancelUndriven(int64_t run_id);

  // The cleanup of a run whose driver ended (or never started): if the run
  // is still pending or running and no live driver holds it, it is marked
  // failed; its steps and attempts stay as they were. True if it was marked.
  Result<bool> FailAbandoned(int64_t run_id);

  // Marks the run's attempts left running as lost (cluster jobs stay, for
  // the executor to adopt), clears its cancel request, and returns the lost
  // ones.
  Result<std::vector<engine::AttemptRecord>> TakeOver(int64_t run_id);
  // Kills what is left of `lost` attempts (see verbs.cc for how a leftover
  // is told from a stranger with a reused pid).
  void KillLeftovers(const std::vector<engine::AttemptRecord>& lost) const;

 private:
  int64_t NowMs() { return clock_->WallMs(); }

  store::RunsStore& runs_;
  std::string home_;  // absolute, normalised
  engine::SystemClock system_clock_;
  engine::Clock* clock_;
};

}  // namespace sluice::runs
