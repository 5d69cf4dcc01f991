#include "store/store.h"

#include "util/hash.h"
#include "util/json.h"
#include "util/strings.h"

#include <cstdlib>
#include <cstring>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sqlite3.h>

namespace sluice::store {

using engine::AttemptRecord;
using engine::StepRecord;
using engine::StepState;

// A prepared statement, reset after each use. Bind indexes are 1-based.
class Store::Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  bool ok() const { return rc_ == SQLITE_OK; }
  Stmt& Bind(int i, int64_t v) { sqlite3_bind_int64(s_, i, v); return *this; }
  Stmt& Bind(int i, const std::string& v) { sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT); return *this; }
  Stmt& BindNull(int i) { sqlite3_bind_null(s_, i); return *this; }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(s_); }
  int64_t Int(int c) { return sqlite3_column_int64(s_, c); }
  std::string Text(int c) {
    const unsigned char* t = sqlite3_column_text(s_, c);
    return t ? std::string(reinterpret_cast<const char*>(t), sqlite3_column_bytes(s_, c)) : std::string();
  }
  bool IsNull(int c) { return sqlite3_column_type(s_, c) == SQLITE_NULL; }
  double Double(int c) { return sqlite3_column_double(s_, c); }
  sqlite3_stmt* raw() { return s_; }
  void Reset() { sqlite3_reset(s_); sqlite3_clear_bindings(s_); }

 private:
  sqlite3_stmt* s_ = nullptr;
  int rc_;
};

namespace {

// Resets a statement when the scope ends, whatever path leaves it.
template <typename S>
struct ResetOnExit {
  S& s;
  ~ResetOnExit() { s.Reset(); }
};

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

std::string OutputsJson(const engine::Outputs& o) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : o) j[k] = v.ToJson();
  return JsonText(j);
}

}  // namespace

Store::Store(sqlite3* db) : db_(db) {}

Store::~Store() {
  if (batch_open_) Rollback();  // never flushed, so never acted on
  cache_.clear();
  sqlite3_close(db_);
}

Status Store::Error(const std::string& what) {
  return Status::IoError("store: " + what + ": " + sqlite3_errmsg(db_));
}

Status Store::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string m = err ? err : "unknown error";
    sqlite3_free(err);
    return Status::IoError(std::string("store: ") + m);
  }
  return Status::Ok();
}

Store::Stmt& Store::Prepare(const char* sql) {
  for (auto& [key, stmt] : cache_)
    if (key == sql) return *stmt;
  cache_.emplace_back(sql, std::make_unique<Stmt>(db_, sql));
  return *cache_.back().second;
}

namespace {
template <typename S>
int StepOnce(S& s) {
  int rc = s.Step();
  s.Reset();
  return rc;
}
}  // namespace

Status Store::Begin() {
  return StepOnce(Prepare("BEGIN IMMEDIATE")) == SQLITE_DONE ? Status::Ok() : Error("begin a transaction");
}
Status Store::Commit() { return StepOnce(Prepare("COMMIT")) == SQLITE_DONE ? Status::Ok() : Error("commit"); }
void Store::Rollback() { StepOnce(Prepare("ROLLBACK")); }

Result<std::unique_ptr<Store>> Store::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string m = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return Status::IoError("open " + path + ": " + m);
  }
  std::unique_ptr<Store> s(new Store(db));
  sqlite3_busy_timeout(db, 10000);
  // NORMAL in WAL mode: a commit survives the process being killed; a power
  // cut may lose the last commits but never corrupts. SLUICE_SYNC=full syncs
  // every commit.
  const char* sync = std::getenv("SLUICE_SYNC");
  std::string pragmas = std::string("PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY; "
                                    "PRAGMA synchronous=") +
                        (sync && std::strcmp(sync, "full") == 0 ? "FULL" : "NORMAL") + ";";
  // Switching a new file to WAL, and migrating it, take locks that a second
  // process opening the same new file at the same moment may hold; SQLite
  // does not always wait for those, so wait here.
  Status st;
  for (int waited_ms = 0;; waited_ms += 10) {
    st = s->Exec(pragmas.c_str());
    if (st.ok()) st = s->Migrate();
    if (st.ok() || waited_ms >= 10000) break;
    int code = sqlite3_errcode(db);
    if (code != SQLITE_BUSY && code != SQLITE_LOCKED) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!st.ok()) return st.WithContext("open " + path);
  return s;
}

Status Store::Migrate() {
  Stmt& v = Prepare("PRAGMA user_version");
  ResetOnExit<Stmt> r{v};
  if (v.Step() != SQLITE_ROW) return Error("read schema version");
  int64_t version = v.Int(0);
  v.Reset();
  if (version == kSchemaVersion) return Status::Ok();
  if (version > kSchemaVersion)
    return Status::Incompatible("the database has schema version " + std::to_string(version) +
                                ", newer than this sluice knows (" + std::to_string(kSchemaVersion) + "); upgrade sluice");
  // Forward migrations, each in its own transaction with the version bump.
  static const char* kMigrations[] = {kSchemaV1, kSchemaV2, kSchemaV3, kSchemaV4, kSchemaV5, kSchemaV6, kSchemaV7, kSchemaV8,
                                       kSchemaV9};
  for (int64_t next = version + 1; next <= kSchemaVersion; ++next) {
    Status st = Begin();
    if (!st.ok()) return st;
    // Another process may have migrated while we waited for the lock.
    if (v.Step() == SQLITE_ROW && v.Int(0) >= next) {
      v.Reset();
      Rollback();
      continue;
    }
    v.Reset();
    st = Exec(kMigrations[next - 1]);
    if (st.ok()) st = Exec(("PRAGMA user_version=" + std::to_string(next)).c_str());
    if (!st.ok()) {
      Rollback();
      return st;
    }
    st = Commit();
    if (!st.ok()) return st;
  }
  return Status::Ok();
}

Result<int64_t> Store::CreateRun(const std::string& pipeline, const std::string& spec_text,
                                 const std::string& spec_path, const std::string& workdir,
                                 const std::string& params_json, int jobs, int64_t now_ms,
                                 const std::string& trigger, bool queued) {
  std::string hash = Sha256Hex(spec_text);
  Status st = Begin();
  if (!st.ok()) return st;
  Stmt& spec = Prepare("INSERT OR IGNORE INTO specs(hash, text) VALUES (?, ?)");
  {
    ResetOnExit<Stmt> r{spec};
    if (spec.Bind(1, hash).Bind(2, spec_text).Step() != SQLITE_DONE) {
      Status e = Error("save spec");
      Rollback();
      return e;
    }
  }
  Stmt& run = Prepare(
      "INSERT INTO runs(pipeline, spec_hash, spec_path, workdir, params, state, jobs, created_ms, trigger) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
  {
    ResetOnExit<Stmt> r{run};
    run.Bind(1, pipeline).Bind(2, hash).Bind(3, spec_path).Bind(4, workdir).Bind(5, params_json);
    run.Bind(6, std::string(queued ? "queued" : "pending")).Bind(7, jobs).Bind(8, now_ms).Bind(9, trigger);
    if (run.Step() != SQLITE_DONE) {
      Status e = Error("create run");
      Rollback();
      return e;
    }
  }
  int64_t id = sqlite3_last_insert_rowid(db_);
  st = Commit();
  if (!st.ok()) return st;
  return id;
}

namespace {
const char* kRunColumns =
    "SELECT id, pipeline, spec_hash, spec_path, workdir, params, state, jobs, created_ms, "
    "IFNULL(started_ms, 0), IFNULL(finished_ms, 0), IFNULL(owner_pid, 0), IFNULL(owner_start, 0), cancel_requested, trigger, "
    "queued_from IS NOT NULL "
    "FROM runs ";
}

template <typename S>
static RunRow ReadRun(S& q) {
  RunRow r;
  r.id = q.Int(0);
  r.pipeline = q.Text(1);
  r.spec_hash = q.Text(2);
  r.spec_path = q.Text(3);
  r.workdir = q.Text(4);
  r.params_json = q.Text(5);
  r.state = engine::ParseRunState(q.Text(6)).value_or(engine::RunState::kPending);
  r.jobs = static_cast<int>(q.Int(7));
  r.created_ms = q.Int(8);
  r.started_ms = q.Int(9);
  r.finished_ms = q.Int(10);
  r.owner_pid = q.Int(11);
  r.owner_start = q.Int(12);
  r.cancel_requested = q.Int(13) != 0;
  r.trigger = q.Text(14);
  r.queued_retry = q.Int(15) != 0;
  return r;
}

Result<RunRow> Store::GetRun(int64_t id) {
  static const std::string sql = std::string(kRunColumns) + "WHERE id = ?";
  Stmt& q = Prepare(sql.c_str());
  ResetOnExit<Stmt> r{q};
  q.Bind(1, id);
  int rc = q.Step();
  if (rc == SQLITE_DONE) return Status::NotFound("no run " + std::to_string(id));
  if (rc != SQLITE_ROW) return Error("read run " + std::to_string(id));
  return ReadRun(q);
}

Result<std::vector<RunRow>> Store::ListRuns(int limit) {
  RunFilter f;
  f.limit = limit;
  return ListRuns(f);
}

Result<std::vector<RunRow>> Store::ListRuns(const RunFilter& f) {
  // One statement per filter shape, so that SQLite walks the primary key (or
  // the pipeline index) backwards and stops at the limit; a single statement
  // with "(? = '' OR ...)" terms made it scan the whole table.
  static const std::string sqls[4] = {
      std::string(kRunColumns) + "WHERE id < ?1 ORDER BY id DESC LIMIT ?4",
      std::string(kRunColumns) + "WHERE pipeline = ?2 AND id < ?1 ORDER BY id DESC LIMIT ?4",
      std::string(kRunColumns) + "WHERE state = ?3 AND id < ?1 ORDER BY id DESC LIMIT ?4",
      std::string(kRunColumns) + "WHERE pipeline = ?2 AND state = ?3 AND id < ?1 ORDER BY id DESC LIMIT ?4",
  };
  int shape = (f.pipeline.empty() ? 0 : 1) + (f.state ? 2 : 0);
  Stmt& q = Prepare(sqls[shape].c_str());
  ResetOnExit<Stmt> r{q};
  q.Bind(1, f.before_id > 0 ? f.before_id : std::numeric_limits<int64_t>::max());
  if (!f.pipeline.empty()) q.Bind(2, f.pipeline);
  if (f.state) q.Bind(3, std::string(engine::Name(*f.state)));
  q.Bind(4, f.limit);
  std::vector<RunRow> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) out.push_back(ReadRun(q));
  if (rc != SQLITE_DONE) return Error("list runs");
  return out;
}

Result<int64_t> Store::DataVersion() {
  Stmt& q = Prepare("PRAGMA data_version");
  ResetOnExit<Stmt> r{q};
  if (q.Step() != SQLITE_ROW) return Error("read data_version");
  return q.Int(0);
}

Result<std::optional<int64_t>> Store::LastFire(const std::string& pipeline, const std::string& schedule) {
  Stmt& q = Prepare("SELECT fired_ms FROM schedule_fires WHERE pipeline = ? AND schedule = ?");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, pipeline).Bind(2, schedule);
  int rc = q.Step();
  if (rc == SQLITE_DONE) return std::optional<int64_t>();
  if (rc != SQLITE_ROW) return Error("read schedule of " + pipeline);
  return std::optional<int64_t>(q.Int(0));
}

Status Store::SetLastFire(const std::string& pipeline, const std::string& schedule, int64_t fired_ms) {
  Stmt& q = Prepare(
      "INSERT INTO schedule_fires(pipeline, schedule, fired_ms) VALUES (?, ?, ?) "
      "ON CONFLICT(pipeline, schedule) DO UPDATE SET fired_ms = excluded.fired_ms");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, pipeline).Bind(2, schedule).Bind(3, fired_ms);
  if (q.Step() != SQLITE_DONE) return Error("save schedule of " + pipeline);
  return Status::Ok();
}

Result<DeliveryCheck> Store::RecordDelivery(const std::string& pipeline, const std::string& delivery,
                                            const std::string& body_sha256, int64_t now_ms, int64_t window_ms) {
  Status st = Begin();
  if (!st.ok()) return st;
  auto fail = [&](const std::string& what) {
    Status e = Error(what);
    Rollback();
    return e;
  };
  DeliveryCheck out;
  {
    // Rows older than the window say nothing any more.
    Stmt& prune = Prepare("DELETE FROM webhook_deliveries WHERE received_ms < ?");
    ResetOnExit<Stmt> r{prune};
    if (prune.Bind(1, now_ms - window_ms).Step() != SQLITE_DONE) return fail("prune webhook deliveries");
  }
  {
    Stmt& q = Prepare("SELECT IFNULL(run_id, 0) FROM webhook_deliveries WHERE pipeline = ? AND delivery = ?");
    ResetOnExit<Stmt> r{q};
    int rc = q.Bind(1, pipeline).Bind(2, delivery).Step();
    if (rc == SQLITE_ROW) {
      out.duplicate = true;
      out.run_id = q.Int(0);
      out.earlier_delivery = delivery;
    } else if (rc != SQLITE_DONE) {
      return fail("read webhook delivery");
    }
  }
  if (!out.duplicate) {
    Stmt& q = Prepare(
        "SELECT IFNULL(run_id, 0), delivery FROM webhook_deliveries WHERE pipeline = ? AND body_sha256 = ? "
        "ORDER BY received_ms LIMIT 1");
    ResetOnExit<Stmt> r{q};
    int rc = q.Bind(1, pipeline).Bind(2, body_sha256).Step();
    if (rc == SQLITE_ROW) {
      out.duplicate = true;
      out.same_body = true;
      out.run_id = q.Int(0);
      out.earlier_delivery = q.Text(1);
    } else if (rc != SQLITE_DONE) {
      return fail("read webhook deliveries");
    }
  }
  if (!out.duplicate) {
    Stmt& ins = Prepare("INSERT INTO webhook_deliveries(pipeline, delivery, received_ms, body_sha256) VALUES (?, ?, ?, ?)");
    ResetOnExit<Stmt> r{ins};
    if (ins.Bind(1, pipeline).Bind(2, delivery).Bind(3, now_ms).Bind(4, body_sha256).Step() != SQLITE_DONE)
      return fail("record webhook delivery");
  }
  st = Commit();
  if (!st.ok()) return st;
  return out;
}

Status Store::SetDeliveryRun(const std::string& pipeline, const std::string& delivery, int64_t run_id) {
  Stmt& q = Prepare("UPDATE webhook_deliveries SET run_id = ? WHERE pipeline = ? AND delivery = ?");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, run_id).Bind(2, pipeline).Bind(3, delivery);
  if (q.Step() != SQLITE_DONE) return Error("record webhook delivery's run");
  return Status::Ok();
}

Result<std::vector<RunRow>> Store::QueuedRuns() {
  static const std::string sql = std::string(kRunColumns) + "WHERE state = 'queued' ORDER BY id";
  Stmt& q = Prepare(sql.c_str());
  ResetOnExit<Stmt> r{q};
  std::vector<RunRow> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) out.push_back(ReadRun(q));
  if (rc != SQLITE_DONE) return Error("list queued runs");
  return out;
}

Result<bool> Store::QueueRetry(int64_t run_id) {
  Stmt& q = Prepare(
      "UPDATE runs SET queued_from = state, state = 'queued' WHERE id = ? AND state IN ('failed', 'cancelled')");
  ResetOnExit<Stmt> r{q};
  if (q.Bind(1, run_id).Step() != SQLITE_DONE) return Error("queue a retry of run " + std::to_string(run_id));
  return sqlite3_changes(db_) == 1;
}

Result<bool> Store::StartQueued(int64_t run_id) {
  Stmt& q = Prepare(
      "UPDATE runs SET state = IFNULL(queued_from, 'pending'), queued_from = NULL WHERE id = ? AND state = 'queued'");
  ResetOnExit<Stmt> r{q};
  if (q.Bind(1, run_id).Step() != SQLITE_DONE) return Error("start queued run " + std::to_string(run_id));
  return sqlite3_changes(db_) == 1;
}

Result<bool> Store::CancelQueued(int64_t run_id, int64_t now_ms) {
  Stmt& q = Prepare(
      "UPDATE runs SET state = 'cancelled', queued_from = NULL, finished_ms = ? WHERE id = ? AND state = 'queued'");
  ResetOnExit<Stmt> r{q};
  if (q.Bind(1, now_ms).Bind(2, run_id).Step() != SQLITE_DONE) return Error("cancel queued run " + std::to_string(run_id));
  return sqlite3_changes(db_) == 1;
}

Result<std::string> Store::SpecText(const std::string& hash) {
  Stmt& q = Prepare("SELECT text FROM specs WHERE hash = ?");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, hash);
  if (q.Step() != SQLITE_ROW) return Status::NotFound("no spec with hash " + hash);
  return q.Text(0);
}

Result<std::vector<StepRecord>> Store::LoadSteps(int64_t run_id) {
  Stmt& q = Prepare(
      "SELECT step_id, item, state, tries, attempts, item_value, items, outputs, reason FROM steps "
      "WHERE run_id = ? ORDER BY step_id, item");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, run_id);
  std::vector<StepRecord> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) {
    StepRecord s;
    s.step_id = q.Text(0);
    s.item = static_cast<int>(q.Int(1));
    s.state = engine::ParseStepState(q.Text(2)).value_or(StepState::kPending);
    s.tries = static_cast<int>(q.Int(3));
    s.attempts = static_cast<int>(q.Int(4));
    auto parse = [](const std::string& t) { return nlohmann::json::parse(t, nullptr, false); };
    if (!q.IsNull(5)) s.item_value = spec::Value::FromJson(parse(q.Text(5)));
    if (!q.IsNull(6)) {
      spec::Value items = spec::Value::FromJson(parse(q.Text(6)));
      if (items.is_list()) s.items = items.as_list();
    }
    auto outputs = parse(q.Text(7));
    if (outputs.is_object())
      for (auto& [k, v] : outputs.items()) s.outputs[k] = spec::Value::FromJson(v);
    s.reason = q.Text(8);
    out.push_back(std::move(s));
  }
  if (rc != SQLITE_DONE) return Error("load steps of run " + std::to_string(run_id));
  return out;
}

Result<std::vector<AttemptRecord>> Store::ListAttempts(int64_t run_id) {
  Stmt& q = Prepare(
      "SELECT id, step_id, item, number, state, reason, IFNULL(exit_code, -1), IFNULL(pid, 0), "
      "IFNULL(started_ms, 0), IFNULL(finished_ms, 0), log_path, IFNULL(job_id, '') FROM attempts WHERE run_id = ? "
      "ORDER BY id");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, run_id);
  std::vector<AttemptRecord> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) {
    AttemptRecord a;
    a.id = q.Int(0);
    a.run_id = run_id;
    a.step_id = q.Text(1);
    a.item = static_cast<int>(q.Int(2));
    a.number = static_cast<int>(q.Int(3));
    a.state = engine::ParseStepState(q.Text(4)).value_or(StepState::kLost);
    a.reason = q.Text(5);
    a.exit_code = static_cast<int>(q.Int(6));
    a.pid = q.Int(7);
    a.started_ms = q.Int(8);
    a.finished_ms = q.Int(9);
    a.log_path = q.Text(10);
    a.job_id = q.Text(11);
    out.push_back(std::move(a));
  }
  if (rc != SQLITE_DONE) return Error("list attempts of run " + std::to_string(run_id));
  return out;
}

Status Store::SetOwner(int64_t run_id, int64_t pid, int64_t pid_start) {
  Stmt& q = Prepare("UPDATE runs SET owner_pid = ?, owner_start = ? WHERE id = ?");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, pid).Bind(2, pid_start).Bind(3, run_id);
  if (q.Step() != SQLITE_DONE) return Error("set owner of run " + std::to_string(run_id));
  return Status::Ok();
}

Status Store::RequestCancel(int64_t run_id) {
  Stmt& q = Prepare("UPDATE runs SET cancel_requested = 1 WHERE id = ?");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, run_id);
  if (q.Step() != SQLITE_DONE) return Error("cancel run " + std::to_string(run_id));
  return Status::Ok();
}

Result<std::vector<AttemptRecord>> Store::TakeOverRun(int64_t run_id, int64_t now_ms) {
  auto all = ListAttempts(run_id);
  if (!all.ok()) return all.status();
  std::vector<AttemptRecord> lost;
  for (AttemptRecord& a : *all)
    if (a.state == StepState::kRunning && a.job_id.empty()) lost.push_back(a);
  Status st = Begin();
  if (!st.ok()) return st;
  Stmt& q = Prepare(
      "UPDATE attempts SET state = 'lost', reason = 'the orchestrator stopped while it ran', finished_ms = ? "
      "WHERE run_id = ? AND state = 'running' AND IFNULL(job_id, '') = ''");
  Stmt& c = Prepare("UPDATE runs SET cancel_requested = 0 WHERE id = ?");
  bool ok;
  {
    ResetOnExit<Stmt> r1{q};
    ResetOnExit<Stmt> r2{c};
    ok = q.Bind(1, now_ms).Bind(2, run_id).Step() == SQLITE_DONE && c.Bind(1, run_id).Step() == SQLITE_DONE;
  }
  if (!ok) {
    Status e = Error("take over run " + std::to_string(run_id));
    Rollback();
    return e;
  }
  st = Commit();
  if (!st.ok()) return st;
  for (AttemptRecord& a : lost) a.state = StepState::kLost;
  return lost;
}

Status Store::ResetSteps(int64_t run_id, const std::vector<std::string>& rerun,
                         const std::vector<std::string>& failed_items, const RunSpecUpdate* reload) {
  // Records are reset, never deleted: their attempt counters keep attempt
  // numbers (and log file names) unique within the run.
  Status st = Begin();
  if (!st.ok()) return st;
  if (reload) {
    std::string hash = Sha256Hex(reload->spec_text);
    Stmt& spec = Prepare("INSERT OR IGNORE INTO specs(hash, text) VALUES (?, ?)");
    Stmt& run = Prepare("UPDATE runs SET spec_hash = ?, params = ? WHERE id = ?");
    bool ok;
    {
      ResetOnExit<Stmt> r1{spec};
      ResetOnExit<Stmt> r2{run};
      ok = spec.Bind(1, hash).Bind(2, reload->spec_text).Step() == SQLITE_DONE &&
           run.Bind(1, hash).Bind(2, reload->params_json).Bind(3, run_id).Step() == SQLITE_DONE;
    }
    if (!ok) {
      Status e = Error("store the reloaded spec of run " + std::to_string(run_id));
      Rollback();
      return e;
    }
  }
  Stmt& all = Prepare(
      "UPDATE steps SET state = 'pending', tries = 0, reason = '', outputs = '{}', items = NULL "
      "WHERE run_id = ? AND step_id = ?");
  Stmt& failed = Prepare(
      "UPDATE steps SET state = 'pending', tries = 0, reason = '', outputs = '{}' "
      "WHERE run_id = ? AND step_id = ? AND state IN ('failed', 'cancelled', 'pending', 'running')");
  Stmt& run = Prepare("UPDATE runs SET state = 'pending', finished_ms = NULL, cancel_requested = 0 WHERE id = ?");
  bool ok = true;
  for (const std::string& s : rerun) {
    ResetOnExit<Stmt> r{all};
    ok = ok && all.Bind(1, run_id).Bind(2, s).Step() == SQLITE_DONE;
  }
  for (const std::string& s : failed_items) {
    ResetOnExit<Stmt> r{failed};
    ok = ok && failed.Bind(1, run_id).Bind(2, s).Step() == SQLITE_DONE;
  }
  {
    ResetOnExit<Stmt> r{run};
    ok = ok && run.Bind(1, run_id).Step() == SQLITE_DONE;
  }
  if (!ok) {
    Status e = Error("reset steps of run " + std::to_string(run_id));
    Rollback();
    return e;
  }
  return Commit();
}

Result<std::string> Store::IntegrityCheck() {
  Stmt& q = Prepare("PRAGMA integrity_check");
  ResetOnExit<Stmt> r{q};
  std::string out;
  while (q.Step() == SQLITE_ROW) {
    if (!out.empty()) out += '\n';
    out += q.Text(0);
  }
  return out;
}

Status Store::SaveStep(int64_t run_id, const StepRecord& s) {
  Stmt& q = Prepare(
      "INSERT OR REPLACE INTO steps(run_id, step_id, item, state, tries, attempts, item_value, items, outputs, reason) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, run_id).Bind(2, s.step_id).Bind(3, s.item).Bind(4, std::string(engine::Name(s.state)));
  q.Bind(5, s.tries).Bind(6, s.attempts);
  if (s.item >= 0) q.Bind(7, JsonText(s.item_value.ToJson()));
  else q.BindNull(7);
  if (s.items) q.Bind(8, JsonText(spec::Value::Of(*s.items).ToJson()));
  else q.BindNull(8);
  q.Bind(9, OutputsJson(s.outputs)).Bind(10, s.reason);
  if (q.Step() != SQLITE_DONE) return Error("save step " + s.step_id);
  return Status::Ok();
}

Status Store::Join() {
  if (batch_open_) return Status::Ok();
  Status st = Begin();
  batch_open_ = st.ok();
  if (!st.ok()) return st;
  Stmt& q = Prepare("UPDATE attempts SET pid = ? WHERE id = ?");
  for (const auto& [id, pid] : pending_pids_) {
    ResetOnExit<Stmt> r{q};
    if (q.Bind(1, pid).Bind(2, id).Step() != SQLITE_DONE) return Abandon(Error("record pid of attempt " + std::to_string(id)));
  }
  pending_pids_.clear();
  return Status::Ok();
}

// Undoes the open batch after a failed write; returns that failure.
Status Store::Abandon(Status failure) {
  if (batch_open_) Rollback();
  batch_open_ = false;
  return failure;
}

Status Store::Flush() {
  if (!batch_open_) return Status::Ok();
  batch_open_ = false;
  Status st = Commit();
  if (!st.ok()) Rollback();
  return st;
}

Status Store::SaveSteps(int64_t run_id, const std::vector<const StepRecord*>& steps) {
  Status st = Join();
  if (!st.ok()) return st;
  for (const StepRecord* s : steps) {
    st = SaveStep(run_id, *s);
    if (!st.ok()) return Abandon(st);
  }
  return Status::Ok();
}

Status Store::BeginAttempt(AttemptRecord* a, const StepRecord& step) {
  Status st = Join();
  if (!st.ok()) return st;
  Stmt& q = Prepare(
      "INSERT INTO attempts(run_id, step_id, item, number, state, reason, started_ms, log_path) "
      "VALUES (?, ?, ?, ?, 'running', '', ?, ?)");
  {
    ResetOnExit<Stmt> r{q};
    q.Bind(1, a->run_id).Bind(2, a->step_id).Bind(3, a->item).Bind(4, a->number).Bind(5, a->started_ms).Bind(6, a->log_path);
    if (q.Step() != SQLITE_DONE)
      return Abandon(Error("record attempt " + std::to_string(a->number) + " of step " + a->step_id));
  }
  a->id = sqlite3_last_insert_rowid(db_);
  a->state = StepState::kRunning;
  st = SaveStep(a->run_id, step);
  return st.ok() ? st : Abandon(st);
}

Status Store::AttemptStarted(const AttemptRecord& a) {
  if (a.pid > 0) pending_pids_.emplace_back(a.id, a.pid);
  if (a.job_id.empty()) return Status::Ok();
  Status st = Join();
  if (!st.ok()) return st;
  Stmt& q = Prepare("UPDATE attempts SET job_id = ? WHERE id = ?");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, a.job_id).Bind(2, a.id);
  if (q.Step() != SQLITE_DONE) return Abandon(Error("record the job of attempt " + std::to_string(a.id)));
  return Status::Ok();
}

Status Store::FinishAttempt(const AttemptRecord& a, const StepRecord& step) {
  // An attempt that ends before its pid was written takes it along here.
  std::erase_if(pending_pids_, [&](const auto& p) { return p.first == a.id; });
  Status st = Join();
  if (!st.ok()) return st;
  Stmt& q = Prepare(
      "UPDATE attempts SET state = ?, reason = ?, exit_code = ?, finished_ms = ?, pid = IFNULL(?, pid), "
      "fingerprint = ?, identity = ?, outputs = ? WHERE id = ?");
  {
    ResetOnExit<Stmt> r{q};
    q.Bind(1, std::string(engine::Name(a.state))).Bind(2, a.reason);
    if (a.exit_code >= 0) q.Bind(3, a.exit_code);
    else q.BindNull(3);
    q.Bind(4, a.finished_ms);
    if (a.pid > 0) q.Bind(5, a.pid);
    else q.BindNull(5);
    if (a.fingerprint.empty()) q.BindNull(6).BindNull(7);
    else q.Bind(6, a.fingerprint).Bind(7, a.identity);
    if (a.state == StepState::kSucceeded || a.state == StepState::kCached) q.Bind(8, OutputsJson(step.outputs));
    else q.BindNull(8);
    q.Bind(9, a.id);
    if (q.Step() != SQLITE_DONE) return Abandon(Error("finish attempt " + std::to_string(a.id)));
  }
  st = SaveStep(a.run_id, step);
  return st.ok() ? st : Abandon(st);
}

Status Store::SetRunState(int64_t run_id, engine::RunState state, int64_t at_ms) {
  Status st = Join();
  if (!st.ok()) return st;
  bool final = state != engine::RunState::kPending && state != engine::RunState::kRunning &&
               state != engine::RunState::kQueued;
  Stmt& q = Prepare(final ? "UPDATE runs SET state = ?, finished_ms = ? WHERE id = ?"
                          : "UPDATE runs SET state = ?, started_ms = IFNULL(started_ms, ?) WHERE id = ?");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, std::string(engine::Name(state))).Bind(2, at_ms).Bind(3, run_id);
  if (q.Step() != SQLITE_DONE) return Abandon(Error("set state of run " + std::to_string(run_id)));
  return Status::Ok();
}

Status Store::SaveMetrics(const AttemptRecord& a, const std::vector<engine::Metric>& metrics) {
  if (metrics.empty()) return Status::Ok();
  Status st = Join();
  if (!st.ok()) return st;
  Stmt& q = Prepare("INSERT INTO metrics(attempt_id, name, value, step, at_ms) VALUES (?, ?, ?, ?, ?)");
  for (const engine::Metric& m : metrics) {
    ResetOnExit<Stmt> r{q};
    q.Bind(1, a.id).Bind(2, m.name).Bind(4, m.step).Bind(5, a.finished_ms);
    sqlite3_bind_double(q.raw(), 3, m.value);
    if (q.Step() != SQLITE_DONE) return Abandon(Error("save metric " + m.name + " of attempt " + std::to_string(a.id)));
  }
  return Status::Ok();
}

Status Store::SaveLineage(const AttemptRecord& a, const std::vector<engine::LineageEdge>& edges) {
  if (edges.empty()) return Status::Ok();
  Status st = Join();
  if (!st.ok()) return st;
  Stmt& art = Prepare("INSERT OR IGNORE INTO artifacts(hash, kind, size, uri, created_ms) VALUES (?, ?, ?, ?, ?)");
  Stmt& edge = Prepare("INSERT OR IGNORE INTO lineage(attempt_id, artifact, role, name) VALUES (?, ?, ?, ?)");
  for (const engine::LineageEdge& e : edges) {
    {
      ResetOnExit<Stmt> r{art};
      art.Bind(1, e.artifact.hash).Bind(2, e.artifact.kind).Bind(3, e.artifact.size).Bind(4, e.artifact.uri);
      art.Bind(5, a.started_ms);
      if (art.Step() != SQLITE_DONE) return Abandon(Error("record artifact " + e.artifact.hash));
    }
    ResetOnExit<Stmt> r{edge};
    edge.Bind(1, a.id).Bind(2, e.artifact.hash).Bind(3, std::string(engine::Name(e.role))).Bind(4, e.name);
    if (edge.Step() != SQLITE_DONE) return Abandon(Error("record lineage of attempt " + std::to_string(a.id)));
  }
  return Status::Ok();
}

Result<std::optional<engine::CachedResult>> Store::FindCached(const std::string& fingerprint) {
  Stmt& q = Prepare(
      "SELECT id, run_id, step_id, outputs, IFNULL(finished_ms, 0) FROM attempts WHERE fingerprint = ? AND state = 'succeeded' "
      "ORDER BY id DESC LIMIT 1");
  engine::CachedResult c;
  {
    ResetOnExit<Stmt> r{q};
    q.Bind(1, fingerprint);
    int rc = q.Step();
    if (rc == SQLITE_DONE) return std::optional<engine::CachedResult>();
    if (rc != SQLITE_ROW) return Error("look up the cache");
    c.attempt_id = q.Int(0);
    c.run_id = q.Int(1);
    c.step_id = q.Text(2);
    c.finished_ms = q.Int(4);
    auto outputs = nlohmann::json::parse(q.Text(3), nullptr, false);
    if (outputs.is_object())
      for (auto& [k, v] : outputs.items()) c.outputs[k] = spec::Value::FromJson(v);
  }
  Stmt& e = Prepare(
      "SELECT l.name, a.hash, a.kind, a.size, a.uri FROM lineage l JOIN artifacts a ON a.hash = l.artifact "
      "WHERE l.attempt_id = ? AND l.role = 'produced' ORDER BY l.name");
  ResetOnExit<Stmt> r{e};
  e.Bind(1, c.attempt_id);
  int rc;
  while ((rc = e.Step()) == SQLITE_ROW)
    c.produced.push_back({engine::LineageEdge::Role::kProduced, e.Text(0), {e.Text(1), e.Text(2), e.Int(3), e.Text(4)}});
  if (rc != SQLITE_DONE) return Error("read the outputs of attempt " + std::to_string(c.attempt_id));
  return std::optional<engine::CachedResult>(std::move(c));
}

Result<std::optional<engine::AttemptRecord>> Store::LatestResult(const std::string& pipeline,
                                                                 const std::string& step, int item) {
  Stmt& q = Prepare(
      "SELECT a.id, a.run_id, a.state, IFNULL(a.identity, ''), IFNULL(a.fingerprint, ''), IFNULL(a.finished_ms, 0)"
      " FROM runs r JOIN attempts a ON a.run_id = r.id AND a.step_id = ?2 AND a.item = ?3"
      " WHERE r.pipeline = ?1 AND a.state IN ('succeeded', 'cached') ORDER BY a.id DESC LIMIT 1");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, pipeline).Bind(2, step).Bind(3, static_cast<int64_t>(item));
  int rc = q.Step();
  if (rc == SQLITE_DONE) return std::optional<engine::AttemptRecord>();
  if (rc != SQLITE_ROW) return Error("find the latest result of step '" + step + "'");
  engine::AttemptRecord a;
  a.id = q.Int(0);
  a.run_id = q.Int(1);
  a.step_id = step;
  a.item = item;
  a.state = engine::ParseStepState(q.Text(2)).value_or(engine::StepState::kSucceeded);
  a.identity = q.Text(3);
  a.fingerprint = q.Text(4);
  a.finished_ms = q.Int(5);
  return std::optional<engine::AttemptRecord>(std::move(a));
}

Result<engine::AttemptRecord> Store::LatestAttempt(int64_t run_id, const std::string& step, int item) {
  auto all = ListAttempts(run_id);
  if (!all.ok()) return all.status();
  for (auto it = all->rbegin(); it != all->rend(); ++it)
    if (it->step_id == step && it->item == item) return *it;
  return Status::NotFound("run " + std::to_string(run_id) + " has no attempt of step '" + step + "'");
}

Result<Store::LineageGraph> Store::Lineage(const std::string& artifact_hash, int64_t attempt_id, bool upstream) {
  // 1. The attempts on the walk, into temp.walk_attempts: upstream, the
  //    producers of the start and, transitively, of what they consumed;
  //    downstream, the consumers of the start and of what they produced.
  //    Walking integer attempt ids is about three times faster than
  //    walking 64-character hashes.
  // 2. The artifacts on the walk, into temp.walk: the start and what those
  //    attempts consumed (upstream) or produced (downstream).
  // 3. Everything about them, set-based.
  static const char* kUp =
      "INSERT INTO temp.walk_attempts(id) WITH RECURSIVE att(id) AS ("
      "  SELECT attempt_id FROM lineage WHERE ?1 != '' AND artifact = ?1 AND role = 'produced'"
      "  UNION SELECT ?2 WHERE ?2 != 0"
      "  UNION SELECT p.attempt_id FROM att"
      "  JOIN lineage c ON c.attempt_id = att.id AND c.role = 'consumed'"
      "  JOIN lineage p ON p.artifact = c.artifact AND p.role = 'produced')"
      " SELECT id FROM att";
  static const char* kDown =
      "INSERT INTO temp.walk_attempts(id) WITH RECURSIVE att(id) AS ("
      "  SELECT attempt_id FROM lineage WHERE ?1 != '' AND artifact = ?1 AND role = 'consumed'"
      "  UNION SELECT ?2 WHERE ?2 != 0"
      "  UNION SELECT c.attempt_id FROM att"
      "  JOIN lineage p ON p.attempt_id = att.id AND p.role IN ('produced', 'reused')"
      "  JOIN lineage c ON c.artifact = p.artifact AND c.role = 'consumed')"
      " SELECT id FROM att";
  Status st = Exec(
      "CREATE TEMP TABLE IF NOT EXISTS walk(hash TEXT PRIMARY KEY) WITHOUT ROWID;"
      "CREATE TEMP TABLE IF NOT EXISTS walk_attempts(id INTEGER PRIMARY KEY);"
      "DELETE FROM temp.walk; DELETE FROM temp.walk_attempts;");
  if (!st.ok()) return st;
  {
    Stmt& q = Prepare(upstream ? kUp : kDown);
    ResetOnExit<Stmt> r{q};
    q.Bind(1, artifact_hash).Bind(2, attempt_id);
    if (q.Step() != SQLITE_DONE) return Error("walk the lineage");
  }
  {
    Stmt& q = Prepare(upstream ? "INSERT OR IGNORE INTO temp.walk(hash) SELECT ?1 WHERE ?1 != ''"
                                 " UNION ALL SELECT l.artifact FROM temp.walk_attempts t"
                                 " JOIN lineage l ON l.attempt_id = t.id AND l.role = 'consumed'"
                               : "INSERT OR IGNORE INTO temp.walk(hash) SELECT ?1 WHERE ?1 != ''"
                                 " UNION ALL SELECT l.artifact FROM temp.walk_attempts t"
                                 " JOIN lineage l ON l.attempt_id = t.id AND l.role IN ('produced', 'reused')");
    ResetOnExit<Stmt> r{q};
    q.Bind(1, artifact_hash);
    if (q.Step() != SQLITE_DONE) return Error("walk the lineage");
  }
  LineageGraph g;
  {
    Stmt& q = Prepare("SELECT a.hash, a.kind, a.size, a.uri FROM temp.walk w JOIN artifacts a ON a.hash = w.hash");
    ResetOnExit<Stmt> r{q};
    while (q.Step() == SQLITE_ROW) g.artifacts.push_back({q.Text(0), q.Text(1), q.Int(2), q.Text(3)});
  }
  {
    Stmt& q = Prepare(
        "SELECT l.attempt_id, l.artifact, l.role, l.name FROM temp.walk_attempts t JOIN lineage l ON l.attempt_id = t.id"
        " WHERE l.artifact IN (SELECT hash FROM temp.walk)");
    ResetOnExit<Stmt> r{q};
    while (q.Step() == SQLITE_ROW) g.edges.push_back({q.Int(0), q.Text(1), q.Text(2), q.Text(3)});
  }
  {
    Stmt& q = Prepare(
        "SELECT a.id, a.run_id, a.step_id, a.item, a.number, a.state, a.reason, IFNULL(a.identity, '')"
        " FROM temp.walk_attempts t JOIN attempts a ON a.id = t.id");
    ResetOnExit<Stmt> r{q};
    while (q.Step() == SQLITE_ROW) {
      engine::AttemptRecord a;
      a.id = q.Int(0);
      a.run_id = q.Int(1);
      a.step_id = q.Text(2);
      a.item = static_cast<int>(q.Int(3));
      a.number = static_cast<int>(q.Int(4));
      a.state = engine::ParseStepState(q.Text(5)).value_or(StepState::kLost);
      a.reason = q.Text(6);
      a.identity = q.Text(7);
      g.attempts.push_back(std::move(a));
    }
  }
  return g;
}

Result<int> Store::RegisterModel(const std::string& name, const std::string& artifact, int64_t run_id,
                                 const std::string& step_id, int64_t attempt_id, int64_t now_ms) {
  Status st = Join();
  if (!st.ok()) return st;
  {
    Stmt& q = Prepare("SELECT version FROM model_versions WHERE name = ? AND artifact = ? AND deleted_ms IS NULL");
    ResetOnExit<Stmt> r{q};
    q.Bind(1, name).Bind(2, artifact);
    if (q.Step() == SQLITE_ROW) return static_cast<int>(q.Int(0));  // the same model: the same version
  }
  Stmt& ins = Prepare(
      "INSERT INTO model_versions(name, version, artifact, run_id, step_id, attempt_id, created_ms) "
      "SELECT ?1, IFNULL(MAX(version), 0) + 1, ?2, ?3, ?4, ?5, ?6 FROM model_versions WHERE name = ?1 "
      "RETURNING version");
  ResetOnExit<Stmt> r{ins};
  ins.Bind(1, name).Bind(2, artifact).Bind(6, now_ms);
  if (run_id) ins.Bind(3, run_id).Bind(4, step_id).Bind(5, attempt_id);
  else ins.BindNull(3).BindNull(4).BindNull(5);
  if (ins.Step() != SQLITE_ROW) return Abandon(Error("register model " + name));
  return static_cast<int>(ins.Int(0));
}

namespace {
Status DeletedVersion(const std::string& name, int version) {
  return Status::NotFound("model '" + name + "' has no version " + std::to_string(version) + " (it was deleted)");
}
}  // namespace

Result<Store::VersionState> Store::FindVersion(const std::string& name, int version) {
  std::string ref = name + "@" + std::to_string(version);
  VersionState v;
  {
    Stmt& q = Prepare(
        "SELECT archived_ms IS NOT NULL, deleted_ms IS NOT NULL FROM model_versions WHERE name = ? AND version = ?");
    ResetOnExit<Stmt> r{q};
    q.Bind(1, name).Bind(2, version);
    int rc = q.Step();
    if (rc == SQLITE_DONE) return Status::NotFound("model '" + name + "' has no version " + std::to_string(version));
    if (rc != SQLITE_ROW) return Error("look up " + ref);
    v.archived = q.Int(0) != 0;
    v.deleted = q.Int(1) != 0;
  }
  Stmt& q = Prepare("SELECT alias FROM model_aliases WHERE name = ? AND version = ? ORDER BY alias");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, name).Bind(2, version);
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) v.aliases.push_back(q.Text(0));
  if (rc != SQLITE_DONE) return Error("read the aliases of " + ref);
  return v;
}

namespace {
// Why a version that aliases point at is not archived or deleted: an alias
// like production must never point at something hidden or gone.
Status AliasesInTheWay(const std::string& name, int version, const std::vector<std::string>& aliases,
                       const std::string& what) {
  std::string ref = name + "@" + std::to_string(version);
  return Status::Incompatible(
      (aliases.size() == 1 ? "alias " + Quote(aliases[0]) + " points" : "aliases " + Join(aliases, ", ") + " point") +
      " at " + ref + "; move or remove " + (aliases.size() == 1 ? "it" : "them") + " before it is " + what +
      " (sluice models promote " + name + " --alias " + aliases[0] + " --remove)");
}
}  // namespace

Status Store::SetAlias(const std::string& name, int version, const std::string& alias, int64_t now_ms) {
  auto v = FindVersion(name, version);
  if (!v.ok()) return v.status();
  if (v->deleted) return DeletedVersion(name, version);
  if (v->archived)
    return Status::Incompatible(name + "@" + std::to_string(version) + " is archived; an alias points only at a version "
                                "in use (sluice models unarchive " + name + "@" + std::to_string(version) + ")");
  Stmt& q = Prepare("INSERT OR REPLACE INTO model_aliases(name, alias, version, updated_ms) VALUES (?, ?, ?, ?)");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, name).Bind(2, alias).Bind(3, version).Bind(4, now_ms);
  if (q.Step() != SQLITE_DONE) return Error("set alias " + alias + " of model " + name);
  return Status::Ok();
}

Result<int> Store::RemoveAlias(const std::string& name, const std::string& alias, int expected) {
  int version = 0;
  {
    Stmt& q = Prepare("SELECT version FROM model_aliases WHERE name = ? AND alias = ?");
    ResetOnExit<Stmt> r{q};
    q.Bind(1, name).Bind(2, alias);
    int rc = q.Step();
    if (rc == SQLITE_DONE) return Status::NotFound("model '" + name + "' has no alias " + Quote(alias));
    if (rc != SQLITE_ROW) return Error("read alias " + alias + " of model " + name);
    version = static_cast<int>(q.Int(0));
  }
  if (expected > 0 && expected != version)
    return Status::Incompatible(name + "@" + alias + " points at version " + std::to_string(version) + ", not " +
                                std::to_string(expected) + "; nothing removed");
  Stmt& q = Prepare("DELETE FROM model_aliases WHERE name = ? AND alias = ? AND version = ?");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, name).Bind(2, alias).Bind(3, version);
  if (q.Step() != SQLITE_DONE) return Error("remove alias " + alias + " of model " + name);
  return version;
}

Status Store::ArchiveModel(const std::string& name, int version, bool archived, int64_t now_ms) {
  auto v = FindVersion(name, version);
  if (!v.ok()) return v.status();
  if (v->deleted) return DeletedVersion(name, version);
  if (archived && !v->aliases.empty()) return AliasesInTheWay(name, version, v->aliases, "archived");
  Stmt& q = Prepare(archived ? "UPDATE model_versions SET archived_ms = IFNULL(archived_ms, ?1) WHERE name = ?2 AND version = ?3"
                             : "UPDATE model_versions SET archived_ms = NULL WHERE name = ?2 AND version = ?3");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, now_ms).Bind(2, name).Bind(3, version);
  if (q.Step() != SQLITE_DONE) return Error(std::string(archived ? "archive " : "unarchive ") + name + "@" + std::to_string(version));
  return Status::Ok();
}

Status Store::DeleteModel(const std::string& name, int version, int64_t now_ms) {
  auto v = FindVersion(name, version);
  if (!v.ok()) return v.status();
  if (v->deleted) return DeletedVersion(name, version);
  if (!v->aliases.empty()) return AliasesInTheWay(name, version, v->aliases, "deleted");
  Stmt& q = Prepare("UPDATE model_versions SET deleted_ms = ? WHERE name = ? AND version = ?");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, now_ms).Bind(2, name).Bind(3, version);
  if (q.Step() != SQLITE_DONE) return Error("delete " + name + "@" + std::to_string(version));
  return Status::Ok();
}

Result<std::string> Store::CreateToken(const std::string& name, TokenScope scope, int64_t now_ms) {
  unsigned char random[32];
  if (RAND_bytes(random, sizeof random) != 1) return Status::Internal("no random bytes for a token");
  std::string token = "slc_" + HexEncode(random, sizeof random);
  Stmt& q = Prepare("INSERT INTO tokens(name, scope, hash, created_ms) VALUES (?, ?, ?, ?)");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, name).Bind(2, std::string(TokenScopeName(scope))).Bind(3, Sha256Hex(token)).Bind(4, now_ms);
  if (q.Step() != SQLITE_DONE) return Error("create a token");
  return token;
}

Result<std::optional<Token>> Store::FindToken(const std::string& text) {
  Stmt& q = Prepare("SELECT id, name, scope, created_ms FROM tokens WHERE hash = ? AND revoked_ms IS NULL");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, Sha256Hex(text));
  int rc = q.Step();
  if (rc == SQLITE_DONE) return std::optional<Token>();
  if (rc != SQLITE_ROW) return Error("look up a token");
  Token t;
  t.id = q.Int(0);
  t.name = q.Text(1);
  t.scope = ParseTokenScope(q.Text(2)).value_or(TokenScope::kRead);
  t.created_ms = q.Int(3);
  return std::optional<Token>(t);
}

Result<std::vector<Token>> Store::ListTokens() {
  Stmt& q = Prepare("SELECT id, name, scope, created_ms, IFNULL(revoked_ms, 0) FROM tokens ORDER BY id");
  ResetOnExit<Stmt> r{q};
  std::vector<Token> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) {
    Token t;
    t.id = q.Int(0);
    t.name = q.Text(1);
    t.scope = ParseTokenScope(q.Text(2)).value_or(TokenScope::kRead);
    t.created_ms = q.Int(3);
    t.revoked_ms = q.Int(4);
    out.push_back(std::move(t));
  }
  if (rc != SQLITE_DONE) return Error("list tokens");
  return out;
}

Status Store::RevokeToken(int64_t id, int64_t now_ms) {
  Stmt& q = Prepare("UPDATE tokens SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, now_ms).Bind(2, id);
  if (q.Step() != SQLITE_DONE) return Error("revoke token " + std::to_string(id));
  if (sqlite3_changes(db_) == 0) return Status::NotFound("no valid token with id " + std::to_string(id));
  return Status::Ok();
}

const char* TokenScopeName(TokenScope s) {
  switch (s) {
    case TokenScope::kRead: return "read";
    case TokenScope::kRun: return "run";
    case TokenScope::kAdmin: return "admin";
  }
  return "read";
}

std::optional<TokenScope> ParseTokenScope(const std::string& text) {
  if (text == "read") return TokenScope::kRead;
  if (text == "run") return TokenScope::kRun;
  if (text == "admin") return TokenScope::kAdmin;
  return std::nullopt;
}

Result<std::vector<ModelVersion>> Store::ListModels(const std::string& name) {
  Stmt& q = Prepare(
      "SELECT v.name, v.version, v.artifact, a.uri, IFNULL(v.run_id, 0), IFNULL(v.step_id, ''), v.created_ms,"
      " (SELECT group_concat(alias, ',') FROM (SELECT alias FROM model_aliases m"
      "   WHERE m.name = v.name AND m.version = v.version ORDER BY alias)),"
      " IFNULL(v.attempt_id, 0), IFNULL(v.archived_ms, 0)"
      " FROM model_versions v JOIN artifacts a ON a.hash = v.artifact"
      " WHERE (?1 = '' OR v.name = ?1) AND v.deleted_ms IS NULL ORDER BY v.name, v.version");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, name);
  std::vector<ModelVersion> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) {
    ModelVersion m;
    m.name = q.Text(0);
    m.version = static_cast<int>(q.Int(1));
    m.artifact = q.Text(2);
    m.uri = q.Text(3);
    m.run_id = q.Int(4);
    m.step_id = q.Text(5);
    m.created_ms = q.Int(6);
    m.attempt_id = q.Int(8);
    m.archived_ms = q.Int(9);
    std::string aliases = q.Text(7);
    for (size_t start = 0; !aliases.empty() && start <= aliases.size();) {
      size_t comma = aliases.find(',', start);
      m.aliases.push_back(aliases.substr(start, comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    out.push_back(std::move(m));
  }
  if (rc != SQLITE_DONE) return Error("list models");
  return out;
}

Result<ModelVersion> Store::ResolveModel(const std::string& ref) {
  size_t at = ref.find('@');
  if (at == std::string::npos || at == 0 || at + 1 == ref.size())
    return Status::InvalidSpec(Quote(ref) + " is not NAME@VERSION or NAME@ALIAS");
  std::string name = ref.substr(0, at), which = ref.substr(at + 1);
  auto all = ListModels(name);
  if (!all.ok()) return all.status();
  bool numeric = which.find_first_not_of("0123456789") == std::string::npos;
  if (numeric && which.size() < 10) {
    int version = std::atoi(which.c_str());
    if (std::none_of(all->begin(), all->end(), [&](const ModelVersion& m) { return m.version == version; })) {
      auto v = FindVersion(name, version);
      if (v.ok() && v->deleted) return DeletedVersion(name, version);
      if (!v.ok() && v.status().code() != Code::kNotFound) return v.status();
    }
  }
  if (all->empty()) return Status::NotFound("no model named '" + name + "'");
  for (const ModelVersion& m : *all) {
    if (numeric && std::to_string(m.version) == which) return m;
    if (!numeric && std::find(m.aliases.begin(), m.aliases.end(), which) != m.aliases.end()) return m;
  }
  if (which == "latest") {  // the newest version in use, unless an alias is named so
    const ModelVersion* newest = nullptr;
    for (const ModelVersion& m : *all)
      if (!m.archived_ms && (!newest || m.version > newest->version)) newest = &m;
    if (newest) return *newest;
    return Status::NotFound("model '" + name + "' has only archived versions; name one by its number (" + name + "@" +
                            std::to_string(all->back().version) + ")");
  }
  return Status::NotFound("model '" + name + "' has no " + (numeric ? "version " : "alias ") + Quote(which));
}

Result<std::vector<std::pair<std::string, int64_t>>> Store::CollectableArtifacts(int64_t keep_since_ms) {
  Stmt& q = Prepare(
      "WITH RECURSIVE keep(hash) AS ("
      "  SELECT artifact FROM model_versions WHERE deleted_ms IS NULL"
      "  UNION SELECT l.artifact FROM lineage l JOIN attempts a ON a.id = l.attempt_id JOIN runs r ON r.id = a.run_id"
      "    WHERE r.created_ms >= ?1 OR r.state IN ('pending', 'running', 'queued')"
      "  UNION SELECT c.artifact FROM keep JOIN lineage p ON p.artifact = keep.hash AND p.role = 'produced'"
      "    JOIN lineage c ON c.attempt_id = p.attempt_id AND c.role = 'consumed')"
      " SELECT hash, size FROM artifacts WHERE hash NOT IN (SELECT hash FROM keep) ORDER BY hash");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, keep_since_ms);
  std::vector<std::pair<std::string, int64_t>> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) out.emplace_back(q.Text(0), q.Int(1));
  if (rc != SQLITE_DONE) return Error("find collectable artifacts");
  return out;
}

Result<bool> Store::HasArtifact(const std::string& hash) {
  Stmt& q = Prepare("SELECT 1 FROM artifacts WHERE hash = ?");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, hash);
  int rc = q.Step();
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Error("look up artifact " + hash);
  return rc == SQLITE_ROW;
}

Result<std::vector<engine::LineageEdge>> Store::AttemptEdges(int64_t attempt_id) {
  Stmt& q = Prepare(
      "SELECT l.role, l.name, a.hash, a.kind, a.size, a.uri FROM lineage l JOIN artifacts a ON a.hash = l.artifact"
      " WHERE l.attempt_id = ? ORDER BY l.role, l.name");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, attempt_id);
  std::vector<engine::LineageEdge> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) {
    std::string role = q.Text(0);
    auto kind = role == "consumed" ? engine::LineageEdge::Role::kConsumed
                : role == "produced" ? engine::LineageEdge::Role::kProduced
                                     : engine::LineageEdge::Role::kReused;
    out.push_back({kind, q.Text(1), {q.Text(2), q.Text(3), q.Int(4), q.Text(5)}});
  }
  if (rc != SQLITE_DONE) return Error("read the lineage of attempt " + std::to_string(attempt_id));
  return out;
}

Result<std::vector<MetricRow>> Store::ListMetrics(int64_t run_id) {
  Stmt& q = Prepare(
      "SELECT a.step_id, a.item, a.number, m.name, m.value, m.step FROM metrics m JOIN attempts a ON a.id = m.attempt_id "
      "WHERE a.run_id = ? ORDER BY m.rowid");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, run_id);
  std::vector<MetricRow> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW)
    out.push_back({q.Text(0), static_cast<int>(q.Int(1)), static_cast<int>(q.Int(2)), q.Text(3), q.Double(4), q.Int(5)});
  if (rc != SQLITE_DONE) return Error("list metrics of run " + std::to_string(run_id));
  return out;
}

Result<std::vector<MetricRow>> Store::ListAttemptMetrics(int64_t attempt_id) {
  Stmt& q = Prepare(
      "SELECT a.step_id, a.item, a.number, m.name, m.value, m.step FROM metrics m JOIN attempts a ON a.id = m.attempt_id "
      "WHERE m.attempt_id = ? ORDER BY m.rowid");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, attempt_id);
  std::vector<MetricRow> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW)
    out.push_back({q.Text(0), static_cast<int>(q.Int(1)), static_cast<int>(q.Int(2)), q.Text(3), q.Double(4), q.Int(5)});
  if (rc != SQLITE_DONE) return Error("list metrics of attempt " + std::to_string(attempt_id));
  return out;
}

Result<bool> Store::CancelRequested(int64_t run_id) {
  Stmt& q = Prepare("SELECT cancel_requested FROM runs WHERE id = ?");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, run_id);
  if (q.Step() != SQLITE_ROW) return Error("read run " + std::to_string(run_id));
  return q.Int(0) != 0;
}

Result<int> Store::LostInARow(int64_t run_id, const std::string& step_id, int item) {
  Stmt& q = Prepare("SELECT state FROM attempts WHERE run_id = ? AND step_id = ? AND item = ? ORDER BY number DESC");
  ResetOnExit<Stmt> r{q};
  q.Bind(1, run_id).Bind(2, step_id).Bind(3, item);
  int lost = 0;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW && q.Text(0) == "lost") ++lost;
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Error("read the attempts of " + step_id);
  return lost;
}

}  // namespace sluice::store
