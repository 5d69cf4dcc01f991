// RunStore: the journal the engine writes every transition to before it acts
// on it. store::RunsStore (store/runs.h) implements it on SQLite.
//
// Writes join one open transaction until Flush() commits it. The engine
// calls Flush() before every action that depends on what it wrote (starting
// or signalling a process) and before it blocks waiting, so every transition
// is durable before anything acts on it, and a step costs about two commits
// instead of one per call. Called from the engine's thread only.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/executor.h"
#include "engine/types.h"
#include "util/status.h"

namespace sluice::engine {

// Publishes declared outputs into the artifact store and checks published
// ones (store/artifacts.h implements it).
class ArtifactPublisher {
 public:
  virtual ~ArtifactPublisher() = default;
  // Hashes the file or folder at `path` and moves it into the store.
  virtual Result<ArtifactRef> Publish(const std::string& path, const std::string& kind) = 0;
  // True if the artifact is present and still has its hash: a file whose
  // stamp is still the one recorded is taken on it, anything else is hashed.
  virtual bool Verify(const ArtifactRef& artifact) const = 0;
};

// What asking for a pool's slots came to.
struct PoolLease {
  enum class What { kLeased, kFull, kNoPool } what = What::kLeased;
  int slots = 0, used = 0;  // the pool's slots and those leased, as seen
};

class RunStore {
 public:
  virtual ~RunStore() = default;
  // Writes step records (insert or replace by run, step, item).
  virtual Status SaveSteps(int64_t run_id, const std::vector<const StepRecord*>& steps) = 0;
  // Inserts `attempt` (its id is set) and saves `step`.
  virtual Status BeginAttempt(AttemptRecord* attempt, const StepRecord& step) = 0;
  // Records the process that runs an attempt. It is written with the next
  // transition, not on its own: the pid is for people (`sluice show`);
  // `sluice resume` finds a leftover process without it.
  virtual Status AttemptStarted(const AttemptRecord& attempt) = 0;
  // Saves the attempt's end and the step's new record. An attempt never
  // begun (id 0: a cache hit, or a step that failed before it started) is
  // inserted already ended, in one write, and its id is set.
  virtual Status FinishAttempt(AttemptRecord* attempt, const StepRecord& step) = 0;
  // Saves what an attempt measured.
  virtual Status SaveMetrics(const AttemptRecord& attempt, const std::vector<Metric>& metrics) = 0;
  // Records artifacts (once per hash) and the attempt's edges to them.
  virtual Status SaveLineage(const AttemptRecord& attempt, const std::vector<LineageEdge>& edges) = 0;
  // Registers `artifact` as a new version of model `name` (or finds the
  // version it already is); returns the version number.
  virtual Result<int> RegisterModel(const std::string& name, const std::string& artifact, int64_t run_id,
                                    const std::string& step_id, int64_t attempt_id, int64_t now_ms) = 0;
  // The newest succeeded attempt with this fingerprint, if any.
  virtual Result<std::optional<CachedResult>> FindCached(const std::string& fingerprint) = 0;
  virtual Status SetRunState(int64_t run_id, RunState state, int64_t at_ms) = 0;
  // Replaces the run's outputs (the spec's `outputs:`) with `outputs`, in order.
  virtual Status SaveRunOutputs(int64_t run_id, const std::vector<RunOutputValue>& outputs) = 0;
  // True once someone asked for the run to be cancelled (`sluice cancel`).
  virtual Result<bool> CancelRequested(int64_t run_id) = 0;
  // How many of the step's (or item's) latest attempts were lost in a row.
  virtual Result<int> LostInARow(int64_t run_id, const std::string& step_id, int item) = 0;
  // Leases `slots` of the named pool (shared by every run) for the next
  // attempt of (step, item), in the batch; kFull leaves nothing leased.
  // Stores without pools lease everything.
  virtual Result<PoolLease> LeasePool(int64_t run_id, const std::string& step_id, int item, const std::string& pool,
                                      int slots) {
    (void)run_id, (void)step_id, (void)item, (void)pool, (void)slots;
    return PoolLease{};
  }
  // Gives back what LeasePool leased for (step, item), in the batch.
  virtual Status ReleasePool(int64_t run_id, const std::string& step_id, int item) {
    (void)run_id, (void)step_id, (void)item;
    return Status::Ok();
  }
  // Commits everything written since the last Flush(). A failure leaves
  // nothing of it in the store.
  virtual Status Flush() = 0;
};

}  // namespace sluice::engine
