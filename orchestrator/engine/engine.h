// Engine: drives one run of a pipeline to its end: the builder, as ninja's
// Builder is to its Plan.
//
// Event-driven: it starts every ready unit it has slots for, waits for the
// executor to report an end (or for a timer: retry backoff, timeout, kill
// escalation, cancel poll), and a finished step wakes only its own
// dependants. Nothing rescans all steps.
//
// What it leaves to others: the DAG's changing state (records, what can be
// decided, what is ready) is a RunGraph (run_graph.h); an attempt's request
// (paths, placement, environment) and what expressions see come from
// attempt_render.h; the cache key from fingerprint.h; what a step's `if` and
// `foreach` decide, whether it runs during a cancel, a retry's delay and the
// run's final state from decide.h; what an ended attempt comes to (state,
// reason, outputs, secrets masked, declared outputs published, models
// registered) and whether a cache entry may be reused from attempt_end.h.
// What it keeps: acting on each decision (skip, fail, expand, retry,
// cancel), attempts and their ends, slot accounting (SlotsFor, MarkRunning,
// OnExit), timers, and the order of every store write.
//
// Every transition goes to the RunStore before the engine acts on it, so a
// run can be resumed from the store after the orchestrator dies.
//
// The world reaches it only through interfaces: Executor, RunStore, Clock,
// Env (environment variables and files; FileSystem for the fingerprint),
// ArtifactPublisher, Observer; tests give fakes for all (tests/common/).
// The engine owns none of its collaborators (it makes a RealEnv when given
// none). One thread runs Run(); RequestCancel() may be called from any
// thread or a signal handler.
#pragma once

#include <atomic>
#include <deque>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "engine/attempt_render.h"
#include "engine/decide.h"
#include "engine/env.h"
#include "engine/executor.h"
#include "engine/plan.h"
#include "engine/run_graph.h"
#include "engine/run_store.h"
#include "engine/types.h"

namespace sluice::engine {


struct EngineOptions {
  int jobs = 2;                               // slots; an attempt takes Executor::Slots of them
  std::chrono::milliseconds grace{10000};     // SIGTERM -> SIGKILL
  std::chrono::milliseconds cancel_poll{250}; // how often to look for `sluice cancel`
  uint64_t seed = 0;                          // for backoff jitter
  std::string workdir;                        // absolute; where steps run (the spec's folder)
  std::string log_dir;                        // absolute; <log_dir>/<step>[.<item>].<n>.log
  std::vector<std::string> base_env;          // "K=V" entries every step starts from
  ArtifactPublisher* artifacts = nullptr;     // where declared outputs are published
  bool use_cache = true;                      // false: `sluice run --no-cache`
  Env* env = nullptr;                         // the process environment and files; null: a RealEnv
  FileSystem* files = nullptr;                // how fingerprints read deps; null: `env`
  // `resume`: attempts left running on a cluster; the executor follows them
  // instead of their steps running again.
  std::vector<AttemptRecord> adopt;
  // When the run first started (wall ms; `resume` gives the stored start),
  // from which the pipeline's `timeout:` counts. 0: now.
  int64_t started_ms = 0;
  // A run a schedule or backfill started: its data interval, which
  // `${{ run.scheduled_time }}` and `run.interval_*` read.
  std::optional<DataInterval> interval;
};

// Something the CLI shows or logs. One per transition.
struct Event {
  // kReady: a service's readiness check passed (message: where it listens).
  enum class Kind { kStarted, kFinished, kRetrying, kSkipped, kCancelling, kRunFinished, kWarning, kReady };
  Kind kind;
  std::string step;          // empty for run events
  int item = -1;
  int attempt = 0;
  int64_t attempt_id = 0;    // the attempt's row id, for kStarted
  StepState state = StepState::kPending;
  RunState run_state = RunState::kRunning;
  std::string message;       // reason, retry delay, ...
  int64_t pid = 0;
  std::string job_id;        // kStarted on a cluster: "slurm:1234"
};

class Observer {
 public:
  virtual ~Observer() = default;
  virtual void OnEvent(const Event& e) = 0;
  // The engine is about to wait for something to happen: a good moment to
  // write out what OnEvent() buffered.
  virtual void Idle() {}
};

class Engine {
 public:
  // A step whose attempts were lost this many times in a row (each time the
  // orchestrator died while it ran) fails instead of running again.
  static constexpr int kMaxLostInARow = 3;

  // `resume` holds the step records of an interrupted run (empty for a new
  // one); records of finished steps are kept, the rest run again.
  Engine(const Plan& plan, const spec::ParamValues& params, int64_t run_id, RunStore* store, Executor* executor,
         Clock* clock, Observer* observer, EngineOptions options, std::vector<StepRecord> resume = {});
  ~Engine();

  // Runs until every step is final. Returns the run's final state, or a
  // Status if the store failed (the run is then left running in the store,
  // for `sluice resume`).
  Result<RunState> Run();

  // Cancels the run: queued steps are cancelled, running ones get SIGTERM
  // and, after the grace period, SIGKILL; `hard` sends SIGKILL at once.
  // Async-signal-safe.
  void RequestCancel(bool hard);

  // Why the run ended as it did when no step's failure says it: "the run's
  // timeout of 2h passed" (also on the kRunFinished event). Empty otherwise.
  std::string EndReason() const;

  // Waiting steps, queued steps and running attempts, for progress displays.
  struct Counts { int total = 0, finished = 0, running = 0, failed = 0; };
  Counts counts() const;

 private:
  struct Unit;
  struct Timer {
    TimePoint at;
    // kProbe: check a service's readiness; kReady: its ready timeout.
    enum class Kind { kRetry, kTimeout, kKill, kCancelPoll, kDeadline, kProbe, kReady } kind;
    size_t unit;
    uint64_t generation;
    bool operator>(const Timer& o) const { return at > o.at; }
  };

  Status Restore();
  Status Decide(size_t node);
  Status Expand(size_t node, const spec::List* items);
  Status StartReady();
  // Renders the unit's next attempt and records it (not yet committed);
  // leaves `req` empty when the attempt failed before it could start.
  Status PrepareUnit(size_t unit, std::optional<AttemptRequest>* req);
  Status LaunchUnit(size_t unit, Result<Started> started);
  // The unit's recorded attempt could not start, for `reason`: it failed,
  // ended at `finished_ms`, and is retried as its policy says.
  Status StartFailed(size_t unit, const std::string& reason, int64_t finished_ms);
  Status FailBeforeStart(size_t unit, const std::string& reason, bool retryable);
  // The unit's attempt failed as `failed` says: retried if its retry limit,
  // its retry.on and the run's state allow, else final.
  // Counts a new attempt of the unit and fills in its record (not yet stored).
  void NewAttempt(size_t unit);
  bool AdoptUnit(size_t unit);
  void MarkRunning(size_t unit);
  Status OnExit(const AttemptExit& exit);
  Status AfterFailure(size_t unit, const FailedAttempt& failed);
  Status ReuseCached(size_t unit, const CachedResult& hit, const std::string& fingerprint, const std::string& identity,
                     const std::vector<LineageEdge>& inputs);
  // Records the unit's last attempt as its final state and finishes it.
  // `lineage`: the attempt's edges, saved once it has its id (a cache hit's
  // attempt is not begun: it is written here, once, ended).
  Status EndUnit(size_t unit, StepState state, const std::vector<LineageEdge>* lineage = nullptr);
  // The unit is final: with fail_fast and a failed unit, cancels the
  // step's items not started; lets a held item in (max_parallel); finishes
  // the step if it was its last unit.
  Status FinishUnit(size_t unit);
  // A unit, or a step without units, ended: commits every kEndsPerCommit.
  Status CountEnd();
  Status FinishNode(size_t node);
  // Queues the unit to start, or holds it back while its step has
  // max_parallel items in flight (queued, running or waiting to retry).
  void Enqueue(size_t unit);
  // Ends a foreach item that never started (its `if`, fail_fast): records
  // `state` and `reason`, tells the observer, finishes the unit.
  Status EndItemUnstarted(size_t unit, StepState state, const std::string& reason);
  // An item of a step of a call with foreach whose item needs' item is
  // final: ends it (cancel, run timeout, its `if`, a failed item upstream)
  // or queues it.
  Status StartItem(size_t unit);
  // Stops (engine_stops.cc): a cancel, the run's timeout, the timers.
  Status FireTimers();
  // True if a timer is due: a long stretch of work that never waits stops
  // to fire it.
  bool TimerDue();
  Status BeginCancel(bool hard);
  // The pipeline's `timeout:` passed: the steps of `steps:` stop (running
  // ones as a cancel stops them, the others do not start) and the run will
  // end failed; finally steps still run. Nothing if those steps are all final.
  Status BeginRunTimeout();
  // Arms the run's deadline from options_.started_ms, or begins the timeout
  // at once if it has passed (a resume after it).
  Status ArmDeadline();
  bool RunsDuringCancel(size_t node) const;
  // Takes the queued units, and the foreach items held back by
  // max_parallel, of the steps `keep` does not keep: they will not start.
  std::vector<size_t> TakeUnstarted(const std::function<bool(size_t node)>& keep);
  // Records each unit final as `state` with `reason`, and finishes it.
  Status EndUnits(const std::vector<size_t>& units, StepState state, const std::string& reason);
  // SIGTERM to the attempt's process group, SIGKILL after the grace period.
  void StopGently(int64_t attempt_id, size_t unit);
  void Emit(Event e);
  TimePoint NextDeadline() const;
  // Pools (engine_pools.cc). A unit of a step with `pool:` leases its
  // slots before its attempt is rendered, once it has its `jobs` slots; a
  // full pool puts it in pool_waiting_, holding no slot of either kind,
  // asked again every cancel_poll. The lease ends with the attempt.
  enum class PoolTurn { kGo, kWait, kEnded };  // kEnded: failed before it started
  Result<PoolTurn> TakePool(size_t unit);
  // Gives back the unit's lease, if it holds one.
  Status ReleasePool(size_t unit);
  // A cancel or the run's timeout: waiting units go back to the ready
  // queue, which those drop as they drop queued units.
  void RequeuePoolWaiting();
  // Services (engine_services.cc; specs/pipeline.md "Services"). A
  // service unit holds no `jobs` slot. Its attempt gets a port before it is
  // rendered; once running it is checked every kServiceProbeInterval until
  // ready (its dependants are then let in, as if it had finished) or its
  // ready timeout passes (it is stopped and fails). Once every step that
  // needs it is final it is stopped and ends succeeded.
  // Picks the port of the unit's next attempt (FailBeforeStart if none).
  Status PickServicePort(size_t unit, bool* failed);
  void ArmService(size_t unit);
  Status ProbeService(size_t unit);
  // Its ready timeout: a tcp or http check is made once more (passing at
  // the timeout counts), else it is stopped and will fail.
  Status ServiceDeadline(size_t unit);
  Status OnProbeExit(const AttemptExit& exit);
  Status ServiceReady(size_t unit);
  // Stops the services step `node` needs whose dependants are all final.
  Status StopServedServices(size_t node);
  Status StopService(size_t unit);
  // Ends a service's attempt that exited (OnExit did the bookkeeping).
  Status EndServiceAttempt(size_t unit, const AttemptExit& exit);
  // The service `node` failed after its dependants were let in: those not
  // started yet (queued, waiting for a pool or held back) are skipped.
  Status SkipServiceDependants(size_t node);
  // Whether every step that needs `node` is final.
  bool DependantsFinal(size_t node) const;
  // How many of the `jobs` slots an attempt of `s` takes: the executor's
  // Slots(), asked before the attempt is rendered, at most all of them.
  int SlotsFor(const spec::Step& s) const;

  const Plan& plan_;
  const spec::ParamValues& params_;
  int64_t run_id_;
  RunStore* store_;
  Executor* executor_;
  Clock* clock_;
  Observer* observer_;
  EngineOptions options_;
  std::unique_ptr<Env> own_env_;  // when options_.env is null
  Env* env_;
  FileSystem* files_;             // options_.files, or env_
  AttemptRenderer renderer_;      // files, placement and environment of attempts
  RunScope scope_;                // what expressions see: params, env, the graph's records

  RunGraph graph_;                // the DAG's changing state: records, what to decide, what is ready
  std::deque<Unit> units_;        // by the graph's unit index: what runs them
  std::map<int64_t, size_t> running_;   // attempt id -> unit
  // max_parallel: per step, its units in flight and those held back, in item order.
  std::map<size_t, int> in_flight_;
  std::map<size_t, std::deque<size_t>> held_;
  std::map<int64_t, size_t> probes_;  // a service's `run` check in flight (negative id) -> unit
  int64_t next_probe_id_ = -1;
  std::deque<size_t> pool_waiting_;  // units waiting for a pool slot, in the order they began to wait
  TimePoint next_pool_try_{};        // pool_waiting_ is asked again from then
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;
  int free_slots_;
  // Units finished since the main loop last committed. A stretch of units
  // that end without running (cache hits, skips, failures before a start)
  // is committed every kEndsPerCommit of them, not as one transaction of the
  // whole stretch: that would hold the store's write lock (`sluice cancel`
  // waits for it) and outgrow SQLite's page cache on a long stretch.
  static constexpr int kEndsPerCommit = 200;
  int ends_uncommitted_ = 0;
  bool cancelling_ = false;
  bool hard_cancel_ = false;
  bool timed_out_ = false;         // the pipeline's timeout passed
  bool deadline_pending_ = false;  // its timer is in timers_
  std::atomic<int> cancel_request_{0};  // 1: cancel, 2: cancel now
  std::mt19937_64 rng_;
  std::vector<StepRecord> resume_;  // handed to graph_ by Restore()
};

}  // namespace sluice::engine
