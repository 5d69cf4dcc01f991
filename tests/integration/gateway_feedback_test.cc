// The gateway's feedback route and mirror agreement (specs/services.md
// "Feedback" and "Mirror agreement"), in this process over a real store,
// with fake_oip_server replicas and real HTTP on loopback
// (gateway_fixture.h). The eviction of request ids at exactly 100,000 is
// tested as a unit (tests/unit/feedback_test.cc, RecentAnswersTest).
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "gateway_fixture.h"
#include "harness.h"
#include "serving/gateway.h"
#include "store/open.h"
#include "util/hash.h"

using namespace sluice;
using namespace sluice::testing;
using json = nlohmann::json;

namespace {

class GatewayFeedbackTest : public GatewayFixture {
 protected:
  httplib::Result Feedback(const std::string& service, const std::string& body, const httplib::Headers& headers = {}) {
    return client_->Post("/v2/models/" + service + "/feedback", headers, body, "application/json");
  }
  std::vector<store::FeedbackRow> Rows(const std::string& service) {
    auto rows = store_->feedback().Rows(service, 0, INT64_MAX);
    EXPECT_TRUE(rows.ok()) << rows.status().message();
    return rows.ok() ? *rows : std::vector<store::FeedbackRow>{};
  }
  // Whether /metrics has `series` with `value`.
  bool MetricIs(const std::string& series, int value) {
    auto m = client_->Get("/metrics");
    return m && m->body.find("\n" + series + " " + std::to_string(value) + "\n") != std::string::npos;
  }
};

std::function<void(store::ServiceState&)> MirrorTo(const std::string& version) {
  return [version](store::ServiceState& s) {
    s.mirror_version = version;
    s.mirror_bp = 10000;
  };
}

}  // namespace

TEST_F(GatewayFeedbackTest, EveryAnswerCarriesARequestIdTheCallersOrOneMadeForIt) {
  Apply("fashion", {FakeVersion("blue", 10000)}, "a");
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion"));
  auto given = Infer("fashion", R"({"inputs": []})", {{"x-request-id", "mine-1"}});
  ASSERT_TRUE(given);
  EXPECT_EQ(given->get_header_value("x-request-id"), "mine-1");
  auto a = Infer("fashion"), b = Infer("fashion");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->get_header_value("x-request-id").size(), 32u);
  EXPECT_NE(a->get_header_value("x-request-id"), b->get_header_value("x-request-id"));
}

TEST_F(GatewayFeedbackTest, FeedbackByRequestIdIsRecordedForTheVersionThatAnsweredWithinASecond) {
  Apply("fashion", {FakeVersion("blue", 5000), FakeVersion("green", 5000)}, "a");
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion", "blue"));
  ASSERT_TRUE(WaitReady("fashion", "green"));
  std::map<std::string, std::string> version_of;  // request id -> version
  for (int i = 0; i < 20; ++i) {
    auto r = Infer("fashion");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200);
    version_of[r->get_header_value("x-request-id")] = r->get_header_value("x-sluice-version");
  }
  double reward = 0;
  for (const auto& [id, version] : version_of) {
    auto f = Feedback("fashion", json{{"request_id", id}, {"reward", reward++}}.dump());
    ASSERT_TRUE(f);
    ASSERT_EQ(f->status, 202) << f->body;
    EXPECT_EQ(json::parse(f->body), json({{"service", "fashion"}, {"version", version}}));
  }
  const auto accepted = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitFor([&] { return Rows("fashion").size() == version_of.size(); }, std::chrono::seconds(5)));
  EXPECT_LE(std::chrono::steady_clock::now() - accepted, std::chrono::seconds(1));
  for (const store::FeedbackRow& row : Rows("fashion")) {
    EXPECT_EQ(row.version, version_of.at(row.request_id));
    EXPECT_TRUE(row.reward.has_value());
    EXPECT_EQ(row.key, "");
  }
}

TEST_F(GatewayFeedbackTest, FeedbackByKeyIsRecordedForTheVersionTheKeyRoutesTo) {
  Apply("fashion", {FakeVersion("blue", 5000), FakeVersion("green", 5000)}, "a",
        [](store::ServiceState& s) { s.sticky_header = "x-user-id"; });
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion", "blue"));
  ASSERT_TRUE(WaitReady("fashion", "green"));
  for (int user = 0; user < 6; ++user) {
    const std::string key = "user-" + std::to_string(user);
    auto r = Infer("fashion", R"({"inputs": []})", {{"x-user-id", key}});
    ASSERT_TRUE(r);
    auto f = Feedback("fashion", json{{"key", key}, {"label", "clicked"}}.dump());
    ASSERT_TRUE(f);
    ASSERT_EQ(f->status, 202) << f->body;
    EXPECT_EQ(json::parse(f->body)["version"], r->get_header_value("x-sluice-version")) << key;
  }
  ASSERT_TRUE(WaitFor([&] { return Rows("fashion").size() == 6; }, std::chrono::seconds(5)));
  auto summary = store_->feedback().Summary("fashion", 0, INT64_MAX);
  ASSERT_TRUE(summary.ok());
  int64_t clicked = 0;
  for (const auto& [version, s] : *summary) clicked += s.labels.at("clicked");
  EXPECT_EQ(clicked, 6);
}

TEST_F(GatewayFeedbackTest, FeedbackByKeyForAServiceThatIsNotStickyIs400) {
  Apply("fashion", {FakeVersion("blue", 10000)}, "a");
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion"));
  auto f = Feedback("fashion", R"({"key": "user-1", "reward": 1})");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->status, 400);
  EXPECT_EQ(json::parse(f->body)["error"], "key: service 'fashion' is not sticky, so a key names no version; give request_id");
}

TEST_F(GatewayFeedbackTest, AnUnknownRequestIdIs409SayingHowManyAnswersTheGatewayRemembers) {
  Apply("fashion", {FakeVersion("blue", 10000)}, "a");
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion"));
  auto f = Feedback("fashion", R"({"request_id": "never-answered", "reward": 1})");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->status, 409);
  EXPECT_EQ(json::parse(f->body)["error"],
            "unknown request id 'never-answered' (the gateway remembers the last 100000 answers of a service)");
}

TEST_F(GatewayFeedbackTest, APinnedAnswerIsNotAVariantsAnswerAndItsRequestIdIsUnknown) {
  Apply("fashion", {FakeVersion("blue", 10000), FakeVersion("green", 0)}, "a");
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion", "green"));
  auto r = client_->Post("/v2/models/fashion/versions/green/infer", {{"x-request-id", "pinned-1"}},
                         R"({"inputs": []})", "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("x-request-id"), "pinned-1");
  auto f = Feedback("fashion", R"({"request_id": "pinned-1", "reward": 1})");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->status, 409);
}

TEST_F(GatewayFeedbackTest, AMalformedBodyIs400NamingTheField) {
  Apply("fashion", {FakeVersion("blue", 10000)}, "a");
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion"));
  const std::map<std::string, std::string> cases = {
      {"{nope", "body: not a JSON object (give request_id or key, and reward or label)"},
      {R"({"request_id": "a", "key": "k", "reward": 1})", "request_id and key: give one, not both"},
      {R"({"request_id": "a", "reward": 1e999})", "reward: not a finite number"},
      {R"({"request_id": "a", "label": 3})", "label: not a string"},
      {R"({"request_id": "a", "reward": 1})" + std::string(64 << 10, ' '),
       "body: 65568 bytes, more than the 65536 a feedback may have"},
  };
  for (const auto& [body, message] : cases) {
    auto f = Feedback("fashion", body);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->status, 400) << body.substr(0, 60);
    EXPECT_EQ(json::parse(f->body)["error"], message);
  }
  auto get = client_->Get("/v2/models/fashion/feedback");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 405);
}

TEST_F(GatewayFeedbackTest, FeedbackForAnUnknownServiceIs404) {
  Apply("fashion", {FakeVersion("blue", 10000)}, "a");
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion"));
  auto f = Feedback("shoes", R"({"request_id": "a", "reward": 1})");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->status, 404);
  EXPECT_EQ(json::parse(f->body)["error"], "no service named 'shoes' (services: fashion)");
}

TEST_F(GatewayFeedbackTest, FeedbackNeedsTheServicesInferToken) {
  Apply("fashion", {FakeVersion("blue", 10000)}, "a",
        [](store::ServiceState& s) { s.infer_token_hash = Sha256Hex("s3cret"); });
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion"));
  const httplib::Headers auth = {{"Authorization", "Bearer s3cret"}};
  auto r = Infer("fashion", R"({"inputs": []})", auth);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  const std::string body = json{{"request_id", r->get_header_value("x-request-id")}, {"reward", 1}}.dump();
  auto without = Feedback("fashion", body);
  ASSERT_TRUE(without);
  EXPECT_EQ(without->status, 401);
  auto with = Feedback("fashion", body, auth);
  ASSERT_TRUE(with);
  EXPECT_EQ(with->status, 202) << with->body;
}

TEST_F(GatewayFeedbackTest, AMirrorAnsweringTheSameClassAgreesAndAnotherClassDisagrees) {
  Apply("same", {FakeVersion("blue", 10000, 1, {"--class", "boot"}), FakeVersion("shadow", 0, 1, {"--class", "boot"})},
        "a", MirrorTo("shadow"));
  Apply("differ", {FakeVersion("blue", 10000, 1, {"--class", "boot"}), FakeVersion("shadow", 0, 1, {"--class", "bag"})},
        "a", MirrorTo("shadow"));
  StartGateway();
  for (const char* s : {"same", "differ"}) {
    ASSERT_TRUE(WaitReady(s, "shadow"));
    ASSERT_TRUE(WaitReady(s, "blue"));
  }
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(Infer("same")->status, 200);
    ASSERT_EQ(Infer("differ")->status, 200);
  }
  EXPECT_TRUE(WaitFor([&] {
    return MetricIs(R"(sluice_mirror_compared_total{service="same",version="shadow"})", 4) &&
           MetricIs(R"(sluice_mirror_compared_total{service="differ",version="shadow"})", 4);
  })) << client_->Get("/metrics")->body;
  EXPECT_TRUE(MetricIs(R"(sluice_mirror_agreed_total{service="same",version="shadow"})", 4));
  EXPECT_TRUE(MetricIs(R"(sluice_mirror_agreed_total{service="differ",version="shadow"})", 0));
  EXPECT_TRUE(MetricIs(R"(sluice_mirror_dropped_total{service="same",version="shadow"})", 0));
  gateway_->Stop();
  for (const auto& [service, agreed] : std::map<std::string, int>{{"same", 4}, {"differ", 0}}) {
    auto windows = store_->gateway().Windows(service, "shadow", "mirror", 0, INT64_MAX);
    ASSERT_TRUE(windows.ok());
    int64_t compared_sum = 0, agreed_sum = 0;
    for (const auto& w : *windows) {
      compared_sum += w.mirror_compared;
      agreed_sum += w.mirror_agreed;
    }
    EXPECT_EQ(compared_sum, 4) << service;
    EXPECT_EQ(agreed_sum, agreed) << service;
  }
}

TEST_F(GatewayFeedbackTest, AMirrorWithoutAReplicaInRotationCountsItsCopiesAsDropped) {
  // The mirror never becomes ready: every copy finds no replica to take it.
  Apply("fashion", {FakeVersion("blue", 10000), FakeVersion("shadow", 0, 1, {"--not-ready-for-ms", "600000"})}, "a",
        MirrorTo("shadow"));
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion", "blue"));
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Infer("fashion")->status, 200);
  EXPECT_TRUE(MetricIs(R"(sluice_mirror_dropped_total{service="fashion",version="shadow"})", 3))
      << client_->Get("/metrics")->body;
  EXPECT_TRUE(MetricIs(R"(sluice_mirror_compared_total{service="fashion",version="shadow"})", 0));
  gateway_->Stop();
  auto windows = store_->gateway().Windows("fashion", "shadow", "mirror", 0, INT64_MAX);
  ASSERT_TRUE(windows.ok());
  int64_t dropped = 0;
  for (const auto& w : *windows) dropped += w.mirror_dropped;
  EXPECT_EQ(dropped, 3);
}

TEST_F(GatewayFeedbackTest, TheMirrorCountersAreValidPrometheusText) {
  ASSERT_TRUE(std::filesystem::exists("/usr/bin/promtool")) << "promtool (Debian package prometheus) is not installed";
  Apply("fashion", {FakeVersion("blue", 10000, 1, {"--class", "boot"}), FakeVersion("shadow", 0, 1, {"--class", "bag"})},
        "a", MirrorTo("shadow"));
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion", "shadow"));
  ASSERT_TRUE(WaitReady("fashion", "blue"));
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Infer("fashion")->status, 200);
  ASSERT_TRUE(WaitFor([&] { return MetricIs(R"(sluice_mirror_compared_total{service="fashion",version="shadow"})", 3); }));
  auto m = client_->Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("# TYPE sluice_mirror_agreed_total counter\n"), std::string::npos);
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
