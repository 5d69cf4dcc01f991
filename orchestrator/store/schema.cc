// The store's schema, version by version (store/schema.h).
#include "store/schema.h"

#include <iterator>

#include "store/db.h"

namespace sluice::store {

namespace {

const char* kSchemaV1 = R"sql(
CREATE TABLE specs (
  hash TEXT PRIMARY KEY,          -- SHA-256 of the text, hex
  text TEXT NOT NULL
);
CREATE TABLE runs (
  id INTEGER PRIMARY KEY,
  pipeline TEXT NOT NULL,
  spec_hash TEXT NOT NULL REFERENCES specs(hash),
  spec_path TEXT NOT NULL,
  workdir TEXT NOT NULL,
  params TEXT NOT NULL,           -- JSON object of resolved params
  state TEXT NOT NULL,            -- pending running succeeded failed cancelled
  jobs INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  started_ms INTEGER,
  finished_ms INTEGER,
  owner_pid INTEGER,
  owner_start INTEGER,
  cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE steps (
  run_id INTEGER NOT NULL REFERENCES runs(id),
  step_id TEXT NOT NULL,
  item INTEGER NOT NULL,          -- -1: the step itself; 0..n-1: a foreach item
  state TEXT NOT NULL,
  tries INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  item_value TEXT,                -- JSON
  items TEXT,                     -- JSON list, once a foreach step is expanded
  outputs TEXT NOT NULL,          -- JSON object
  reason TEXT NOT NULL,
  PRIMARY KEY (run_id, step_id, item)
) WITHOUT ROWID;
CREATE TABLE attempts (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  step_id TEXT NOT NULL,
  item INTEGER NOT NULL,
  number INTEGER NOT NULL,
  state TEXT NOT NULL,            -- running succeeded failed cancelled lost
  reason TEXT NOT NULL,
  exit_code INTEGER,
  pid INTEGER,
  started_ms INTEGER,
  finished_ms INTEGER,
  log_path TEXT NOT NULL,
  UNIQUE (run_id, step_id, item, number)
);
)sql";

// Version 2: what attempts measured (plugin metric callbacks).
const char* kSchemaV2 = R"sql(
CREATE TABLE metrics (
  attempt_id INTEGER NOT NULL REFERENCES attempts(id),
  name TEXT NOT NULL,
  value REAL NOT NULL,
  step INTEGER NOT NULL,          -- orders values of one name: epoch, batch
  at_ms INTEGER NOT NULL
);
CREATE INDEX metrics_by_attempt ON metrics(attempt_id);
)sql";

// Version 3: artifacts, lineage edges, and what identifies each attempt
// (for caching and lineage).
const char* kSchemaV3 = R"sql(
ALTER TABLE attempts ADD COLUMN fingerprint TEXT;
ALTER TABLE attempts ADD COLUMN identity TEXT;
ALTER TABLE attempts ADD COLUMN outputs TEXT;
CREATE INDEX attempts_by_fingerprint ON attempts(fingerprint) WHERE fingerprint IS NOT NULL;
CREATE TABLE artifacts (
  hash TEXT PRIMARY KEY,          -- SHA-256 of the content (specs/store.md)
  kind TEXT NOT NULL,             -- file dir dataset model metrics, as its first producer declared it
  size INTEGER NOT NULL,
  uri TEXT NOT NULL,
  created_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE lineage (
  attempt_id INTEGER NOT NULL REFERENCES attempts(id),
  artifact TEXT NOT NULL REFERENCES artifacts(hash),
  role TEXT NOT NULL,             -- consumed produced reused
  name TEXT NOT NULL,
  PRIMARY KEY (attempt_id, role, name, artifact)
) WITHOUT ROWID;
CREATE INDEX lineage_by_artifact ON lineage(artifact, role);
)sql";

// Version 4: the model registry (MLflow's is the reference).
const char* kSchemaV4 = R"sql(
CREATE TABLE model_versions (
  name TEXT NOT NULL,
  version INTEGER NOT NULL,       -- 1, 2, ... per name
  artifact TEXT NOT NULL REFERENCES artifacts(hash),
  run_id INTEGER,                 -- the producing run, step and attempt (NULL if registered by hand)
  step_id TEXT,
  attempt_id INTEGER,
  created_ms INTEGER NOT NULL,
  PRIMARY KEY (name, version)
) WITHOUT ROWID;
CREATE UNIQUE INDEX model_versions_by_artifact ON model_versions(name, artifact);
CREATE TABLE model_aliases (
  name TEXT NOT NULL,
  alias TEXT NOT NULL,            -- staging, production, ...
  version INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  PRIMARY KEY (name, alias),
  FOREIGN KEY (name, version) REFERENCES model_versions(name, version)
) WITHOUT ROWID;
)sql";

// Version 5: API tokens for `sluice serve`, stored as SHA-256 hashes only.
const char* kSchemaV5 = R"sql(
CREATE TABLE tokens (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  scope TEXT NOT NULL,            -- read run admin
  hash TEXT NOT NULL UNIQUE,      -- SHA-256 of the token's text
  created_ms INTEGER NOT NULL,
  revoked_ms INTEGER              -- NULL while it is valid
);
)sql";

// Version 6: what started a run, and the server's trigger bookkeeping.
const char* kSchemaV6 = R"sql(
ALTER TABLE runs ADD COLUMN trigger TEXT NOT NULL DEFAULT 'cli';  -- cli api schedule webhook
CREATE INDEX runs_by_pipeline ON runs(pipeline, id);
CREATE TABLE schedule_fires (
  pipeline TEXT NOT NULL,
  schedule TEXT NOT NULL,         -- "<cron> <timezone>"
  fired_ms INTEGER NOT NULL,      -- the last fire time handled (run or skipped)
  PRIMARY KEY (pipeline, schedule)
) WITHOUT ROWID;
CREATE TABLE webhook_deliveries (
  pipeline TEXT NOT NULL,
  delivery TEXT NOT NULL,         -- the X-GitHub-Delivery id
  run_id INTEGER,                 -- NULL until its run is created
  received_ms INTEGER NOT NULL,
  PRIMARY KEY (pipeline, delivery)
) WITHOUT ROWID;
)sql";

// Version 7: the cluster job that ran an attempt.
const char* kSchemaV7 = R"sql(
ALTER TABLE attempts ADD COLUMN job_id TEXT;   -- slurm:1234
)sql";

// Version 8: bounded webhook replays, and runs the server queues.
const char* kSchemaV8 = R"sql(
ALTER TABLE webhook_deliveries ADD COLUMN body_sha256 TEXT;  -- SHA-256 of the raw body, hex; NULL before version 8
CREATE INDEX webhook_deliveries_by_body ON webhook_deliveries(pipeline, body_sha256);
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries(received_ms);
ALTER TABLE runs ADD COLUMN queued_from TEXT;  -- a queued retry: the state it goes back to when it starts
)sql";

// Version 9: archived and deleted model versions. A deleted version keeps
// its row, so its number is never given again; the same content may then
// be registered as a new version.
const char* kSchemaV9 = R"sql(
ALTER TABLE model_versions ADD COLUMN archived_ms INTEGER;  -- NULL unless archived
ALTER TABLE model_versions ADD COLUMN deleted_ms INTEGER;   -- NULL unless deleted
DROP INDEX model_versions_by_artifact;
CREATE UNIQUE INDEX model_versions_by_artifact ON model_versions(name, artifact) WHERE deleted_ms IS NULL;
)sql";

// Version 10, words: a metric's counter is its index (the epoch or batch it
// was measured at); "step" names a pipeline's step everywhere else. INDEX is
// an SQL keyword, so the column is written "index". The process that drives
// a run is its driver, as the logs and the launcher say, not its owner.
const char* kSchemaV10 = R"sql(
ALTER TABLE metrics RENAME COLUMN step TO "index";
ALTER TABLE runs RENAME COLUMN owner_pid TO driver_pid;
ALTER TABLE runs RENAME COLUMN owner_start TO driver_start;
)sql";

// Version 11: services (specs/services-design.md): their desired state, its
// history, the gateway's replicas and statistics windows, and the one gateway.
// Every desired-state write appends its service_changes row in the same
// transaction (services.h).
const char* kSchemaV11 = R"sql(
CREATE TABLE services (
  name TEXT PRIMARY KEY,
  spec TEXT NOT NULL,             -- canonical JSON of the applied document
  spec_hash TEXT NOT NULL,        -- the same hash again: unchanged, no history row
  sticky_header TEXT,
  sticky_field TEXT,
  sticky_salt TEXT,
  mirror_version TEXT,
  mirror_bp INTEGER NOT NULL DEFAULT 0,   -- 0..10000
  infer_token_hash TEXT,          -- NULL: infer is open
  traffic_owner TEXT,             -- 'run:12/deploy' while a rollout drives weights
  generation INTEGER NOT NULL,    -- +1 per change
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  deleted_ms INTEGER              -- NULL unless deleted
) WITHOUT ROWID;
CREATE TABLE service_versions (
  service TEXT NOT NULL,
  version TEXT NOT NULL,
  ordinal INTEGER NOT NULL,       -- order first applied; orders the sticky bucket ranges
  kind TEXT NOT NULL,             -- model command
  model_ref TEXT,
  model_name TEXT,
  model_version INTEGER,
  artifact TEXT REFERENCES artifacts(hash),
  uri TEXT,
  command TEXT,                   -- JSON list
  env TEXT,                       -- JSON object
  workdir TEXT,
  port_env TEXT,
  options TEXT NOT NULL,          -- JSON: threads, max_batch, ready_timeout_ms, ...
  replicas INTEGER NOT NULL,
  weight_bp INTEGER NOT NULL,     -- 0..10000
  revision INTEGER NOT NULL,      -- +1 when what runs changes
  state TEXT NOT NULL,            -- active removing removed
  run_id INTEGER,
  step_id TEXT,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  PRIMARY KEY (service, version)
) WITHOUT ROWID;
CREATE TABLE service_replicas (
  service TEXT NOT NULL,
  version TEXT NOT NULL,
  slot INTEGER NOT NULL,          -- 0..replicas-1; written by the gateway only
  revision INTEGER NOT NULL,
  pid INTEGER,
  start_time INTEGER,
  port INTEGER,
  state TEXT NOT NULL,            -- starting ready unready ejected draining backoff stopped
  restarts INTEGER NOT NULL,
  last_exit TEXT,
  log_path TEXT NOT NULL,
  started_ms INTEGER,
  ready_ms INTEGER,
  updated_ms INTEGER NOT NULL,
  PRIMARY KEY (service, version, slot)
) WITHOUT ROWID;
CREATE TABLE service_changes (
  id INTEGER PRIMARY KEY,
  service TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  kind TEXT NOT NULL,             -- apply traffic mirror delete replica ejection
  actor TEXT NOT NULL,            -- user:alice token:ci run:12/deploy#3 gateway
  reason TEXT NOT NULL,
  before TEXT,                    -- JSON of what changed
  after TEXT
);
CREATE INDEX service_changes_by_service ON service_changes(service, id);
CREATE TABLE service_windows (
  service TEXT NOT NULL,
  version TEXT NOT NULL,
  role TEXT NOT NULL,             -- live mirror pinned
  start_ms INTEGER NOT NULL,      -- a multiple of 10,000: [start, start + 10 s)
  requests INTEGER NOT NULL,
  errors INTEGER NOT NULL,
  codes TEXT NOT NULL,
  latency_bounds TEXT NOT NULL,
  latency TEXT NOT NULL,
  latency_sum_us INTEGER NOT NULL,
  latency_max_us INTEGER NOT NULL,
  retried INTEGER NOT NULL,
  rerouted INTEGER NOT NULL,
  cache_hits INTEGER NOT NULL,
  mirror_dropped INTEGER NOT NULL,
  mirror_compared INTEGER NOT NULL,
  mirror_agreed INTEGER NOT NULL,
  classes TEXT,
  payload TEXT,
  PRIMARY KEY (service, version, role, start_ms)
) WITHOUT ROWID;
CREATE INDEX service_windows_by_time ON service_windows(start_ms);
CREATE TABLE gateway (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  pid INTEGER,
  start_time INTEGER,
  listen TEXT,
  port INTEGER,
  mode TEXT,                      -- background foreground serve
  log_path TEXT,
  started_ms INTEGER,
  heartbeat_ms INTEGER,
  stop_requested INTEGER NOT NULL DEFAULT 0,
  handoff_to INTEGER
);
)sql";

// Version 12: deployments (specs/deploy.md). A rollout is one deployment
// step's drive of a service's traffic (deploy/canary, deploy/blue-green,
// ...): where it is, so a resumed run continues it, and what it decided, one
// event per shift and analysis. Feedback is what callers report of an
// answer (POST /v2/models/{service}/feedback), for deploy/ab-test.
const char* kSchemaV12 = R"sql(
CREATE TABLE rollouts (
  id INTEGER PRIMARY KEY,
  service TEXT NOT NULL,
  strategy TEXT NOT NULL,         -- canary blue-green ab-test shadow rollback
  run_id INTEGER NOT NULL,
  step_id TEXT NOT NULL,
  stable_version TEXT NOT NULL,   -- what served before; a rollback returns to it ('' for none)
  candidate_version TEXT NOT NULL,
  state TEXT NOT NULL,            -- progressing paused promoted rolled_back aborted ended
  step_index INTEGER NOT NULL,    -- the strategy's current step, from 0: where a resume continues
  candidate_bp INTEGER NOT NULL,  -- the candidate's live weight, 0..10000
  request TEXT,                   -- promote abort: asked by a person, taken by the step
  request_actor TEXT,
  reason TEXT NOT NULL,           -- the last decision, in words
  config TEXT NOT NULL,           -- the step's with:, JSON
  outputs TEXT,                   -- JSON of what it ended with
  started_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  ended_ms INTEGER
);
CREATE INDEX rollouts_by_service ON rollouts(service, id);
CREATE INDEX rollouts_by_step ON rollouts(run_id, step_id);
CREATE TABLE rollout_events (
  id INTEGER PRIMARY KEY,
  rollout_id INTEGER NOT NULL REFERENCES rollouts(id),
  at_ms INTEGER NOT NULL,
  kind TEXT NOT NULL,             -- start shift analysis pause resume promote rollback abort end
  message TEXT NOT NULL,
  data TEXT                       -- JSON: the figures of an analysis, the weights of a shift
);
CREATE INDEX rollout_events_by_rollout ON rollout_events(rollout_id, id);
CREATE TABLE feedback (
  id INTEGER PRIMARY KEY,
  service TEXT NOT NULL,
  version TEXT NOT NULL,          -- the variant that answered
  request_id TEXT,
  key TEXT,
  reward REAL,                    -- an outcome: 1 converted, 0 not, or any reward
  label TEXT,
  at_ms INTEGER NOT NULL
);
CREATE INDEX feedback_by_service ON feedback(service, version, at_ms);
)sql";

// Version 13: the order of step record writes, so that a reader (the
// server's event hub) reads only the records written since it last looked,
// not every step of every active run; and the runs by state, so that the
// active runs are found without walking every run.
const char* kSchemaV13 = R"sql(
ALTER TABLE steps ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX steps_by_seq ON steps(seq);
CREATE INDEX runs_by_state ON runs(state, id);
)sql";

// Version 14: manual approvals (the sluice/approval step type): the request
// a waiting step opens, and the one decision that closes it.
const char* kSchemaV14 = R"sql(
CREATE TABLE approvals (
  run_id         INTEGER NOT NULL REFERENCES runs(id),
  step_id        TEXT NOT NULL,
  round          INTEGER NOT NULL DEFAULT 1,
  message        TEXT NOT NULL,
  value_specs    TEXT NOT NULL,
  requested_ms   INTEGER NOT NULL,
  deadline_ms    INTEGER,
  on_timeout     TEXT NOT NULL CHECK (on_timeout IN ('approve', 'reject')),
  decision       TEXT CHECK (decision IN ('approve', 'reject')),
  decided_by     TEXT,
  decided_ms     INTEGER,
  decided_values TEXT,
  comment        TEXT,
  acted_attempt  INTEGER,
  PRIMARY KEY (run_id, step_id, round)
);
)sql";

// Version 15: the data interval of a run a schedule or a backfill started
// (its scheduled time is the interval's end), and the runs by it, so that a
// backfill finds the intervals that already have a run.
const char* kSchemaV15 = R"sql(
ALTER TABLE runs ADD COLUMN scheduled_ms INTEGER;       -- the fire time the run is for
ALTER TABLE runs ADD COLUMN interval_start_ms INTEGER;  -- the schedule's fire time before it
CREATE INDEX runs_by_schedule ON runs(pipeline, scheduled_ms) WHERE scheduled_ms IS NOT NULL;
)sql";

// Version 16: the run's outputs (the spec's top-level `outputs:`), rendered
// once its steps are all final; an absent one has a NULL value and a reason.
const char* kSchemaV16 = R"sql(
CREATE TABLE run_outputs (
  run_id    INTEGER NOT NULL REFERENCES runs(id),
  name      TEXT NOT NULL,
  position  INTEGER NOT NULL,   -- its place in the spec's outputs: map, from 0
  value     TEXT,               -- NULL: absent, reason says why
  reason    TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (run_id, name)
);
)sql";

// Version 17: what limits runs across processes: a run's concurrency group
// (and whether it holds it), named pools of slots, and the leases attempts
// hold on them, each with the process that took it.
const char* kSchemaV17 = R"sql(
ALTER TABLE runs ADD COLUMN concurrency_group TEXT;                    -- NULL: none
ALTER TABLE runs ADD COLUMN group_admitted INTEGER NOT NULL DEFAULT 0; -- 1: it holds its group
CREATE INDEX runs_by_group ON runs(concurrency_group, id) WHERE concurrency_group IS NOT NULL;
CREATE TABLE pools (
  name       TEXT PRIMARY KEY,
  slots      INTEGER NOT NULL CHECK (slots >= 0),
  updated_ms INTEGER NOT NULL
);
CREATE TABLE pool_leases (
  pool         TEXT NOT NULL,
  run_id       INTEGER NOT NULL REFERENCES runs(id),
  step_id      TEXT NOT NULL,
  item         INTEGER NOT NULL,
  slots        INTEGER NOT NULL,
  holder_pid   INTEGER NOT NULL,
  holder_start INTEGER NOT NULL,
  leased_ms    INTEGER NOT NULL,
  PRIMARY KEY (run_id, step_id, item)
);
CREATE INDEX pool_leases_by_pool ON pool_leases(pool);
)sql";

// Version 18: who moved an alias ('user:LOGIN' from the CLI, 'token:NAME'
// from the API or the UI); NULL for aliases set before.
const char* kSchemaV18 = R"sql(
ALTER TABLE model_aliases ADD COLUMN updated_by TEXT;
)sql";

// Version 19: a spec's steps in its plan's order (`sluice show` lists a run's
// steps so without parsing its spec again); NULL for specs stored before.
const char* kSchemaV19 = R"sql(
ALTER TABLE specs ADD COLUMN step_order TEXT;  -- step ids, one per line
)sql";

// Version 20: the cache's index holds succeeded attempts only. It held
// every attempt, so a lookup read every cached re-run of a step before it
// reached the attempt that did the work: work per step grew with history.
const char* kSchemaV20 = R"sql(
DROP INDEX attempts_by_fingerprint;
CREATE INDEX attempts_succeeded_by_fingerprint ON attempts(fingerprint) WHERE state = 'succeeded';
)sql";

// Version 21: a published file's stamp (engine::ArtifactRef::stamp): a
// cache hit whose files still have theirs is not hashed again. NULL for
// folders and for artifacts published before.
const char* kSchemaV21 = R"sql(
ALTER TABLE artifacts ADD COLUMN stamp TEXT;  -- ino:size:mtime_ns:ctime_ns
)sql";

const char* const kSteps[] = {kSchemaV1,  kSchemaV2,  kSchemaV3,  kSchemaV4,  kSchemaV5,  kSchemaV6,  kSchemaV7,
                              kSchemaV8,  kSchemaV9,  kSchemaV10, kSchemaV11, kSchemaV12, kSchemaV13, kSchemaV14,
                              kSchemaV15, kSchemaV16, kSchemaV17, kSchemaV18, kSchemaV19, kSchemaV20, kSchemaV21};
static_assert(std::size(kSteps) == Db::kSchemaVersion);

}  // namespace

const char* SchemaStep(int to) { return kSteps[to - 1]; }

}  // namespace sluice::store
