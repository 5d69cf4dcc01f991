// deploy/canary, deploy/blue-green and deploy/rollback end to end: real runs
// of the real binary drive a real gateway (started by the first deploy) and
// real replica processes (fake_oip_server), under a bounded load generator
// on loopback that counts every answer by the version that gave it.
#include <signal.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "deploy_fixture.h"

using namespace sluice::testing;
using nlohmann::json;

namespace {

class DeployTest : public DeployFixture {};

const char* kAnalysis = "      analysis: {interval: 1s, min_requests: 10, max_error_rate: 0.01, inconclusive: fail}\n";

}  // namespace

TEST_F(DeployTest, TheFirstDeployOfANewServiceGivesTheCandidateAllTrafficOnceReady) {
  DeployStable();
  auto r = Newest();
  EXPECT_EQ(r.state, sluice::store::RolloutState::kPromoted);
  EXPECT_EQ(r.stable_version, "");
  EXPECT_EQ(Store()->services().Get("demo")->traffic_owner, "") << "the weights are handed back";
}

TEST_F(DeployTest, AGoodCanaryIsPromotedStepByStepUnderLoadWithoutLosingARequest) {
  DeployStable();
  WritePipeline("deploy/canary", "      version: " + Version("v2") +
                                     "\n      steps: [{weight: 25, pause: 3s}, {weight: 50, pause: 3s}, {weight: 100}]\n" +
                                     kAnalysis + "      scale_down_delay: 1s\n");
  Load load(GatewayPort(), "demo");
  Output o = box_.Sluice({"run", "p.yaml"});
  load.Stop();
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(load.failures(), 0) << load.first_failure();
  EXPECT_GT(load.ok_by_version()["v2"], 0);
  EXPECT_GT(load.ok_by_version()["v1"], 0);
  EXPECT_TRUE(WaitFor([&] { return Weights() == std::map<std::string, int>{{"v2", 100}}; }));
  auto r = Newest();
  EXPECT_EQ(r.state, sluice::store::RolloutState::kPromoted);
  int shifts = 0, passes = 0;
  for (const auto& e : Events(r.id)) {
    shifts += e.kind == "shift";
    passes += e.kind == "analysis" && e.message.find(": pass: ") != std::string::npos;
  }
  EXPECT_GE(shifts, 3);
  EXPECT_GE(passes, 4) << "two windows in each of the two pauses";
  json run = ShowRun(box_, "latest");
  EXPECT_EQ(StepOf(run, "deploy")["outputs"]["version"], "v2");
  EXPECT_EQ(StepOf(run, "deploy")["outputs"]["previous"], "v1");
}

TEST_F(DeployTest, ACanaryAnsweringErrorsIsRolledBackWithItsReasonWhileStableKeepsAnswering) {
  DeployStable();
  WritePipeline("deploy/canary", "      version: " + Version("v2", "--status, 500") +
                                     "\n      steps: [{weight: 20, pause: 20s}, {weight: 100}]\n" + kAnalysis +
                                     "      abort_delay: 0s\n");
  Load load(GatewayPort(), "demo");
  Output o = box_.Sluice({"run", "p.yaml"});
  int failures_at_end = load.failures();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  load.Stop();
  EXPECT_NE(o.code, 0);
  json step = StepOf(ShowRun(box_, "latest"), "deploy");
  std::string reason = step["reason"].get<std::string>();
  EXPECT_NE(reason.find("rolled back: error rate 1 > 0.01 over "), std::string::npos) << reason;
  EXPECT_EQ(Weights(), (std::map<std::string, int>{{"v1", 100}})) << "the candidate is taken out";
  EXPECT_EQ(load.failed_by_version()["v1"], 0) << "stable never failed";
  EXPECT_EQ(load.failures(), failures_at_end) << "nothing failed after the rollback";
  EXPECT_GT(load.ok_by_version()["v1"], 0);
  auto r = Newest();
  EXPECT_EQ(r.state, sluice::store::RolloutState::kRolledBack);
  EXPECT_EQ(Store()->services().Get("demo")->traffic_owner, "");
}

TEST_F(DeployTest, ASlowCanaryIsRolledBackOnItsP99) {
  DeployStable();
  WritePipeline("deploy/canary", "      version: " + Version("v2", "--delay-ms, 120") +
                                     "\n      steps: [{weight: 50, pause: 20s}]\n"
                                     "      analysis: {interval: 2s, min_requests: 5, max_p99_ms: 50, inconclusive: fail}\n"
                                     "      abort_delay: 0s\n");
  Load load(GatewayPort(), "demo");
  Output o = box_.Sluice({"run", "p.yaml"});
  load.Stop();
  EXPECT_NE(o.code, 0);
  std::string reason = StepOf(ShowRun(box_, "latest"), "deploy")["reason"].get<std::string>();
  EXPECT_NE(reason.find("rolled back: p99"), std::string::npos) << reason;
  EXPECT_NE(reason.find("> 50 ms"), std::string::npos) << reason;
  EXPECT_EQ(load.failures(), 0) << load.first_failure();
  EXPECT_EQ(Weights(), (std::map<std::string, int>{{"v1", 100}}));
}

TEST_F(DeployTest, AnAbortAtEachCanaryStepLosesNoRequestAndLeavesAllTrafficOnStable) {
  DeployStable();
  WritePipeline("deploy/canary", "      version: " + Version("v2") +
                                     "\n      steps: [{weight: 10, pause: 2s}, {weight: 50, pause: 60s}, {weight: 100}]\n"
                                     "      abort_delay: 1s\n");
  Load load(GatewayPort(), "demo");
  pid_t run = box_.Start({"run", "p.yaml"}, "run.log");
  ASSERT_TRUE(WaitForRollout([](const auto& r) { return r.step_index == 1 && r.candidate_bp == 5000; }));
  auto asked = Store()->rollouts().Request("demo", "abort", "user:test", 1);
  ASSERT_TRUE(asked.ok()) << asked.status().message();
  EXPECT_NE(Sandbox::Reap(run), 0);
  load.Stop();
  EXPECT_EQ(load.failures(), 0) << load.first_failure();
  EXPECT_GT(load.ok_by_version()["v2"], 0);
  EXPECT_EQ(Weights(), (std::map<std::string, int>{{"v1", 100}}));
  auto r = Newest();
  EXPECT_EQ(r.state, sluice::store::RolloutState::kAborted);
  EXPECT_NE(r.reason.find("aborted by a person"), std::string::npos) << r.reason;
}

TEST_F(DeployTest, CancellingTheRunRollsTheCanaryBackToStable) {
  DeployStable();
  WritePipeline("deploy/canary", "      version: " + Version("v2") + "\n      steps: [{weight: 30, pause: 60s}]\n");
  pid_t run = box_.Start({"run", "p.yaml"}, "run.log");
  ASSERT_TRUE(WaitForRollout([](const auto& r) { return r.candidate_bp == 3000; }));
  Output c = box_.Sluice({"cancel", "latest"});
  ASSERT_EQ(c.code, 0) << c.err;
  Sandbox::Reap(run);
  EXPECT_EQ(Weights(), (std::map<std::string, int>{{"v1", 100}}));
  auto r = Newest();
  EXPECT_EQ(r.state, sluice::store::RolloutState::kAborted);
  EXPECT_NE(r.reason.find("the run was cancelled"), std::string::npos) << r.reason;
}

TEST_F(DeployTest, AfterKillNineAResumedRunContinuesTheCanaryFromItsRecordedStep) {
  DeployStable();
  WritePipeline("deploy/canary", "      version: " + Version("v2") +
                                     "\n      steps: [{weight: 10, pause: 1s}, {weight: 40, pause: 60s}, {weight: 100}]\n"
                                     "      scale_down_delay: 0s\n");
  pid_t run = box_.Start({"run", "p.yaml"}, "run.log");
  ASSERT_TRUE(WaitForRollout([](const auto& r) { return r.step_index == 1; }));
  ::kill(run, SIGKILL);
  Sandbox::Reap(run);
  EXPECT_EQ(Weights(), (std::map<std::string, int>{{"v1", 60}, {"v2", 40}})) << "the gateway keeps serving the split";
  // A person promotes while nothing drives the rollout; the resumed attempt takes the request.
  ASSERT_TRUE(Store()->rollouts().Request("demo", "promote", "user:test", 1).ok());
  Output o = box_.Sluice({"resume", "latest"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(Weights(), (std::map<std::string, int>{{"v2", 100}}));
  auto r = Newest();
  EXPECT_EQ(r.state, sluice::store::RolloutState::kPromoted);
  bool resumed_at_1 = false;
  for (const auto& e : Events(r.id))
    resumed_at_1 |= e.kind == "resume" && e.message.find("continues at step 1 (v2 at 40%)") != std::string::npos;
  EXPECT_TRUE(resumed_at_1);
}

TEST_F(DeployTest, AWindowUnderMinRequestsIsInconclusiveAndPausesUntilAPersonPromotes) {
  DeployStable();
  WritePipeline("deploy/canary", "      version: " + Version("v2") +
                                     "\n      steps: [{weight: 50, pause: 2s}, {weight: 100}]\n"
                                     "      analysis: {interval: 1s, min_requests: 1000, max_error_rate: 0.01, "
                                     "inconclusive: pause}\n      scale_down_delay: 0s\n");
  pid_t run = box_.Start({"run", "p.yaml"}, "run.log");
  ASSERT_TRUE(WaitForRollout([](const auto& r) { return r.state == sluice::store::RolloutState::kPaused; }));
  EXPECT_EQ(Weights(), (std::map<std::string, int>{{"v1", 50}, {"v2", 50}})) << "paused where it was";
  ASSERT_TRUE(Store()->rollouts().Request("demo", "promote", "user:test", 1).ok());
  EXPECT_EQ(Sandbox::Reap(run), 0);
  EXPECT_EQ(Weights(), (std::map<std::string, int>{{"v2", 100}}));
  auto r = Newest();
  EXPECT_NE(r.reason.find("promoted by a person"), std::string::npos) << r.reason;
}

TEST_F(DeployTest, ABlueGreenSwitchLosesNoRequestAndTheOldVersionStopsAfterwards) {
  DeployStable();
  WritePipeline("deploy/blue-green",
                "      version: " + Version("v2") +
                    "\n      smoke: {count: 3, request: {inputs: [{name: x, datatype: FP32, shape: [1], data: [1.0]}]}}\n"
                    "      rollback_window: 1s\n");
  Load load(GatewayPort(), "demo");
  Output o = box_.Sluice({"run", "p.yaml"});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  load.Stop();
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(load.failures(), 0) << load.first_failure();
  EXPECT_GT(load.ok_by_version()["v1"], 0);
  EXPECT_GT(load.ok_by_version()["v2"], 0);
  EXPECT_EQ(Weights(), (std::map<std::string, int>{{"v2", 100}}));
  EXPECT_TRUE(WaitFor([&] {
    auto rows = Store()->services().Replicas("demo");
    for (const auto& r : *rows)
      if (r.version == "v1") return false;
    return true;
  })) << "v1's replica is stopped and its row gone";
  bool smoke = false;
  for (const auto& e : Events(Newest().id)) smoke |= e.kind == "smoke";
  EXPECT_TRUE(smoke);
}

TEST_F(DeployTest, ABlueGreenCandidateFailingItsSmokeCheckNeverTakesLiveTraffic) {
  DeployStable();
  WritePipeline("deploy/blue-green", "      version: " + Version("v2", "--status, 500") +
                                         "\n      smoke: {count: 2, request: {inputs: []}}\n");
  Load load(GatewayPort(), "demo");
  Output o = box_.Sluice({"run", "p.yaml"});
  load.Stop();
  EXPECT_NE(o.code, 0);
  std::string reason = StepOf(ShowRun(box_, "latest"), "deploy")["reason"].get<std::string>();
  EXPECT_NE(reason.find("rolled back: smoke check: smoke request 1 answered 500"), std::string::npos) << reason;
  EXPECT_EQ(load.failures(), 0) << load.first_failure();
  EXPECT_EQ(load.ok_by_version()["v2"], 0);
  EXPECT_EQ(Weights(), (std::map<std::string, int>{{"v1", 100}}));
}

TEST_F(DeployTest, RollbackRoutesEverythingBackToTheVersionTheLastPromotionReplaced) {
  DeployStable();
  WritePipeline("deploy/canary", "      version: " + Version("v2") + "\n      steps: [{weight: 100}]\n"
                                                                       "      scale_down_delay: 0s\n");
  ASSERT_EQ(box_.Sluice({"run", "p.yaml"}).code, 0);
  ASSERT_EQ(Weights(), (std::map<std::string, int>{{"v2", 100}}));
  box_.Write("back.yaml", "name: back\nsteps:\n  undo:\n    uses: deploy/rollback\n    with: {service: demo}\n");
  Load load(GatewayPort(), "demo");
  Output o = box_.Sluice({"run", "back.yaml"});
  load.Stop();
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(Weights(), (std::map<std::string, int>{{"v1", 100}}));
  EXPECT_EQ(load.failures(), 0) << load.first_failure();
  EXPECT_EQ(StepOf(ShowRun(box_, "latest"), "undo")["outputs"]["version"], "v1");
}

TEST_F(DeployTest, ACanaryOfAServiceWhoseTrafficIsSplitIsRefusedAndChangesNothing) {
  DeployStable();
  WritePipeline("deploy/canary", "      version: " + Version("v2") + "\n      steps: [{weight: 50, pause: 60s}]\n");
  pid_t run = box_.Start({"run", "p.yaml"}, "run.log");
  ASSERT_TRUE(WaitForRollout([](const auto& r) { return r.candidate_bp == 5000; }));
  box_.Write("q.yaml", "name: other\nsteps:\n  deploy:\n    uses: deploy/canary\n    with:\n      service: demo\n"
                       "      version: " + Version("v3") + "\n      steps: [{weight: 100}]\n");
  Output o = box_.Sluice({"run", "q.yaml"});
  EXPECT_NE(o.code, 0);
  std::string reason = StepOf(ShowRun(box_, "latest"), "deploy")["reason"].get<std::string>();
  EXPECT_NE(reason.find("splits its traffic (v1 50%, v2 50%)"), std::string::npos) << reason;
  EXPECT_EQ(Weights(), (std::map<std::string, int>{{"v1", 50}, {"v2", 50}}));
  ASSERT_TRUE(Store()->rollouts().Request("demo", "abort", "user:test", 1).ok());
  Sandbox::Reap(run);
}
