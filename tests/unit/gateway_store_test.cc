// GatewayStore (store/gateway.h): the serving gateway's claim on the store
// and its statistics windows, schema version 11.
#include <gtest/gtest.h>

#include "store/open.h"
#include "../common/temp_store.h"

using namespace sluice;

namespace {

using sluice::testing::OpenStore;
using sluice::testing::TempDb;

store::GatewayRecord Gateway(int64_t pid, int port) {
  store::GatewayRecord g;
  g.pid = pid;
  g.start_time = 1000 + pid;
  g.listen = "127.0.0.1";
  g.port = port;
  g.mode = "foreground";
  g.started_ms = 5;
  return g;
}

store::WindowRow Window(const std::string& version, int64_t start_ms, int64_t requests) {
  store::WindowRow w;
  w.service = "fashion";
  w.version = version;
  w.role = "live";
  w.start_ms = start_ms;
  w.requests = requests;
  w.errors = 1;
  w.codes = R"({"200":)" + std::to_string(requests - 1) + R"(,"503":1})";
  w.latency = "[" + std::to_string(requests) + ",0,0]";
  w.latency_sum_us = 100 * requests;
  w.latency_max_us = 100 + requests;
  return w;
}

auto Alive(int64_t live_pid) {
  return [live_pid](int64_t pid, int64_t) { return pid == live_pid; };
}

}  // namespace

TEST(GatewayStoreTest, AClaimWhileAnotherLiveGatewayHoldsTheStoreReturnsTheHolderAndWritesNothing) {
  auto s = OpenStore(TempDb("claim-held"));
  auto first = s->gateway().Claim(Gateway(41, 8080), Alive(41));
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_FALSE(first->has_value());
  auto second = s->gateway().Claim(Gateway(42, 9090), Alive(41));
  ASSERT_TRUE(second.ok()) << second.status().message();
  ASSERT_TRUE(second->has_value());
  EXPECT_EQ((*second)->pid, 41);
  EXPECT_EQ((*second)->port, 8080);
  auto row = s->gateway().Read();
  ASSERT_TRUE(row.ok() && row->has_value());
  EXPECT_EQ((*row)->pid, 41);
}

TEST(GatewayStoreTest, AClaimOverADeadGatewaysRowTakesIt) {
  auto s = OpenStore(TempDb("claim-dead"));
  ASSERT_TRUE(s->gateway().Claim(Gateway(41, 8080), Alive(41)).ok());
  ASSERT_TRUE(s->gateway().RequestStop().ok());
  auto second = s->gateway().Claim(Gateway(42, 9090), Alive(42));
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_FALSE(second->has_value());
  auto row = s->gateway().Read();
  ASSERT_TRUE(row.ok() && row->has_value());
  EXPECT_EQ((*row)->pid, 42);
  EXPECT_EQ((*row)->port, 9090);
  EXPECT_FALSE((*row)->stop_requested);
}

TEST(GatewayStoreTest, ReleaseRemovesOnlyTheRowOfTheGivenPid) {
  auto s = OpenStore(TempDb("release"));
  ASSERT_TRUE(s->gateway().Claim(Gateway(41, 8080), Alive(41)).ok());
  ASSERT_TRUE(s->gateway().Release(7).ok());
  EXPECT_TRUE(s->gateway().Read()->has_value());
  ASSERT_TRUE(s->gateway().Release(41).ok());
  EXPECT_FALSE(s->gateway().Read()->has_value());
  EXPECT_EQ(s->gateway().RequestStop().code(), Code::kNotFound);
}

TEST(GatewayStoreTest, AppendedWindowsAreReadBackInTimeOrderAndBeatTheHeart) {
  auto s = OpenStore(TempDb("windows"));
  ASSERT_TRUE(s->gateway().Claim(Gateway(41, 8080), Alive(41)).ok());
  ASSERT_TRUE(s->gateway().AppendWindows({Window("green", 20000, 5), Window("blue", 10000, 7)}, 41, 31000).ok());
  auto all = s->gateway().Windows("fashion", "", "", 0, 1'000'000);
  ASSERT_TRUE(all.ok()) << all.status().message();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].version, "blue");
  EXPECT_EQ((*all)[0].requests, 7);
  EXPECT_EQ((*all)[0].codes, R"({"200":6,"503":1})");
  EXPECT_EQ((*all)[1].version, "green");
  EXPECT_EQ((*s->gateway().Read())->heartbeat_ms, 31000);
}

TEST(GatewayStoreTest, WindowsAreSelectedByVersionRoleAndAHalfOpenInterval) {
  auto s = OpenStore(TempDb("select"));
  store::WindowRow mirror = Window("green", 10000, 3);
  mirror.role = "mirror";
  ASSERT_TRUE(s->gateway()
                  .AppendWindows({Window("green", 0, 1), Window("green", 10000, 2), Window("green", 20000, 4), mirror,
                                  Window("blue", 10000, 9)},
                                 41, 1)
                  .ok());
  auto got = s->gateway().Windows("fashion", "green", "live", 10000, 20000);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 1u);  // start 10000 is in [10000, 20000); 20000 is not
  EXPECT_EQ((*got)[0].requests, 2);
  EXPECT_EQ(s->gateway().Windows("fashion", "green", "", 10000, 20001)->size(), 3u);
  EXPECT_TRUE(s->gateway().Windows("other", "", "", 0, 1'000'000)->empty());
}

TEST(GatewayStoreTest, AWindowFlushedTwiceIsMergedCountByCount) {
  auto s = OpenStore(TempDb("merge"));
  ASSERT_TRUE(s->gateway().AppendWindows({Window("blue", 10000, 5)}, 41, 1).ok());
  store::WindowRow again = Window("blue", 10000, 3);
  again.codes = R"({"200":2,"500":1})";
  ASSERT_TRUE(s->gateway().AppendWindows({again}, 41, 2).ok());
  auto got = s->gateway().Windows("fashion", "blue", "live", 0, 100000);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].requests, 8);
  EXPECT_EQ((*got)[0].errors, 2);
  EXPECT_EQ((*got)[0].codes, R"({"200":6,"500":1,"503":1})");
  EXPECT_EQ((*got)[0].latency, "[8,0,0]");
  EXPECT_EQ((*got)[0].latency_sum_us, 800);
  EXPECT_EQ((*got)[0].latency_max_us, 105);
}

TEST(GatewayStoreTest, PruningDeletesWindowsThatStartedBeforeTheCutOnly) {
  auto s = OpenStore(TempDb("prune"));
  ASSERT_TRUE(s->gateway().AppendWindows({Window("blue", 10000, 1), Window("blue", 20000, 2)}, 41, 1).ok());
  ASSERT_TRUE(s->gateway().PruneWindows(20000).ok());
  auto left = s->gateway().Windows("fashion", "", "", 0, 1'000'000);
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].start_ms, 20000);
}

TEST(GatewayStoreTest, ARemovingVersionMarkedRemovedLeavesTheServicesVersions) {
  auto s = OpenStore(TempDb("removed"));
  store::ServiceState svc;
  svc.name = "fashion";
  svc.spec = "{}";
  svc.spec_hash = "a";
  store::ServiceVersionState blue;
  blue.name = "blue";
  blue.kind = "command";
  blue.command = R"(["srv"])";
  blue.weight_bp = 10000;
  svc.versions = {blue};
  ASSERT_TRUE(s->services().Apply(svc, "user:a", "", 1).ok());
  ASSERT_TRUE(s->gateway().MarkRemoved("fashion", "blue", 2).ok());  // active: not touched
  EXPECT_EQ(s->services().Get("fashion")->versions.size(), 1u);
  ASSERT_TRUE(s->services().Delete("fashion", "user:a", "", 3).ok());
  ASSERT_TRUE(s->gateway().MarkRemoved("fashion", "blue", 4).ok());
  svc.spec_hash = "b";
  svc.versions[0].name = "green";
  ASSERT_TRUE(s->services().Apply(svc, "user:a", "", 5).ok());
  auto back = s->services().Get("fashion");
  ASSERT_TRUE(back.ok());
  ASSERT_EQ(back->versions.size(), 1u);
  EXPECT_EQ(back->versions[0].name, "green");
}

TEST(GatewayStoreTest, ClassesAndPayloadAreWrittenAndReadBackAndAbsentOnesReadEmpty) {
  auto s = OpenStore(TempDb("profile-columns"));
  store::WindowRow profiled = Window("blue", 10000, 5);
  profiled.classes = R"({"cat":3,"dog":2})";
  profiled.payload = R"({"format":"sluice-profile-v1","samples":5})";
  ASSERT_TRUE(s->gateway().AppendWindows({profiled, Window("green", 10000, 2)}, 41, 1).ok());
  auto got = s->gateway().Windows("fashion", "", "live", 0, 100000);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].classes, R"({"cat":3,"dog":2})");
  EXPECT_EQ((*got)[0].payload, R"({"format":"sluice-profile-v1","samples":5})");
  EXPECT_EQ((*got)[1].classes, "");
  EXPECT_EQ((*got)[1].payload, "");
}

TEST(GatewayStoreTest, AWindowFlushedTwiceMergesItsClassesAndPayloadSumsMinsAndMaxes) {
  auto s = OpenStore(TempDb("profile-merge"));
  store::WindowRow first = Window("blue", 10000, 5);
  first.classes = R"({"cat":3,"dog":2})";
  first.payload = R"({"format":"sluice-profile-v1","samples":5,"inputs":{"x":{"width":2,)"
                  R"("values":{"n":4,"sum":1.5,"min":-1,"max":2,"hist":[1,3]},"features":{"min":[0,1],"max":[3,4]}}}})";
  store::WindowRow second = Window("blue", 10000, 1);
  second.classes = R"({"cat":1,"eel":1})";
  second.payload = R"({"format":"sluice-profile-v1","samples":1,"inputs":{"x":{"width":3,)"
                   R"("values":{"n":3,"sum":0.5,"min":-2,"max":1,"hist":[0,1,2]},"features":{"min":[1,0,5],"max":[1,9,5]}}}})";
  ASSERT_TRUE(s->gateway().AppendWindows({first}, 41, 1).ok());
  ASSERT_TRUE(s->gateway().AppendWindows({second}, 41, 2).ok());
  auto got = s->gateway().Windows("fashion", "blue", "live", 0, 100000);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].classes, R"({"cat":4,"dog":2,"eel":1})");
  EXPECT_EQ((*got)[0].payload,
            R"({"format":"sluice-profile-v1","inputs":{"x":{"features":{"max":[3,9,5],"min":[0,0,5]},)"
            R"("values":{"hist":[1,4,2],"max":2,"min":-2,"n":7,"sum":2.0},"width":3}},"samples":6})");
}

TEST(GatewayStoreTest, AWindowFlushedTwiceKeepsTheProfileOfTheFlushThatHadOne) {
  auto s = OpenStore(TempDb("profile-merge-one"));
  store::WindowRow first = Window("blue", 10000, 5);
  first.classes = R"({"cat":3})";
  ASSERT_TRUE(s->gateway().AppendWindows({first}, 41, 1).ok());
  ASSERT_TRUE(s->gateway().AppendWindows({Window("blue", 10000, 1)}, 41, 2).ok());
  auto got = s->gateway().Windows("fashion", "blue", "live", 0, 100000);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].classes, R"({"cat":3})");
  EXPECT_EQ((*got)[0].payload, "");
}
