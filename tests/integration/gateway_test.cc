// The serving gateway (serving/gateway.h) in this process, over a real store
// in a scratch folder, with replicas that are real processes of
// fake_oip_server (tests/common) started by its supervisor, and real HTTP on
// loopback. Services are applied through ServicesStore, as `sluice services
// apply` does after resolving models.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include <signal.h>

#include <set>

#include "../common/free_port.h"
#include "gateway_fixture.h"
#include "harness.h"
#include "serving/gateway.h"
#include "store/open.h"
#include "util/hash.h"

using namespace sluice;
using namespace sluice::testing;
using json = nlohmann::json;

namespace {

class GatewayTest : public GatewayFixture {};

}  // namespace

TEST_F(GatewayTest, AnInferIsAnsweredByAReplicaOfTheServiceAndSaysWhichVersion) {
  Apply("fashion", {FakeVersion("blue", 10000)}, "a");
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion"));
  auto r = Infer("fashion");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("x-sluice-version"), "blue");
  json answer = json::parse(r->body);
  EXPECT_EQ(answer["fake"]["label"], "blue");
  EXPECT_EQ(answer["fake"]["markers"]["SLUICE_SERVICE"], "fashion");
}

TEST_F(GatewayTest, AnUnknownServiceIs404NamingTheServicesThereAre) {
  Apply("fashion", {FakeVersion("blue", 10000)}, "a");
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion"));
  auto r = Infer("fasion");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(json::parse(r->body)["error"], "no service named 'fasion' (services: fashion)");
}

TEST_F(GatewayTest, WeightsSplitTheTrafficBetweenVersions) {
  Apply("fashion", {FakeVersion("blue", 8000), FakeVersion("green", 2000)}, "a");
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion", "blue"));
  ASSERT_TRUE(WaitReady("fashion", "green"));
  std::map<std::string, int> seen;
  for (int i = 0; i < 400; ++i) {
    auto r = Infer("fashion");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200);
    ++seen[r->get_header_value("x-sluice-version")];
  }
  // 80 expected for green; 5 standard deviations (8) either side.
  EXPECT_GT(seen["green"], 40);
  EXPECT_LT(seen["green"], 120);
  EXPECT_EQ(seen["blue"] + seen["green"], 400);
}

TEST_F(GatewayTest, TheSameStickyKeyAlwaysReachesTheSameVersion) {
  Apply("fashion", {FakeVersion("blue", 5000), FakeVersion("green", 5000)}, "a",
        [](store::ServiceState& s) { s.sticky_header = "x-user-id"; });
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion", "blue"));
  ASSERT_TRUE(WaitReady("fashion", "green"));
  std::map<std::string, std::set<std::string>> versions_of;
  for (int user = 0; user < 20; ++user)
    for (int i = 0; i < 5; ++i) {
      auto r = Infer("fashion", R"({"inputs": []})", {{"x-user-id", "user-" + std::to_string(user)}});
      ASSERT_TRUE(r);
      versions_of[std::to_string(user)].insert(r->get_header_value("x-sluice-version"));
    }
  std::set<std::string> all;
  for (const auto& [user, versions] : versions_of) {
    EXPECT_EQ(versions.size(), 1u) << "user " << user;
    all.insert(versions.begin(), versions.end());
  }
  EXPECT_EQ(all.size(), 2u);  // 20 users at 50/50 do not all land on one side
}

TEST_F(GatewayTest, APinnedVersionIsReachedWhateverItsWeight) {
  Apply("fashion", {FakeVersion("blue", 10000), FakeVersion("green", 0)}, "a");
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion", "green"));
  auto r = client_->Post("/v2/models/fashion/versions/green/infer", R"({"inputs": []})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("x-sluice-version"), "green");
  auto h = Infer("fashion", R"({"inputs": []})", {{"x-sluice-version", "green"}});
  ASSERT_TRUE(h);
  EXPECT_EQ(h->get_header_value("x-sluice-version"), "green");
  auto none = client_->Post("/v2/models/fashion/versions/purple/infer", "{}", "application/json");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 404);
}

TEST_F(GatewayTest, MirroredCopiesAreAnsweredButNeverReturned) {
  Apply("fashion", {FakeVersion("blue", 10000), FakeVersion("shadow", 0)}, "a", [](store::ServiceState& s) {
    s.mirror_version = "shadow";
    s.mirror_bp = 10000;
  });
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion", "shadow"));
  ASSERT_TRUE(WaitReady("fashion", "blue"));
  for (int i = 0; i < 20; ++i) {
    auto r = Infer("fashion");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->get_header_value("x-sluice-version"), "blue");
  }
  // The copies' answers are counted as the shadow's role "mirror".
  EXPECT_TRUE(WaitFor([&] {
    auto m = client_->Get("/metrics");
    return m && m->body.find(R"(sluice_requests_total{service="fashion",version="shadow",role="mirror",code="200"} 20)") !=
                    std::string::npos;
  })) << client_->Get("/metrics")->body;
}

TEST_F(GatewayTest, AChangeOfWeightsInTheStoreReachesTheRoutesWithoutARestart) {
  Apply("fashion", {FakeVersion("blue", 10000), FakeVersion("green", 0)}, "a");
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion", "green"));
  ASSERT_EQ(Infer("fashion")->get_header_value("x-sluice-version"), "blue");
  Apply("fashion", {FakeVersion("blue", 0), FakeVersion("green", 10000)}, "b");
  EXPECT_TRUE(WaitFor([&] { return Infer("fashion")->get_header_value("x-sluice-version") == "green"; },
                      std::chrono::seconds(5)));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(Infer("fashion")->get_header_value("x-sluice-version"), "green");
}

TEST_F(GatewayTest, AReplicaThatDiesIsRestartedAndServesAgain) {
  Apply("fashion", {FakeVersion("blue", 10000, 1, {"--exit-after-requests", "3", "--exit-code", "7"})}, "a");
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion"));
  int64_t first_pid = 0;
  for (int i = 0; i < 3; ++i) {
    auto r = Infer("fashion");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200);
    first_pid = json::parse(r->body)["fake"]["pid"];
  }
  int64_t later_pid = 0;
  EXPECT_TRUE(WaitFor([&] {
    auto r = Infer("fashion");
    if (!r || r->status != 200) return false;
    later_pid = json::parse(r->body)["fake"]["pid"];
    return later_pid != first_pid;
  }));
  auto history = store_->services().History("fashion", 0, 10);
  ASSERT_TRUE(history.ok());
  bool replica_row = false;
  for (const auto& c : *history) replica_row = replica_row || (c.kind == "replica" && c.actor == "gateway");
  EXPECT_TRUE(replica_row);
}

TEST_F(GatewayTest, AReplicaFailingFiveTimesInARowIsEjectedButNeverTheLastOne) {
  // A request timeout of 200 ms (from the applied document) and readiness
  // polls too rare to act: only passive health takes the replica out.
  auto with_timeout = [](store::ServiceState& s) {
    s.spec = R"({"service": "fashion", "timeout_ms": 200, "versions": {"blue": {"command": ["x"], "replicas": 2}}})";
  };
  Apply("fashion", {FakeVersion("blue", 10000, 2)}, "a", with_timeout);
  StartGateway([](serving::GatewayOptions& o) { o.supervisor.health_interval_ms = 600000; });
  std::set<int> pids;
  ASSERT_TRUE(WaitFor([&] {
    auto r = Infer("fashion");
    if (r && r->status == 200) pids.insert(json::parse(r->body)["fake"]["pid"].get<int>());
    return pids.size() == 2;
  }));
  const int frozen = *pids.begin(), healthy = *pids.rbegin();
  ::kill(frozen, SIGSTOP);
  std::map<int, int> statuses;
  for (int i = 0; i < 40; ++i) ++statuses[Infer("fashion")->status];
  // Before the ejection, requests drawn to the frozen replica time out (504):
  // five in a row eject it; after that every request goes to the other one.
  EXPECT_EQ(statuses[504], 5);
  EXPECT_EQ(statuses[200], 35);
  auto m = client_->Get("/metrics");
  EXPECT_NE(m->body.find("sluice_ejections_total 1\n"), std::string::npos);
  // The control thread writes the ejection into the service's history.
  EXPECT_TRUE(WaitFor([&] {
    auto history = store_->services().History("fashion", 0, 10);
    if (!history.ok()) return false;
    for (const auto& c : *history)
      if (c.kind == "ejection" && c.actor == "gateway" &&
          c.reason.find(" of blue ejected for 5 s after 5 failures in a row") != std::string::npos)
        return true;
    return false;
  }));
  // The healthy one is now the last in rotation: frozen too, it is not ejected.
  ::kill(healthy, SIGSTOP);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(Infer("fashion")->status, 504);
  ::kill(frozen, SIGCONT);
  ::kill(healthy, SIGCONT);
}

TEST_F(GatewayTest, NoReadyReplicaIs503WithRetryAfter) {
  Apply("fashion", {FakeVersion("blue", 10000, 1, {"--not-ready-for-ms", "60000"})}, "a");
  StartGateway();
  auto r = Infer("fashion");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->get_header_value("retry-after"), "1");
  EXPECT_EQ(json::parse(r->body)["error"], "service 'fashion' has no ready replica");
  auto ready = client_->Get("/v2/health/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
}

TEST_F(GatewayTest, ASecondGatewayOnTheSameStoreIsRefusedNamingTheFirst) {
  StartGateway();
  serving::GatewayOptions o;
  o.store_path = store_path_;
  o.port = 0;
  auto second = serving::Gateway::Start(o);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kIncompatible);
  EXPECT_NE(second.status().message().find("a gateway already serves this store: pid " + std::to_string(::getpid())),
            std::string::npos)
      << second.status().message();
}

TEST_F(GatewayTest, AnswersAreCountedInWindowsFlushedToTheStoreAtStop) {
  Apply("fashion", {FakeVersion("blue", 10000)}, "a");
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion"));
  for (int i = 0; i < 7; ++i) ASSERT_EQ(Infer("fashion")->status, 200);
  ASSERT_EQ(Infer("nothing")->status, 404);  // not a service: counted nowhere
  gateway_->Stop();
  auto windows = store_->gateway().Windows("fashion", "", "", 0, INT64_MAX);
  ASSERT_TRUE(windows.ok());
  int64_t requests = 0;
  for (const auto& w : *windows) {
    EXPECT_EQ(w.version, "blue");
    EXPECT_EQ(w.role, "live");
    requests += w.requests;
  }
  EXPECT_EQ(requests, 7);
  EXPECT_FALSE(store_->gateway().Read()->has_value());  // the claim is released
}

TEST_F(GatewayTest, AStopRequestedInTheStoreEndsTheWaitAndStopsTheReplicas) {
  Apply("fashion", {FakeVersion("blue", 10000)}, "a");
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion"));
  int64_t pid = json::parse(Infer("fashion")->body)["fake"]["pid"];
  ASSERT_TRUE(store_->gateway().RequestStop().ok());
  gateway_->WaitForStopRequest();  // returns: the control thread saw the request
  gateway_->Stop();
  EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(static_cast<pid_t>(pid)); }, std::chrono::seconds(5)));
}

TEST_F(GatewayTest, MetricsAreValidPrometheusText) {
  ASSERT_TRUE(std::filesystem::exists("/usr/bin/promtool")) << "promtool (Debian package prometheus) is not installed";
  Apply("fashion", {FakeVersion("blue", 10000)}, "a");
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion"));
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Infer("fashion")->status, 200);
  auto m = client_->Get("/metrics");
  ASSERT_TRUE(m);
  box_.Write("metrics.txt", m->body);
  std::string cmd = "/usr/bin/promtool check metrics < " + (box_.dir() / "metrics.txt").string() + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int rc = ::pclose(p);
  EXPECT_EQ(rc, 0) << out << "\n" << m->body;
}

namespace {

// A service whose infer token is "s3cret" (its SHA-256 in the store, as apply keeps it).
void WithToken(store::ServiceState& s) { s.infer_token_hash = Sha256Hex("s3cret"); }

// A service with a prediction cache of `entries` answers for `ttl_ms`.
std::function<void(store::ServiceState&)> WithCache(int entries, int64_t ttl_ms) {
  return [=](store::ServiceState& s) {
    json spec = json::parse(s.spec);
    spec["cache"] = {{"entries", entries}, {"ttl_ms", ttl_ms}};
    s.spec = spec.dump();
  };
}

}  // namespace

TEST_F(GatewayTest, InferWithoutOrWithAWrongBearerTokenIs401AndWithItIsAnswered) {
  Apply("fashion", {FakeVersion("blue", 10000)}, "a", WithToken);
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion"));  // readiness stays open
  for (const httplib::Headers& h : {httplib::Headers{}, httplib::Headers{{"Authorization", "Bearer wrong"}},
                                    httplib::Headers{{"Authorization", "s3cret"}}}) {
    auto r = Infer("fashion", R"({"inputs": []})", h);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401);
    EXPECT_EQ(json::parse(r->body)["error"], "service 'fashion' needs its bearer token");
    EXPECT_EQ(r->get_header_value("WWW-Authenticate"), "Bearer");
  }
  auto pinned = client_->Post("/v2/models/fashion/versions/blue/infer", R"({"inputs": []})", "application/json");
  ASSERT_TRUE(pinned);
  EXPECT_EQ(pinned->status, 401);
  auto ok = Infer("fashion", R"({"inputs": []})", {{"Authorization", "Bearer s3cret"}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  EXPECT_EQ(json::parse(ok->body)["fake"]["label"], "blue");
}

TEST_F(GatewayTest, AServiceWithATokenKeepsHealthAndReadinessOpenAndItsMetadataClosed) {
  Apply("fashion", {FakeVersion("blue", 10000)}, "a", WithToken);
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion"));
  EXPECT_EQ(client_->Get("/v2/health/live")->status, 200);
  EXPECT_EQ(client_->Get("/v2/health/ready")->status, 200);
  EXPECT_EQ(client_->Get("/v2/models/fashion/ready")->status, 200);
  EXPECT_EQ(client_->Get("/v2/models/fashion/versions/blue/ready")->status, 200);
  auto meta = client_->Get("/v2/models/fashion");
  ASSERT_TRUE(meta);
  EXPECT_EQ(meta->status, 401);
  EXPECT_EQ(client_->Get("/v2/models/fashion", {{"Authorization", "Bearer s3cret"}})->status, 200);
}

TEST_F(GatewayTest, ASecondIdenticalInferIsACacheHitThatNeverReachesTheReplica) {
  Apply("fashion", {FakeVersion("blue", 10000)}, "a", WithCache(100, 60'000));
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion"));
  auto first = Infer("fashion", R"({"inputs": [1]})");
  ASSERT_TRUE(first);
  ASSERT_EQ(first->status, 200);
  EXPECT_FALSE(first->has_header("x-sluice-cache"));
  auto second = Infer("fashion", R"({"inputs": [1]})");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 200);
  EXPECT_EQ(second->get_header_value("x-sluice-cache"), "hit");
  EXPECT_EQ(second->get_header_value("x-sluice-version"), "blue");
  EXPECT_EQ(second->body, first->body);  // the same fake.request: the replica did not see it
  auto other = Infer("fashion", R"({"inputs": [2]})");
  ASSERT_TRUE(other);
  EXPECT_FALSE(other->has_header("x-sluice-cache"));
  EXPECT_EQ(json::parse(other->body)["fake"]["request"], json::parse(first->body)["fake"]["request"].get<int>() + 1);
  auto m = client_->Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("sluice_cache_hits_total{service=\"fashion\",version=\"blue\"} 1\n"), std::string::npos)
      << m->body;
  gateway_->Stop();
  auto windows = store_->gateway().Windows("fashion", "blue", "live", 0, INT64_MAX);
  ASSERT_TRUE(windows.ok());
  int64_t hits = 0, requests = 0;
  for (const auto& w : *windows) hits += w.cache_hits, requests += w.requests;
  EXPECT_EQ(hits, 1);
  EXPECT_EQ(requests, 3);
}

TEST_F(GatewayTest, ACachedAnswerReachesTheReplicaAgainOnceItsTtlHasPassed) {
  Apply("fashion", {FakeVersion("blue", 10000)}, "a", WithCache(100, 1000));
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion"));
  auto first = Infer("fashion");
  ASSERT_TRUE(first);
  const int64_t counted = json::parse(first->body)["fake"]["request"];
  auto hit = Infer("fashion");
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->get_header_value("x-sluice-cache"), "hit");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // the shortest ttl there is: 1 s
  auto again = Infer("fashion");
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->has_header("x-sluice-cache"));
  EXPECT_EQ(json::parse(again->body)["fake"]["request"], counted + 1);
}

TEST_F(GatewayTest, APinnedRequestUsesTheCacheOfItsVersionOnly) {
  Apply("fashion", {FakeVersion("blue", 10000), FakeVersion("green", 0)}, "a", WithCache(100, 60'000));
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion", "green"));
  ASSERT_TRUE(WaitReady("fashion", "blue"));
  auto live = Infer("fashion");
  ASSERT_TRUE(live);
  EXPECT_EQ(live->get_header_value("x-sluice-version"), "blue");
  auto pinned = client_->Post("/v2/models/fashion/versions/green/infer", R"({"inputs": []})", "application/json");
  ASSERT_TRUE(pinned);
  EXPECT_FALSE(pinned->has_header("x-sluice-cache"));  // blue's answer is not green's
  EXPECT_EQ(json::parse(pinned->body)["fake"]["label"], "green");
  auto again = client_->Post("/v2/models/fashion/versions/green/infer", R"({"inputs": []})", "application/json");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->get_header_value("x-sluice-cache"), "hit");
  EXPECT_EQ(json::parse(again->body)["fake"]["label"], "green");
}

TEST(GatewayCliTest, ApplyStartsAGatewayInTheBackgroundAndGatewayStopEndsItAndItsReplicas) {
  Sandbox box;
  const int port = FreePort();
  box.Write("service.yaml", std::string("service: echo\nversions:\n  blue: {command: [") + FAKE_OIP_SERVER +
                                ", --label, blue]}\n");
  Output applied = box.Sluice({"services", "apply", "service.yaml", "--port", std::to_string(port)});
  ASSERT_EQ(applied.code, 0) << applied.err;
  EXPECT_NE(applied.out.find("service echo: applied (change 1, generation 1)\ngateway started: pid "), std::string::npos)
      << applied.out;
  auto store = store::Store::Open((box.home() / "sluice.db").string());
  ASSERT_TRUE(store.ok());
  auto row = (*store)->gateway().Read();
  ASSERT_TRUE(row.ok() && row->has_value());
  const pid_t gateway_pid = static_cast<pid_t>((*row)->pid);
  struct KillOnExit {
    pid_t pid;
    ~KillOnExit() {
      if (ProcessAlive(pid)) ::kill(pid, SIGKILL);
    }
  } guard{gateway_pid};
  EXPECT_EQ((*row)->mode, "background");
  EXPECT_EQ((*row)->port, port);

  httplib::Client client("127.0.0.1", port);
  ASSERT_TRUE(WaitFor([&] {
    auto r = client.Get("/v2/models/echo/ready");
    return r && r->status == 200;
  }));
  auto r = client.Post("/v2/models/echo/infer", R"({"inputs": []})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  const pid_t replica_pid = json::parse(r->body)["fake"]["pid"].get<int>();

  Output again = box.Sluice({"services", "apply", "service.yaml", "--port", std::to_string(port)});
  EXPECT_EQ(again.out, "service echo: unchanged\ngateway: pid " + std::to_string(gateway_pid) + ", http://127.0.0.1:" +
                           std::to_string(port) + "\n");

  Output stopped = box.Sluice({"gateway", "stop"});
  EXPECT_EQ(stopped.code, 0) << stopped.err;
  EXPECT_EQ(stopped.out, "gateway stopped: pid " + std::to_string(gateway_pid) + " on 127.0.0.1:" + std::to_string(port) + "\n");
  EXPECT_FALSE(ProcessAlive(gateway_pid));
  EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(replica_pid); }, std::chrono::seconds(5)));
  EXPECT_EQ(box.Sluice({"gateway", "stop"}).out, "no gateway runs for this store\n");
}

TEST(GatewayCliTest, AGatewayKilledWithItsReplicasRunningIsReplacedByTheNextApplyWithTheSameRoutes) {
  Sandbox box;
  const int port = FreePort();
  box.Write("service.yaml", std::string("service: echo\nversions:\n  blue: {command: [") + FAKE_OIP_SERVER +
                                ", --label, blue], replicas: 2}\n");
  ASSERT_EQ(box.Sluice({"services", "apply", "service.yaml", "--port", std::to_string(port)}).code, 0);
  auto store = store::Store::Open((box.home() / "sluice.db").string());
  ASSERT_TRUE(store.ok());
  const pid_t first = static_cast<pid_t>((*(*store)->gateway().Read())->pid);
  httplib::Client client("127.0.0.1", port);
  auto ready = [&] {
    auto r = client.Get("/v2/models/echo/ready");
    return r && r->status == 200;
  };
  ASSERT_TRUE(WaitFor(ready));
  auto old_replicas = (*store)->services().Replicas("echo");
  ASSERT_TRUE(old_replicas.ok());
  ASSERT_EQ(old_replicas->size(), 2u);
  ::kill(first, SIGKILL);
  ASSERT_TRUE(WaitFor([&] { return !ProcessAlive(first); }));

  Output again = box.Sluice({"services", "apply", "service.yaml", "--port", std::to_string(port)});
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.out.find("gateway started: pid "), std::string::npos) << again.out;
  const pid_t second = static_cast<pid_t>((*(*store)->gateway().Read())->pid);
  struct KillOnExit {
    pid_t pid;
    ~KillOnExit() {
      if (ProcessAlive(pid)) ::kill(pid, SIGKILL);
    }
  } guard{second};
  EXPECT_NE(second, first);
  for (const auto& row : *old_replicas)  // the killed gateway's replicas are ended, not left behind
    EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(row.pid); }, std::chrono::seconds(5))) << row.pid;
  ASSERT_TRUE(WaitFor(ready));
  auto r = client.Post("/v2/models/echo/infer", R"({"inputs": []})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("x-sluice-version"), "blue");
  EXPECT_EQ(box.Sluice({"gateway", "stop"}).code, 0);
}

TEST(GatewayCliTest, ApplyWithWaitReturnsOnceEveryReplicaIsReadyAndNamesThoseThatAreNot) {
  Sandbox box;
  const int port = FreePort();
  const std::string fake = FAKE_OIP_SERVER;
  box.Write("ok.yaml", "service: ok\nversions:\n  blue: {command: [" + fake + "], replicas: 2}\n");
  box.Write("slow.yaml", "service: slow\nversions:\n  blue: {command: [" + fake + ", --not-ready-for-ms, '60000']}\n");
  Output ok = box.Sluice({"services", "apply", "ok.yaml", "--port", std::to_string(port), "--wait"});
  auto store = store::Store::Open((box.home() / "sluice.db").string());
  ASSERT_TRUE(store.ok());
  auto row = (*store)->gateway().Read();
  ASSERT_TRUE(row.ok() && row->has_value());
  struct StopOnExit {
    const Sandbox& box;
    pid_t pid;
    ~StopOnExit() {
      box.Sluice({"gateway", "stop"});
      if (ProcessAlive(pid)) ::kill(pid, SIGKILL);
    }
  } guard{box, static_cast<pid_t>((*row)->pid)};
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_NE(ok.out.find("service ok: 2 replicas ready\n"), std::string::npos) << ok.out;
  auto replicas = (*store)->services().Replicas("ok");
  ASSERT_TRUE(replicas.ok());
  ASSERT_EQ(replicas->size(), 2u);
  for (const auto& r : *replicas) EXPECT_EQ(r.state, "ready");

  Output slow = box.Sluice({"services", "apply", "slow.yaml", "--wait", "--wait-timeout", "1s"});
  EXPECT_EQ(slow.code, 1);
  EXPECT_NE(slow.err.find("sluice: service slow is not ready after 1 s:\n  replica 0 of blue: starting; log "),
            std::string::npos)
      << slow.err;
  EXPECT_EQ(box.Sluice({"services", "apply", "slow.yaml", "--wait", "--wait-timeout", "soon"}).code, 2);
}

TEST_F(GatewayTest, ProfiledAnswersLeaveTheirClassCountsAndInputStatisticsInTheWindowRowAtStop) {
  Apply("fashion", {FakeVersion("blue", 10000, 1, {"--class", "sneaker"})}, "a");
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion"));
  const std::string body = R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[0.5,3]}]})";
  for (int i = 0; i < 5; ++i) ASSERT_EQ(Infer("fashion", body)->status, 200);
  gateway_->Stop();
  auto windows = store_->gateway().Windows("fashion", "blue", "live", 0, INT64_MAX);
  ASSERT_TRUE(windows.ok());
  int64_t sneakers = 0, samples = 0, values = 0;
  for (const auto& w : *windows) {
    if (w.classes.empty()) continue;
    sneakers += json::parse(w.classes).value("sneaker", int64_t{0});
    json payload = json::parse(w.payload);
    samples += payload["samples"].get<int64_t>();
    values += payload["inputs"]["x"]["values"]["n"].get<int64_t>();
    EXPECT_EQ(payload["inputs"]["x"]["width"], 2);
  }
  EXPECT_EQ(sneakers, 5);  // stats.sample defaults to 1: every answer is profiled
  EXPECT_EQ(samples, 5);
  EXPECT_EQ(values, 10);
}

TEST_F(GatewayTest, AStatsSampleOfZeroProfilesNothingAndLeavesClassesAndPayloadEmpty) {
  Apply("fashion", {FakeVersion("blue", 10000, 1, {"--class", "sneaker"})}, "a", [](store::ServiceState& s) {
    s.spec = json{{"service", "fashion"},
                  {"versions", {{"blue", {{"command", {"fake"}}}}}},
                  {"stats", {{"sample", 0}}}}
                 .dump();
  });
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion"));
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Infer("fashion")->status, 200);
  gateway_->Stop();
  auto windows = store_->gateway().Windows("fashion", "blue", "live", 0, INT64_MAX);
  ASSERT_TRUE(windows.ok());
  int64_t requests = 0;
  for (const auto& w : *windows) {
    requests += w.requests;
    EXPECT_EQ(w.classes, "");
    EXPECT_EQ(w.payload, "");
  }
  EXPECT_EQ(requests, 3);
}

TEST_F(GatewayTest, MirroredAnswersAreProfiledInTheMirrorsOwnWindowRows) {
  Apply("fashion", {FakeVersion("blue", 10000, 1, {"--class", "boot"}), FakeVersion("shadow", 0, 1, {"--class", "bag"})},
        "a", [](store::ServiceState& s) {
          s.mirror_version = "shadow";
          s.mirror_bp = 10000;
        });
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion", "shadow"));
  ASSERT_TRUE(WaitReady("fashion", "blue"));
  for (int i = 0; i < 4; ++i) ASSERT_EQ(Infer("fashion")->status, 200);
  // The copies are answered after the callers: wait until all four are counted.
  ASSERT_TRUE(WaitFor([&] {
    auto m = client_->Get("/metrics");
    return m && m->body.find(R"(sluice_requests_total{service="fashion",version="shadow",role="mirror",code="200"} 4)") !=
                    std::string::npos;
  }));
  gateway_->Stop();
  auto classes_of = [&](const std::string& version, const std::string& role) {
    json sum = json::object();
    auto windows = store_->gateway().Windows("fashion", version, role, 0, INT64_MAX);
    EXPECT_TRUE(windows.ok());
    for (const auto& w : *windows) {
      if (w.classes.empty()) continue;
      const json classes = json::parse(w.classes);
      for (const auto& [name, n] : classes.items()) sum[name] = sum.value(name, 0) + n.get<int>();
    }
    return sum;
  };
  EXPECT_EQ(classes_of("blue", "live"), json({{"boot", 4}}));
  EXPECT_EQ(classes_of("shadow", "mirror"), json({{"bag", 4}}));
}
