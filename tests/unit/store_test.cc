// The store, one suite per class: Db (opening, migrations, the journal's
// batch and its rule), RunsStore, RegistryStore, AccessStore.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include <sqlite3.h>

#include "store/open.h"
#include "../common/schema_undo.h"
#include "../common/temp_store.h"

using namespace sluice;

namespace {

using namespace sluice::testing;  // UndoVersionN

// A run with one attempt that produced the model artifacts `hashes`.
int64_t RunProducingModels(store::RunsStore& runs, const std::vector<std::string>& hashes) {
  int64_t run = *runs.CreateRun("demo", "x", "p", "/", "{}", 1, 0);
  engine::StepRecord step{.step_id = "train", .state = engine::StepState::kRunning, .tries = 1, .attempts = 1};
  engine::AttemptRecord a{.run_id = run, .step_id = "train", .number = 1, .log_path = "/l"};
  EXPECT_TRUE(runs.BeginAttempt(&a, step).ok());
  std::vector<engine::LineageEdge> edges;
  for (const std::string& h : hashes)
    edges.push_back({engine::LineageEdge::Role::kProduced, "model-" + h, {h, "model", 1, "/a/" + h}});
  EXPECT_TRUE(runs.SaveLineage(a, edges).ok());
  EXPECT_TRUE(runs.Flush().ok());
  return run;
}

// Schema version 1 as the first Sluice wrote it (specs/store.md), kept here
// as it was, whatever the migrations in db.cc become.
const char* kSchemaVersion1 = R"sql(
CREATE TABLE specs (hash TEXT PRIMARY KEY, text TEXT NOT NULL);
CREATE TABLE runs (
  id INTEGER PRIMARY KEY, pipeline TEXT NOT NULL, spec_hash TEXT NOT NULL REFERENCES specs(hash),
  spec_path TEXT NOT NULL, workdir TEXT NOT NULL, params TEXT NOT NULL, state TEXT NOT NULL, jobs INTEGER NOT NULL,
  created_ms INTEGER NOT NULL, started_ms INTEGER, finished_ms INTEGER, owner_pid INTEGER, owner_start INTEGER,
  cancel_requested INTEGER NOT NULL DEFAULT 0);
CREATE TABLE steps (
  run_id INTEGER NOT NULL REFERENCES runs(id), step_id TEXT NOT NULL, item INTEGER NOT NULL, state TEXT NOT NULL,
  tries INTEGER NOT NULL, attempts INTEGER NOT NULL, item_value TEXT, items TEXT, outputs TEXT NOT NULL,
  reason TEXT NOT NULL, PRIMARY KEY (run_id, step_id, item)) WITHOUT ROWID;
CREATE TABLE attempts (
  id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id), step_id TEXT NOT NULL, item INTEGER NOT NULL,
  number INTEGER NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL, exit_code INTEGER, pid INTEGER,
  started_ms INTEGER, finished_ms INTEGER, log_path TEXT NOT NULL, UNIQUE (run_id, step_id, item, number));
PRAGMA user_version=1;
)sql";

// Opens the store at `path` after `undo` took it back to schema version
// `at`, checking that it was there and that opening migrated it to ours.
std::unique_ptr<store::Store> ReopenFrom(const std::string& path, void (*undo)(sqlite3*), int64_t at) {
  sqlite3* db;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  undo(db);
  sqlite3_close(db);
  EXPECT_EQ(UserVersion(path), at);
  auto s = OpenStore(path);
  EXPECT_EQ(UserVersion(path), store::Db::kSchemaVersion);
  return s;
}

}  // namespace

// --- Db

TEST(DbTest, CreatesTheSchemaAtTheCurrentVersion) {
  std::string path = TempDb("create");
  {
    auto s = OpenStore(path);
    ASSERT_TRUE(s);
    EXPECT_EQ(*s->db().IntegrityCheck(), "ok");
  }
  EXPECT_EQ(UserVersion(path), store::Db::kSchemaVersion);
}

TEST(DbTest, RefusesADatabaseFromANewerSluice) {
  std::string path = TempDb("newer");
  { ASSERT_TRUE(store::Store::Open(path).ok()); }
  sqlite3* db;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ExecAll(db, {"PRAGMA user_version=99"});
  sqlite3_close(db);
  auto s = store::Store::Open(path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(), "open " + path +
                                      ": the database has schema version 99, newer than this sluice knows (" +
                                          std::to_string(store::Db::kSchemaVersion) + "); upgrade sluice");
}

TEST(DbTest, ADatabaseMadeBySchemaVersion1OpensWithItsRunsIntactAndTheSchemaCurrent) {
  std::string path = TempDb("v1");
  sqlite3* db;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ExecAll(db, {kSchemaVersion1,
               "INSERT INTO specs VALUES ('h1', 'name: old\nsteps:\n  a: {run: x}\n')",
               "INSERT INTO runs(id, pipeline, spec_hash, spec_path, workdir, params, state, jobs, created_ms, started_ms,"
               " finished_ms, owner_pid, owner_start) VALUES (1, 'old', 'h1', '/x/p.yaml', '/x', '{\"n\":2}', 'succeeded',"
               " 2, 1000, 1001, 1500, 77, 88)",
               "INSERT INTO runs(id, pipeline, spec_hash, spec_path, workdir, params, state, jobs, created_ms)"
               " VALUES (2, 'old', 'h1', '/x/p.yaml', '/x', '{}', 'failed', 1, 2000)",
               "INSERT INTO steps VALUES (1, 'a', -1, 'succeeded', 1, 1, NULL, NULL, '{\"n\":\"1\"}', '')",
               "INSERT INTO steps VALUES (1, 'each', -1, 'succeeded', 0, 0, NULL, '[\"p\",\"q\"]', '{}', '')",
               "INSERT INTO steps VALUES (1, 'each', 0, 'succeeded', 1, 1, '\"p\"', NULL, '{}', '')",
               "INSERT INTO steps VALUES (2, 'a', -1, 'failed', 3, 3, NULL, NULL, '{}', 'exit code 3')",
               "INSERT INTO attempts VALUES (1, 1, 'a', -1, 1, 'succeeded', '', 0, 4242, 1001, 1400, '/l/1/a.1.log')",
               "INSERT INTO attempts VALUES (2, 2, 'a', -1, 1, 'failed', 'exit code 3', 3, 4343, 2001, 2400, '/l/2/a.1.log')"});
  sqlite3_close(db);

  {
    auto s = OpenStore(path);
    ASSERT_TRUE(s);
    store::RunsStore& runs = s->runs();
    auto all = runs.ListRuns(10);
    ASSERT_TRUE(all.ok()) << all.status().message();
    ASSERT_EQ(all->size(), 2u);
    store::RunRow first = *runs.GetRun(1);
    EXPECT_EQ(first.pipeline, "old");
    EXPECT_EQ(first.state, engine::RunState::kSucceeded);
    EXPECT_EQ(first.params_json, "{\"n\":2}");
    EXPECT_TRUE(runs.StepOrder("h1")->empty()) << "a spec stored before version 19 has no step order kept";
    EXPECT_EQ(first.jobs, 2);
    EXPECT_EQ(first.started_ms, 1001);
    EXPECT_EQ(first.finished_ms, 1500);
    EXPECT_EQ(first.driver_pid, 77);
    EXPECT_EQ(first.trigger, "cli") << "runs from before triggers were recorded came from the command line";
    EXPECT_FALSE(first.queued_retry);
    EXPECT_EQ(*runs.SpecText(first.spec_hash), "name: old\nsteps:\n  a: {run: x}\n");
    auto steps = *runs.LoadSteps(1);
    ASSERT_EQ(steps.size(), 3u);
    EXPECT_EQ(steps[0].step_id, "a");
    EXPECT_EQ(steps[0].outputs.at("n").Render(), "1");
    ASSERT_TRUE(steps[1].items.has_value());
    EXPECT_EQ(steps[1].items->size(), 2u);
    EXPECT_EQ(steps[2].item, 0);
    EXPECT_EQ(steps[2].item_value.Render(), "p");
    auto attempts = *runs.ListAttempts(2);
    ASSERT_EQ(attempts.size(), 1u);
    EXPECT_EQ(attempts[0].reason, "exit code 3");
    EXPECT_EQ(attempts[0].pid, 4343);
    EXPECT_EQ(attempts[0].job_id, "");
    EXPECT_EQ(runs.ListMetrics(1)->size(), 0u);

    // Every later table works on the old file.
    EXPECT_TRUE(*runs.QueueRetry(2));
    EXPECT_TRUE(*runs.StartQueued(2));
    EXPECT_EQ(runs.GetRun(2)->state, engine::RunState::kFailed);
    int64_t fresh = RunProducingModels(runs, {"aa"});
    EXPECT_EQ(fresh, 3);
    EXPECT_EQ(*s->registry().RegisterModel("old", "aa", 0, "", 0, 5), 1);
    ASSERT_TRUE(s->db().Flush().ok());
    EXPECT_TRUE(s->access().CreateToken("ci", store::TokenScope::kRead, 6).ok());
    EXPECT_TRUE(s->access().RecordDelivery("old", "d-1", "body", 7, 1000).ok());
    EXPECT_TRUE(s->access().SetLastFire("old", "0 3 * * * UTC", 8).ok());
    EXPECT_EQ(*s->db().IntegrityCheck(), "ok");
  }
  EXPECT_EQ(UserVersion(path), store::Db::kSchemaVersion);
}

TEST(DbTest, AWriteOfItsOwnIsRefusedWhileAJournalBatchIsOpen) {
  auto s = OpenStore(TempDb("batch-rule"));
  ASSERT_TRUE(s);
  store::RunsStore& runs = s->runs();
  int64_t run = *runs.CreateRun("demo", "x", "p", "/", "{}", 1, 0);
  RunProducingModels(runs, {"aa"});
  ASSERT_EQ(*s->registry().RegisterModel("m", "aa", 0, "", 0, 1), 1);
  ASSERT_TRUE(s->db().Flush().ok());

  engine::StepRecord step{.step_id = "a", .state = engine::StepState::kRunning};
  ASSERT_TRUE(runs.SaveSteps(run, {&step}).ok());  // opens the batch
  ASSERT_TRUE(s->db().batch_open());
  auto created = runs.CreateRun("demo", "x", "p", "/", "{}", 1, 0);
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.status().code(), Code::kInternal);
  EXPECT_EQ(created.status().message(),
            "store: CreateRun is a transaction of its own and was called while a journal batch is open (Flush() first)");
  EXPECT_EQ(runs.RequestCancel(run).code(), Code::kInternal);
  EXPECT_EQ(runs.TakeOverRun(run, 1).status().code(), Code::kInternal);
  EXPECT_EQ(runs.StartQueued(run).status().code(), Code::kInternal);
  EXPECT_EQ(s->registry().SetAlias("m", 1, "production", "user:test", 2).code(), Code::kInternal);
  EXPECT_EQ(s->registry().DeleteModel("m", 1, 2).code(), Code::kInternal);
  EXPECT_EQ(s->access().CreateToken("ci", store::TokenScope::kRun, 2).status().code(), Code::kInternal);
  EXPECT_EQ(s->access().SetLastFire("demo", "* * * * * UTC", 2).code(), Code::kInternal);
  EXPECT_EQ(s->access().RecordDelivery("demo", "d-1", "b", 2, 10).status().code(), Code::kInternal);
  // Reads are fine inside the batch, and see its writes.
  EXPECT_EQ(runs.LoadSteps(run)->size(), 1u);
  EXPECT_EQ(s->registry().ListModels("m")->size(), 1u);

  // The refused writes changed nothing, and the batch is whole.
  ASSERT_TRUE(runs.Flush().ok());
  EXPECT_FALSE(s->db().batch_open());
  EXPECT_EQ(runs.ListRuns(10)->size(), 2u);
  EXPECT_FALSE(runs.GetRun(run)->cancel_requested);
  EXPECT_EQ(runs.LoadSteps(run)->size(), 1u);
  EXPECT_EQ(s->registry().ResolveModel("m@production").status().code(), Code::kNotFound);
  EXPECT_TRUE(s->access().ListTokens()->empty());
  // Once flushed, they go through.
  EXPECT_TRUE(runs.RequestCancel(run).ok());
  EXPECT_TRUE(s->registry().SetAlias("m", 1, "production", "user:test", 3).ok());
  EXPECT_TRUE(s->access().CreateToken("ci", store::TokenScope::kRun, 3).ok());
}

TEST(DbTest, JournalWritesBecomeVisibleOnlyWhenFlushed) {
  std::string path = TempDb("flush");
  auto writer = OpenStore(path);
  int64_t run = *writer->runs().CreateRun("demo", "x", "p", "/", "{}", 1, 0);
  auto reader = OpenStore(path);
  engine::StepRecord step{.step_id = "a", .state = engine::StepState::kSucceeded};
  ASSERT_TRUE(writer->runs().SaveSteps(run, {&step}).ok());
  EXPECT_TRUE(reader->runs().LoadSteps(run)->empty());
  ASSERT_TRUE(writer->runs().Flush().ok());
  EXPECT_EQ(reader->runs().LoadSteps(run)->size(), 1u);
}

TEST(DbTest, AnUnflushedBatchIsRolledBackWhenTheStoreCloses) {
  std::string path = TempDb("rollback");
  int64_t run;
  {
    auto s = OpenStore(path);
    run = *s->runs().CreateRun("demo", "x", "p", "/", "{}", 1, 0);
    engine::StepRecord step{.step_id = "a", .state = engine::StepState::kSucceeded};
    ASSERT_TRUE(s->runs().SaveSteps(run, {&step}).ok());
  }
  auto s = OpenStore(path);
  EXPECT_TRUE(s->runs().LoadSteps(run)->empty());
  EXPECT_EQ(*s->db().IntegrityCheck(), "ok");
}

// The engine through a long stretch of steps that end without running holds
// the write lock nearly all the time, committing every 200 ends; `sluice
// cancel` or the server, writing meanwhile, must get in between two of those
// commits, not only once the stretch is over (or not at all, after the busy
// timeout).
TEST(DbTest, AWriterWaitingForTheLockGetsInBetweenAnotherConnectionsBackToBackBatches) {
  std::string path = TempDb("busy");
  auto engine_side = OpenStore(path);
  auto other = OpenStore(path);
  ASSERT_TRUE(engine_side && other);
  int64_t run = *engine_side->runs().CreateRun("demo", "x", "p", "/", "{}", 1, 0);
  std::vector<engine::StepRecord> steps(200);
  for (size_t k = 0; k < steps.size(); ++k) {
    steps[k].step_id = std::to_string(k);
    steps[k].state = engine::StepState::kSkipped;
  }
  std::atomic<bool> stop{false}, writing{false}, done_writing{false};
  std::thread batches([&] {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    std::vector<const engine::StepRecord*> all;
    for (const engine::StepRecord& r : steps) all.push_back(&r);
    while (!stop && std::chrono::steady_clock::now() < until) {
      bool ok = engine_side->runs().SaveSteps(run, all).ok();
      writing = true;
      if (!ok || !engine_side->runs().Flush().ok()) {
        ADD_FAILURE() << "a batch failed";
        break;
      }
    }
    done_writing = true;
  });
  while (!writing) std::this_thread::yield();
  Status cancel = other->runs().RequestCancel(run);
  bool between = !done_writing;
  stop = true;
  batches.join();
  EXPECT_TRUE(cancel.ok()) << cancel.message();
  EXPECT_TRUE(between) << "the write got in only after the back-to-back batches had stopped";
  EXPECT_TRUE(engine_side->runs().GetRun(run)->cancel_requested);
}

TEST(DbTest, AMigrationThatFailsLeavesTheDatabaseAtItsOldVersionWithNoneOfTheVersionsBeforeIt) {
  std::string path = TempDb("half");
  sqlite3* db;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  // Version 14 makes the approvals table; one already there makes it fail.
  ExecAll(db, {kSchemaVersion1, "CREATE TABLE approvals(x)"});
  sqlite3_close(db);
  auto s = store::Store::Open(path);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("approvals already exists"), std::string::npos) << s.status().message();
  EXPECT_EQ(UserVersion(path), 1);
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* q;
  // Version 2's table is not there either: the versions before 14 were not kept.
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'metrics'", -1, &q, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(q, 0), 0);
  sqlite3_finalize(q);
  sqlite3_close(db);
}

TEST(DbTest, ADatabaseAtSchemaVersion7MigratesTo8AndKeepsItsRunsAndDeliveries) {
  std::string path = TempDb("v7");
  int64_t run = 0;
  {
    auto s = OpenStore(path);
    run = *s->runs().CreateRun("demo", "name: demo\n", "/x/p.yaml", "/x", "{}", 1, 42, "webhook");
    ASSERT_TRUE(s->access().RecordDelivery("demo", "d-1", "aa", 1000, 10).ok());
  }
  // Undo versions 9 and 8 by hand: what a version 7 file looks like.
  sqlite3* db;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  UndoVersion9(db);
  ExecAll(db, {"DROP INDEX webhook_deliveries_by_body", "DROP INDEX webhook_deliveries_by_time",
               "ALTER TABLE webhook_deliveries DROP COLUMN body_sha256", "ALTER TABLE runs DROP COLUMN queued_from",
               "PRAGMA user_version=7"});
  sqlite3_close(db);
  auto s = OpenStore(path);
  EXPECT_EQ((*s->runs().GetRun(run)).trigger, "webhook");
  auto again = s->access().RecordDelivery("demo", "d-1", "bb", 1001, 10);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_TRUE(again->duplicate) << "a delivery recorded at version 7 is still known";
  auto same_body = s->access().RecordDelivery("demo", "d-2", "bb", 1002, 10);
  ASSERT_TRUE(same_body.ok());
  EXPECT_FALSE(same_body->duplicate) << "d-1's body hash was never recorded";
  EXPECT_TRUE(s->runs().QueueRetry(run).ok());
  EXPECT_EQ(*s->db().IntegrityCheck(), "ok");
}

TEST(DbTest, ADatabaseAtSchemaVersion9MigratesTo10AndKeepsItsMetricsAndRunDrivers) {
  std::string path = TempDb("v9");
  int64_t run = 0;
  {
    auto s = OpenStore(path);
    run = RunProducingModels(s->runs(), {"aa"});
    ASSERT_TRUE(s->runs().SetDriver(run, 4242, 99).ok());
    engine::AttemptRecord a = (*s->runs().ListAttempts(run))[0];
    ASSERT_TRUE(s->runs().SaveMetrics(a, {{"loss", 0.5, 3}}).ok());
    ASSERT_TRUE(s->db().Flush().ok());
  }
  sqlite3* db;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  UndoVersion10(db);
  sqlite3_close(db);
  auto s = OpenStore(path);
  auto row = s->runs().GetRun(run);
  ASSERT_TRUE(row.ok()) << row.status().message();
  EXPECT_EQ(row->driver_pid, 4242);
  EXPECT_EQ(row->driver_start, 99);
  auto metrics = s->runs().ListMetrics(run);
  ASSERT_TRUE(metrics.ok()) << metrics.status().message();
  ASSERT_EQ(metrics->size(), 1u);
  EXPECT_EQ((*metrics)[0].name, "loss");
  EXPECT_EQ((*metrics)[0].index, 3);
  EXPECT_EQ(*s->db().IntegrityCheck(), "ok");
}

TEST(DbTest, ADatabaseAtSchemaVersion8MigratesTo9AndKeepsItsModelVersions) {
  std::string path = TempDb("v8");
  {
    auto s = OpenStore(path);
    RunProducingModels(s->runs(), {"aa"});
    ASSERT_EQ(*s->registry().RegisterModel("fashion", "aa", 0, "", 0, 5), 1);
    ASSERT_TRUE(s->db().Flush().ok());
  }
  sqlite3* db;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  UndoVersion9(db);
  sqlite3_close(db);
  auto s = OpenStore(path);
  auto models = s->registry().ListModels("fashion");
  ASSERT_TRUE(models.ok()) << models.status().message();
  ASSERT_EQ(models->size(), 1u);
  EXPECT_EQ((*models)[0].archived_ms, 0);
  EXPECT_TRUE(s->registry().DeleteModel("fashion", 1, 6).ok());
  EXPECT_EQ(*s->db().IntegrityCheck(), "ok");
}

// --- RunsStore

TEST(DbTest, ADatabaseAtSchemaVersion12MigratesTo13AndOnlyStepRecordsWrittenSinceAreReadAsWritten) {
  std::string path = TempDb("v12");
  int64_t run = 0;
  {
    auto s = OpenStore(path);
    ASSERT_TRUE(s);
    run = *s->runs().CreateRun("p", "x", "p", "/", "{}", 1, 0);
    engine::StepRecord a{.step_id = "a", .state = engine::StepState::kSucceeded, .attempts = 1};
    ASSERT_TRUE(s->runs().SaveSteps(run, {&a}).ok());
    ASSERT_TRUE(s->runs().Flush().ok());
  }
  sqlite3* db;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  UndoVersion13(db);
  sqlite3_close(db);
  auto s = OpenStore(path);
  ASSERT_TRUE(s);
  EXPECT_EQ(UserVersion(path), store::Db::kSchemaVersion);
  EXPECT_EQ(s->runs().LoadSteps(run)->size(), 1u);
  EXPECT_EQ(*s->runs().LastStepSeq(), 0) << "records from before version 13 come before any written after";
  engine::StepRecord b{.step_id = "b", .state = engine::StepState::kRunning, .attempts = 1};
  ASSERT_TRUE(s->runs().SaveSteps(run, {&b}).ok());
  ASSERT_TRUE(s->runs().Flush().ok());
  auto changed = s->runs().StepsWrittenAfter(0);
  ASSERT_TRUE(changed.ok()) << changed.status().message();
  ASSERT_EQ(changed->size(), 1u);
  EXPECT_EQ((*changed)[0].step_id, "b");
}

TEST(DbTest, ADatabaseAtSchemaVersion13MigratesAndKeepsItsRunsWithNoApprovals) {
  std::string path = TempDb("v13");
  int64_t run = 0;
  {
    auto s = OpenStore(path);
    ASSERT_TRUE(s);
    run = *s->runs().CreateRun("p", "x", "p", "/", "{}", 1, 0);
  }
  auto s = ReopenFrom(path, UndoVersion14, 13);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->runs().GetRun(run)->pipeline, "p");
  EXPECT_TRUE(s->approvals().OfRun(run)->empty());
  store::ApprovalRow r{.run_id = run, .step_id = "gate", .requested_ms = 1};
  ASSERT_TRUE(s->approvals().Open(r).ok());
  EXPECT_EQ(*s->approvals().Decide(run, "gate", "approve", "user:ann", 2, "{}", ""), true);
}

TEST(DbTest, ADatabaseAtSchemaVersion14MigratesTo15AndItsRunsHaveNoDataInterval) {
  std::string path = TempDb("v14");
  int64_t run = 0;
  {
    auto s = OpenStore(path);
    ASSERT_TRUE(s);
    run = *s->runs().CreateRun("p", "x", "p", "/", "{}", 1, 0);
  }
  auto s = ReopenFrom(path, UndoVersion15, 14);
  ASSERT_TRUE(s);
  auto row = s->runs().GetRun(run);
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->pipeline, "p");
  EXPECT_FALSE(row->interval);
  EXPECT_TRUE(s->runs().ScheduledRuns("p", 0, INT64_MAX)->empty());
}

TEST(DbTest, ADatabaseAtSchemaVersion15MigratesAndItsRunsHaveNoOutputs) {
  std::string path = TempDb("v15");
  int64_t run = 0;
  {
    auto s = OpenStore(path);
    ASSERT_TRUE(s);
    run = *s->runs().CreateRun("p", "x", "p", "/", "{}", 1, 0);
  }
  auto s = ReopenFrom(path, UndoVersion16, 15);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->runs().GetRun(run)->pipeline, "p");
  EXPECT_TRUE(s->runs().RunOutputs(run)->empty());
  ASSERT_TRUE(s->runs().SaveRunOutputs(run, {{"m", "v", ""}}).ok());
  ASSERT_TRUE(s->runs().Flush().ok());
  EXPECT_EQ(s->runs().RunOutputs(run)->size(), 1u);
}


TEST(DbTest, ADatabaseAtSchemaVersion16MigratesTo17WithItsRunsInNoGroupAndNoPools) {
  std::string path = TempDb("v16");
  int64_t run = 0;
  {
    auto s = OpenStore(path);
    ASSERT_TRUE(s);
    run = *s->runs().CreateRun("p", "x", "p", "/", "{}", 1, 0);
  }
  auto s = ReopenFrom(path, UndoVersion17, 16);
  ASSERT_TRUE(s);
  auto row = s->runs().GetRun(run);
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->group, "");
  EXPECT_FALSE(row->group_admitted);
  EXPECT_TRUE(s->concurrency().ListPools()->empty());
  ASSERT_TRUE(s->concurrency().SetPool("gpu", 2, 1).ok());
  EXPECT_EQ((*s->concurrency().GetPool("gpu"))->slots, 2);
}

TEST(DbTest, ADatabaseAtSchemaVersion20MigratesTo21WithItsArtifactsUnstamped) {
  std::string path = TempDb("v20");
  {
    auto s = OpenStore(path);
    ASSERT_TRUE(s);
    int64_t run = *s->runs().CreateRun("p", "x", "p", "/", "{}", 1, 0);
    engine::StepRecord rec{.step_id = "c", .state = engine::StepState::kSucceeded};
    engine::AttemptRecord a{.run_id = run, .step_id = "c", .number = 1, .log_path = "-"};
    ASSERT_TRUE(s->runs().BeginAttempt(&a, rec).ok());
    a.state = engine::StepState::kSucceeded;
    a.fingerprint = "fp";
    engine::ArtifactRef out{std::string(64, 'a'), "file", 1, "/a", "1:1:1:1"};
    ASSERT_TRUE(s->runs().SaveLineage(a, {{engine::LineageEdge::Role::kProduced, "o", out}}).ok());
    ASSERT_TRUE(s->runs().FinishAttempt(&a, rec).ok());
    ASSERT_TRUE(s->runs().Flush().ok());
  }
  auto s = ReopenFrom(path, UndoVersion21, 20);
  ASSERT_TRUE(s);
  auto hit = s->runs().FindCached("fp");
  ASSERT_TRUE(hit.ok() && *hit);
  ASSERT_EQ((*hit)->produced.size(), 1u);
  EXPECT_EQ((*hit)->produced[0].artifact.stamp, "") << "published before stamps: hashed when reused";
}

// What `sluice plan` compares a step with: the newest run of the pipeline
// that has a result of it, not the attempt written last (run 1, retried
// after run 2), a newer run with no result (run 3) or another pipeline's run.
TEST(RunsStoreTest, TheLatestResultOfAStepIsItsLastInTheNewestRunOfThePipelineThatHasOne) {
  auto s = OpenStore(TempDb("latest"));
  ASSERT_TRUE(s);
  store::RunsStore& runs = s->runs();
  auto attempt = [&](int64_t run, int number, engine::StepState state, const std::string& identity) {
    engine::StepRecord step{.step_id = "a", .state = state, .tries = number, .attempts = number};
    engine::AttemptRecord a{.run_id = run, .step_id = "a", .number = number, .log_path = "/l"};
    ASSERT_TRUE(runs.BeginAttempt(&a, step).ok());
    a.state = state;
    a.fingerprint = "f-" + identity;
    a.identity = identity;
    ASSERT_TRUE(runs.FinishAttempt(&a, step).ok());
    ASSERT_TRUE(runs.Flush().ok());
  };
  int64_t one = *runs.CreateRun("p", "x", "p.yaml", "/", "{}", 1, 0);
  int64_t two = *runs.CreateRun("p", "x", "p.yaml", "/", "{}", 1, 0);
  int64_t three = *runs.CreateRun("p", "x", "p.yaml", "/", "{}", 1, 0);
  int64_t other = *runs.CreateRun("q", "x", "q.yaml", "/", "{}", 1, 0);
  attempt(one, 1, engine::StepState::kSucceeded, "one-1");
  attempt(two, 1, engine::StepState::kSucceeded, "two-1");
  attempt(two, 2, engine::StepState::kCached, "two-2");
  attempt(two, 3, engine::StepState::kFailed, "two-3");
  attempt(three, 1, engine::StepState::kFailed, "three-1");
  attempt(other, 1, engine::StepState::kSucceeded, "other-1");
  attempt(one, 2, engine::StepState::kSucceeded, "one-2");  // a retry of run 1, written last

  auto latest = runs.LatestResult("p", "a", -1);
  ASSERT_TRUE(latest.ok()) << latest.status().message();
  ASSERT_TRUE(latest->has_value());
  EXPECT_EQ((*latest)->run_id, two);
  EXPECT_EQ((*latest)->identity, "two-2");
  EXPECT_EQ((*latest)->state, engine::StepState::kCached);
  EXPECT_FALSE(runs.LatestResult("p", "b", -1)->has_value());
  EXPECT_EQ((*runs.LatestResult("q", "a", -1))->identity, "other-1");
}

TEST(RunsStoreTest, ARetryResetClearsTheRunsOutputs) {
  auto s = OpenStore(TempDb("run-outputs-reset"));
  ASSERT_TRUE(s);
  store::RunsStore& runs = s->runs();
  int64_t run = *runs.CreateRun("p", "x", "p", "/", "{}", 1, 0);
  ASSERT_TRUE(runs.SaveRunOutputs(run, {{"m", "1", ""}}).ok());
  ASSERT_TRUE(runs.Flush().ok());
  ASSERT_TRUE(runs.ResetSteps(run, {}, {}).ok());
  EXPECT_TRUE(runs.RunOutputs(run)->empty());
}

TEST(RunsStoreTest, RunOutputsAreReadInTheOrderSavedWithAbsentOnesNullAndTheirReason) {
  auto s = OpenStore(TempDb("run-outputs"));
  ASSERT_TRUE(s);
  store::RunsStore& runs = s->runs();
  int64_t run = *runs.CreateRun("p", "x", "p", "/", "{}", 1, 0);
  std::vector<engine::RunOutputValue> outputs = {{"zeta", "1", ""}, {"alpha", std::nullopt, "step 'a' has no output 'x' (it failed)"},
                                                 {"empty", "", ""}};
  ASSERT_TRUE(runs.SaveRunOutputs(run, outputs).ok());
  ASSERT_TRUE(runs.Flush().ok());
  EXPECT_EQ(*runs.RunOutputs(run), outputs);
  // Saving again replaces them (a resumed run's driver renders them anew).
  ASSERT_TRUE(runs.SaveRunOutputs(run, {{"zeta", "2", ""}}).ok());
  ASSERT_TRUE(runs.Flush().ok());
  EXPECT_EQ(*runs.RunOutputs(run), (std::vector<engine::RunOutputValue>{{"zeta", "2", ""}}));
}

TEST(RunsStoreTest, RunsAreFilteredByTriggerAndByCreationTimeFromTheSinceTimeOn) {
  auto s = OpenStore(TempDb("filter"));
  ASSERT_TRUE(s);
  store::RunsStore& runs = s->runs();
  int64_t cli = *runs.CreateRun("p", "x", "p", "/", "{}", 1, 1000, "cli");
  int64_t api = *runs.CreateRun("p", "x", "p", "/", "{}", 1, 2000, "api");
  int64_t sched = *runs.CreateRun("q", "x", "q", "/", "{}", 1, 3000, "schedule");
  auto ids = [&](store::RunFilter f) {
    auto rows = runs.ListRuns(f);  // held: a range-for over *ListRuns(f) would outlive the temporary
    EXPECT_TRUE(rows.ok());
    std::vector<int64_t> out;
    if (rows.ok())
      for (const store::RunRow& r : *rows) out.push_back(r.id);
    return out;
  };
  EXPECT_EQ(ids({.trigger = "api"}), (std::vector<int64_t>{api}));
  EXPECT_EQ(ids({.pipeline = "p", .trigger = "schedule"}), (std::vector<int64_t>{}));
  EXPECT_EQ(ids({.since_ms = 2000}), (std::vector<int64_t>{sched, api}));  // at the time, and after
  EXPECT_EQ(ids({.since_ms = 2001}), (std::vector<int64_t>{sched}));
  EXPECT_EQ(ids({.pipeline = "p", .since_ms = 1}), (std::vector<int64_t>{api, cli}));
}

TEST(RunsStoreTest, StepsWrittenAfterASeqAreTheRecordsWrittenSinceOnceEachInTheOrderLastWritten) {
  auto s = OpenStore(TempDb("steps-written"));
  ASSERT_TRUE(s);
  store::RunsStore& runs = s->runs();
  int64_t r1 = *runs.CreateRun("p", "x", "p", "/", "{}", 1, 0), r2 = *runs.CreateRun("p", "x", "p", "/", "{}", 1, 0);
  auto save = [&](int64_t run, engine::StepRecord r) {
    ASSERT_TRUE(runs.SaveSteps(run, {&r}).ok());
    ASSERT_TRUE(runs.Flush().ok());
  };
  save(r1, {.step_id = "x"});
  save(r1, {.step_id = "y"});
  int64_t seen = *runs.LastStepSeq();
  EXPECT_GT(seen, 0);
  save(r1, {.step_id = "y", .state = engine::StepState::kRunning, .tries = 1, .attempts = 1});
  save(r2, {.step_id = "z", .state = engine::StepState::kFailed, .tries = 1, .attempts = 1});
  save(r1, {.step_id = "y", .state = engine::StepState::kSucceeded, .tries = 1, .attempts = 1});
  ASSERT_TRUE(runs.SetRunState(r2, engine::RunState::kFailed, 5).ok());
  ASSERT_TRUE(runs.Flush().ok());
  ASSERT_TRUE(runs.ResetSteps(r2, {"z"}, {}).ok());
  auto changed = runs.StepsWrittenAfter(seen);
  ASSERT_TRUE(changed.ok()) << changed.status().message();
  std::vector<std::string> got;
  for (const store::StepChange& c : *changed)
    got.push_back(std::to_string(c.run_id == r1 ? 1 : 2) + " " + c.step_id + " " + engine::Name(c.state) + " " +
                  std::to_string(c.attempts));
  EXPECT_EQ(got, (std::vector<std::string>{"1 y succeeded 1", "2 z pending 1"}));
  EXPECT_EQ(changed->back().seq, *runs.LastStepSeq());
  EXPECT_TRUE(runs.StepsWrittenAfter(changed->back().seq)->empty());
}

TEST(RunsStoreTest, RecordsARunAndItsSpec) {
  auto s = OpenStore(TempDb("run"));
  auto id = s->runs().CreateRun("demo", "name: demo\n", "/x/p.yaml", "/x", "{\"a\":1}", 2, 42);
  ASSERT_TRUE(id.ok());
  auto run = s->runs().GetRun(*id);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->pipeline, "demo");
  EXPECT_EQ(run->state, engine::RunState::kPending);
  EXPECT_EQ(*s->runs().SpecText(run->spec_hash), "name: demo\n");
  EXPECT_EQ(*s->db().IntegrityCheck(), "ok");
}

TEST(RunsStoreTest, TakeOverMarksRunningAttemptsLost) {
  auto s = OpenStore(TempDb("takeover"));
  store::RunsStore& runs = s->runs();
  int64_t run = *runs.CreateRun("demo", "x", "p", "/", "{}", 1, 0);
  engine::StepRecord step{.step_id = "a", .state = engine::StepState::kRunning, .tries = 1, .attempts = 1};
  engine::AttemptRecord a{.run_id = run, .step_id = "a", .number = 1, .log_path = "/l"};
  ASSERT_TRUE(runs.BeginAttempt(&a, step).ok());
  ASSERT_TRUE(runs.Flush().ok());
  a.pid = 4242;
  ASSERT_TRUE(runs.AttemptStarted(a).ok());
  ASSERT_TRUE(runs.SaveSteps(run, {&step}).ok());  // the pid goes with the next transition
  ASSERT_TRUE(runs.Flush().ok());
  auto lost = runs.TakeOverRun(run, 5);
  ASSERT_TRUE(lost.ok());
  ASSERT_EQ(lost->size(), 1u);
  EXPECT_EQ((*lost)[0].pid, 4242);
  auto attempts = *runs.ListAttempts(run);
  EXPECT_EQ(attempts[0].state, engine::StepState::kLost);
  EXPECT_EQ(attempts[0].reason, "the orchestrator stopped while it ran");
}

TEST(RunsStoreTest, AQueuedRunStartsOrIsCancelledOnceAndAQueuedRetryGoesBackToItsState) {
  auto s = OpenStore(TempDb("queue"));
  store::RunsStore& runs = s->runs();
  int64_t a = *runs.CreateRun("demo", "x", "p", "/", "{}", 1, 0, "api", true);
  int64_t b = *runs.CreateRun("demo", "x", "p", "/", "{}", 1, 0, "api", true);
  int64_t c = *runs.CreateRun("demo", "x", "p", "/", "{}", 1, 0, "api");
  EXPECT_EQ(runs.GetRun(a)->state, engine::RunState::kQueued);
  auto queued = *runs.QueuedRuns();
  ASSERT_EQ(queued.size(), 2u);
  EXPECT_EQ(queued[0].id, a);
  EXPECT_EQ(queued[1].id, b);
  EXPECT_TRUE(*runs.StartQueued(a));
  EXPECT_FALSE(*runs.StartQueued(a));
  EXPECT_EQ(runs.GetRun(a)->state, engine::RunState::kPending);
  EXPECT_TRUE(*runs.CancelQueued(b, 5));
  EXPECT_FALSE(*runs.StartQueued(b));
  EXPECT_EQ(runs.GetRun(b)->state, engine::RunState::kCancelled);
  EXPECT_EQ(runs.GetRun(b)->finished_ms, 5);
  EXPECT_FALSE(*runs.QueueRetry(c)) << "pending: nothing to retry";
  ASSERT_TRUE(runs.SetRunState(c, engine::RunState::kFailed, 9).ok());
  ASSERT_TRUE(runs.Flush().ok());
  EXPECT_TRUE(*runs.QueueRetry(c));
  EXPECT_TRUE(runs.GetRun(c)->queued_retry);
  EXPECT_EQ(runs.GetRun(c)->state, engine::RunState::kQueued);
  EXPECT_TRUE(*runs.StartQueued(c));
  EXPECT_EQ(runs.GetRun(c)->state, engine::RunState::kFailed);
  EXPECT_FALSE(runs.GetRun(c)->queued_retry);
}

// --- RegistryStore

TEST(RegistryStoreTest, ADeletedModelVersionsNumberIsNeverGivenAgainAndItsContentMayComeBack) {
  auto s = OpenStore(TempDb("deleted-model"));
  RunProducingModels(s->runs(), {"aa", "bb"});
  ASSERT_EQ(*s->registry().RegisterModel("fashion", "aa", 0, "", 0, 1), 1);
  ASSERT_EQ(*s->registry().RegisterModel("fashion", "bb", 0, "", 0, 2), 2);
  ASSERT_TRUE(s->db().Flush().ok());
  ASSERT_TRUE(s->registry().DeleteModel("fashion", 2, 3).ok());
  EXPECT_EQ(s->registry().ResolveModel("fashion@2").status().message(), "model 'fashion' has no version 2 (it was deleted)");
  EXPECT_EQ(s->registry().ResolveModel("fashion@latest")->version, 1);
  EXPECT_EQ(s->registry().DeleteModel("fashion", 2, 4).message(), "model 'fashion' has no version 2 (it was deleted)");
  EXPECT_EQ(*s->registry().RegisterModel("fashion", "bb", 0, "", 0, 5), 3);  // the same content, a new version
  ASSERT_TRUE(s->db().Flush().ok());
  EXPECT_EQ(s->registry().ListModels("fashion")->size(), 2u);
}

TEST(RegistryStoreTest, AnArchivedVersionResolvesByItsNumberButNotAsLatest) {
  auto s = OpenStore(TempDb("archived-model"));
  RunProducingModels(s->runs(), {"aa", "bb"});
  ASSERT_EQ(*s->registry().RegisterModel("fashion", "aa", 0, "", 0, 1), 1);
  ASSERT_EQ(*s->registry().RegisterModel("fashion", "bb", 0, "", 0, 2), 2);
  ASSERT_TRUE(s->db().Flush().ok());
  ASSERT_TRUE(s->registry().ArchiveModel("fashion", 2, true, 3).ok());
  EXPECT_EQ(s->registry().ResolveModel("fashion@latest")->version, 1);
  EXPECT_EQ(s->registry().ResolveModel("fashion@2")->archived_ms, 3);
  EXPECT_EQ(s->registry().SetAlias("fashion", 2, "production", "user:test", 4).message(),
            "fashion@2 is archived; an alias points only at a version in use (sluice models unarchive fashion@2)");
  ASSERT_TRUE(s->registry().ArchiveModel("fashion", 1, true, 5).ok());
  EXPECT_EQ(s->registry().ResolveModel("fashion@latest").status().message(),
            "model 'fashion' has only archived versions; name one by its number (fashion@2)");
  ASSERT_TRUE(s->registry().ArchiveModel("fashion", 2, false, 6).ok());
  EXPECT_EQ(s->registry().ResolveModel("fashion@latest")->version, 2);
}

TEST(RegistryStoreTest, AVersionAnAliasPointsAtIsNeitherArchivedNorDeletedUntilTheAliasMoves) {
  auto s = OpenStore(TempDb("aliased-model"));
  RunProducingModels(s->runs(), {"aa"});
  ASSERT_EQ(*s->registry().RegisterModel("fashion", "aa", 0, "", 0, 1), 1);
  ASSERT_TRUE(s->db().Flush().ok());
  ASSERT_TRUE(s->registry().SetAlias("fashion", 1, "production", "user:test", 2).ok());
  ASSERT_TRUE(s->registry().SetAlias("fashion", 1, "staging", "user:test", 2).ok());
  EXPECT_EQ(s->registry().DeleteModel("fashion", 1, 3).message(),
            "aliases production, staging point at fashion@1; move or remove them before it is deleted "
            "(sluice models promote fashion --alias production --remove)");
  EXPECT_EQ(s->registry().ArchiveModel("fashion", 1, true, 3).code(), Code::kIncompatible);
  EXPECT_EQ(s->registry().RemoveAlias("fashion", "production", 2).status().message(),
            "fashion@production points at version 1, not 2; nothing removed");
  EXPECT_EQ(*s->registry().RemoveAlias("fashion", "production", 0), 1);
  EXPECT_EQ(*s->registry().RemoveAlias("fashion", "staging", 1), 1);
  EXPECT_EQ(s->registry().RemoveAlias("fashion", "staging", 0).status().message(), "model 'fashion' has no alias 'staging'");
  EXPECT_TRUE(s->registry().DeleteModel("fashion", 1, 4).ok());
}

TEST(RegistryStoreTest, AnAliasRecordsWhoMovedItAndWhen) {
  auto s = OpenStore(TempDb("alias-who"));
  RunProducingModels(s->runs(), {"aa", "bb"});
  ASSERT_EQ(*s->registry().RegisterModel("fashion", "aa", 0, "", 0, 1), 1);
  ASSERT_EQ(*s->registry().RegisterModel("fashion", "bb", 0, "", 0, 1), 2);
  ASSERT_TRUE(s->db().Flush().ok());
  ASSERT_TRUE(s->registry().SetAlias("fashion", 1, "production", "user:ada", 10).ok());
  ASSERT_TRUE(s->registry().SetAlias("fashion", 2, "production", "token:ci", 20).ok());
  auto aliases = s->registry().ListAliases("fashion");
  ASSERT_TRUE(aliases.ok());
  ASSERT_EQ(aliases->size(), 1u);
  EXPECT_EQ((*aliases)[0].alias, "production");
  EXPECT_EQ((*aliases)[0].version, 2);
  EXPECT_EQ((*aliases)[0].updated_ms, 20);
  EXPECT_EQ((*aliases)[0].updated_by, "token:ci");
  EXPECT_TRUE(s->registry().ListAliases("nothing")->empty());
}

TEST(RegistryStoreTest, ASchema17AliasMigratesTo18WithNobodyRecordedAsItsSetter) {
  std::string path = TempDb("v17-alias");
  {
    auto s = OpenStore(path);
    RunProducingModels(s->runs(), {"aa"});
    ASSERT_EQ(*s->registry().RegisterModel("fashion", "aa", 0, "", 0, 1), 1);
    ASSERT_TRUE(s->db().Flush().ok());
  }
  sqlite3* db;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sluice::testing::UndoVersion18(db);
  sluice::testing::ExecAll(db, {"INSERT INTO model_aliases(name, alias, version, updated_ms) VALUES ('fashion', 'production', 1, 5)"});
  sqlite3_close(db);
  auto s = OpenStore(path);
  EXPECT_EQ(UserVersion(path), store::Db::kSchemaVersion);
  auto aliases = s->registry().ListAliases("fashion");
  ASSERT_EQ(aliases->size(), 1u);
  EXPECT_EQ((*aliases)[0].updated_by, "");
  EXPECT_EQ((*aliases)[0].updated_ms, 5);
}

// --- AccessStore

TEST(AccessStoreTest, TokensAreStoredOnlyAsHashesAndRevokedTokensAreNotFound) {
  std::string path = TempDb("tokens");
  auto s = OpenStore(path);
  auto token = s->access().CreateToken("ci", store::TokenScope::kRun, 1000);
  ASSERT_TRUE(token.ok()) << token.status().message();
  EXPECT_EQ(token->size(), 4u + 64u);
  EXPECT_EQ(token->substr(0, 4), "slc_");
  EXPECT_NE(*token, *s->access().CreateToken("ci", store::TokenScope::kRun, 1000));  // random, never repeated
  auto found = s->access().FindToken(*token);
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->name, "ci");
  EXPECT_TRUE((*found)->Allows(store::TokenScope::kRead));
  EXPECT_TRUE((*found)->Allows(store::TokenScope::kRun));
  EXPECT_FALSE((*found)->Allows(store::TokenScope::kAdmin));
  EXPECT_FALSE(s->access().FindToken(*token + "0")->has_value());  // a forged one
  EXPECT_FALSE(s->access().FindToken("")->has_value());
  // The database holds no token text.
  s.reset();
  std::ifstream f(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), {});
  EXPECT_EQ(bytes.find(token->substr(4)), std::string::npos);
  s = OpenStore(path);
  EXPECT_TRUE(s->access().RevokeToken((*s->access().ListTokens())[0].id, 2000).ok());
  EXPECT_FALSE(s->access().FindToken(*token)->has_value());
  EXPECT_EQ(s->access().RevokeToken((*s->access().ListTokens())[0].id, 3000).message(), "no valid token with id 1");
  EXPECT_EQ((*s->access().ListTokens())[0].revoked_ms, 2000);
}

TEST(AccessStoreTest, ADeliveryIsADuplicateByItsIdOrItsBodyWithinTheWindowOnly) {
  auto s = OpenStore(TempDb("deliveries"));
  const int64_t window = 24 * 3600 * 1000LL;
  auto first = s->access().RecordDelivery("demo", "d-1", "body-a", 1000, window);
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->duplicate);
  ASSERT_TRUE(s->access().SetDeliveryRun("demo", "d-1", 7).ok());
  auto same_id = *s->access().RecordDelivery("demo", "d-1", "body-b", 2000, window);
  EXPECT_TRUE(same_id.duplicate);
  EXPECT_FALSE(same_id.same_body);
  EXPECT_EQ(same_id.run_id, 7);
  auto same_body = *s->access().RecordDelivery("demo", "d-2", "body-a", 3000, window);
  EXPECT_TRUE(same_body.duplicate);
  EXPECT_TRUE(same_body.same_body);
  EXPECT_EQ(same_body.run_id, 7);
  EXPECT_EQ(same_body.earlier_delivery, "d-1");
  EXPECT_FALSE(s->access().RecordDelivery("other", "d-1", "body-a", 3000, window)->duplicate) << "per pipeline";
  EXPECT_FALSE(s->access().RecordDelivery("demo", "d-3", "body-c", 3000, window)->duplicate);
  // At the window's end the row still counts; one millisecond later it is pruned.
  EXPECT_TRUE(s->access().RecordDelivery("demo", "d-4", "body-a", 1000 + window, window)->duplicate);
  auto later = *s->access().RecordDelivery("demo", "d-5", "body-a", 1001 + window, window);
  EXPECT_FALSE(later.duplicate);
}
