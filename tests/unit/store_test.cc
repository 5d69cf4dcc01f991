#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <sqlite3.h>

#include "store/store.h"

using namespace sluice;

namespace {

// Undoes schema version 9 by hand, so a test can step further back.
void UndoVersion9(sqlite3* db) {
  for (const char* sql : {"DROP INDEX model_versions_by_artifact", "ALTER TABLE model_versions DROP COLUMN archived_ms",
                          "ALTER TABLE model_versions DROP COLUMN deleted_ms",
                          "CREATE UNIQUE INDEX model_versions_by_artifact ON model_versions(name, artifact)",
                          "PRAGMA user_version=8"})
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sql << ": " << sqlite3_errmsg(db);
}

// A run with one attempt that produced the model artifacts `hashes`.
int64_t RunProducingModels(store::Store& s, const std::vector<std::string>& hashes) {
  int64_t run = *s.CreateRun("demo", "x", "p", "/", "{}", 1, 0);
  engine::StepRecord step{.step_id = "train", .state = engine::StepState::kRunning, .tries = 1, .attempts = 1};
  engine::AttemptRecord a{.run_id = run, .step_id = "train", .number = 1, .log_path = "/l"};
  EXPECT_TRUE(s.BeginAttempt(&a, step).ok());
  std::vector<engine::LineageEdge> edges;
  for (const std::string& h : hashes)
    edges.push_back({engine::LineageEdge::Role::kProduced, "model-" + h, {h, "model", 1, "/a/" + h}});
  EXPECT_TRUE(s.SaveLineage(a, edges).ok());
  EXPECT_TRUE(s.Flush().ok());
  return run;
}

std::string TempDb(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("sluice-store-" + std::to_string(::getpid()) + "-" + name);
  std::filesystem::remove(p);
  std::filesystem::remove(p.string() + "-wal");
  std::filesystem::remove(p.string() + "-shm");
  return p.string();
}

}  // namespace

TEST(StoreTest, CreatesTheSchemaAndRecordsARun) {
  std::string path = TempDb("create");
  auto s = store::Store::Open(path);
  ASSERT_TRUE(s.ok()) << s.status().message();
  auto id = (*s)->CreateRun("demo", "name: demo\n", "/x/p.yaml", "/x", "{\"a\":1}", 2, 42);
  ASSERT_TRUE(id.ok());
  auto run = (*s)->GetRun(*id);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->pipeline, "demo");
  EXPECT_EQ(run->state, engine::RunState::kPending);
  EXPECT_EQ(*(*s)->SpecText(run->spec_hash), "name: demo\n");
  EXPECT_EQ(*(*s)->IntegrityCheck(), "ok");
}

TEST(StoreTest, RefusesADatabaseFromANewerSluice) {
  std::string path = TempDb("newer");
  { ASSERT_TRUE(store::Store::Open(path).ok()); }
  sqlite3* db;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto s = store::Store::Open(path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(), "open " + path +
                                      ": the database has schema version 99, newer than this sluice knows (9); upgrade sluice");
}

TEST(StoreTest, TakeOverMarksRunningAttemptsLost) {
  std::string path = TempDb("takeover");
  auto s = std::move(store::Store::Open(path).value());
  int64_t run = *s->CreateRun("demo", "x", "p", "/", "{}", 1, 0);
  engine::StepRecord step{.step_id = "a", .state = engine::StepState::kRunning, .tries = 1, .attempts = 1};
  engine::AttemptRecord a{.run_id = run, .step_id = "a", .number = 1, .log_path = "/l"};
  ASSERT_TRUE(s->BeginAttempt(&a, step).ok());
  ASSERT_TRUE(s->Flush().ok());
  a.pid = 4242;
  ASSERT_TRUE(s->AttemptStarted(a).ok());
  ASSERT_TRUE(s->SaveSteps(run, {&step}).ok());  // the pid goes with the next transition
  ASSERT_TRUE(s->Flush().ok());
  auto lost = s->TakeOverRun(run, 5);
  ASSERT_TRUE(lost.ok());
  ASSERT_EQ(lost->size(), 1u);
  EXPECT_EQ((*lost)[0].pid, 4242);
  auto attempts = *s->ListAttempts(run);
  EXPECT_EQ(attempts[0].state, engine::StepState::kLost);
  EXPECT_EQ(attempts[0].reason, "the orchestrator stopped while it ran");
}

TEST(StoreTest, JournalWritesBecomeVisibleOnlyWhenFlushed) {
  std::string path = TempDb("flush");
  auto writer = std::move(store::Store::Open(path).value());
  int64_t run = *writer->CreateRun("demo", "x", "p", "/", "{}", 1, 0);
  auto reader = std::move(store::Store::Open(path).value());
  engine::StepRecord step{.step_id = "a", .state = engine::StepState::kSucceeded};
  ASSERT_TRUE(writer->SaveSteps(run, {&step}).ok());
  EXPECT_TRUE(reader->LoadSteps(run)->empty());
  ASSERT_TRUE(writer->Flush().ok());
  EXPECT_EQ(reader->LoadSteps(run)->size(), 1u);
}

TEST(StoreTest, AnUnflushedBatchIsRolledBackWhenTheStoreCloses) {
  std::string path = TempDb("rollback");
  int64_t run;
  {
    auto s = std::move(store::Store::Open(path).value());
    run = *s->CreateRun("demo", "x", "p", "/", "{}", 1, 0);
    engine::StepRecord step{.step_id = "a", .state = engine::StepState::kSucceeded};
    ASSERT_TRUE(s->SaveSteps(run, {&step}).ok());
  }
  auto s = std::move(store::Store::Open(path).value());
  EXPECT_TRUE(s->LoadSteps(run)->empty());
  EXPECT_EQ(*s->IntegrityCheck(), "ok");
}

TEST(StoreTest, TokensAreStoredOnlyAsHashesAndRevokedTokensAreNotFound) {
  std::string path = TempDb("tokens");
  auto s = std::move(store::Store::Open(path).value());
  auto token = s->CreateToken("ci", store::TokenScope::kRun, 1000);
  ASSERT_TRUE(token.ok()) << token.status().message();
  EXPECT_EQ(token->size(), 4u + 64u);
  EXPECT_EQ(token->substr(0, 4), "slc_");
  EXPECT_NE(*token, *s->CreateToken("ci", store::TokenScope::kRun, 1000));  // random, never repeated
  auto found = s->FindToken(*token);
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->name, "ci");
  EXPECT_TRUE((*found)->Allows(store::TokenScope::kRead));
  EXPECT_TRUE((*found)->Allows(store::TokenScope::kRun));
  EXPECT_FALSE((*found)->Allows(store::TokenScope::kAdmin));
  EXPECT_FALSE(s->FindToken(*token + "0")->has_value());  // a forged one
  EXPECT_FALSE(s->FindToken("")->has_value());
  // The database holds no token text.
  s.reset();
  std::ifstream f(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), {});
  EXPECT_EQ(bytes.find(token->substr(4)), std::string::npos);
  s = std::move(store::Store::Open(path).value());
  EXPECT_TRUE(s->RevokeToken((*s->ListTokens())[0].id, 2000).ok());
  EXPECT_FALSE(s->FindToken(*token)->has_value());
  EXPECT_EQ(s->RevokeToken((*s->ListTokens())[0].id, 3000).message(), "no valid token with id 1");
  EXPECT_EQ((*s->ListTokens())[0].revoked_ms, 2000);
}

TEST(StoreTest, ADatabaseAtSchemaVersion7MigratesTo8AndKeepsItsRunsAndDeliveries) {
  std::string path = TempDb("v7");
  int64_t run = 0;
  {
    auto s = std::move(store::Store::Open(path).value());
    run = *s->CreateRun("demo", "name: demo\n", "/x/p.yaml", "/x", "{}", 1, 42, "webhook");
    ASSERT_TRUE(s->RecordDelivery("demo", "d-1", "aa", 1000, 10).ok());
  }
  // Undo versions 9 and 8 by hand: what a version 7 file looks like.
  sqlite3* db;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  UndoVersion9(db);
  for (const char* sql : {"DROP INDEX webhook_deliveries_by_body", "DROP INDEX webhook_deliveries_by_time",
                          "ALTER TABLE webhook_deliveries DROP COLUMN body_sha256", "ALTER TABLE runs DROP COLUMN queued_from",
                          "PRAGMA user_version=7"})
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sql << ": " << sqlite3_errmsg(db);
  sqlite3_close(db);
  auto s = std::move(store::Store::Open(path).value());
  EXPECT_EQ((*s->GetRun(run)).trigger, "webhook");
  auto again = s->RecordDelivery("demo", "d-1", "bb", 1001, 10);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_TRUE(again->duplicate) << "a delivery recorded at version 7 is still known";
  auto same_body = s->RecordDelivery("demo", "d-2", "bb", 1002, 10);
  ASSERT_TRUE(same_body.ok());
  EXPECT_FALSE(same_body->duplicate) << "d-1's body hash was never recorded";
  EXPECT_TRUE(s->QueueRetry(run).ok());
  EXPECT_EQ(*s->IntegrityCheck(), "ok");
}

TEST(StoreTest, ADeliveryIsADuplicateByItsIdOrItsBodyWithinTheWindowOnly) {
  auto s = std::move(store::Store::Open(TempDb("deliveries")).value());
  const int64_t window = 24 * 3600 * 1000LL;
  auto first = s->RecordDelivery("demo", "d-1", "body-a", 1000, window);
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->duplicate);
  ASSERT_TRUE(s->SetDeliveryRun("demo", "d-1", 7).ok());
  auto same_id = *s->RecordDelivery("demo", "d-1", "body-b", 2000, window);
  EXPECT_TRUE(same_id.duplicate);
  EXPECT_FALSE(same_id.same_body);
  EXPECT_EQ(same_id.run_id, 7);
  auto same_body = *s->RecordDelivery("demo", "d-2", "body-a", 3000, window);
  EXPECT_TRUE(same_body.duplicate);
  EXPECT_TRUE(same_body.same_body);
  EXPECT_EQ(same_body.run_id, 7);
  EXPECT_EQ(same_body.earlier_delivery, "d-1");
  EXPECT_FALSE(s->RecordDelivery("other", "d-1", "body-a", 3000, window)->duplicate) << "per pipeline";
  EXPECT_FALSE(s->RecordDelivery("demo", "d-3", "body-c", 3000, window)->duplicate);
  // At the window's end the row still counts; one millisecond later it is pruned.
  EXPECT_TRUE(s->RecordDelivery("demo", "d-4", "body-a", 1000 + window, window)->duplicate);
  auto later = *s->RecordDelivery("demo", "d-5", "body-a", 1001 + window, window);
  EXPECT_FALSE(later.duplicate);
}

TEST(StoreTest, AQueuedRunStartsOrIsCancelledOnceAndAQueuedRetryGoesBackToItsState) {
  auto s = std::move(store::Store::Open(TempDb("queue")).value());
  int64_t a = *s->CreateRun("demo", "x", "p", "/", "{}", 1, 0, "api", true);
  int64_t b = *s->CreateRun("demo", "x", "p", "/", "{}", 1, 0, "api", true);
  int64_t c = *s->CreateRun("demo", "x", "p", "/", "{}", 1, 0, "api");
  EXPECT_EQ(s->GetRun(a)->state, engine::RunState::kQueued);
  auto queued = *s->QueuedRuns();
  ASSERT_EQ(queued.size(), 2u);
  EXPECT_EQ(queued[0].id, a);
  EXPECT_EQ(queued[1].id, b);
  EXPECT_TRUE(*s->StartQueued(a));
  EXPECT_FALSE(*s->StartQueued(a));
  EXPECT_EQ(s->GetRun(a)->state, engine::RunState::kPending);
  EXPECT_TRUE(*s->CancelQueued(b, 5));
  EXPECT_FALSE(*s->StartQueued(b));
  EXPECT_EQ(s->GetRun(b)->state, engine::RunState::kCancelled);
  EXPECT_EQ(s->GetRun(b)->finished_ms, 5);
  EXPECT_FALSE(*s->QueueRetry(c)) << "pending: nothing to retry";
  ASSERT_TRUE(s->SetRunState(c, engine::RunState::kFailed, 9).ok());
  ASSERT_TRUE(s->Flush().ok());
  EXPECT_TRUE(*s->QueueRetry(c));
  EXPECT_TRUE(s->GetRun(c)->queued_retry);
  EXPECT_EQ(s->GetRun(c)->state, engine::RunState::kQueued);
  EXPECT_TRUE(*s->StartQueued(c));
  EXPECT_EQ(s->GetRun(c)->state, engine::RunState::kFailed);
  EXPECT_FALSE(s->GetRun(c)->queued_retry);
}

TEST(StoreTest, ADatabaseAtSchemaVersion8MigratesTo9AndKeepsItsModelVersions) {
  std::string path = TempDb("v8");
  {
    auto s = std::move(store::Store::Open(path).value());
    RunProducingModels(*s, {"aa"});
    ASSERT_EQ(*s->RegisterModel("fashion", "aa", 0, "", 0, 5), 1);
    ASSERT_TRUE(s->Flush().ok());
  }
  sqlite3* db;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  UndoVersion9(db);
  sqlite3_close(db);
  auto s = std::move(store::Store::Open(path).value());
  auto models = s->ListModels("fashion");
  ASSERT_TRUE(models.ok()) << models.status().message();
  ASSERT_EQ(models->size(), 1u);
  EXPECT_EQ((*models)[0].archived_ms, 0);
  EXPECT_TRUE(s->DeleteModel("fashion", 1, 6).ok());
  EXPECT_EQ(*s->IntegrityCheck(), "ok");
}

TEST(StoreTest, ADeletedModelVersionsNumberIsNeverGivenAgainAndItsContentMayComeBack) {
  auto s = std::move(store::Store::Open(TempDb("deleted-model")).value());
  RunProducingModels(*s, {"aa", "bb"});
  ASSERT_EQ(*s->RegisterModel("fashion", "aa", 0, "", 0, 1), 1);
  ASSERT_EQ(*s->RegisterModel("fashion", "bb", 0, "", 0, 2), 2);
  ASSERT_TRUE(s->Flush().ok());
  ASSERT_TRUE(s->DeleteModel("fashion", 2, 3).ok());
  EXPECT_EQ(s->ResolveModel("fashion@2").status().message(), "model 'fashion' has no version 2 (it was deleted)");
  EXPECT_EQ(s->ResolveModel("fashion@latest")->version, 1);
  EXPECT_EQ(s->DeleteModel("fashion", 2, 4).message(), "model 'fashion' has no version 2 (it was deleted)");
  EXPECT_EQ(*s->RegisterModel("fashion", "bb", 0, "", 0, 5), 3);  // the same content, a new version
  ASSERT_TRUE(s->Flush().ok());
  EXPECT_EQ(s->ListModels("fashion")->size(), 2u);
}

TEST(StoreTest, AnArchivedVersionResolvesByItsNumberButNotAsLatest) {
  auto s = std::move(store::Store::Open(TempDb("archived-model")).value());
  RunProducingModels(*s, {"aa", "bb"});
  ASSERT_EQ(*s->RegisterModel("fashion", "aa", 0, "", 0, 1), 1);
  ASSERT_EQ(*s->RegisterModel("fashion", "bb", 0, "", 0, 2), 2);
  ASSERT_TRUE(s->Flush().ok());
  ASSERT_TRUE(s->ArchiveModel("fashion", 2, true, 3).ok());
  EXPECT_EQ(s->ResolveModel("fashion@latest")->version, 1);
  EXPECT_EQ(s->ResolveModel("fashion@2")->archived_ms, 3);
  EXPECT_EQ(s->SetAlias("fashion", 2, "production", 4).message(),
            "fashion@2 is archived; an alias points only at a version in use (sluice models unarchive fashion@2)");
  ASSERT_TRUE(s->ArchiveModel("fashion", 1, true, 5).ok());
  EXPECT_EQ(s->ResolveModel("fashion@latest").status().message(),
            "model 'fashion' has only archived versions; name one by its number (fashion@2)");
  ASSERT_TRUE(s->ArchiveModel("fashion", 2, false, 6).ok());
  EXPECT_EQ(s->ResolveModel("fashion@latest")->version, 2);
}

TEST(StoreTest, AVersionAnAliasPointsAtIsNeitherArchivedNorDeletedUntilTheAliasMoves) {
  auto s = std::move(store::Store::Open(TempDb("aliased-model")).value());
  RunProducingModels(*s, {"aa"});
  ASSERT_EQ(*s->RegisterModel("fashion", "aa", 0, "", 0, 1), 1);
  ASSERT_TRUE(s->Flush().ok());
  ASSERT_TRUE(s->SetAlias("fashion", 1, "production", 2).ok());
  ASSERT_TRUE(s->SetAlias("fashion", 1, "staging", 2).ok());
  EXPECT_EQ(s->DeleteModel("fashion", 1, 3).message(),
            "aliases production, staging point at fashion@1; move or remove them before it is deleted "
            "(sluice models promote fashion --alias production --remove)");
  EXPECT_EQ(s->ArchiveModel("fashion", 1, true, 3).code(), Code::kIncompatible);
  EXPECT_EQ(s->RemoveAlias("fashion", "production", 2).status().message(),
            "fashion@production points at version 1, not 2; nothing removed");
  EXPECT_EQ(*s->RemoveAlias("fashion", "production", 0), 1);
  EXPECT_EQ(*s->RemoveAlias("fashion", "staging", 1), 1);
  EXPECT_EQ(s->RemoveAlias("fashion", "staging", 0).status().message(), "model 'fashion' has no alias 'staging'");
  EXPECT_TRUE(s->DeleteModel("fashion", 1, 4).ok());
}
