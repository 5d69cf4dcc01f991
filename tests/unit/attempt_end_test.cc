// The end of an attempt (attempt_end.h) and the decisions that need no
// builder state (decide.h), alone: no engine, executor or SQLite; files in
// FakeFiles, the journal in FakeRunStore.
#include "engine/attempt_end.h"
#include "engine/decide.h"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <set>
#include <string>

#include "spec/pipeline.h"
#include "spec/template.h"

#include "../common/fake_clock.h"
#include "../common/fake_files.h"
#include "../common/fake_run_store.h"

using namespace sluice;
using namespace sluice::engine;

namespace {

// Publishes a path as its content's hash; Verify knows what was published.
class FakeArtifacts : public ArtifactPublisher {
 public:
  explicit FakeArtifacts(sluice::testing::FakeFiles* files) : files_(files) {}
  Result<ArtifactRef> Publish(const std::string& path, const std::string& kind) override {
    if (fail) return Status::IoError("move " + path + ": disk full");
    ArtifactRef a{"h-" + files_->Read(path), kind, 0, "sluice://" + kind + "/" + files_->Read(path)};
    published.insert(a.hash);
    return a;
  }
  bool Verify(const ArtifactRef& a) const override { return published.count(a.hash) > 0; }
  std::set<std::string> published;
  bool fail = false;

 private:
  sluice::testing::FakeFiles* files_;
};

class AttemptEndTest : public ::testing::Test {
 protected:
  void Load(const std::string& yaml) {
    auto p = spec::ParsePipeline("p.yaml", yaml);
    ASSERT_TRUE(p.ok()) << p.status().message();
    pipeline_ = std::move(p.value());
    auto params = spec::ResolveParams(pipeline_, {});
    ASSERT_TRUE(params.ok());
    params_ = *params;
    plan_ = MakePlan(pipeline_);
    graph_ = std::make_unique<RunGraph>(plan_);
    graph_->Restore({});
    scope_ = {&plan_, &params_, graph_.get(), &pipeline_env_, &cancelling_, &files_};
  }
  const spec::Step& StepOf(const std::string& id) const { return pipeline_.steps[pipeline_.index.at(id)]; }
  StepContext Context(const std::string& id) const { return StepContext(scope_, pipeline_.index.at(id), nullptr); }
  AttemptVerdict Judge(const std::string& id, const AttemptExit& exit, StopCause stop = {}) {
    return JudgeExit(StepOf(id), exit, stop, "/l/a.1.out", files_);
  }
  // Publishes the declared outputs of step `id`'s attempt 7 from /l/a.1.files.
  Status Publish(const std::string& id, std::string* failure) {
    OutputSink sink{&store_, &artifacts_, &files_, &clock_, 42};
    AttemptRecord attempt;
    attempt.id = 7;
    attempt.run_id = 42;
    attempt.step_id = id;
    return PublishOutputs(StepOf(id), attempt, "/l/a.1.files", sink, &outputs_, &metrics_, failure);
  }

  spec::Pipeline pipeline_;
  spec::ParamValues params_;
  Plan plan_;
  std::unique_ptr<RunGraph> graph_;
  std::map<std::string, std::string> pipeline_env_;
  bool cancelling_ = false;
  RunScope scope_;
  sluice::testing::FakeFiles files_;
  sluice::testing::FakeRunStore store_;
  sluice::testing::FakeClock clock_;
  FakeArtifacts artifacts_{&files_};
  Outputs outputs_;
  std::vector<Metric> metrics_;
};

// The decisions of decide.h, on the same pipelines.
class DecideTest : public AttemptEndTest {};

}  // namespace

TEST_F(AttemptEndTest, AnAttemptThatExitsZeroSucceedsWithWhatItWroteToSluiceOutput) {
  Load("name: t\nsteps:\n  a: {run: x}\n");
  files_.Write("/l/a.1.out", "n=3\n");
  AttemptVerdict v = Judge("a", {});
  EXPECT_EQ(v.state, StepState::kSucceeded);
  EXPECT_EQ(v.reason, "");
  ASSERT_TRUE(v.outputs);
  EXPECT_EQ(v.outputs->at("n").as_string(), "3");
}

TEST_F(AttemptEndTest, ASluiceOutputThatDoesNotParseFailsTheAttemptNamingTheLine) {
  Load("name: t\nsteps:\n  a: {run: x}\n");
  files_.Write("/l/a.1.out", "n=3\nx y\n");
  AttemptVerdict v = Judge("a", {});
  EXPECT_EQ(v.state, StepState::kFailed);
  EXPECT_NE(v.reason.find("line 2"), std::string::npos) << v.reason;
  EXPECT_FALSE(v.outputs);
}

TEST_F(AttemptEndTest, ANonZeroExitFailsWithItsCodeOrThePluginsReason) {
  Load("name: t\nsteps:\n  a: {run: x}\n");
  AttemptExit exit;
  exit.exit_code = 3;
  EXPECT_EQ(Judge("a", exit).reason, "exit code 3");
  exit.reason = "no such column";
  EXPECT_EQ(Judge("a", exit).reason, "no such column");
}

TEST_F(AttemptEndTest, AnAttemptEndedBySignalFailsNamingTheSignal) {
  Load("name: t\nsteps:\n  a: {run: x}\n");
  AttemptExit exit;
  exit.exit_code = 128 + 11;
  exit.signal = 11;
  AttemptVerdict v = Judge("a", exit);
  EXPECT_EQ(v.state, StepState::kFailed);
  EXPECT_EQ(v.reason, "killed by signal 11 (SIGSEGV)");
}

TEST_F(AttemptEndTest, AStopByTheEngineComesBeforeTheSignalThatEndedTheAttempt) {
  Load("name: t\nsteps:\n  a: {run: x, timeout: 5s}\n");
  AttemptExit exit;
  exit.signal = 9;
  AttemptVerdict cancelled = Judge("a", exit, {StopCause::Kind::kCancel, true, true});
  EXPECT_EQ(cancelled.state, StepState::kCancelled);
  EXPECT_EQ(cancelled.reason, "cancelled (SIGKILL at once)");
  AttemptVerdict timed_out = Judge("a", exit, {StopCause::Kind::kTimeout, true, false});
  EXPECT_EQ(timed_out.state, StepState::kFailed);
  EXPECT_EQ(timed_out.reason, "timed out after 5.0s (SIGKILL after the grace period)");
}

TEST_F(AttemptEndTest, APluginThatStopsAsCancelledWhenNothingCancelledItFails) {
  Load("name: t\nsteps:\n  a: {run: x}\n");
  AttemptExit exit;
  exit.cancelled = true;
  AttemptVerdict v = Judge("a", exit);
  EXPECT_EQ(v.state, StepState::kFailed);
  EXPECT_EQ(v.reason, "the step stopped as cancelled, but nothing cancelled it");
}

TEST_F(AttemptEndTest, SecretsAreMaskedInOutputsAndInTheSluiceOutputFile) {
  files_.Write("/l/a.1.out", "token=hunter22\n");
  Outputs outputs{{"token", spec::Value::Str("hunter22")}, {"n", spec::Value::Str("3")}};
  MaskSecrets(SecretMask({"hunter22"}), &outputs, "/l/a.1.out", files_);
  EXPECT_EQ(outputs.at("token").as_string().find("hunter22"), std::string::npos);
  EXPECT_EQ(outputs.at("n").as_string(), "3");
  EXPECT_EQ(files_.Read("/l/a.1.out").find("hunter22"), std::string::npos);
}

TEST_F(AttemptEndTest, ADeclaredFileIsPublishedAndItsUriBecomesTheOutput) {
  Load("name: t\nsteps:\n  a: {run: x, outputs: {data: file}}\n");
  files_.Write("/l/a.1.files/data", "abc");
  std::string failure;
  ASSERT_TRUE(Publish("a", &failure).ok());
  EXPECT_EQ(failure, "");
  EXPECT_EQ(outputs_.at("data").as_string(), "sluice://file/abc");
}

TEST_F(AttemptEndTest, AMissingDeclaredOutputIsTheStepsFailureNotAnError) {
  Load("name: t\nsteps:\n  a: {run: x, outputs: {data: file, n: value}}\n");
  std::string failure;
  ASSERT_TRUE(Publish("a", &failure).ok());
  EXPECT_EQ(failure, "declared output 'data' was not written (expected /l/a.1.files/data)");
}

TEST_F(AttemptEndTest, AMetricsOutputsNumbersBecomeMetrics) {
  Load("name: t\nsteps:\n  a: {run: x, outputs: {scores: metrics}}\n");
  files_.Write("/l/a.1.files/scores", R"({"loss": 0.5, "note": "x"})");
  std::string failure;
  ASSERT_TRUE(Publish("a", &failure).ok());
  ASSERT_EQ(metrics_.size(), 1u);
  EXPECT_EQ(metrics_[0].name, "loss");
  EXPECT_EQ(metrics_[0].value, 0.5);
}

TEST_F(AttemptEndTest, AFailedPublishFailsTheStepWithTheStoresReason) {
  Load("name: t\nsteps:\n  a: {run: x, outputs: {data: file}}\n");
  files_.Write("/l/a.1.files/data", "abc");
  artifacts_.fail = true;
  std::string failure;
  ASSERT_TRUE(Publish("a", &failure).ok());
  EXPECT_EQ(failure, "publish output 'data': move /l/a.1.files/data: disk full");
}

TEST_F(AttemptEndTest, APublishedModelIsRegisteredAndTheSameContentKeepsItsVersion) {
  Load("name: t\nsteps:\n  a: {run: x, outputs: {m: model}, register: {name: fashion}}\n");
  files_.Write("/l/a.1.files/m", "weights");
  std::string failure;
  ASSERT_TRUE(Publish("a", &failure).ok());
  EXPECT_EQ(outputs_.at("registered").as_string(), "fashion@1");
  LineageEdge edge{LineageEdge::Role::kProduced, "m", {"h-weights", "model", 0, ""}};
  Outputs again;
  ASSERT_TRUE(RegisterModels(StepOf("a"), {edge}, 1, "a", 3, store_, clock_, &again).ok());
  EXPECT_EQ(again.at("registered").as_string(), "fashion@1");
}

TEST_F(AttemptEndTest, ACacheEntryOlderThanMaxAgeIsNotReused) {
  Load("name: t\nsteps:\n  a: {run: x, cache: {max_age: 1h}}\n");
  CachedResult hit;
  hit.run_id = 5;
  hit.finished_ms = 0;
  EXPECT_EQ(WhyNotReuse(StepOf("a"), hit, 30 * 60 * 1000, &artifacts_), "");
  EXPECT_EQ(WhyNotReuse(StepOf("a"), hit, 2 * 3600 * 1000, &artifacts_),
            "cache entry of run 5 is 2h old, older than max_age 1h; running the step");
}

TEST_F(AttemptEndTest, ACacheEntryWhoseArtifactIsMissingIsNotReused) {
  Load("name: t\nsteps:\n  a: {run: x}\n");
  CachedResult hit;
  hit.run_id = 5;
  hit.produced.push_back({LineageEdge::Role::kProduced, "data", {"h-gone", "file", 0, ""}});
  EXPECT_EQ(WhyNotReuse(StepOf("a"), hit, 0, &artifacts_),
            "cache entry of run 5 is damaged (artifact h-gone is missing or changed); running the step");
  artifacts_.published.insert("h-gone");
  EXPECT_EQ(WhyNotReuse(StepOf("a"), hit, 0, &artifacts_), "");
}

TEST_F(DecideTest, AStepWithoutConditionIsSkippedWhenANeededStepFailed) {
  Load("name: t\nsteps:\n  a: {run: x}\n  b: {needs: [a], run: x}\n");
  graph_->record(0).state = StepState::kFailed;
  StepDecision d = DecideStep(StepOf("b"), graph_->record(1), Context("b"));
  ASSERT_TRUE(d.end);
  EXPECT_EQ(*d.end, StepState::kSkipped);
  EXPECT_EQ(d.reason, "a needed step did not succeed");
}

TEST_F(DecideTest, AFalseIfSkipsTheStepSayingWhichCondition) {
  Load("name: t\nsteps:\n  a: {run: x, if: '${{ 1 == 2 }}'}\n");
  StepDecision d = DecideStep(StepOf("a"), graph_->record(0), Context("a"));
  ASSERT_TRUE(d.end);
  EXPECT_EQ(*d.end, StepState::kSkipped);
  EXPECT_EQ(d.reason, "if: ${{ 1 == 2 }} is false");
}

TEST_F(DecideTest, AForeachStepIsExpandedToItsListOrToTheItemsOfItsResumedRecord) {
  Load("name: t\nsteps:\n  a: {foreach: [p, q], run: x}\n  b: {run: x}\n");
  StepDecision d = DecideStep(StepOf("a"), graph_->record(0), Context("a"));
  EXPECT_FALSE(d.end);
  ASSERT_TRUE(d.items);
  EXPECT_EQ(d.items->size(), 2u);
  StepRecord resumed = graph_->record(0);
  resumed.items = spec::List{spec::Value::Str("r")};
  EXPECT_EQ(DecideStep(StepOf("a"), resumed, Context("a")).items->size(), 1u);
  EXPECT_FALSE(DecideStep(StepOf("b"), graph_->record(1), Context("b")).items);
}

TEST_F(DecideTest, OnlyACleanupStepRunsDuringASoftCancel) {
  Load("name: t\nsteps:\n  a: {run: x}\n  clean: {run: x, if: '${{ always() }}'}\n");
  cancelling_ = true;
  EXPECT_FALSE(RunsDuringCancel(StepOf("a"), Context("a"), false));
  EXPECT_TRUE(RunsDuringCancel(StepOf("clean"), Context("clean"), false));
  EXPECT_FALSE(RunsDuringCancel(StepOf("clean"), Context("clean"), true));
}

TEST_F(DecideTest, RetryDelaysGrowByTheFactorUpToTheMax) {
  spec::Backoff b;
  b.initial = std::chrono::milliseconds(1000);
  b.factor = 3;
  b.max = std::chrono::milliseconds(5000);
  std::mt19937_64 rng(0);
  EXPECT_EQ(RetryDelay(b, 1, rng).count(), 1000);
  EXPECT_EQ(RetryDelay(b, 2, rng).count(), 3000);
  EXPECT_EQ(RetryDelay(b, 3, rng).count(), 5000);
  b.jitter = true;
  for (int i = 0; i < 20; ++i) {
    auto d = RetryDelay(b, 1, rng).count();
    EXPECT_GE(d, 500);
    EXPECT_LE(d, 1000);
  }
}

TEST_F(DecideTest, ARunFailsOnlyForAFailedStepWithoutContinueOnErrorAndACancelWins) {
  Load("name: t\nsteps:\n  a: {run: x, continue_on_error: true}\n  b: {run: x}\n");
  graph_->record(0).state = StepState::kFailed;
  graph_->record(1).state = StepState::kSucceeded;
  EXPECT_EQ(FinalRunState(plan_, *graph_, false), RunState::kSucceeded);
  graph_->record(1).state = StepState::kFailed;
  EXPECT_EQ(FinalRunState(plan_, *graph_, false), RunState::kFailed);
  EXPECT_EQ(FinalRunState(plan_, *graph_, true), RunState::kCancelled);
}
