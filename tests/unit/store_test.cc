#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <sqlite3.h>

#include "store/store.h"

using namespace sluice;

namespace {

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
                                      ": the database has schema version 99, newer than this sluice knows (7); upgrade sluice");
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
