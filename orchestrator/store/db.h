// Db: one connection to the store's SQLite file (schema: specs/store.md)
// and what every concern of the store shares: its prepared statements, its
// schema migrations, and the journal's batch. The concerns (runs.h,
// lineage.h, registry.h, access.h) each hold a Db& and keep their SQL to
// themselves; open.h's Store opens the file and wires them together.
//
// WAL mode, a busy wait (OnBusy), prepared statements only. One Db (and whatever
// holds it) is used by one thread; several processes (a running `sluice
// run`, a `sluice show`, a `sluice cancel`) may open the same file at once:
// SQLite's locking serialises their writes, each one short transaction.
//
// Two kinds of write:
//   - the journal (engine::RunStore, implemented by RunsStore): writes join
//     one open transaction, the batch, until Flush() commits it;
//   - everything else: a transaction of its own. REQUIRES: no batch is
//     open. Inside the batch such a write would be committed, or rolled
//     back, with the engine's writes, long after its caller thought it done.
//     The rule is checked in every build: the write returns an Internal
//     error (the daemon never aborts) and changes nothing.
// Reads may be called at any time; inside the batch they see its writes.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "util/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace sluice::store {

// What Step() returns for a row and at the end: SQLite's SQLITE_ROW and
// SQLITE_DONE (db.cc checks that they agree). Anything else is an error.
inline constexpr int kRow = 100;
inline constexpr int kDone = 101;

// A statement prepared once per connection (Db::Prepare) and kept.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

 private:
  friend class Query;
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;  // null if the SQL did not compile: every step then fails
};

// A prepared statement in use. It is reset and its bindings cleared when the
// Query ends, whichever way its user leaves, so the next user starts clean;
// Reset() does the same early (to run it again in a loop). Bind indexes are
// 1-based, column indexes 0-based.
class Query {
 public:
  explicit Query(Statement& s) : s_(s) {}
  ~Query() { Reset(); }
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  Query& Bind(int i, int64_t v);
  Query& Bind(int i, const std::string& v);
  Query& BindDouble(int i, double v);
  Query& BindNull(int i);
  // kRow, kDone or an SQLite error code.
  int Step();
  int64_t Int(int c);
  double Double(int c);
  std::string Text(int c);
  bool IsNull(int c);
  void Reset();

  // Steps through the rows, calling `row()` on each (it reads this Query's
  // columns); an IoError naming `what` if SQLite fails on the way.
  template <typename F>
  Status ForEachRow(const std::string& what, F&& row) {
    int rc;
    while ((rc = Step()) == kRow) row();
    return rc == kDone ? Status::Ok() : Error(what);
  }
  // An IoError "store: <what>: <SQLite's message>".
  Status Error(const std::string& what);

 private:
  Statement& s_;
};

class Db {
 public:
  // The schema version this binary writes (specs/store.md).
  static constexpr int kSchemaVersion = 21;

  // Opens (creating if needed) the database at `path` and migrates it to
  // kSchemaVersion, each version in its own transaction. Refuses a database
  // written by a newer Sluice (Incompatible).
  static Result<std::unique_ptr<Db>> Open(const std::string& path);
  ~Db();  // rolls back a batch never flushed: nothing acted on it
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // The statement for `sql`, prepared on first use and cached by the
  // address of the text: pass a string literal or a static string.
  Query Prepare(const char* sql);
  // Runs one or more statements without results (DDL, pragmas).
  Status Exec(const char* sql);
  // An IoError "store: <what>: <SQLite's last message>".
  Status Error(const std::string& what);
  int64_t LastInsertId();
  // Rows the last INSERT, UPDATE or DELETE changed.
  int Changes();

  // --- writes of their own
  // Checks the rule above for `method` (named in the error).
  Status RequireNoBatch(const char* method) const;
  // Runs `body` in a transaction of its own (BEGIN IMMEDIATE): committed if
  // it returns Ok, else rolled back and its failure returned.
  // REQUIRES: no journal batch is open.
  template <typename F>
  Status Transaction(const char* method, F&& body) {
    Status st = RequireNoBatch(method);
    if (st.ok()) st = Begin();
    if (!st.ok()) return st;
    st = body();
    if (!st.ok()) {
      Rollback();
      return st;
    }
    return Commit();
  }

  // --- the journal's batch
  bool batch_open() const { return batch_open_; }
  // Opens the batch if none is open.
  Status JoinBatch();
  // Undoes the open batch after a failed write; returns that failure.
  Status Abandon(Status failure);
  // Commits the batch, if one is open. A failure leaves nothing of it.
  Status Flush();

  // SQLite's PRAGMA data_version: changes when another connection commits.
  Result<int64_t> DataVersion();
  // "ok", or what PRAGMA integrity_check found.
  Result<std::string> IntegrityCheck();

 private:
  explicit Db(sqlite3* db) : db_(db) {}
  Status Migrate();
  Status Begin();
  Status Commit();
  void Rollback();

  // SQLite's busy handler: tries again every kBusyRetry for kBusyTimeout.
  // SQLite's own busy_timeout backs off to 100 ms between tries; a writer
  // that holds the lock nearly all the time (the engine through a long
  // stretch of steps that end without running) frees it for microseconds
  // between commits, and a backed-off waiter keeps missing those gaps.
  static int OnBusy(void* self, int tries);
  static constexpr std::chrono::microseconds kBusyRetry{250};
  static constexpr std::chrono::seconds kBusyTimeout{10};

  sqlite3* db_;
  std::chrono::steady_clock::time_point busy_since_;
  bool batch_open_ = false;  // the engine's writes since its last Flush()
  std::vector<std::pair<const char*, std::unique_ptr<Statement>>> cache_;  // keyed by the SQL text's address
};

}  // namespace sluice::store
