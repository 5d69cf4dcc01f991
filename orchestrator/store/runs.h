// RunsStore: runs, their step records, attempts and metrics, and the
// engine's journal (engine::RunStore). The journal's lineage and cache
// calls go to the LineageStore, its model registration to the
// RegistryStore, inside the same batch.
//
// Who uses it: the engine (as engine::RunStore), `sluice run`, `resume`,
// `retry`, `cancel`, `show`, `runs`, `plan` (earlier results), and the
// server's API, launcher and event hub.
//
// Writes that are not journal calls are transactions of their own:
// REQUIRES: no journal batch is open (db.h; checked, an Internal error).
// One object per thread, like its Db.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/run_store.h"
#include "engine/types.h"
#include "store/db.h"

namespace sluice::store {

class ConcurrencyStore;
class LineageStore;
class RegistryStore;

struct RunRow {
  int64_t id = 0;
  std::string pipeline;
  std::string spec_hash;
  std::string spec_path;     // absolute path of the spec file the run was started from
  std::string workdir;       // absolute; where steps run
  std::string params_json;   // {"epochs": 3, ...}
  engine::RunState state = engine::RunState::kPending;
  int jobs = 1;
  int64_t created_ms = 0, started_ms = 0, finished_ms = 0;
  int64_t driver_pid = 0, driver_start = 0;  // the process driving the run (its driver), if any
  bool cancel_requested = false;
  std::string trigger = "cli";  // what started it: cli, api, schedule, webhook
  bool queued_retry = false;    // state queued, for a retry (`sluice retry`) rather than a first start
  std::optional<engine::DataInterval> interval;  // a run a schedule or backfill started: the interval it is for
  std::string group;            // its concurrency group, rendered; empty: none
  bool group_admitted = false;  // it holds its group (while its driver lives)
};

// Which runs ListRuns returns, newest first.
struct RunFilter {
  std::string pipeline;                   // empty: every pipeline
  std::optional<engine::RunState> state;  // none: any state
  int64_t before_id = 0;                  // > 0: only runs with a smaller id (the next page)
  std::string trigger;                    // empty: any trigger (cli, api, schedule, webhook, backfill)
  int64_t since_ms = 0;                   // > 0: only runs created at or after it
  int limit = 50;
};

struct MetricRow {
  std::string step_id;
  int item = -1;
  int attempt = 0;   // the attempt's number
  std::string name;
  double value = 0;
  int64_t index = 0;  // the epoch or batch it was measured at
};

// A step record as written, for readers that follow the writes (the
// server's event hub): which record, its state and attempts, and its place
// in the order of writes.
struct StepChange {
  int64_t run_id = 0;
  std::string step_id;
  int item = -1;
  engine::StepState state = engine::StepState::kPending;
  int attempts = 0;
  int64_t seq = 0;  // steps.seq (specs/store.md, version 13)
};

// `sluice retry --reload`: the spec text and params the run goes on with.
struct RunSpecUpdate {
  std::string spec_text;
  std::string params_json;
};

class RunsStore : public engine::RunStore {
 public:
  // `lineage` and `registry` take the journal's lineage, cache and model
  // calls; all three share `db`, which outlives them.
  RunsStore(Db& db, LineageStore& lineage, RegistryStore& registry, ConcurrencyStore* pools = nullptr)
      : db_(db), lineage_(lineage), registry_(registry), pools_(pools) {}

  // Records a new run in state pending (queued if `queued`: `sluice serve`
  // starts it later) and stores the spec text by hash. `interval`: the data
  // interval of a run a schedule or backfill starts.
  // REQUIRES: no journal batch is open.
  Result<int64_t> CreateRun(const std::string& pipeline, const std::string& spec_text, const std::string& spec_path,
                            const std::string& workdir, const std::string& params_json, int jobs, int64_t now_ms,
                            const std::string& trigger = "cli", bool queued = false,
                            const std::optional<engine::DataInterval>& interval = std::nullopt,
                            const std::string& group = "");
  Result<RunRow> GetRun(int64_t id);
  // The newest runs first.
  Result<std::vector<RunRow>> ListRuns(int limit);
  Result<std::vector<RunRow>> ListRuns(const RunFilter& filter);
  Result<std::string> SpecText(const std::string& hash);
  // The step ids of the spec run `run_id` goes on with, in its plan's order,
  // kept with the spec (once: the same text has the same plan).
  Status SaveStepOrder(int64_t run_id, const std::vector<std::string>& step_ids);
  // What SaveStepOrder kept for the spec; empty when nothing was (a spec
  // stored before schema version 19).
  Result<std::vector<std::string>> StepOrder(const std::string& spec_hash);
  Result<std::vector<engine::StepRecord>> LoadSteps(int64_t run_id);
  // Every attempt of the run, oldest first.
  Result<std::vector<engine::AttemptRecord>> ListAttempts(int64_t run_id);
  // The attempts of one step (or foreach item) of a run, by number.
  Result<std::vector<engine::AttemptRecord>> StepAttempts(int64_t run_id, const std::string& step, int item);
  // The newest attempt of `step` (and `item`) in a run.
  Result<engine::AttemptRecord> LatestAttempt(int64_t run_id, const std::string& step, int item);
  // The step records of any run written after the one with `seq`, in the
  // order written; a record written twice since is read once, as it is now.
  // With LastStepSeq() as the first `seq`, a reader sees every write after
  // that read, once: a commit's records get larger seqs than any committed
  // before it.
  Result<std::vector<StepChange>> StepsWrittenAfter(int64_t seq);
  // The seq of the last step record written (0 for none).
  Result<int64_t> LastStepSeq();
  // The last succeeded or cached attempt of the step (or foreach item) in
  // the newest run of the pipeline that has one, if any: what `sluice plan`
  // compares a step's identity with. Its identity, fingerprint, run and
  // finish time are set. Runs are walked newest first and the walk stops at
  // the first that has one, so the cost is not the pipeline's history.
  Result<std::optional<engine::AttemptRecord>> LatestResult(const std::string& pipeline, const std::string& step,
                                                            int item);
  // Every metric of the run's attempts, in the order they were saved.
  Result<std::vector<MetricRow>> ListMetrics(int64_t run_id);
  // The metrics of one attempt (by its row id), in the order they were saved.
  Result<std::vector<MetricRow>> ListAttemptMetrics(int64_t attempt_id);
  // The run's outputs in the spec's order; none until its driver has
  // rendered them at its end, nor after a retry resets it (store/run_outputs.cc).
  Result<std::vector<engine::RunOutputValue>> RunOutputs(int64_t run_id);

  // REQUIRES (all below): no journal batch is open.
  Status SetDriver(int64_t run_id, int64_t pid, int64_t pid_start);
  // Marks the run failed if it is still pending or running and its driver
  // is still the one given (a driver that started meanwhile keeps it).
  // True if it was marked.
  Result<bool> FailIfDrivenBy(int64_t run_id, int64_t pid, int64_t pid_start, int64_t at_ms);
  Status RequestCancel(int64_t run_id);
  // Marks attempts left running as lost and returns them (to kill what is
  // left of their processes); attempts running as cluster jobs (a job_id)
  // stay running, for the executor to adopt. Clears the cancel request.
  Result<std::vector<engine::AttemptRecord>> TakeOverRun(int64_t run_id, int64_t now_ms);
  // For `sluice retry`: the steps in `rerun` go back to pending with all
  // their items (they run from scratch, a foreach list is evaluated again);
  // the failed or cancelled items of the steps in `failed_items` go back to
  // pending, their succeeded items are kept. Every reset record gets a fresh
  // retry budget. The run goes back to pending.
  // With `reload`, the run's spec and params are replaced in the same
  // transaction (the spec text is stored by hash like CreateRun's).
  Status ResetSteps(int64_t run_id, const std::vector<std::string>& rerun, const std::vector<std::string>& failed_items,
                    const RunSpecUpdate* reload = nullptr);

  // The runs of `pipeline` a schedule or backfill started for a fire time
  // from `from_ms` to `to_ms` (both included), by fire time, then id.
  Result<std::vector<RunRow>> ScheduledRuns(const std::string& pipeline, int64_t from_ms, int64_t to_ms);
  // Runs `sluice serve` queued (state queued), oldest first.
  Result<std::vector<RunRow>> QueuedRuns();
  // Queues a retry of a failed or cancelled run; false if it is in another
  // state. REQUIRES: no journal batch is open.
  Result<bool> QueueRetry(int64_t run_id);
  // Takes a run out of the queue: a new run becomes pending, a queued retry
  // goes back to the state it had. False if it was not queued (cancelled,
  // or started by `sluice resume`, meanwhile).
  // REQUIRES: no journal batch is open.
  Result<bool> StartQueued(int64_t run_id);
  // Cancels a queued run without starting it; false if it was not queued.
  // REQUIRES: no journal batch is open.
  Result<bool> CancelQueued(int64_t run_id, int64_t now_ms);

  // engine::RunStore: the journal. Writes join the batch (opening it) until
  // Flush(). The pids AttemptStarted() hands over are written when the next
  // batch opens.
  Status SaveSteps(int64_t run_id, const std::vector<const engine::StepRecord*>& steps) override;
  Status BeginAttempt(engine::AttemptRecord* attempt, const engine::StepRecord& step) override;
  Status AttemptStarted(const engine::AttemptRecord& attempt) override;
  Status FinishAttempt(engine::AttemptRecord* attempt, const engine::StepRecord& step) override;
  Status SaveMetrics(const engine::AttemptRecord& attempt, const std::vector<engine::Metric>& metrics) override;
  // LineageStore::SaveLineage, in the batch.
  Status SaveLineage(const engine::AttemptRecord& attempt, const std::vector<engine::LineageEdge>& edges) override;
  // RegistryStore::RegisterModel, in the batch.
  Result<int> RegisterModel(const std::string& name, const std::string& artifact, int64_t run_id,
                            const std::string& step_id, int64_t attempt_id, int64_t now_ms) override;
  // LineageStore::FindCached.
  Result<std::optional<engine::CachedResult>> FindCached(const std::string& fingerprint) override;
  Status SetRunState(int64_t run_id, engine::RunState state, int64_t at_ms) override;
  // store/run_outputs.cc.
  Status SaveRunOutputs(int64_t run_id, const std::vector<engine::RunOutputValue>& outputs) override;
  Result<bool> CancelRequested(int64_t run_id) override;
  Result<int> LostInARow(int64_t run_id, const std::string& step_id, int item) override;
  // ConcurrencyStore::Lease and Release, in the batch (no pools: leased).
  Result<engine::PoolLease> LeasePool(int64_t run_id, const std::string& step_id, int item, const std::string& pool,
                                      int slots) override;
  Status ReleasePool(int64_t run_id, const std::string& step_id, int item) override;
  Status Flush() override;

 private:
  Status Join();  // opens the batch if none is open, with the pending pids
  Status SaveStep(int64_t run_id, const engine::StepRecord& r);
  Status UpdateStep(int64_t run_id, const engine::StepRecord& r);

  Db& db_;
  LineageStore& lineage_;
  RegistryStore& registry_;
  ConcurrencyStore* pools_;
  std::vector<std::pair<int64_t, int64_t>> pending_pids_;  // attempt id, pid: written with the next batch
};

}  // namespace sluice::store
