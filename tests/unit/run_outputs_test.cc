// The run's outputs (the spec's top-level `outputs:`): as the loader reads
// and checks them (errors word for word, with FILE:LINE:COL), and as the
// engine renders them once every step is final, with a scripted executor and
// a fake clock (no process, no sleep).
#include <gtest/gtest.h>

#include <string>

#include "engine/engine.h"
#include "engine/outputs.h"
#include "spec/expr.h"
#include "spec/pipeline.h"

#include "../common/fake_clock.h"
#include "../common/fake_executor.h"
#include "../common/fake_files.h"
#include "../common/fake_run_store.h"
#include "../common/load_spec.h"

using namespace sluice;
using namespace sluice::engine;
using sluice::spec::Pipeline;
using sluice::testing::FakeClock;
using sluice::testing::FakeExecutor;
using sluice::testing::FakeFiles;
using sluice::testing::FakeRunStore;

namespace {

using sluice::testing::load_spec::Error;
using sluice::testing::load_spec::Load;

const std::string kTwoSteps = "name: demo\nsteps:\n  train: {run: x, outputs: {model: model, acc: value}}\n  report: {run: x}\n";

}  // namespace

// --- the loader ----------------------------------------------------------------

TEST(RunOutputsSpecTest, ARunOutputMayReadAnyStepAndFinallyStepWithoutNeedingIt) {
  Pipeline p = Load(kTwoSteps +
                    "finally:\n  notify: {run: x}\n"
                    "outputs:\n"
                    "  model: ${{ steps.train.outputs.model }}\n"
                    "  summary: \"${{ steps.train.outputs.acc }} by ${{ steps.notify.state }}\"\n"
                    "  label: fixed\n");
  ASSERT_EQ(p.outputs.size(), 3u);
  EXPECT_EQ(p.outputs[0].name, "model");
  EXPECT_EQ(p.outputs[1].name, "summary");
  EXPECT_EQ(p.outputs[2].name, "label");
  EXPECT_EQ(p.outputs[0].pos.line, 8);
  EXPECT_EQ(p.outputs[0].pos.column, 3);
}

TEST(RunOutputsSpecTest, ARunOutputReadingAnUnknownStepSuggestsTheNearestOne) {
  EXPECT_EQ(Error(kTwoSteps + "outputs:\n  model: ${{ steps.trian.outputs.model }}\n"),
            "p.yaml:6:14: unknown step 'trian' (did you mean 'train'?)");
}

TEST(RunOutputsSpecTest, ARunOutputReadingAnOutputTheStepDoesNotDeclareNamesThoseItDoes) {
  EXPECT_EQ(Error(kTwoSteps + "outputs:\n  model: ${{ steps.train.outputs.modle }}\n"),
            "p.yaml:6:14: run output 'model' reads steps.train.outputs.modle, which step 'train' does not declare "
            "(did you mean 'model'?) (it declares model, acc)");
}

TEST(RunOutputsSpecTest, ARunOutputNameMustBeAnIdentifier) {
  EXPECT_EQ(Error(kTwoSteps + "outputs:\n  9lives: x\n"),
            "p.yaml:6:3: run output name '9lives' must match [A-Za-z_][A-Za-z0-9_-]*");
}

TEST(RunOutputsSpecTest, ARunOutputCannotReadItem) {
  EXPECT_EQ(Error(kTwoSteps + "outputs:\n  it: ${{ item }}\n"),
            "p.yaml:6:11: a run output cannot read 'item', which is only defined inside a step with foreach");
}

TEST(RunOutputsSpecTest, ARunOutputCannotCallAStatusFunction) {
  EXPECT_EQ(Error(kTwoSteps + "outputs:\n  ok: ${{ success() }}\n"),
            "p.yaml:6:11: success() has no meaning in a run output, which is rendered once every step is final; "
            "read steps.<id>.state");
}

TEST(RunOutputsSpecTest, ARunOutputCannotReadTheRunStateOfFinallySteps) {
  EXPECT_EQ(Error(kTwoSteps + "outputs:\n  s: ${{ run.state }}\n"),
            "p.yaml:6:10: 'run.state' is only defined in finally steps");
}

TEST(RunOutputsSpecTest, ARunOutputMustBeOneValue) {
  EXPECT_EQ(Error(kTwoSteps + "outputs:\n  m: {a: b}\n"), "p.yaml:6:6: run output 'm' must be a single value");
}

TEST(RunOutputsSpecTest, RunOutputsMustBeAMapping) {
  EXPECT_EQ(Error(kTwoSteps + "outputs: [a]\n"), "p.yaml:5:10: outputs must be a mapping");
}

TEST(RunOutputsSpecTest, ARunOutputMayReadTheOutputOfATemplateCall) {
  Pipeline p = Load(
      "name: demo\n"
      "templates:\n"
      "  fit:\n"
      "    steps:\n"
      "      inner: {run: x, outputs: {m: value}}\n"
      "    outputs: {model: \"${{ steps.inner.outputs.m }}\"}\n"
      "steps:\n"
      "  a: {call: fit}\n"
      "outputs:\n"
      "  model: ${{ steps.a.outputs.model }}\n");
  ASSERT_EQ(p.outputs.size(), 1u);
  // In the pipeline's terms: the step the template's output names.
  ASSERT_NE(p.outputs[0].value.SingleExpression(), nullptr);
  EXPECT_EQ(p.outputs[0].value.SingleExpression()->path, (std::vector<std::string>{"steps", "a.inner", "outputs", "m"}));
}

// --- the engine ----------------------------------------------------------------

namespace {

class RunOutputsEngineTest : public ::testing::Test {
 protected:
  void SetUp() override { files_.MakeDir(dir_); }

  RunState RunSpec(const std::string& yaml) {
    auto p = spec::ParsePipeline("p.yaml", yaml);
    EXPECT_TRUE(p.ok()) << p.status().message();
    pipeline_ = std::move(p.value());
    params_ = *spec::ResolveParams(pipeline_, {});
    plan_ = MakePlan(pipeline_);
    run_id_ = store_.CreateRun();
    EngineOptions o;
    o.workdir = dir_;
    o.log_dir = dir_ + "/logs";
    o.env = &files_;
    Engine e(plan_, params_, run_id_, &store_, &exec_, &clock_, nullptr, o);
    auto r = e.Run();
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : RunState::kPending;
  }
  const std::vector<RunOutputValue>& Outputs() const { return store_.RunOutputs(run_id_); }
  // Each output as "name=value" or "name: none (reason)", for readable failures.
  std::vector<std::string> Shown() const {
    std::vector<std::string> out;
    for (const RunOutputValue& o : Outputs())
      out.push_back(o.value ? o.name + "=" + *o.value + (o.reason.empty() ? "" : " ?" + o.reason)
                            : o.name + ": none (" + o.reason + ")");
    return out;
  }

  const std::string dir_ = "/work/p";
  FakeFiles files_;
  FakeRunStore store_;
  FakeClock clock_;
  FakeExecutor exec_{&clock_, &files_};
  spec::Pipeline pipeline_;
  spec::ParamValues params_;
  Plan plan_;
  int64_t run_id_ = 0;
};

}  // namespace

TEST_F(RunOutputsEngineTest, RunOutputsAreRenderedOnceEveryStepFinallyStepsIncludedIsFinal) {
  exec_.script["a"] = {{.outputs = "x=1\n"}};
  exec_.script["f"] = {{.outputs = "y=2\n"}};
  EXPECT_EQ(RunSpec("name: t\nparams: {n: {type: int, default: 7}}\nsteps:\n  a: {run: x}\n"
                    "finally:\n  f: {run: x}\n"
                    "outputs:\n  x: ${{ steps.a.outputs.x }}\n  y: ${{ steps.f.outputs.y }}\n"
                    "  both: \"${{ steps.a.outputs.x }}-${{ params.n }}-${{ steps.f.state }}\"\n"),
            RunState::kSucceeded);
  EXPECT_EQ(Shown(), (std::vector<std::string>{"x=1", "y=2", "both=1-7-succeeded"}));
}

TEST_F(RunOutputsEngineTest, AnOutputOfAStepThatFailedIsAbsentWithTheReason) {
  exec_.script["a"] = {{.exit_code = 3}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x}\n"
                    "outputs:\n  x: ${{ steps.a.outputs.x }}\n  y: ${{ steps.a.outputs.x ?? 'none' }}\n"),
            RunState::kFailed);
  EXPECT_EQ(Shown(), (std::vector<std::string>{"x: none (${{ steps.a.outputs.x }}: step 'a' has no output 'x' (it failed))", "y=none"}));
}

TEST_F(RunOutputsEngineTest, AnOutputOfAStepThatWasSkippedIsAbsentWithTheReason) {
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x, if: \"${{ false }}\"}\noutputs:\n  x: ${{ steps.a.outputs.x }}\n"),
            RunState::kSucceeded);
  EXPECT_EQ(Shown(), (std::vector<std::string>{"x: none (${{ steps.a.outputs.x }}: step 'a' has no output 'x' (it skipped))"}));
}

TEST_F(RunOutputsEngineTest, ARunOutputOfExactlyTheLimitIsKeptAndOneByteMoreIsAbsent) {
  std::string big(kMaxOutputValue - 1, 'v');
  exec_.script["a"] = {{.outputs = "x=" + big + "\none=1\ntwo=22\n"}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x}\noutputs:\n"
                    "  at: ${{ steps.a.outputs.x }}${{ steps.a.outputs.one }}\n"
                    "  over: ${{ steps.a.outputs.x }}${{ steps.a.outputs.two }}\n"),
            RunState::kSucceeded);
  ASSERT_EQ(Outputs().size(), 2u);
  EXPECT_EQ(Outputs()[0].value, big + "1");
  EXPECT_FALSE(Outputs()[1].value);
  EXPECT_EQ(Outputs()[1].reason,
            "the value is 65537 bytes, over the limit of 65536; read a file's path instead of its content");
}

TEST_F(RunOutputsEngineTest, ARunWithoutOutputsStoresNone) {
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x}\n"), RunState::kSucceeded);
  EXPECT_TRUE(Outputs().empty());
}
