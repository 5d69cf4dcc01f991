// deploy/shadow and deploy/ab-test end to end: real runs of the real binary
// drive a real gateway and real replicas (fake_oip_server) under a bounded
// load; the A/B tests post synthetic feedback for every answer, by its
// x-request-id, with rewards drawn from a seeded generator.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <random>

#include "deploy_fixture.h"
#include "serving/routing.h"

using namespace sluice::testing;
using nlohmann::json;

namespace {

// u<n> (built by appending: GCC 12 warns, wrongly, on "u" + std::to_string(n)).
std::string UserKey(int n) {
  std::string key = "u";
  key += std::to_string(n);
  return key;
}

class ExperimentTest : public DeployFixture {
 protected:
  // Load options that send x-user-id: u<n> (a new user each request) and
  // post, for each answer, a reward of 1 with probability rate(version).
  Load::Options WithFeedback(std::function<double(const std::string&)> rate,
                             std::function<std::string(int)> key = UserKey) {
    Load::Options o;
    o.headers = [key](int n) { return httplib::Headers{{"x-user-id", key(n)}}; };
    o.on_answer = [this, rate](httplib::Client& client, const httplib::Response& r) {
      const std::string version = r.get_header_value("x-sluice-version");
      int reward;
      {
        std::lock_guard<std::mutex> lock(mu_);
        reward = std::bernoulli_distribution(rate(version))(rng_) ? 1 : 0;
      }
      json body = {{"request_id", r.get_header_value("x-request-id")}, {"reward", reward}};
      auto f = client.Post("/v2/models/demo/feedback", body.dump(), "application/json");
      std::lock_guard<std::mutex> lock(mu_);
      if (f && f->status == 202) ++feedback_[version];
      else ++feedback_refused_;
    };
    return o;
  }
  // Load options that count the answers by the label in their body (the
  // replica that computed them).
  Load::Options CountingLabels() {
    Load::Options o;
    o.on_answer = [this](httplib::Client&, const httplib::Response& r) {
      json body = json::parse(r.body, nullptr, false);
      std::string label = body.is_object() && body.contains("fake") ? body["fake"].value("label", "") : "?";
      std::lock_guard<std::mutex> lock(mu_);
      ++labels_[label];
    };
    return o;
  }
  std::string ReasonOfStep() {
    json step = StepOf(ShowRun(box_, "latest"), "deploy");
    return step["reason"].is_string() ? step["reason"].get<std::string>() : "";
  }
  json OutputsOfStep() { return StepOf(ShowRun(box_, "latest"), "deploy")["outputs"]; }
  int AnalysisEvents() {
    int n = 0;
    for (const auto& e : Events(Newest().id)) n += e.kind == "analysis";
    return n;
  }

  std::mutex mu_;
  std::mt19937_64 rng_{20240611};
  std::map<std::string, int> feedback_, labels_;
  int feedback_refused_ = 0;
};

const char* kShadowThresholds = "      thresholds: {min_compared: 50, min_agreement: 0.95, max_error_rate: 0.01}\n";

}  // namespace

TEST_F(ExperimentTest, AShadowAnsweringTheSameClassAgreesAndPassesWhileNoShadowAnswerReachesACaller) {
  DeployStable("--class, cat");
  WritePipeline("deploy/shadow",
                "      version: " + Version("v2", "--class, cat") + "\n      duration: 3s\n" + kShadowThresholds);
  Load load(GatewayPort(), "demo", 200'000, CountingLabels());
  Output o = box_.Sluice({"run", "p.yaml"});
  load.Stop();
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  json out = OutputsOfStep();
  EXPECT_EQ(out["passed"], "true");
  EXPECT_EQ(out["agreement"], "1");
  EXPECT_GE(std::stoi(out["compared"].get<std::string>()), 50);
  EXPECT_NE(out["live_p99_ms"], "");
  EXPECT_NE(out["shadow_p99_ms"], "");
  EXPECT_EQ(out["version"], "v1") << "promote: false keeps the live version";
  EXPECT_EQ(load.failures(), 0) << load.first_failure();
  EXPECT_EQ(load.ok_by_version(), (std::map<std::string, int>{{"v1", load.total()}}));
  EXPECT_EQ(labels_, (std::map<std::string, int>{{"v1", load.total()}})) << "every body came from v1's replica";
  EXPECT_EQ(Weights(), (std::map<std::string, int>{{"v1", 100}})) << "the candidate is taken out";
  auto service = Store()->services().Get("demo");
  EXPECT_EQ(service->mirror_version, "") << "the mirror is off";
  EXPECT_EQ(service->traffic_owner, "");
  EXPECT_EQ(Newest().state, sluice::store::RolloutState::kEnded);
  EXPECT_EQ(AnalysisEvents(), 1);
}

TEST_F(ExperimentTest, AShadowAnsweringAnotherClassFailsWithTheAgreementItMeasured) {
  DeployStable("--class, cat");
  WritePipeline("deploy/shadow",
                "      version: " + Version("v2", "--class, dog") + "\n      duration: 3s\n" + kShadowThresholds);
  Load load(GatewayPort(), "demo", 200'000, CountingLabels());
  Output o = box_.Sluice({"run", "p.yaml"});
  load.Stop();
  EXPECT_NE(o.code, 0);
  std::string reason = ReasonOfStep();
  EXPECT_NE(reason.find("rolled back: agreement 0 < 0.95 over "), std::string::npos) << reason;
  EXPECT_NE(reason.find(" compared copies"), std::string::npos) << reason;
  EXPECT_EQ(load.failures(), 0) << load.first_failure();
  EXPECT_EQ(labels_, (std::map<std::string, int>{{"v1", load.total()}}));
  EXPECT_EQ(Weights(), (std::map<std::string, int>{{"v1", 100}}));
  EXPECT_EQ(Store()->services().Get("demo")->mirror_version, "");
  EXPECT_EQ(Newest().state, sluice::store::RolloutState::kRolledBack);
}

TEST_F(ExperimentTest, AShadowThatPassesWithPromoteTakesAllTraffic) {
  DeployStable("--class, cat");
  WritePipeline("deploy/shadow", "      version: " + Version("v2", "--class, cat") +
                                     "\n      duration: 2s\n      mirror: 50\n      promote: true\n"
                                     "      scale_down_delay: 0s\n      thresholds: {min_compared: 20, min_agreement: 1}\n");
  Load load(GatewayPort(), "demo");
  Output o = box_.Sluice({"run", "p.yaml"});
  load.Stop();
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(load.failures(), 0) << load.first_failure();
  EXPECT_EQ(Weights(), (std::map<std::string, int>{{"v2", 100}}));
  EXPECT_EQ(OutputsOfStep()["version"], "v2");
  EXPECT_EQ(Newest().state, sluice::store::RolloutState::kPromoted);
}

TEST_F(ExperimentTest, AnABTestFindsAVariantFivePointsBetterAndPromotesIt) {
  DeployStable();
  WritePipeline("deploy/ab-test", "      version: " + Version("v2") +
                                      "\n      key: {header: x-user-id}\n"
                                      "      test: {alpha: 0.05, power: 0.8, mde: 0.03, baseline: 0.10}\n"
                                      "      interval: 1s\n      max_duration: 60s\n      scale_down_delay: 0s\n");
  Load load(GatewayPort(), "demo", 200'000, WithFeedback([](const std::string& v) { return v == "v2" ? 0.15 : 0.10; }));
  Output o = box_.Sluice({"run", "p.yaml"});
  load.Stop();
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  json out = OutputsOfStep();
  EXPECT_EQ(out["decision"], "winner");
  EXPECT_EQ(out["winner"], "v2");
  const double effect = std::stod(out["effect"].get<std::string>());
  EXPECT_GT(effect, 0.02);
  EXPECT_LT(std::stod(out["ci_low"].get<std::string>()), effect);
  EXPECT_LT(std::stod(out["p_value"].get<std::string>()), 0.05);
  EXPECT_GE(std::stoi(out["samples_b"].get<std::string>()), 1700) << "the fixed horizon for 0.10 -> 0.13";
  EXPECT_EQ(Weights(), (std::map<std::string, int>{{"v2", 100}}));
  EXPECT_EQ(Newest().state, sluice::store::RolloutState::kPromoted);
  EXPECT_EQ(load.failures(), 0) << load.first_failure();
  // The feedback of the last answers may be refused once the step has ended
  // (v1, which gave them, is gone); the experiment's own was taken.
  EXPECT_LT(feedback_refused_, load.total() / 100);
  EXPECT_GE(feedback_["v2"], std::stoi(out["samples_b"].get<std::string>()));
  EXPECT_GE(AnalysisEvents(), 1);
  EXPECT_EQ(Store()->services().Get("demo")->sticky_header, "x-user-id") << "the step made the service sticky";
}

TEST_F(ExperimentTest, AnABTestOfEqualVariantsEndsWithNoWinnerAndTheControlStays) {
  DeployStable();
  WritePipeline("deploy/ab-test", "      version: " + Version("v2") +
                                      "\n      key: {header: x-user-id}\n"
                                      "      test: {alpha: 0.001, power: 0.8, mde: 0.05, baseline: 0.10}\n"
                                      "      interval: 1s\n      max_duration: 60s\n      abort_delay: 0s\n");
  Load load(GatewayPort(), "demo", 200'000, WithFeedback([](const std::string&) { return 0.10; }));
  Output o = box_.Sluice({"run", "p.yaml"});
  load.Stop();
  ASSERT_EQ(o.code, 0) << o.out << o.err << "a decided experiment is not a failure";
  json out = OutputsOfStep();
  EXPECT_EQ(out["decision"], "no_difference");
  EXPECT_EQ(out["winner"], "");
  EXPECT_EQ(out["version"], "v1");
  EXPECT_GE(std::stod(out["p_value"].get<std::string>()), 0.001);
  EXPECT_EQ(Weights(), (std::map<std::string, int>{{"v1", 100}}));
  EXPECT_EQ(Newest().state, sluice::store::RolloutState::kEnded);
  EXPECT_EQ(load.failures(), 0) << load.first_failure();
}

TEST_F(ExperimentTest, AnABTestWhoseUsersCrowdIntoBsBucketsIsASampleRatioMismatch) {
  DeployStable();
  // The users' keys are not spread by the hash: 7 in 10 fall in buckets
  // 5000..9999 (B's half of a 50% split, the versions owning bucket ranges
  // in the order first applied), 3 in 10 in 0..4999.
  auto keys = std::make_shared<std::vector<std::string>>();
  std::vector<std::string> high, low;
  for (int i = 0; high.size() < 20'000 || low.size() < 20'000; ++i) {
    std::string k = UserKey(i);
    (sluice::serving::StickyBucket("demo", k) >= 5000 ? high : low).push_back(k);
  }
  for (int n = 0; n < 20'000; ++n) keys->push_back(n % 10 < 7 ? high[n] : low[n]);
  WritePipeline("deploy/ab-test", "      version: " + Version("v2") +
                                      "\n      key: {header: x-user-id}\n"
                                      "      test: {alpha: 0.05, power: 0.8, mde: 0.03, baseline: 0.10}\n"
                                      "      interval: 1s\n      max_duration: 60s\n      abort_delay: 0s\n");
  Load load(GatewayPort(), "demo", 200'000,
            WithFeedback([](const std::string&) { return 0.10; },
                         [keys](int n) { return (*keys)[static_cast<size_t>(n) % keys->size()]; }));
  Output o = box_.Sluice({"run", "p.yaml"});
  load.Stop();
  EXPECT_NE(o.code, 0);
  std::string reason = ReasonOfStep();
  EXPECT_NE(reason.find("rolled back: sample ratio mismatch: chi-square "), std::string::npos) << reason;
  EXPECT_NE(reason.find("expected split 50% to v2"), std::string::npos) << reason;
  bool invalid = false;
  for (const auto& e : Events(Newest().id)) invalid |= e.kind == "analysis" && e.message.rfind("invalid: ", 0) == 0;
  EXPECT_TRUE(invalid) << "the look that found it is recorded";
  EXPECT_EQ(Weights(), (std::map<std::string, int>{{"v1", 100}}));
  EXPECT_EQ(Newest().state, sluice::store::RolloutState::kRolledBack);
  EXPECT_EQ(load.failures(), 0) << load.first_failure();
}
