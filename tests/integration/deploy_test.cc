// deploy/canary, deploy/blue-green and deploy/rollback end to end: real runs
// of the real binary drive a real gateway (started by the first deploy) and
// real replica processes (fake_oip_server), under a bounded load generator
// on loopback that counts every answer by the version that gave it.
#include <signal.h>

#include <sstream>

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
  // The gateway polls the store every 20 ms: requests it routed to v2 before
  // it saw the rollback may still come back 500 just after the run ends.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
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

// The step to abort at: 0 (10%), 1 (50%), 2 (90%). The steps before it
// pause 1 s, the step itself 60 s.
class DeployAbortTest : public DeployTest, public ::testing::WithParamInterface<int> {};

TEST_P(DeployAbortTest, AnAbortAtEachCanaryStepLosesNoRequestAndLeavesAllTrafficOnStable) {
  const int at = GetParam();
  const int weights[] = {10, 50, 90};
  std::string steps;
  for (int i = 0; i < 3; ++i)
    steps += "{weight: " + std::to_string(weights[i]) + ", pause: " + (i < at ? "1s" : "60s") + "}, ";
  DeployStable();
  WritePipeline("deploy/canary", "      version: " + Version("v2") + "\n      steps: [" + steps +
                                     "{weight: 100}]\n      abort_delay: 1s\n");
  Load load(GatewayPort(), "demo");
  pid_t run = box_.Start({"run", "p.yaml"}, "run.log");
  ASSERT_TRUE(WaitForRollout([&](const auto& r) { return r.step_index == at && r.candidate_bp == weights[at] * 100; }));
  // The gateway routes the step's split: the candidate has answered.
  ASSERT_TRUE(WaitFor([&] { return load.ok_by_version()["v2"] > 0; }));
  auto asked = Store()->rollouts().Request("demo", "abort", "user:test", 1);
  ASSERT_TRUE(asked.ok()) << asked.status().message();
  EXPECT_NE(Sandbox::Reap(run), 0);
  load.Stop();
  EXPECT_EQ(load.failures(), 0) << load.first_failure();
  EXPECT_GT(load.ok_by_version()["v2"], 0);
  EXPECT_EQ(Weights(), (std::map<std::string, int>{{"v1", 100}}));
  auto r = Newest();
  EXPECT_EQ(r.state, sluice::store::RolloutState::kAborted);
  EXPECT_EQ(r.step_index, at);
  EXPECT_NE(r.reason.find("aborted by user:test"), std::string::npos) << r.reason;
}

INSTANTIATE_TEST_SUITE_P(EachStep, DeployAbortTest, ::testing::Values(0, 1, 2));

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
  EXPECT_NE(r.reason.find("promoted by user:test"), std::string::npos) << r.reason;
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
  EXPECT_TRUE(WaitFor([&] {
    auto s = Store()->services().Get("demo");
    return s.ok() && s->versions.size() == 1;
  })) << "then v1 is removed, not left removing";
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

// A model with random weights answers 200, fast, and wrong: only its
// predicted classes give it away. Two real tabular TorchScript models (the
// model server, libtorch): a "trained" one that answers `yes` on the load's
// row, and one with arbitrary weights that answers `no`.
TEST_F(DeployTest, ACanaryWithRandomWeightsIsRolledBackOnItsPredictedClasses) {
  auto make = [&](const std::string& file, const std::string& weight) {
    std::string cmd = std::string(MAKE_TABULAR_MODEL) + " " + (box_.dir() / file).string() +
                      " --features a,b,c --weight " + weight + " --bias 0,0 --classes yes,no";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  };
  make("trained.pt", "1,0,0/-1,0,0");
  make("random.pt", "0.3,-0.7,0.2/0.9,0.1,-0.4");
  box_.Write("stable.yaml", "name: stable\nsteps:\n  deploy:\n    uses: deploy/canary\n    with:\n      service: demo\n"
                            "      version: {name: v1, model: " + (box_.dir() / "trained.pt").string() +
                            "}\n      steps: [{weight: 100}]\n");
  Output first = box_.Sluice({"run", "stable.yaml"});
  ASSERT_EQ(first.code, 0) << first.out << first.err;
  WritePipeline("deploy/canary", "      version: {name: v2, model: " + (box_.dir() / "random.pt").string() +
                                     "}\n      steps: [{weight: 50, pause: 60s}, {weight: 100}]\n"
                                     "      analysis: {interval: 2s, min_requests: 20, max_error_rate: 0.01, "
                                     "max_class_distance: 0.3, inconclusive: extend}\n      abort_delay: 0s\n");
  const std::string row = R"({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]})";
  Load load(GatewayPort(), "demo", 200'000, {.body = row});
  Output o = box_.Sluice({"run", "p.yaml"});
  load.Stop();
  EXPECT_NE(o.code, 0);
  std::string reason = StepOf(ShowRun(box_, "latest"), "deploy")["reason"].get<std::string>();
  EXPECT_NE(reason.find("rolled back: predicted classes differ from the stable version's by 1 > 0.3 over "),
            std::string::npos)
      << reason;
  EXPECT_EQ(load.failures(), 0) << load.first_failure();
  EXPECT_GT(load.ok_by_version()["v2"], 0);
  EXPECT_EQ(Weights(), (std::map<std::string, int>{{"v1", 100}}));
}

// A service version serves a registered model: `sluice lineage
// service:NAME/VERSION` reaches the run that made it, and the promotion is
// an OpenLineage event from the model file to the service version.
TEST_F(DeployTest, AServiceVersionLeadsBackToTheRunThatMadeItsModelAndItsPromotionIsAnOpenLineageEvent) {
  std::string cmd = std::string(MAKE_TABULAR_MODEL) + " " + (box_.dir() / "trained.pt").string() +
                    " --features a,b,c --weight 1,0,0/-1,0,0 --bias 0,0 --classes yes,no";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  box_.Write("train.yaml", R"(name: train
steps:
  train:
    run: cp trained.pt "$SLUICE_OUTPUTS_DIR/model"
    outputs: {model: model}
    register: {name: tab}
  deploy:
    needs: [train]
    uses: deploy/canary
    with:
      service: demo
      model: ${{ steps.train.outputs.registered }}
      steps: [{weight: 100}]
)");
  std::string events = (box_.dir() / "lineage.jsonl").string();
  ::setenv("SLUICE_OPENLINEAGE_FILE", events.c_str(), 1);
  Output o = box_.Sluice({"run", "train.yaml"});
  ::unsetenv("SLUICE_OPENLINEAGE_FILE");
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(StepOf(ShowRun(box_, "latest"), "deploy")["outputs"]["version"], "v1") << "tab@1 is named v1";
  Output lineage = box_.Sluice({"lineage", "service:demo/v1", "--format", "json"});
  ASSERT_EQ(lineage.code, 0) << lineage.err;
  json g = json::parse(lineage.out);
  bool made_by_train = false;
  for (const json& a : g["attempts"]) made_by_train |= a["run"] == 1 && a["step"] == "train";
  EXPECT_TRUE(made_by_train) << g.dump();
  Output unknown = box_.Sluice({"lineage", "service:demo/v9"});
  EXPECT_NE(unknown.code, 0);
  EXPECT_NE(unknown.err.find("service demo has no version 'v9' (versions: v1)"), std::string::npos) << unknown.err;
  bool promotion = false;
  std::istringstream lines(box_.Read("lineage.jsonl"));
  for (std::string line; std::getline(lines, line);) {
    json ev = json::parse(line, nullptr, false);
    if (ev.is_object() && ev["job"]["name"] == "service.demo.promote") {
      promotion = true;
      EXPECT_EQ(ev["outputs"][0]["name"], "demo/v1");
      ASSERT_EQ(ev["inputs"].size(), 1u);
      EXPECT_NE(ev["inputs"][0]["name"].get<std::string>().find("artifacts"), std::string::npos) << line;
    }
  }
  EXPECT_TRUE(promotion) << box_.Read("lineage.jsonl");
}

// RELIABILITY 8: the gateway killed mid-canary. The step's next analysis
// finds it gone and starts another, which restores the canary's weights
// from SQLite; the canary goes on and is promoted.
TEST_F(DeployTest, AGatewayKilledMidCanaryIsStartedAgainWithTheSameWeightsAndTheCanaryGoesOn) {
  DeployStable();
  WritePipeline("deploy/canary", "      version: " + Version("v2") +
                                     "\n      steps: [{weight: 30, pause: 8s}, {weight: 100}]\n"
                                     "      analysis: {interval: 1s, min_requests: 1, max_error_rate: 0.5, "
                                     "inconclusive: extend}\n      scale_down_delay: 0s\n");
  pid_t run = box_.Start({"run", "p.yaml"}, "run.log");
  ASSERT_TRUE(WaitForRollout([](const auto& r) { return r.candidate_bp == 3000; }));
  auto before = Store()->gateway().Read();
  ASSERT_TRUE(before.ok() && *before);
  ::kill(static_cast<pid_t>((*before)->pid), SIGKILL);
  int port = 0;
  ASSERT_TRUE(WaitFor([&] {
    auto now = Store()->gateway().Read();
    if (!now.ok() || !*now || (*now)->pid == (*before)->pid) return false;
    port = (*now)->port;
    return true;
  })) << box_.Read("run.log");
  // The new gateway routes 30% to v2 as the store says (1,000 requests: 300 expected, +-60).
  // Both versions' new replicas answer (a version not ready yet would pass its share to the other).
  ASSERT_TRUE(WaitFor([&] {
    httplib::Client c("127.0.0.1", port);
    for (const char* v : {"v1", "v2"}) {
      auto r = c.Post("/v2/models/demo/infer", {{"x-sluice-version", v}}, kFakeBody, "application/json");
      if (!r || r->status != 200) return false;
    }
    return true;
  }));
  Load load(port, "demo", 1000);
  ASSERT_TRUE(WaitFor([&] { return load.total() >= 1000; }, std::chrono::seconds(30)));
  load.Stop();
  int v2 = load.ok_by_version()["v2"];
  EXPECT_NEAR(v2, 300, 60) << "v1 " << load.ok_by_version()["v1"];
  EXPECT_EQ(Sandbox::Reap(run), 0) << box_.Read("run.log");
  EXPECT_EQ(Weights(), (std::map<std::string, int>{{"v2", 100}}));
}

// A canary whose driver died and whose run was then cancelled (nothing left
// to roll it back): the next deployment of the service aborts it first,
// stable back to 100%, and goes on.
TEST_F(DeployTest, ARolloutLeftByAnEndedRunIsAbortedByTheNextDeploymentOfItsService) {
  DeployStable();
  WritePipeline("deploy/canary", "      version: " + Version("v2") + "\n      steps: [{weight: 40, pause: 60s}]\n");
  pid_t run = box_.Start({"run", "p.yaml"}, "run.log");
  ASSERT_TRUE(WaitForRollout([](const auto& r) { return r.candidate_bp == 4000; }));
  int64_t left = Newest().id;
  ::kill(run, SIGKILL);
  Sandbox::Reap(run);
  Output cancel = box_.Sluice({"cancel", "latest"});
  ASSERT_EQ(cancel.code, 0) << cancel.err;
  ASSERT_EQ(Weights(), (std::map<std::string, int>{{"v1", 60}, {"v2", 40}})) << "nothing drove it back";
  box_.Write("q.yaml", "name: next\nsteps:\n  deploy:\n    uses: deploy/canary\n    with:\n      service: demo\n"
                       "      version: " + Version("v3") + "\n      steps: [{weight: 100}]\n      scale_down_delay: 0s\n");
  Output o = box_.Sluice({"run", "q.yaml"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(Weights(), (std::map<std::string, int>{{"v3", 100}})) << box_.Sluice({"services", "history", "demo"}).out;
  auto old = Store()->rollouts().Get(left);
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->state, sluice::store::RolloutState::kAborted);
  EXPECT_NE(old->reason.find("its run 2 ended (cancelled) without finishing it"), std::string::npos) << old->reason;
}

// A canary step's weight is a percent in (0, 100], checked by `sluice
// validate` at its place: 0.01 and 100 pass, 0 and 100.01 do not.
TEST_F(DeployTest, ACanaryStepWeightIsCheckedAtItsPlaceFromJustAboveZeroToExactlyOneHundred) {
  auto validate = [&](const std::string& weights) {
    box_.Write("w.yaml", "name: w\nsteps:\n  deploy:\n    uses: deploy/canary\n    with:\n      service: demo\n"
                         "      model: demo@1\n      steps: [" + weights + "]\n");
    return box_.Sluice({"validate", "w.yaml"});
  };
  EXPECT_EQ(validate("{weight: 0.01, pause: 1s}, {weight: 100}").code, 0);
  Output zero = validate("{weight: 0, pause: 1s}");
  EXPECT_NE(zero.code, 0);
  EXPECT_NE(zero.err.find("w.yaml:8:"), std::string::npos) << zero.err;
  Output above = validate("{weight: 100.01}");
  EXPECT_NE(above.code, 0);
  EXPECT_NE(above.err.find("w.yaml:8:"), std::string::npos) << above.err;
  Output unknown = validate("{weight: 10, hold: 1s}");
  EXPECT_NE(unknown.code, 0);
  EXPECT_NE(unknown.err.find("hold"), std::string::npos) << unknown.err;
}
