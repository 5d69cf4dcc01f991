// Store: the SQLite file that holds every run, step record and attempt
// (schema: specs/store.md). It implements the engine's RunStore journal and
// the queries the CLI needs. Methods outside the journal are transactions of
// their own and must not be called while a journal batch is open.
//
// WAL mode, busy_timeout, prepared statements only. One Store object is used
// by one thread; several processes (a running `sluice run`, a `sluice show`,
// a `sluice cancel`) may open the same file at once: SQLite's locking
// serialises their writes, each of which is one short transaction.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/run_store.h"
#include "engine/types.h"

struct sqlite3;
struct sqlite3_stmt;

namespace sluice::store {

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
  int64_t owner_pid = 0, owner_start = 0;   // the process driving the run, if any
  bool cancel_requested = false;
  std::string trigger = "cli";  // what started it: cli, api, schedule, webhook
  bool queued_retry = false;    // state queued, for a retry (`sluice retry`) rather than a first start
};

// What RecordDelivery found.
struct DeliveryCheck {
  bool duplicate = false;        // the delivery id, or the body, was seen within the window
  bool same_body = false;        // a duplicate by its body (under another delivery id)
  int64_t run_id = 0;            // the run the earlier delivery started (0 if none yet)
  std::string earlier_delivery;  // the earlier delivery's id
};

// Which runs ListRuns returns, newest first.
struct RunFilter {
  std::string pipeline;                   // empty: every pipeline
  std::optional<engine::RunState> state;  // none: any state
  int64_t before_id = 0;                  // > 0: only runs with a smaller id (the next page)
  int limit = 50;
};

struct MetricRow {
  std::string step_id;
  int item = -1;
  int attempt = 0;   // the attempt's number
  std::string name;
  double value = 0;
  int64_t step = 0;
};

// One registered version of a model.
// What an API token may do: read < run (start, cancel, retry) < admin.
enum class TokenScope { kRead, kRun, kAdmin };
const char* TokenScopeName(TokenScope s);
std::optional<TokenScope> ParseTokenScope(const std::string& text);

struct Token {
  int64_t id = 0;
  std::string name;
  TokenScope scope = TokenScope::kRead;
  int64_t created_ms = 0;
  int64_t revoked_ms = 0;  // 0 while valid
  bool Allows(TokenScope needed) const { return static_cast<int>(scope) >= static_cast<int>(needed); }
};

struct ModelVersion {
  std::string name;
  int version = 0;
  std::string artifact;              // hash
  std::string uri;                   // the published file or folder
  int64_t run_id = 0;                // the producing run (0: registered by hand)
  std::string step_id;
  int64_t attempt_id = 0;            // the registering attempt (0: registered by hand)
  int64_t created_ms = 0;
  int64_t archived_ms = 0;           // 0 unless archived
  std::vector<std::string> aliases;  // staging, production, ...
};

// `sluice retry --reload`: the spec text and params the run goes on with.
struct RunSpecUpdate {
  std::string spec_text;
  std::string params_json;
};

class Store : public engine::RunStore {
 public:
  // Opens (creating if needed) the database at `path` and migrates it to the
  // current schema. Refuses a database written by a newer Sluice.
  static Result<std::unique_ptr<Store>> Open(const std::string& path);
  ~Store() override;

  static constexpr int kSchemaVersion = 9;

  // Records a new run in state pending (queued if `queued`: `sluice serve`
  // starts it later) and stores the spec text by hash.
  Result<int64_t> CreateRun(const std::string& pipeline, const std::string& spec_text, const std::string& spec_path,
                            const std::string& workdir, const std::string& params_json, int jobs, int64_t now_ms,
                            const std::string& trigger = "cli", bool queued = false);
  Result<RunRow> GetRun(int64_t id);
  // The newest runs first.
  Result<std::vector<RunRow>> ListRuns(int limit);
  Result<std::vector<RunRow>> ListRuns(const RunFilter& filter);
  // SQLite's PRAGMA data_version: changes when another connection commits.
  Result<int64_t> DataVersion();
  Result<std::string> SpecText(const std::string& hash);
  Result<std::vector<engine::StepRecord>> LoadSteps(int64_t run_id);
  // Every attempt of the run, oldest first.
  Result<std::vector<engine::AttemptRecord>> ListAttempts(int64_t run_id);
  // Every metric of the run's attempts, in the order they were saved.
  Result<std::vector<MetricRow>> ListMetrics(int64_t run_id);
  // The metrics of one attempt (by its row id), in the order they were saved.
  Result<std::vector<MetricRow>> ListAttemptMetrics(int64_t attempt_id);

  Status SetOwner(int64_t run_id, int64_t pid, int64_t pid_start);
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
  // "ok", or what PRAGMA integrity_check found.
  Result<std::string> IntegrityCheck();

  // engine::RunStore
  Status SaveSteps(int64_t run_id, const std::vector<const engine::StepRecord*>& steps) override;
  Status BeginAttempt(engine::AttemptRecord* attempt, const engine::StepRecord& step) override;
  Status AttemptStarted(const engine::AttemptRecord& attempt) override;
  Status FinishAttempt(const engine::AttemptRecord& attempt, const engine::StepRecord& step) override;
  Status SaveMetrics(const engine::AttemptRecord& attempt, const std::vector<engine::Metric>& metrics) override;
  Status SaveLineage(const engine::AttemptRecord& attempt, const std::vector<engine::LineageEdge>& edges) override;
  Result<std::optional<engine::CachedResult>> FindCached(const std::string& fingerprint) override;

  // The lineage graph around an artifact (by hash) or an attempt, walking
  // producers and inputs (upstream) or consumers and outputs (downstream)
  // to any depth.
  struct LineageGraph {
    std::vector<engine::ArtifactRef> artifacts;
    std::vector<engine::AttemptRecord> attempts;
    struct Edge { int64_t attempt_id; std::string hash; std::string role; std::string name; };
    std::vector<Edge> edges;
  };
  Result<LineageGraph> Lineage(const std::string& artifact_hash, int64_t attempt_id, bool upstream);
  // Model registry (MLflow's is the reference). RegisterModel is a journal
  // write (committed by the next Flush()); registering the same artifact
  // under a name again gives its existing version (an archived one stays
  // archived), unless that version was deleted: then it is a new version.
  // Version numbers are never given twice.
  Result<int> RegisterModel(const std::string& name, const std::string& artifact, int64_t run_id,
                            const std::string& step_id, int64_t attempt_id, int64_t now_ms) override;
  // Moves `alias` to `version`, which must be neither archived nor deleted.
  Status SetAlias(const std::string& name, int version, const std::string& alias, int64_t now_ms);
  // Removes `alias`; returns the version it pointed at. With `expected` > 0
  // it is removed only if it points there.
  Result<int> RemoveAlias(const std::string& name, const std::string& alias, int expected);
  // Archives (or with `archived` false, restores) a version: archived
  // versions are left out of `sluice models` and of @latest, and still
  // resolve by their number. Refused while an alias points at the version.
  Status ArchiveModel(const std::string& name, int version, bool archived, int64_t now_ms);
  // Deletes a version: it no longer resolves, is not listed, and no longer
  // keeps its artifact from `sluice gc`. Refused while an alias points at it.
  Status DeleteModel(const std::string& name, int version, int64_t now_ms);
  // API tokens: the text ("slc_" and 64 hex digits) is returned once by
  // CreateToken; only its SHA-256 is stored. FindToken finds a valid one.
  Result<std::string> CreateToken(const std::string& name, TokenScope scope, int64_t now_ms);
  Result<std::optional<Token>> FindToken(const std::string& text);
  Result<std::vector<Token>> ListTokens();
  Status RevokeToken(int64_t id, int64_t now_ms);

  // The server's schedules: the last fire time handled per pipeline and
  // schedule ("<cron> <timezone>"); none before the first.
  Result<std::optional<int64_t>> LastFire(const std::string& pipeline, const std::string& schedule);
  Status SetLastFire(const std::string& pipeline, const std::string& schedule, int64_t fired_ms);
  // Webhook deliveries, in one transaction: forgets deliveries received
  // before now_ms - window_ms; then a delivery whose id, or whose body's
  // SHA-256, the pipeline saw since is a duplicate (with the run the earlier
  // one started); anything else is recorded.
  Result<DeliveryCheck> RecordDelivery(const std::string& pipeline, const std::string& delivery,
                                       const std::string& body_sha256, int64_t now_ms, int64_t window_ms);
  Status SetDeliveryRun(const std::string& pipeline, const std::string& delivery, int64_t run_id);

  // Runs `sluice serve` queued (state queued), oldest first.
  Result<std::vector<RunRow>> QueuedRuns();
  // Queues a retry of a failed or cancelled run; false if it is in another state.
  Result<bool> QueueRetry(int64_t run_id);
  // Takes a run out of the queue: a new run becomes pending, a queued retry
  // goes back to the state it had. False if it was not queued (cancelled,
  // or started by `sluice resume`, meanwhile).
  Result<bool> StartQueued(int64_t run_id);
  // Cancels a queued run without starting it; false if it was not queued.
  Result<bool> CancelQueued(int64_t run_id, int64_t now_ms);

  // Every version of `name` (all models when empty), oldest first, archived
  // ones included (archived_ms set); deleted ones are never listed.
  Result<std::vector<ModelVersion>> ListModels(const std::string& name);
  // "fashion@3", "fashion@production", or "fashion@latest" (the newest
  // version that is not archived, unless an alias is named latest). A
  // deleted version resolves to nothing.
  Result<ModelVersion> ResolveModel(const std::string& ref);

  // Artifacts nothing kept depends on: not a registered model version or
  // upstream of one, and not touched by a run created at or after
  // `keep_since_ms` or still unfinished. (hash, size) pairs.
  Result<std::vector<std::pair<std::string, int64_t>>> CollectableArtifacts(int64_t keep_since_ms);

  // True if the store has a record of this artifact.
  Result<bool> HasArtifact(const std::string& hash);
  // The attempt's lineage edges, with their artifacts.
  Result<std::vector<engine::LineageEdge>> AttemptEdges(int64_t attempt_id);

  // The newest attempt of `step` (and `item`) in a run.
  // The newest succeeded or cached attempt of the step (or foreach item)
  // in any run of the pipeline, if any: what `sluice plan` compares a step's
  // identity with. Its identity, fingerprint, run and finish time are set.
  Result<std::optional<engine::AttemptRecord>> LatestResult(const std::string& pipeline, const std::string& step,
                                                            int item);
  Result<engine::AttemptRecord> LatestAttempt(int64_t run_id, const std::string& step, int item);
  Status SetRunState(int64_t run_id, engine::RunState state, int64_t at_ms) override;
  Result<bool> CancelRequested(int64_t run_id) override;
  Result<int> LostInARow(int64_t run_id, const std::string& step_id, int item) override;
  Status Flush() override;

 private:
  class Stmt;
  explicit Store(sqlite3* db);
  Status Exec(const char* sql);
  Status Migrate();
  Status Begin();
  Status Commit();
  void Rollback();
  Status SaveStep(int64_t run_id, const engine::StepRecord& r);
  Status Join();                    // opens the journal's batch if none is open
  Status Abandon(Status failure);
  Stmt& Prepare(const char* sql);
  // A version's row (NotFound if there is none), with its aliases.
  struct VersionState {
    bool archived = false, deleted = false;
    std::vector<std::string> aliases;
  };
  Result<VersionState> FindVersion(const std::string& name, int version);
  Status Error(const std::string& what);

  sqlite3* db_;
  bool batch_open_ = false;         // the engine's writes since its last Flush()
  std::vector<std::pair<int64_t, int64_t>> pending_pids_;  // attempt id, pid: written with the next batch
  std::vector<std::pair<const char*, std::unique_ptr<Stmt>>> cache_;  // keyed by the SQL text's address
};

}  // namespace sluice::store
