// Stepping a store's schema back by hand, for the forward-migration tests:
// UndoVersionN(db) leaves a database as schema N-1 made it (each undoes the
// versions after it first). A new schema version adds its UndoVersion here.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <string>

#include <sqlite3.h>

namespace sluice::testing {

inline void ExecAll(sqlite3* db, std::initializer_list<const char*> sqls) {
  for (const char* sql : sqls)
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sql << ": " << sqlite3_errmsg(db);
}

inline int64_t UserVersion(const std::string& path) {
  sqlite3* db;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* q;
  EXPECT_EQ(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, nullptr), SQLITE_OK);
  EXPECT_EQ(sqlite3_step(q), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(q, 0);
  sqlite3_finalize(q);
  sqlite3_close(db);
  return v;
}

// Undoes schema version 21 by hand (the artifacts' stamps), so a test can step further back.
inline void UndoVersion21(sqlite3* db) {
  ExecAll(db, {"ALTER TABLE artifacts DROP COLUMN stamp", "PRAGMA user_version=20"});
}

// Undoes schema versions 21 and 20 by hand (the cache's index of succeeded attempts), so a test can step further back.
inline void UndoVersion20(sqlite3* db) {
  UndoVersion21(db);
  ExecAll(db, {"DROP INDEX attempts_succeeded_by_fingerprint",
               "CREATE INDEX attempts_by_fingerprint ON attempts(fingerprint) WHERE fingerprint IS NOT NULL",
               "PRAGMA user_version=19"});
}

// Undoes schema versions 20 and 19 by hand (a spec's step order), so a test can step further back.
inline void UndoVersion19(sqlite3* db) {
  UndoVersion20(db);
  ExecAll(db, {"ALTER TABLE specs DROP COLUMN step_order", "PRAGMA user_version=18"});
}

// Undoes schema versions 19 and 18 by hand (who moved an alias), so a test can step further back.
inline void UndoVersion18(sqlite3* db) {
  UndoVersion19(db);
  ExecAll(db, {"ALTER TABLE model_aliases DROP COLUMN updated_by", "PRAGMA user_version=17"});
}

// Undoes schema versions 18 and 17 by hand (concurrency groups and pools), so a test can step further back.
inline void UndoVersion17(sqlite3* db) {
  UndoVersion18(db);
  ExecAll(db, {"DROP TABLE pool_leases", "DROP TABLE pools", "DROP INDEX runs_by_group",
               "ALTER TABLE runs DROP COLUMN concurrency_group", "ALTER TABLE runs DROP COLUMN group_admitted",
               "PRAGMA user_version=16"});
}

// Undoes schema versions 17 and 16 by hand (the runs' outputs), so a test can step further back.
inline void UndoVersion16(sqlite3* db) {
  UndoVersion17(db);
  ExecAll(db, {"DROP TABLE run_outputs", "PRAGMA user_version=15"});
}

// Undoes schema versions 16 and 15 by hand (the runs' data interval), so a test can step further back.
inline void UndoVersion15(sqlite3* db) {
  UndoVersion16(db);
  ExecAll(db, {"DROP INDEX runs_by_schedule", "ALTER TABLE runs DROP COLUMN scheduled_ms",
               "ALTER TABLE runs DROP COLUMN interval_start_ms", "PRAGMA user_version=14"});
}

// Undoes schema versions 15 and 14 by hand (the approvals table), so a test can step further back.
inline void UndoVersion14(sqlite3* db) {
  UndoVersion15(db);
  ExecAll(db, {"DROP TABLE approvals", "PRAGMA user_version=13"});
}

// Undoes schema versions 14 and 13 by hand (steps.seq and two indexes), so a test can step further back.
inline void UndoVersion13(sqlite3* db) {
  UndoVersion14(db);
  ExecAll(db, {"DROP INDEX steps_by_seq", "DROP INDEX runs_by_state", "ALTER TABLE steps DROP COLUMN seq",
               "PRAGMA user_version=12"});
}

// Undoes schema versions 13 and 12 by hand (12's new tables), so a test can step further back.
inline void UndoVersion12(sqlite3* db) {
  UndoVersion13(db);
  ExecAll(db, {"DROP TABLE rollout_events", "DROP TABLE rollouts", "DROP TABLE feedback", "PRAGMA user_version=11"});
}

// Undoes schema versions 12 and 11 by hand (11's new tables), so a test can step further back.
inline void UndoVersion11(sqlite3* db) {
  UndoVersion12(db);
  ExecAll(db, {"DROP TABLE services", "DROP TABLE service_versions", "DROP TABLE service_replicas",
               "DROP TABLE service_changes", "DROP TABLE service_windows", "DROP TABLE gateway",
               "PRAGMA user_version=10"});
}

// Undoes schema versions 11 and 10 by hand (10's renames), so a test can step further back.
inline void UndoVersion10(sqlite3* db) {
  UndoVersion11(db);
  ExecAll(db, {"ALTER TABLE metrics RENAME COLUMN \"index\" TO step",
               "ALTER TABLE runs RENAME COLUMN driver_pid TO owner_pid",
               "ALTER TABLE runs RENAME COLUMN driver_start TO owner_start", "PRAGMA user_version=9"});
}

// Undoes schema versions 10 and 9 by hand, so a test can step further back.
inline void UndoVersion9(sqlite3* db) {
  UndoVersion10(db);
  ExecAll(db, {"DROP INDEX model_versions_by_artifact", "ALTER TABLE model_versions DROP COLUMN archived_ms",
               "ALTER TABLE model_versions DROP COLUMN deleted_ms",
               "CREATE UNIQUE INDEX model_versions_by_artifact ON model_versions(name, artifact)",
               "PRAGMA user_version=8"});
}

}  // namespace sluice::testing
