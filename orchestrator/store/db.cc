#include "store/db.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <thread>

#include <sqlite3.h>

namespace sluice::store {

static_assert(kRow == SQLITE_ROW && kDone == SQLITE_DONE);

Statement::Statement(sqlite3* db, const char* sql) : db_(db) {
  if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) != SQLITE_OK) stmt_ = nullptr;
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Query& Query::Bind(int i, int64_t v) {
  sqlite3_bind_int64(s_.stmt_, i, v);
  return *this;
}

Query& Query::Bind(int i, const std::string& v) {
  sqlite3_bind_text(s_.stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}

Query& Query::BindDouble(int i, double v) {
  sqlite3_bind_double(s_.stmt_, i, v);
  return *this;
}

Query& Query::BindNull(int i) {
  sqlite3_bind_null(s_.stmt_, i);
  return *this;
}

int Query::Step() { return sqlite3_step(s_.stmt_); }
int64_t Query::Int(int c) { return sqlite3_column_int64(s_.stmt_, c); }
double Query::Double(int c) { return sqlite3_column_double(s_.stmt_, c); }
bool Query::IsNull(int c) { return sqlite3_column_type(s_.stmt_, c) == SQLITE_NULL; }

std::string Query::Text(int c) {
  const unsigned char* t = sqlite3_column_text(s_.stmt_, c);
  return t ? std::string(reinterpret_cast<const char*>(t), sqlite3_column_bytes(s_.stmt_, c)) : std::string();
}

void Query::Reset() {
  sqlite3_reset(s_.stmt_);
  sqlite3_clear_bindings(s_.stmt_);
}

Status Query::Error(const std::string& what) {
  return Status::IoError("store: " + what + ": " + sqlite3_errmsg(s_.db_));
}

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

}  // namespace

Db::~Db() {
  if (batch_open_) Rollback();  // never flushed, so never acted on
  cache_.clear();
  sqlite3_close(db_);
}

Status Db::Error(const std::string& what) {
  return Status::IoError("store: " + what + ": " + sqlite3_errmsg(db_));
}

Status Db::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string m = err ? err : "unknown error";
    sqlite3_free(err);
    return Status::IoError(std::string("store: ") + m);
  }
  return Status::Ok();
}

Query Db::Prepare(const char* sql) {
  for (auto& [key, stmt] : cache_)
    if (key == sql) return Query(*stmt);
  cache_.emplace_back(sql, std::make_unique<Statement>(db_, sql));
  return Query(*cache_.back().second);
}

int64_t Db::LastInsertId() { return sqlite3_last_insert_rowid(db_); }
int Db::Changes() { return sqlite3_changes(db_); }

Status Db::Begin() {
  return Prepare("BEGIN IMMEDIATE").Step() == SQLITE_DONE ? Status::Ok() : Error("begin a transaction");
}
Status Db::Commit() { return Prepare("COMMIT").Step() == SQLITE_DONE ? Status::Ok() : Error("commit"); }
void Db::Rollback() { Prepare("ROLLBACK").Step(); }

Result<std::unique_ptr<Db>> Db::Open(const std::string& path) {
  sqlite3* handle = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string m = handle ? sqlite3_errmsg(handle) : sqlite3_errstr(rc);
    sqlite3_close(handle);
    return Status::IoError("open " + path + ": " + m);
  }
  std::unique_ptr<Db> db(new Db(handle));
  sqlite3_busy_timeout(handle, 10000);
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
    st = db->Exec(pragmas.c_str());
    if (st.ok()) st = db->Migrate();
    if (st.ok() || waited_ms >= 10000) break;
    int code = sqlite3_errcode(handle);
    if (code != SQLITE_BUSY && code != SQLITE_LOCKED) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!st.ok()) return st.WithContext("open " + path);
  return db;
}

Status Db::Migrate() {
  Query v = Prepare("PRAGMA user_version");
  if (v.Step() != SQLITE_ROW) return Error("read schema version");
  int64_t version = v.Int(0);
  v.Reset();
  if (version == kSchemaVersion) return Status::Ok();
  if (version > kSchemaVersion)
    return Status::Incompatible("the database has schema version " + std::to_string(version) +
                                ", newer than this sluice knows (" + std::to_string(kSchemaVersion) + "); upgrade sluice");
  // Forward migrations, each in its own transaction with the version bump.
  static const char* kMigrations[] = {kSchemaV1, kSchemaV2, kSchemaV3, kSchemaV4, kSchemaV5, kSchemaV6, kSchemaV7, kSchemaV8,
                                       kSchemaV9, kSchemaV10};
  static_assert(std::size(kMigrations) == kSchemaVersion);
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

Status Db::RequireNoBatch(const char* method) const {
  if (!batch_open_) return Status::Ok();
  return Status::Internal(std::string("store: ") + method +
                          " is a transaction of its own and was called while a journal batch is open (Flush() first)");
}

Status Db::JoinBatch() {
  if (batch_open_) return Status::Ok();
  Status st = Begin();
  batch_open_ = st.ok();
  return st;
}

Status Db::Abandon(Status failure) {
  if (batch_open_) Rollback();
  batch_open_ = false;
  return failure;
}

Status Db::Flush() {
  if (!batch_open_) return Status::Ok();
  batch_open_ = false;
  Status st = Commit();
  if (!st.ok()) Rollback();
  return st;
}

Result<int64_t> Db::DataVersion() {
  Query q = Prepare("PRAGMA data_version");
  if (q.Step() != SQLITE_ROW) return Error("read data_version");
  return q.Int(0);
}

Result<std::string> Db::IntegrityCheck() {
  Query q = Prepare("PRAGMA integrity_check");
  std::string out;
  Status st = q.ForEachRow("check integrity", [&] {
    if (!out.empty()) out += '\n';
    out += q.Text(0);
  });
  if (!st.ok()) return st;
  return out;
}

}  // namespace sluice::store
