// RolloutsStore (store/rollouts.h): deployments as the deploy/* step types
// drive them, and ServicesStore::SetTrafficOwner, schema version 12.
#include <gtest/gtest.h>

#include <sqlite3.h>

#include "store/open.h"
#include "../common/temp_store.h"

using namespace sluice;

namespace {

using sluice::testing::OpenStore;
using sluice::testing::TempDb;

store::RolloutRecord Canary(const std::string& service, int64_t run, const std::string& step = "deploy") {
  store::RolloutRecord r;
  r.service = service;
  r.strategy = "canary";
  r.run_id = run;
  r.step_id = step;
  r.stable_version = "v1";
  r.candidate_version = "v2";
  r.config = R"({"steps":[{"weight":10}]})";
  return r;
}

store::ServiceState OneVersion() {
  store::ServiceState s;
  s.name = "fashion";
  s.spec = "{}";
  s.spec_hash = "h";
  store::ServiceVersionState v;
  v.name = "v1";
  v.kind = "command";
  v.command = R"(["srv"])";
  v.weight_bp = 10000;
  s.versions = {v};
  return s;
}

}  // namespace

TEST(RolloutsStoreTest, ARolloutIsCreatedProgressingWithItsStartEvent) {
  auto s = OpenStore(TempDb("create"));
  auto id = s->rollouts().Create(Canary("fashion", 7), "canary of v2 against v1", 100);
  ASSERT_TRUE(id.ok()) << id.status().message();
  auto r = s->rollouts().Get(*id);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->state, store::RolloutState::kProgressing);
  EXPECT_EQ(r->Owner(), "run:7/deploy");
  EXPECT_EQ(r->started_ms, 100);
  EXPECT_EQ(r->ended_ms, 0);
  auto events = *s->rollouts().Events(*id, 0);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, "start");
  EXPECT_EQ(events[0].message, "canary of v2 against v1");
}

TEST(RolloutsStoreTest, AServiceHasAtMostOneActiveRollout) {
  auto s = OpenStore(TempDb("one-active"));
  ASSERT_TRUE(s->rollouts().Create(Canary("fashion", 7), "first", 100).ok());
  auto second = s->rollouts().Create(Canary("fashion", 8), "second", 200);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kIncompatible);
  EXPECT_NE(second.status().message().find("sluice services abort fashion"), std::string::npos)
      << second.status().message();
  EXPECT_TRUE(s->rollouts().Create(Canary("other", 8), "elsewhere", 200).ok()) << "another service is free";
}

TEST(RolloutsStoreTest, AnEndedRolloutFreesItsServiceAndCannotAdvanceAgain) {
  auto s = OpenStore(TempDb("ended"));
  int64_t id = *s->rollouts().Create(Canary("fashion", 7), "go", 100);
  store::RolloutProgress done{store::RolloutState::kRolledBack, 1, 0, "rolled back: error rate 0.5 > 0.01", "{}"};
  ASSERT_TRUE(s->rollouts().Advance(id, done, "rollback", "rolled back", R"({"error_rate":0.5})", 200).ok());
  auto r = *s->rollouts().Get(id);
  EXPECT_EQ(r.state, store::RolloutState::kRolledBack);
  EXPECT_EQ(r.ended_ms, 200);
  EXPECT_EQ(r.reason, "rolled back: error rate 0.5 > 0.01");
  EXPECT_FALSE(s->rollouts().ActiveOfService("fashion")->has_value());
  auto again = s->rollouts().Advance(id, done, "shift", "late", "", 300);
  EXPECT_EQ(again.code(), Code::kIncompatible);
  EXPECT_TRUE(s->rollouts().Create(Canary("fashion", 8), "next", 400).ok());
}

TEST(RolloutsStoreTest, TheActiveRolloutOfAStepIsWhatAResumedAttemptContinues) {
  auto s = OpenStore(TempDb("of-step"));
  int64_t id = *s->rollouts().Create(Canary("fashion", 7), "go", 100);
  store::RolloutProgress at{store::RolloutState::kProgressing, 2, 5000, "weight 50%", ""};
  ASSERT_TRUE(s->rollouts().Advance(id, at, "shift", "weight 50%", "", 150).ok());
  auto found = s->rollouts().ActiveOfStep(7, "deploy");
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->id, id);
  EXPECT_EQ((*found)->step_index, 2);
  EXPECT_EQ((*found)->candidate_bp, 5000);
  EXPECT_FALSE(s->rollouts().ActiveOfStep(7, "other")->has_value());
  EXPECT_FALSE(s->rollouts().ActiveOfStep(8, "deploy")->has_value());
}

TEST(RolloutsStoreTest, ARequestIsTakenOnceAndRecordedWithItsActor) {
  auto s = OpenStore(TempDb("request"));
  int64_t id = *s->rollouts().Create(Canary("fashion", 7), "go", 100);
  auto asked = s->rollouts().Request("fashion", "abort", "user:alice", 110);
  ASSERT_TRUE(asked.ok()) << asked.status().message();
  EXPECT_EQ(*asked, id);
  EXPECT_EQ(s->rollouts().Get(id)->request, "abort");
  auto taken = s->rollouts().TakeRequest(id, 120);
  ASSERT_TRUE(taken.ok());
  EXPECT_EQ(taken->what, "abort");
  EXPECT_EQ(taken->actor, "user:alice");
  EXPECT_EQ(s->rollouts().TakeRequest(id, 130)->what, "") << "taken once";
  auto events = *s->rollouts().Events(id, 0);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].kind, "abort");
  EXPECT_EQ(events[1].message, "user:alice asked to abort");
}

TEST(RolloutsStoreTest, ARequestNeedsAnActiveRolloutAndAKnownVerb) {
  auto s = OpenStore(TempDb("request-bad"));
  EXPECT_EQ(s->rollouts().Request("fashion", "abort", "user:alice", 1).status().code(), Code::kNotFound);
  ASSERT_TRUE(s->rollouts().Create(Canary("fashion", 7), "go", 100).ok());
  EXPECT_EQ(s->rollouts().Request("fashion", "pause", "user:alice", 1).status().code(), Code::kInvalidSpec);
}

TEST(RolloutsStoreTest, EventsAfterAnIdAreTheNewerOnesOldestFirst) {
  auto s = OpenStore(TempDb("events"));
  int64_t id = *s->rollouts().Create(Canary("fashion", 7), "go", 100);
  ASSERT_TRUE(s->rollouts().Record(id, "analysis", "passed", R"({"requests":400})", 110).ok());
  ASSERT_TRUE(s->rollouts().Record(id, "analysis", "passed again", "", 120).ok());
  auto all = *s->rollouts().Events(id, 0);
  ASSERT_EQ(all.size(), 3u);
  auto newer = *s->rollouts().Events(id, all[1].id);
  ASSERT_EQ(newer.size(), 1u);
  EXPECT_EQ(newer[0].message, "passed again");
  EXPECT_EQ(all[1].data, R"({"requests":400})");
  EXPECT_EQ(s->rollouts().Record(999, "analysis", "x", "", 1).code(), Code::kNotFound);
}

TEST(RolloutsStoreTest, ServiceRolloutsAreListedNewestFirst) {
  auto s = OpenStore(TempDb("list"));
  int64_t a = *s->rollouts().Create(Canary("fashion", 7), "a", 100);
  ASSERT_TRUE(s->rollouts().Advance(a, {store::RolloutState::kPromoted, 3, 10000, "promoted", "{}"}, "promote",
                                    "promoted", "", 150).ok());
  int64_t b = *s->rollouts().Create(Canary("fashion", 8), "b", 200);
  auto list = *s->rollouts().OfService("fashion", 10);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].id, b);
  EXPECT_EQ(list[1].id, a);
  EXPECT_EQ(s->rollouts().OfService("fashion", 1)->size(), 1u);
}

TEST(ServicesStoreTest, TheTrafficOwnerIsHandedOnlyFromTheExpectedOwner) {
  auto s = OpenStore(TempDb("owner"));
  ASSERT_TRUE(s->services().Apply(OneVersion(), "user:alice", "", 10).ok());
  ASSERT_TRUE(s->services().SetTrafficOwner("fashion", "run:7/deploy", "", "run:7/deploy", "canary", 20).ok());
  EXPECT_EQ(s->services().Get("fashion")->traffic_owner, "run:7/deploy");
  // Another run cannot take it, a person cannot set weights past it.
  EXPECT_EQ(s->services().SetTrafficOwner("fashion", "run:8/deploy", "", "run:8/deploy", "", 30).code(),
            Code::kIncompatible);
  store::TrafficChange change;
  change.weights_bp = {{"v1", 10000}};
  EXPECT_EQ(s->services().SetTraffic("fashion", change, "user:bob", "", 40).status().code(),
            Code::kIncompatible);
  change.owner = "run:7/deploy";
  EXPECT_TRUE(s->services().SetTraffic("fashion", change, "run:7/deploy", "", 50).ok());
  // Setting the same owner again records nothing; releasing it does.
  size_t rows = s->services().History("fashion", 0, 100)->size();
  ASSERT_TRUE(s->services().SetTrafficOwner("fashion", "run:7/deploy", "", "run:7/deploy", "", 60).ok());
  EXPECT_EQ(s->services().History("fashion", 0, 100)->size(), rows);
  ASSERT_TRUE(s->services().SetTrafficOwner("fashion", "", "run:7/deploy", "run:7/deploy", "done", 70).ok());
  EXPECT_EQ(s->services().Get("fashion")->traffic_owner, "");
  auto newest = s->services().History("fashion", 0, 1)->at(0);
  EXPECT_EQ(newest.kind, "owner");
  EXPECT_EQ(newest.after, R"({"traffic_owner":null})");
}

TEST(RolloutsStoreTest, ASchema11DatabaseMigratesTo12AndKeepsItsServices) {
  std::string path = TempDb("v11");
  {
    auto s = OpenStore(path);
    ASSERT_TRUE(s->services().Apply(OneVersion(), "user:alice", "", 10).ok());
  }
  sqlite3* db;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  // Versions 16 to 12 undone by hand, newest first.
  for (const char* sql : {"DROP TABLE run_outputs", "DROP INDEX runs_by_schedule", "ALTER TABLE runs DROP COLUMN scheduled_ms",
                          "ALTER TABLE runs DROP COLUMN interval_start_ms", "DROP TABLE approvals", "DROP INDEX steps_by_seq", "DROP INDEX runs_by_state", "ALTER TABLE steps DROP COLUMN seq",
                          "DROP TABLE rollout_events", "DROP TABLE rollouts", "DROP TABLE feedback",
                          "PRAGMA user_version=11"})
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sql;
  sqlite3_close(db);
  auto s = OpenStore(path);
  EXPECT_EQ(s->services().Get("fashion")->versions.size(), 1u);
  EXPECT_TRUE(s->rollouts().Create(Canary("fashion", 7), "go", 100).ok());
  EXPECT_EQ(*s->db().IntegrityCheck(), "ok");
}

TEST(ServicesStoreTest, WhileARolloutDrivesAServiceOnlyItMayApplyOrDelete) {
  auto s = OpenStore(TempDb("owner-apply"));
  ASSERT_TRUE(s->services().Apply(OneVersion(), "user:alice", "", 10).ok());
  ASSERT_TRUE(s->services().SetTrafficOwner("fashion", "run:7/deploy", "", "run:7/deploy", "canary", 20).ok());
  store::ServiceState changed = OneVersion();
  changed.spec_hash = "h2";
  auto refused = s->services().Apply(changed, "user:alice", "", 30);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kIncompatible);
  EXPECT_EQ(refused.status().message(),
            "apply service fashion: service 'fashion' is being deployed by run:7/deploy; wait for it, or abort it: "
            "sluice services abort fashion");
  EXPECT_EQ(s->services().Delete("fashion", "user:alice", "", 40).code(), Code::kIncompatible);
  EXPECT_TRUE(s->services().Apply(changed, "run:7/deploy", "", 50).ok()) << "the owner may";
}
