// ServicesStore (store/services.h): services' desired state and its history,
// schema version 11.
#include <gtest/gtest.h>

#include <filesystem>

#include <sqlite3.h>

#include "store/open.h"
#include "../common/temp_store.h"

using namespace sluice;

namespace {

using sluice::testing::OpenStore;
using sluice::testing::TempDb;

store::ServiceVersionState CommandVersion(const std::string& name, int weight_bp, int replicas = 1) {
  store::ServiceVersionState v;
  v.name = name;
  v.kind = "command";
  v.command = R"(["python3","srv.py"])";
  v.port_env = "PORT";
  v.replicas = replicas;
  v.weight_bp = weight_bp;
  return v;
}

// A two-version service whose spec text (and hash) is `tag`.
store::ServiceState Fashion(const std::string& tag) {
  store::ServiceState s;
  s.name = "fashion";
  s.spec = R"({"service":"fashion","tag":")" + tag + R"("})";
  s.spec_hash = "hash-" + tag;
  s.versions = {CommandVersion("blue", 9000, 2), CommandVersion("green", 1000)};
  return s;
}

std::vector<std::string> Names(const store::ServiceState& s) {
  std::vector<std::string> out;
  for (const auto& v : s.versions) out.push_back(v.name + ":" + v.state);
  return out;
}

}  // namespace

TEST(ServicesStoreTest, ApplyingTheSameSpecTwiceRecordsOneChange) {
  auto s = OpenStore(TempDb("twice"));
  auto first = s->services().Apply(Fashion("a"), "user:alice", "first", 10);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_TRUE(first->changed);
  EXPECT_GT(first->change_id, 0);
  EXPECT_EQ(first->generation, 1);
  auto second = s->services().Apply(Fashion("a"), "user:alice", "again", 20);
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_FALSE(second->changed);
  EXPECT_EQ(second->change_id, 0);
  EXPECT_EQ(second->generation, 1);
  auto history = s->services().History("fashion", 0, 10);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ((*history)[0].reason, "first");
  EXPECT_EQ(s->services().Get("fashion")->updated_ms, 10);
}

TEST(ServicesStoreTest, AChangedSpecBumpsTheGenerationAndRecordsTheSpecBeforeAndAfter) {
  auto s = OpenStore(TempDb("changed"));
  ASSERT_TRUE(s->services().Apply(Fashion("a"), "user:alice", "first", 10).ok());
  auto out = s->services().Apply(Fashion("b"), "run:12/deploy#3", "canary", 20);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_TRUE(out->changed);
  EXPECT_EQ(out->generation, 2);
  auto history = s->services().History("fashion", 0, 10);
  ASSERT_EQ(history->size(), 2u);
  const store::ServiceChange& c = (*history)[0];  // newest first
  EXPECT_EQ(c.id, out->change_id);
  EXPECT_EQ(c.kind, "apply");
  EXPECT_EQ(c.actor, "run:12/deploy#3");
  EXPECT_EQ(c.reason, "canary");
  EXPECT_EQ(c.at_ms, 20);
  EXPECT_EQ(c.before, Fashion("a").spec);
  EXPECT_EQ(c.after, Fashion("b").spec);
  EXPECT_EQ((*history)[1].before, "") << "the first apply has nothing before it";
  auto got = s->services().Get("fashion");
  EXPECT_EQ(got->created_ms, 10);
  EXPECT_EQ(got->updated_ms, 20);
}

TEST(ServicesStoreTest, GetGivesBackWhatWasAppliedWithVersionsInTheOrderFirstApplied) {
  auto s = OpenStore(TempDb("get"));
  store::ServiceState want = Fashion("a");
  want.sticky_header = "x-user-id";
  want.sticky_salt = "fashion";
  want.mirror_version = "green";
  want.mirror_bp = 10000;
  want.infer_token_hash = "ab12";
  want.versions[0].options = R"({"threads":2})";
  ASSERT_TRUE(s->services().Apply(want, "user:alice", "", 10).ok());
  auto got = s->services().Get("fashion");
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got->spec, want.spec);
  EXPECT_EQ(got->spec_hash, want.spec_hash);
  EXPECT_EQ(got->sticky_header, "x-user-id");
  EXPECT_EQ(got->sticky_field, "");
  EXPECT_EQ(got->sticky_salt, "fashion");
  EXPECT_EQ(got->mirror_version, "green");
  EXPECT_EQ(got->mirror_bp, 10000);
  EXPECT_EQ(got->infer_token_hash, "ab12");
  EXPECT_EQ(got->traffic_owner, "");
  ASSERT_EQ(got->versions.size(), 2u);
  EXPECT_EQ(got->versions[0].name, "blue");
  EXPECT_EQ(got->versions[0].ordinal, 0);
  EXPECT_EQ(got->versions[0].revision, 1);
  EXPECT_EQ(got->versions[0].state, "active");
  EXPECT_EQ(got->versions[0].replicas, 2);
  EXPECT_EQ(got->versions[0].weight_bp, 9000);
  EXPECT_EQ(got->versions[0].options, R"({"threads":2})");
  EXPECT_EQ(got->versions[0].command, R"(["python3","srv.py"])");
  EXPECT_EQ(got->versions[1].name, "green");
  EXPECT_EQ(got->versions[1].ordinal, 1);
  EXPECT_EQ(got->versions[1].options, "{}");
}

TEST(ServicesStoreTest, ChangingWhatRunsBumpsTheRevisionAndChangingReplicasOrWeightDoesNot) {
  auto s = OpenStore(TempDb("revision"));
  ASSERT_TRUE(s->services().Apply(Fashion("a"), "user:alice", "", 10).ok());
  store::ServiceState next = Fashion("b");
  next.versions[0].replicas = 3;
  next.versions[0].weight_bp = 5000;
  next.versions[1].weight_bp = 5000;
  next.versions[1].env = R"({"MODE":"fast"})";
  ASSERT_TRUE(s->services().Apply(next, "user:alice", "", 20).ok());
  auto got = s->services().Get("fashion");
  EXPECT_EQ(got->versions[0].revision, 1);
  EXPECT_EQ(got->versions[0].replicas, 3);
  EXPECT_EQ(got->versions[0].weight_bp, 5000);
  EXPECT_EQ(got->versions[1].revision, 2);
}

TEST(ServicesStoreTest, AVersionLeftOutIsRemovingWithWeightZeroAndKeepsItsOrdinalWhenItComesBack) {
  auto s = OpenStore(TempDb("removing"));
  ASSERT_TRUE(s->services().Apply(Fashion("a"), "user:alice", "", 10).ok());
  store::ServiceState only_green = Fashion("b");
  only_green.versions = {CommandVersion("green", 10000)};
  ASSERT_TRUE(s->services().Apply(only_green, "user:alice", "", 20).ok());
  auto got = s->services().Get("fashion");
  EXPECT_EQ(Names(*got), (std::vector<std::string>{"blue:removing", "green:active"}));
  EXPECT_EQ(got->versions[0].weight_bp, 0);
  ASSERT_TRUE(s->services().Apply(Fashion("c"), "user:alice", "", 30).ok());
  got = s->services().Get("fashion");
  EXPECT_EQ(Names(*got), (std::vector<std::string>{"blue:active", "green:active"}));
  EXPECT_EQ(got->versions[0].ordinal, 0);
  EXPECT_EQ(got->versions[0].weight_bp, 9000);
}

TEST(ServicesStoreTest, KeepWeightsKeepsTheExistingWeightsAndGivesANewVersionZero) {
  auto s = OpenStore(TempDb("keep"));
  ASSERT_TRUE(s->services().Apply(Fashion("a"), "user:alice", "", 10).ok());
  store::ServiceState next = Fashion("b");
  next.keep_weights = true;
  for (auto& v : next.versions) v.weight_bp = 1234;  // ignored
  next.versions.push_back(CommandVersion("mine", 1234));
  ASSERT_TRUE(s->services().Apply(next, "user:alice", "", 20).ok());
  auto got = s->services().Get("fashion");
  ASSERT_EQ(got->versions.size(), 3u);
  EXPECT_EQ(got->versions[0].weight_bp, 9000);
  EXPECT_EQ(got->versions[1].weight_bp, 1000);
  EXPECT_EQ(got->versions[2].name, "mine");
  EXPECT_EQ(got->versions[2].ordinal, 2);
  EXPECT_EQ(got->versions[2].weight_bp, 0);
}

TEST(ServicesStoreTest, ListGivesEveryServiceByNameWithItsVersions) {
  auto s = OpenStore(TempDb("list"));
  store::ServiceState b = Fashion("a");
  b.name = "zebra";
  ASSERT_TRUE(s->services().Apply(b, "user:alice", "", 10).ok());
  ASSERT_TRUE(s->services().Apply(Fashion("a"), "user:alice", "", 10).ok());
  auto all = s->services().List();
  ASSERT_TRUE(all.ok()) << all.status().message();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name, "fashion");
  EXPECT_EQ((*all)[1].name, "zebra");
  EXPECT_EQ((*all)[1].versions.size(), 2u);
}

TEST(ServicesStoreTest, AnUnknownServiceIsNotFoundAndHasNoHistory) {
  auto s = OpenStore(TempDb("unknown"));
  auto got = s->services().Get("nope");
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().message(), "no service 'nope'");
  Status del = s->services().Delete("nope", "user:alice", "", 10);
  EXPECT_EQ(del.code(), got.status().code());
  EXPECT_EQ(del.message(), "no service 'nope'");
  EXPECT_TRUE(s->services().History("nope", 0, 10)->empty());
  EXPECT_TRUE(s->services().List()->empty());
}

TEST(ServicesStoreTest, ADeletedServiceIsNeitherFoundNorListedAndKeepsItsHistory) {
  auto s = OpenStore(TempDb("delete"));
  ASSERT_TRUE(s->services().Apply(Fashion("a"), "user:alice", "", 10).ok());
  ASSERT_TRUE(s->services().Delete("fashion", "user:bob", "retired", 20).ok());
  EXPECT_FALSE(s->services().Get("fashion").ok());
  EXPECT_TRUE(s->services().List()->empty());
  EXPECT_FALSE(s->services().Delete("fashion", "user:bob", "", 30).ok()) << "deleted once only";
  auto history = s->services().History("fashion", 0, 10);
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ((*history)[0].kind, "delete");
  EXPECT_EQ((*history)[0].actor, "user:bob");
  EXPECT_EQ((*history)[0].reason, "retired");
  EXPECT_EQ((*history)[0].before, Fashion("a").spec);
  EXPECT_EQ((*history)[0].after, "");
}

TEST(ServicesStoreTest, ApplyingADeletedNameCreatesItAgainAndItsGenerationGoesOn) {
  auto s = OpenStore(TempDb("again"));
  ASSERT_TRUE(s->services().Apply(Fashion("a"), "user:alice", "", 10).ok());
  ASSERT_TRUE(s->services().Delete("fashion", "user:alice", "", 20).ok());
  auto out = s->services().Apply(Fashion("a"), "user:alice", "back", 30);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_TRUE(out->changed) << "the same document as before the delete is still a change";
  EXPECT_EQ(out->generation, 3);
  auto got = s->services().Get("fashion");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->created_ms, 30);
  EXPECT_EQ(Names(*got), (std::vector<std::string>{"blue:active", "green:active"}));
  EXPECT_EQ(got->versions[0].revision, 1) << "what runs is the same; its revision stays";
  EXPECT_EQ((*s->services().History("fashion", 0, 10))[0].before, "");
}

TEST(ServicesStoreTest, HistoryPagesNewestFirstBelowBeforeIdUpToLimit) {
  auto s = OpenStore(TempDb("history"));
  std::vector<int64_t> ids;
  for (const char* tag : {"a", "b", "c", "d"})
    ids.push_back(s->services().Apply(Fashion(tag), "user:alice", tag, 1)->change_id);
  auto page = s->services().History("fashion", 0, 2);
  ASSERT_EQ(page->size(), 2u);
  EXPECT_EQ((*page)[0].id, ids[3]);
  EXPECT_EQ((*page)[1].id, ids[2]);
  page = s->services().History("fashion", ids[2], 2);  // below, not at
  ASSERT_EQ(page->size(), 2u);
  EXPECT_EQ((*page)[0].id, ids[1]);
  EXPECT_EQ((*page)[1].id, ids[0]);
  EXPECT_TRUE(s->services().History("fashion", ids[0], 2)->empty());
  EXPECT_EQ(s->services().History("fashion", 0, 4)->size(), 4u);
  EXPECT_EQ(s->services().History("fashion", 0, 5)->size(), 4u);
}

TEST(ServicesStoreTest, EveryDesiredStateWriteAppendsItsHistoryRowInTheSameTransaction) {
  auto s = OpenStore(TempDb("atomic"));
  ASSERT_TRUE(s->services().Apply(Fashion("a"), "user:alice", "", 10).ok());
  store::ServiceState bad = Fashion("b");
  bad.versions[1].kind = "model";
  bad.versions[1].artifact = "no-such-artifact";  // its foreign key fails after the services row is written
  auto out = s->services().Apply(bad, "user:alice", "", 20);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("apply service fashion"), std::string::npos) << out.status().message();
  auto got = s->services().Get("fashion");
  EXPECT_EQ(got->spec_hash, "hash-a") << "the services row was rolled back with the version";
  EXPECT_EQ(got->generation, 1);
  EXPECT_EQ(s->services().History("fashion", 0, 10)->size(), 1u);
}

TEST(ServicesStoreTest, WritesAreRefusedWhileAJournalBatchIsOpenAndChangeNothing) {
  auto s = OpenStore(TempDb("batch"));
  ASSERT_TRUE(s->services().Apply(Fashion("a"), "user:alice", "", 10).ok());
  ASSERT_TRUE(s->db().JoinBatch().ok());
  auto out = s->services().Apply(Fashion("b"), "user:alice", "", 20);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), Code::kInternal);
  EXPECT_EQ(s->services().Delete("fashion", "user:alice", "", 20).code(), Code::kInternal);
  ASSERT_TRUE(s->db().Flush().ok());
  EXPECT_EQ(s->services().Get("fashion")->spec_hash, "hash-a");
  EXPECT_EQ(s->services().History("fashion", 0, 10)->size(), 1u);
}

TEST(ServicesStoreTest, ASchema10DatabaseMigratesTo11) {
  std::string path = TempDb("v10");
  { auto s = OpenStore(path); }
  sqlite3* db;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  // Versions 16 to 12 undone by hand, newest first.
  for (const char* sql : {"DROP TABLE run_outputs", "DROP INDEX runs_by_schedule", "ALTER TABLE runs DROP COLUMN scheduled_ms",
                          "ALTER TABLE runs DROP COLUMN interval_start_ms", "DROP TABLE approvals", "DROP INDEX steps_by_seq", "DROP INDEX runs_by_state", "ALTER TABLE steps DROP COLUMN seq",
                          "DROP TABLE rollout_events", "DROP TABLE rollouts", "DROP TABLE feedback", "DROP TABLE services", "DROP TABLE service_versions", "DROP TABLE service_replicas",
                          "DROP TABLE service_changes", "DROP TABLE service_windows", "DROP TABLE gateway",
                          "PRAGMA user_version=10"})
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sql;
  sqlite3_close(db);
  auto s = OpenStore(path);
  ASSERT_TRUE(s->services().Apply(Fashion("a"), "user:alice", "", 10).ok());
  EXPECT_EQ(*s->db().IntegrityCheck(), "ok");
}

namespace {

store::ReplicaRow BlueReplica(int slot) {
  store::ReplicaRow r;
  r.service = "fashion";
  r.version = "blue";
  r.slot = slot;
  r.revision = 1;
  r.pid = 4242;
  r.start_time = 777;
  r.port = 9001;
  r.state = "ready";
  r.log_path = "/h/services/fashion/blue." + std::to_string(slot) + ".log";
  r.started_ms = 100;
  r.ready_ms = 150;
  r.updated_ms = 150;
  return r;
}

}  // namespace

TEST(ServicesStoreTest, APutReplicaRowReadsBackAsWrittenBySlot) {
  auto s = OpenStore(TempDb("replica-put"));
  ASSERT_TRUE(s->services().PutReplica(BlueReplica(1)).ok());
  store::ReplicaRow zero = BlueReplica(0);
  zero.pid = 0;
  zero.start_time = 0;
  zero.port = 0;
  zero.state = "backoff";
  zero.restarts = 2;
  zero.last_exit = "exited with status 3";
  zero.ready_ms = 0;
  ASSERT_TRUE(s->services().PutReplica(zero).ok());
  auto rows = s->services().Replicas("fashion");
  ASSERT_TRUE(rows.ok()) << rows.status().message();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].slot, 0);
  EXPECT_EQ((*rows)[0].state, "backoff");
  EXPECT_EQ((*rows)[0].pid, 0);
  EXPECT_EQ((*rows)[0].restarts, 2);
  EXPECT_EQ((*rows)[0].last_exit, "exited with status 3");
  EXPECT_EQ((*rows)[0].ready_ms, 0);
  const store::ReplicaRow& one = (*rows)[1];
  EXPECT_EQ(one.slot, 1);
  EXPECT_EQ(one.pid, 4242);
  EXPECT_EQ(one.start_time, 777);
  EXPECT_EQ(one.port, 9001);
  EXPECT_EQ(one.state, "ready");
  EXPECT_EQ(one.last_exit, "");
  EXPECT_EQ(one.log_path, "/h/services/fashion/blue.1.log");
  EXPECT_EQ(one.started_ms, 100);
  EXPECT_EQ(one.ready_ms, 150);
  EXPECT_TRUE(s->services().History("fashion", 0, 10)->empty()) << "no reason, no history row";
}

TEST(ServicesStoreTest, APutReplicaReplacesTheSlotsRowAndDeleteRemovesIt) {
  auto s = OpenStore(TempDb("replica-replace"));
  ASSERT_TRUE(s->services().PutReplica(BlueReplica(0)).ok());
  store::ReplicaRow next = BlueReplica(0);
  next.revision = 2;
  next.state = "starting";
  ASSERT_TRUE(s->services().PutReplica(next).ok());
  auto rows = s->services().Replicas("fashion");
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].revision, 2);
  EXPECT_EQ((*rows)[0].state, "starting");
  ASSERT_TRUE(s->services().DeleteReplica("fashion", "blue", 0).ok());
  EXPECT_TRUE(s->services().Replicas("fashion")->empty());
  EXPECT_TRUE(s->services().DeleteReplica("fashion", "blue", 0).ok()) << "deleting no row is no error";
}

TEST(ServicesStoreTest, APutReplicaWithAReasonAppendsAGatewayReplicaChangeInTheSameTransaction) {
  auto s = OpenStore(TempDb("replica-change"));
  store::ReplicaRow r = BlueReplica(1);
  r.state = "backoff";
  r.updated_ms = 900;
  ASSERT_TRUE(s->services().PutReplica(r, "replica 1 of blue exited with status 3; restarting in 250 ms").ok());
  auto history = s->services().History("fashion", 0, 10);
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ((*history)[0].kind, "replica");
  EXPECT_EQ((*history)[0].actor, "gateway");
  EXPECT_EQ((*history)[0].reason, "replica 1 of blue exited with status 3; restarting in 250 ms");
  EXPECT_EQ((*history)[0].at_ms, 900);
}

TEST(ServicesStoreTest, ReplicaWritesAreRefusedWhileAJournalBatchIsOpenAndChangeNothing) {
  auto s = OpenStore(TempDb("replica-batch"));
  ASSERT_TRUE(s->services().PutReplica(BlueReplica(0)).ok());
  ASSERT_TRUE(s->db().JoinBatch().ok());
  store::ReplicaRow r = BlueReplica(0);
  r.state = "backoff";
  EXPECT_EQ(s->services().PutReplica(r, "why").code(), Code::kInternal);
  EXPECT_EQ(s->services().DeleteReplica("fashion", "blue", 0).code(), Code::kInternal);
  ASSERT_TRUE(s->db().Flush().ok());
  auto rows = s->services().Replicas("fashion");
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].state, "ready");
  EXPECT_TRUE(s->services().History("fashion", 0, 10)->empty());
}

// --- SetTraffic: the weights alone, as the admin API's PATCH and issue 16's
// deployment steps set them.

namespace {
store::TrafficChange Weights(std::vector<std::pair<std::string, int>> w, int64_t expected_generation = 0) {
  store::TrafficChange c;
  c.weights_bp = std::move(w);
  c.expected_generation = expected_generation;
  return c;
}
}  // namespace

TEST(ServicesStoreTest, SetTrafficSetsTheWeightsBumpsTheGenerationAndRecordsATrafficRow) {
  auto s = OpenStore(TempDb("traffic"));
  ASSERT_TRUE(s->services().Apply(Fashion("a"), "user:alice", "", 10).ok());
  auto g = s->services().SetTraffic("fashion", Weights({{"blue", 5000}, {"green", 5000}}, 1), "token:ci", "half", 20);
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(g->generation, 2);
  EXPECT_TRUE(g->changed);
  auto live = s->services().Get("fashion");
  ASSERT_TRUE(live.ok());
  EXPECT_EQ(live->generation, 2);
  EXPECT_EQ(live->versions[0].weight_bp, 5000);
  EXPECT_EQ(live->versions[1].weight_bp, 5000);
  EXPECT_EQ(live->spec_hash, "hash-a") << "the document is not touched";
  EXPECT_EQ(live->versions[0].revision, 1) << "no replica is replaced";
  auto history = s->services().History("fashion", 0, 10);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 2u);
  const store::ServiceChange& c = (*history)[0];
  EXPECT_EQ(c.id, g->change_id);
  EXPECT_EQ(c.kind, "traffic");
  EXPECT_EQ(c.actor, "token:ci");
  EXPECT_EQ(c.reason, "half");
  EXPECT_EQ(c.before, R"({"mirror":null,"traffic":{"blue":9000,"green":1000}})");
  EXPECT_EQ(c.after, R"({"mirror":null,"traffic":{"blue":5000,"green":5000}})");
}

TEST(ServicesStoreTest, SetTrafficGivesAVersionItDoesNotNameWeightZero) {
  auto s = OpenStore(TempDb("traffic-unnamed"));
  ASSERT_TRUE(s->services().Apply(Fashion("a"), "user:alice", "", 10).ok());
  ASSERT_TRUE(s->services().SetTraffic("fashion", Weights({{"green", 10000}}), "token:ci", "", 20).ok());
  EXPECT_EQ(s->services().Get("fashion")->versions[0].weight_bp, 0);
  EXPECT_EQ(s->services().Get("fashion")->versions[1].weight_bp, 10000);
}

TEST(ServicesStoreTest, SetTrafficWithAStaleGenerationIsIncompatibleAndChangesNothing) {
  auto s = OpenStore(TempDb("traffic-stale"));
  ASSERT_TRUE(s->services().Apply(Fashion("a"), "user:alice", "", 10).ok());
  ASSERT_TRUE(s->services().Apply(Fashion("b"), "user:alice", "", 11).ok());  // generation 2
  auto g = s->services().SetTraffic("fashion", Weights({{"blue", 5000}, {"green", 5000}}, 1), "token:ci", "", 20);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), Code::kIncompatible);
  EXPECT_EQ(g.status().message(),
            "service 'fashion' is at generation 2, not the expected 1 (it changed since it was read)");
  EXPECT_EQ(s->services().Get("fashion")->versions[0].weight_bp, 9000);
  EXPECT_EQ(s->services().History("fashion", 0, 10)->size(), 2u);
}

TEST(ServicesStoreTest, SetTrafficIsRefusedWhileAnotherOwnerDrivesTheWeightsAndAllowedToTheOwner) {
  auto s = OpenStore(TempDb("traffic-owner"));
  ASSERT_TRUE(s->services().Apply(Fashion("a"), "user:alice", "", 10).ok());
  ASSERT_TRUE(s->db().Exec("UPDATE services SET traffic_owner = 'run:12/deploy'").ok());
  auto g = s->services().SetTraffic("fashion", Weights({{"blue", 5000}, {"green", 5000}}), "token:ci", "", 20);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), Code::kIncompatible);
  EXPECT_EQ(g.status().message(), "the weights of service 'fashion' are driven by run:12/deploy");
  store::TrafficChange by_owner = Weights({{"blue", 5000}, {"green", 5000}});
  by_owner.owner = "run:12/deploy";
  EXPECT_TRUE(s->services().SetTraffic("fashion", by_owner, "run:12/deploy#3", "", 21).ok());
}

TEST(ServicesStoreTest, SetTrafficWeightsMustAddUpToExactly100) {
  auto s = OpenStore(TempDb("traffic-sum"));
  ASSERT_TRUE(s->services().Apply(Fashion("a"), "user:alice", "", 10).ok());
  auto low = s->services().SetTraffic("fashion", Weights({{"blue", 9999}, {"green", 0}}), "token:ci", "", 20);
  ASSERT_FALSE(low.ok());
  EXPECT_EQ(low.status().code(), Code::kInvalidSpec);
  EXPECT_EQ(low.status().message(), "traffic: weights add up to 99.99, not 100");
  auto high = s->services().SetTraffic("fashion", Weights({{"blue", 9001}, {"green", 1000}}), "token:ci", "", 20);
  ASSERT_FALSE(high.ok());
  EXPECT_EQ(high.status().message(), "traffic: weights add up to 100.01, not 100");
  EXPECT_TRUE(s->services().SetTraffic("fashion", Weights({{"blue", 9999}, {"green", 1}}), "token:ci", "", 20).ok());
}

TEST(ServicesStoreTest, SetTrafficNamesAnUnknownVersionWithTheKnownOnes) {
  auto s = OpenStore(TempDb("traffic-unknown"));
  ASSERT_TRUE(s->services().Apply(Fashion("a"), "user:alice", "", 10).ok());
  auto g = s->services().SetTraffic("fashion", Weights({{"blue", 9000}, {"gren", 1000}}), "token:ci", "", 20);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), Code::kInvalidSpec);
  EXPECT_EQ(g.status().message(),
            "traffic: 'gren' is not an active version of service 'fashion' (versions: blue, green) "
            "(did you mean 'green'?)");
}

TEST(ServicesStoreTest, SetTrafficOnAnUnknownOrDeletedServiceIsNotFound) {
  auto s = OpenStore(TempDb("traffic-none"));
  EXPECT_EQ(s->services().SetTraffic("fashion", Weights({{"blue", 10000}}), "token:ci", "", 20).status().code(),
            Code::kNotFound);
  ASSERT_TRUE(s->services().Apply(Fashion("a"), "user:alice", "", 10).ok());
  ASSERT_TRUE(s->services().Delete("fashion", "user:alice", "", 11).ok());
  EXPECT_EQ(s->services().SetTraffic("fashion", Weights({{"blue", 10000}}), "token:ci", "", 20).status().code(),
            Code::kNotFound);
}

TEST(ServicesStoreTest, SetTrafficSetsAndEndsTheMirrorAndRefusesAMirrorToAVersionWithWeight) {
  auto s = OpenStore(TempDb("traffic-mirror"));
  ASSERT_TRUE(s->services().Apply(Fashion("a"), "user:alice", "", 10).ok());
  store::TrafficChange c = Weights({{"blue", 10000}});
  c.set_mirror = true;
  c.mirror_version = "green";
  c.mirror_bp = 2500;
  ASSERT_TRUE(s->services().SetTraffic("fashion", c, "token:ci", "", 20).ok());
  EXPECT_EQ(s->services().Get("fashion")->mirror_version, "green");
  EXPECT_EQ(s->services().Get("fashion")->mirror_bp, 2500);
  // Weights alone leave the mirror as it is.
  ASSERT_TRUE(s->services().SetTraffic("fashion", Weights({{"blue", 10000}}), "token:ci", "", 21).ok());
  EXPECT_EQ(s->services().Get("fashion")->mirror_version, "green");
  store::TrafficChange onto = Weights({{"blue", 9000}, {"green", 1000}});
  auto refused = s->services().SetTraffic("fashion", onto, "token:ci", "", 22);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(),
            "mirror.version: 'green' has weight 10; a mirrored version takes no live traffic");
  onto.set_mirror = true;  // and no mirror_version: the mirror ends
  ASSERT_TRUE(s->services().SetTraffic("fashion", onto, "token:ci", "", 23).ok());
  EXPECT_EQ(s->services().Get("fashion")->mirror_version, "");
  EXPECT_EQ(s->services().Get("fashion")->mirror_bp, 0);
}

TEST(ServicesStoreTest, SetTrafficIsRefusedWhileAJournalBatchIsOpen) {
  auto s = OpenStore(TempDb("traffic-batch"));
  ASSERT_TRUE(s->services().Apply(Fashion("a"), "user:alice", "", 10).ok());
  ASSERT_TRUE(s->db().JoinBatch().ok());
  auto g = s->services().SetTraffic("fashion", Weights({{"blue", 10000}}), "token:ci", "", 20);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), Code::kInternal);
  ASSERT_TRUE(s->db().Flush().ok());
  EXPECT_EQ(s->services().Get("fashion")->versions[0].weight_bp, 9000);
}

TEST(ServicesStoreTest, AnEventOfTheGatewayIsAppendedToTheHistoryAndChangesNothingElse) {
  auto s = OpenStore(TempDb("event"));
  ASSERT_TRUE(s->services().Apply(Fashion("a"), "user:alice", "first", 10).ok());
  auto id = s->services().RecordEvent("fashion", "ejection", "replica 1 of blue ejected for 5 s", 20);
  ASSERT_TRUE(id.ok()) << id.status().message();
  auto history = s->services().History("fashion", 0, 10);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ((*history)[0].id, *id);
  EXPECT_EQ((*history)[0].kind, "ejection");
  EXPECT_EQ((*history)[0].actor, "gateway");
  EXPECT_EQ((*history)[0].reason, "replica 1 of blue ejected for 5 s");
  EXPECT_EQ(s->services().Get("fashion")->generation, 1);  // not a change of the desired state
}
