#include "store/db.h"

#include "store/schema.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
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
  sqlite3_busy_handler(handle, &Db::OnBusy, db.get());
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

int Db::OnBusy(void* self, int tries) {
  Db* db = static_cast<Db*>(self);
  auto now = std::chrono::steady_clock::now();
  if (tries == 0) db->busy_since_ = now;
  if (now - db->busy_since_ >= kBusyTimeout) return 0;
  std::this_thread::sleep_for(kBusyRetry);
  return 1;
}

Status Db::Migrate() {
  Query v = Prepare("PRAGMA user_version");
  if (v.Step() != SQLITE_ROW) return Error("read schema version");
  int64_t version = v.Int(0);
  v.Reset();
  auto newer = [](int64_t found) {
    return Status::Incompatible("the database has schema version " + std::to_string(found) +
                                ", newer than this sluice knows (" + std::to_string(kSchemaVersion) + "); upgrade sluice");
  };
  if (version == kSchemaVersion) return Status::Ok();
  if (version > kSchemaVersion) return newer(version);
  // Forward migrations, all in one transaction with the version bump: a
  // store is at its old version or the newest, never in between, and a new
  // store is made in one commit.
  Status st = Begin();
  if (!st.ok()) return st;
  // Another process may have migrated while we waited for the lock.
  if (v.Step() != SQLITE_ROW) {
    st = Error("read schema version");
    Rollback();
    return st;
  }
  version = v.Int(0);
  v.Reset();
  if (version > kSchemaVersion) {
    Rollback();
    return newer(version);
  }
  for (int64_t next = version + 1; next <= kSchemaVersion && st.ok(); ++next) st = Exec(SchemaStep(static_cast<int>(next)));
  if (st.ok() && version < kSchemaVersion) st = Exec(("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str());
  if (!st.ok()) {
    Rollback();
    return st;
  }
  return Commit();
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
