// Attempt rendering alone: paths, placement, environment and what
// expressions see, with no executor, store or files.
#include "engine/attempt_render.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "spec/pipeline.h"
#include "spec/template.h"

#include "../common/fake_files.h"

using namespace sluice;
using namespace sluice::engine;

namespace {

class AttemptRenderTest : public ::testing::Test {
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
    scope_ = {&plan_, &params_, graph_.get(), &renderer_.pipeline_env(), &cancelling_, &env_};
  }
  const spec::Step& StepOf(const std::string& id) const { return pipeline_.steps[pipeline_.index.at(id)]; }
  // Renders `step`'s attempt `attempt` with sluice's environment `sluice_env`.
  Result<AttemptRequest> Render(const std::string& step, const std::vector<std::string>& sluice_env,
                                const StepRecord& unit, int attempt = 1, bool outputs_dir = false) {
    AttemptRenderer renderer(pipeline_, 42, "/home/logs/42");  // one per run: SetEnvironment is called once
    RunScope scope = scope_;
    scope.pipeline_env = &renderer.pipeline_env();
    StepContext top(scope, 0, nullptr);
    Status st = renderer.SetEnvironment(sluice_env, top);
    if (!st.ok()) return st;
    StepContext ctx(scope, pipeline_.index.at(step), &unit);
    auto rendered = RenderStep(StepOf(step), ctx, "/work", nullptr);
    if (!rendered.ok()) return rendered.status();
    AttemptPaths paths;
    AttemptRequest req = renderer.Request(StepOf(step), unit, attempt, *rendered, &paths);
    st = renderer.SetEnv(StepOf(step), unit, attempt, *rendered, paths, outputs_dir, &req);
    if (!st.ok()) return st;
    return req;
  }
  static bool Has(const AttemptRequest& r, const std::string& entry) {
    return std::find(r.env.begin(), r.env.end(), entry) != r.env.end();
  }
  static bool Names(const AttemptRequest& r, const std::string& name) {
    return std::any_of(r.env.begin(), r.env.end(), [&](const std::string& e) { return e.rfind(name + "=", 0) == 0; });
  }

  spec::Pipeline pipeline_;
  spec::ParamValues params_;
  Plan plan_;
  std::unique_ptr<RunGraph> graph_;
  bool cancelling_ = false;
  sluice::testing::FakeFiles env_;  // the environment env.NAME reads
  AttemptRenderer renderer_{pipeline_, 42, "/home/logs/42"};
  RunScope scope_;
};

}  // namespace

TEST(AttemptPathsTest, AnAttemptsFilesAreNamedByStepItemAndAttemptInTheRunsFolder) {
  AttemptPaths plain = PathsOf("/l/7", "train", -1, 2);
  EXPECT_EQ(plain.log, "/l/7/train.2.log");
  EXPECT_EQ(plain.output, "/l/7/train.2.out");
  EXPECT_EQ(plain.files_dir, "/l/7/train.2.files");
  EXPECT_EQ(plain.state_dir, "/l/7/train.state");
  AttemptPaths item = PathsOf("/l/7", "shard", 3, 1);
  EXPECT_EQ(item.log, "/l/7/shard.3.1.log");
  EXPECT_EQ(item.state_dir, "/l/7/shard.3.state");
}

TEST(AttemptPathsTest, ARecordedLogPathGivesBackTheAttemptsOtherFiles) {
  AttemptPaths p = PathsOfLog("/l/7/shard.3.1.log");
  EXPECT_EQ(p.output, "/l/7/shard.3.1.out");
  EXPECT_EQ(p.files_dir, "/l/7/shard.3.1.files");
  EXPECT_EQ(p.state_dir, "/l/7/shard.3.state");
}

TEST_F(AttemptRenderTest, APlacementCarriesTheStepsResourcesAndSlurmSettings) {
  Load("name: t\nsteps:\n  a:\n    run: x\n    executor: slurm\n    timeout: 5s\n"
       "    resources: {cpu: 4, memory: 16G, gpu: 1}\n    slurm: {partition: gpu, account: ml, qos: high, time: '1:00:00'}\n");
  Placement p = PlacementOf(StepOf("a"));
  EXPECT_EQ(p.executor, "slurm");
  EXPECT_EQ(p.cpu, 4);
  EXPECT_EQ(p.memory, "16G");
  EXPECT_EQ(p.gpu, 1);
  EXPECT_EQ(p.partition, "gpu");
  EXPECT_EQ(p.account, "ml");
  EXPECT_EQ(p.qos, "high");
  EXPECT_EQ(p.time, "1:00:00");
  ASSERT_TRUE(p.timeout.has_value());
  EXPECT_EQ(p.timeout->count(), 5000);
}

TEST_F(AttemptRenderTest, AStepsSlurmKeysReplaceThoseOfTheDefaultsOneByOneAndAStepWithoutAnyHasNone) {
  Load("name: t\ndefaults: {executor: slurm, slurm: {partition: cpu, account: ml, extra: [--exclusive]}}\nsteps:\n"
       "  a: {run: x, slurm: {partition: gpu, time: 30}}\n  b: {run: x}\n");
  Placement a = PlacementOf(StepOf("a"));
  EXPECT_EQ(a.partition, "gpu");
  EXPECT_EQ(a.account, "ml");
  EXPECT_EQ(a.time, "30");
  EXPECT_EQ(a.extra, std::vector<std::string>{"--exclusive"});
  Placement b = PlacementOf(StepOf("b"));
  EXPECT_EQ(b.partition, "cpu");
  Load("name: t\nsteps:\n  c: {run: x}\n");
  Placement c = PlacementOf(StepOf("c"));
  EXPECT_EQ(c.executor, "local");
  EXPECT_EQ(c.partition, "");
  EXPECT_TRUE(c.extra.empty());
}

TEST_F(AttemptRenderTest, AStepGetsSluicesEnvironmentThePipelinesEnvAndItsOwnWithItsOwnWinning) {
  Load("name: t\nenv: {MODE: fast, SHARED: pipeline}\nsteps:\n  a: {run: x, env: {SHARED: step}}\n");
  StepRecord unit{.step_id = "a"};
  auto r = Render("a", {"HOME=/home/u", "MODE=slow"}, unit, 2);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(Has(*r, "HOME=/home/u"));
  EXPECT_TRUE(Has(*r, "MODE=fast"));
  EXPECT_TRUE(Has(*r, "SHARED=step"));
  EXPECT_FALSE(Has(*r, "SHARED=pipeline"));
  EXPECT_TRUE(Has(*r, "SLUICE_RUN_ID=42"));
  EXPECT_TRUE(Has(*r, "SLUICE_STEP=a"));
  EXPECT_TRUE(Has(*r, "SLUICE_ATTEMPT=2"));
  EXPECT_TRUE(Has(*r, "SLUICE_OUTPUT=/home/logs/42/a.2.out"));
  EXPECT_TRUE(Has(*r, "SLUICE_STATE_DIR=/home/logs/42/a.state"));
  EXPECT_FALSE(Names(*r, "SLUICE_ITEM"));
  EXPECT_FALSE(Names(*r, "SLUICE_OUTPUTS_DIR"));
  EXPECT_EQ(r->log_path, "/home/logs/42/a.2.log");
  EXPECT_EQ(r->step_label, "a");
}

TEST_F(AttemptRenderTest, AForeachItemSeesItsItemAndIndex) {
  Load("name: t\nsteps:\n  s: {foreach: [p, q], run: ['${{ item }}']}\n");
  StepRecord unit{.step_id = "s", .item = 1};
  unit.item_value = spec::Value::Str("q");
  auto r = Render("s", {}, unit, 1, /*outputs_dir=*/true);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->argv, std::vector<std::string>{"q"});
  EXPECT_TRUE(Has(*r, "SLUICE_ITEM=q"));
  EXPECT_TRUE(Has(*r, "SLUICE_ITEM_INDEX=1"));
  EXPECT_TRUE(Has(*r, "SLUICE_OUTPUTS_DIR=/home/logs/42/s.1.1.files"));
  EXPECT_EQ(r->step_label, "s[1]");
}

TEST_F(AttemptRenderTest, ASecretReachesOnlyTheStepThatAsksForItAndIsKeptForMasking) {
  Load("name: t\nsteps:\n  plain: {run: x}\n  asks: {run: x, secrets: [DEPLOY_TOKEN]}\n");
  std::vector<std::string> env = {"DEPLOY_TOKEN=s3cret", "PATH=/bin"};
  auto plain = Render("plain", env, StepRecord{.step_id = "plain"});
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  EXPECT_FALSE(Names(*plain, "DEPLOY_TOKEN"));
  EXPECT_TRUE(Has(*plain, "PATH=/bin"));
  EXPECT_TRUE(plain->secrets.empty());
  auto asks = Render("asks", env, StepRecord{.step_id = "asks"});
  ASSERT_TRUE(asks.ok()) << asks.status().message();
  EXPECT_TRUE(Has(*asks, "DEPLOY_TOKEN=s3cret"));
  EXPECT_EQ(asks->secrets, std::vector<std::string>{"s3cret"});
}

TEST_F(AttemptRenderTest, ASecretNotInSluicesEnvironmentIsAnErrorNamingIt) {
  Load("name: t\nsteps:\n  asks: {run: x, secrets: [NOT_SET_TOKEN]}\n");
  auto r = Render("asks", {"PATH=/bin"}, StepRecord{.step_id = "asks"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "secret NOT_SET_TOKEN is not set in sluice's environment");
}

TEST_F(AttemptRenderTest, APluginStepsCallGetsItsAttemptsFoldersAndNumber) {
  Load("name: t\nsteps:\n  a: {uses: torch/train, resources: {cpu: 3}}\n");
  StepRecord unit{.step_id = "a"};
  auto r = Render("a", {}, unit, 4);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_TRUE(r->plugin.has_value());
  EXPECT_EQ(r->plugin->output_dir, "/home/logs/42/a.4.files");
  EXPECT_EQ(r->plugin->state_dir, "/home/logs/42/a.state");
  EXPECT_EQ(r->plugin->cpu, 3);
  EXPECT_EQ(r->plugin->attempt, 4);
}

TEST_F(AttemptRenderTest, AnEntryOfThePipelinesEnvThatFailsToRenderIsNamed) {
  Load("name: t\nenv: {BAD: '${{ env.SLUICE_TEST_NEVER_SET_7 }}'}\nsteps:\n  a: {run: x}\n");
  StepContext top(scope_, 0, nullptr);
  Status st = renderer_.SetEnvironment({}, top);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("env BAD: "), std::string::npos) << st.message();
}

TEST_F(AttemptRenderTest, ItemIsUndefinedWhileAStepIsDecided) {
  Load("name: t\nsteps:\n  a: {run: x}\n");
  StepContext ctx(scope_, 0, nullptr);
  auto v = ctx.Lookup({"item"});
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().message(), "'item' is only defined inside a foreach item");
}

TEST_F(AttemptRenderTest, ACachedNeedCountsAsSucceededAndAFailedOneIsAFailureUpstream) {
  Load("name: t\nsteps:\n  a: {run: x}\n  b: {needs: [a], run: x}\n  c: {needs: [b], run: x}\n");
  graph_->record(0).state = StepState::kCached;
  StepContext b(scope_, 1, nullptr);
  EXPECT_TRUE(b.StatusFunction("success"));
  EXPECT_EQ(b.Lookup({"steps", "a", "state"})->as_string(), "succeeded");
  // The graph learns of a failure upstream as the steps finish.
  graph_->record(0).state = StepState::kFailed;
  graph_->FinishStep(0);
  graph_->record(1).state = StepState::kSkipped;
  graph_->FinishStep(1);
  StepContext c(scope_, 2, nullptr);
  EXPECT_FALSE(c.StatusFunction("success"));
  EXPECT_TRUE(c.StatusFunction("failure"));
  cancelling_ = true;
  EXPECT_TRUE(c.StatusFunction("cancelled"));
}

TEST_F(AttemptRenderTest, AForeachOverNoItemsGivesEveryOutputAsTheEmptyList) {
  Load("name: t\nsteps:\n  s: {foreach: [], run: x}\n  j: {needs: [s], run: x}\n");
  graph_->record(0).items = spec::List{};
  graph_->record(0).state = StepState::kSucceeded;
  StepContext j(scope_, 1, nullptr);
  auto v = j.Lookup({"steps", "s", "outputs", "part"});
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_EQ(v->Render(), "[]");
}

TEST_F(AttemptRenderTest, EnvReadsThePipelinesEnvFirstThenTheInjectedEnvironment) {
  Load("name: t\nenv: {MODE: fast}\nsteps:\n  a: {run: x}\n");
  env_.vars["MODE"] = "slow";
  env_.vars["REGION"] = "eu";
  StepContext top(scope_, 0, nullptr);
  ASSERT_TRUE(renderer_.SetEnvironment({}, top).ok());
  StepContext a(scope_, 0, nullptr);
  EXPECT_EQ(a.Lookup({"env", "MODE"})->as_string(), "fast");
  EXPECT_EQ(a.Lookup({"env", "REGION"})->as_string(), "eu");
  EXPECT_EQ(a.Lookup({"env", "HOME"}).status().message(), "env.HOME is not set");  // not the process's
}
