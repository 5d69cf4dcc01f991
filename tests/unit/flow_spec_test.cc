// The spec's run-level flow, as the loader reads it: the run's `timeout`,
// `retry.on`, `steps.X.exit_code` and the `finally:` steps. Errors word for
// word, with their FILE:LINE:COL.
#include <gtest/gtest.h>

#include <algorithm>

#include "engine/plan.h"
#include "runs/verbs.h"
#include "spec/pipeline.h"
#include "../common/load_spec.h"

using sluice::spec::Pipeline;

namespace {

using sluice::testing::load_spec::Error;
using sluice::testing::load_spec::Load;

}  // namespace

// --- the run's timeout -------------------------------------------------------

TEST(FlowSpecTest, ARunTimeoutIsADuration) {
  Pipeline p = Load("name: demo\ntimeout: 1h30m\nsteps:\n  a: {run: x}\n");
  ASSERT_TRUE(p.timeout.has_value());
  EXPECT_EQ(p.timeout->count(), 90 * 60 * 1000);
  EXPECT_FALSE(Load("name: demo\nsteps:\n  a: {run: x}\n").timeout.has_value());
}

TEST(FlowSpecTest, ARunTimeoutOfZeroIsAnError) {
  EXPECT_EQ(Error("name: demo\ntimeout: 0s\nsteps:\n  a: {run: x}\n"),
            "p.yaml:2:10: timeout must be longer than 0 (leave it out for no timeout)");
}

TEST(FlowSpecTest, ABadRunTimeoutIsAnError) {
  EXPECT_EQ(Error("name: demo\ntimeout: soon\nsteps:\n  a: {run: x}\n"),
            "p.yaml:2:10: bad duration 'soon' for timeout (use a number and a unit: 500ms, 10s, 5m, 2h)");
}

// --- retry.on ----------------------------------------------------------------

TEST(FlowSpecTest, RetryOnTakesAListOfExitStatuses) {
  Pipeline p = Load("name: demo\nsteps:\n  a:\n    run: x\n    retry: {limit: 3, on: [137, 143]}\n");
  EXPECT_EQ(p.steps[0].retry.limit, 3);
  EXPECT_EQ(p.steps[0].retry.on_exit_codes, (std::vector<int>{137, 143}));
  EXPECT_FALSE(p.steps[0].retry.on_condition.has_value());
}

TEST(FlowSpecTest, RetryOnTakesAConditionOverTheFailedAttempt) {
  Pipeline p = Load(
      "name: demo\nsteps:\n  a:\n    run: x\n"
      "    retry: {limit: 3, on: '${{ attempt.exit_code == 137 || attempt.timed_out }}'}\n");
  ASSERT_TRUE(p.steps[0].retry.on_condition.has_value());
  Pipeline bare = Load("name: demo\nsteps:\n  a:\n    run: x\n    retry: {limit: 1, on: attempt.signal == 9}\n");
  EXPECT_TRUE(bare.steps[0].retry.on_condition.has_value());
}

TEST(FlowSpecTest, RetryOnFromDefaultsIsInherited) {
  Pipeline p = Load(
      "name: demo\ndefaults:\n  retry: {limit: 2, on: '${{ attempt.timed_out }}'}\nsteps:\n  a: {run: x}\n"
      "  b: {run: x}\n");
  EXPECT_TRUE(p.steps[0].retry.on_condition.has_value());
  EXPECT_TRUE(p.steps[1].retry.on_condition.has_value());
}

TEST(FlowSpecTest, RetryOnExitStatusesOutOfRangeAreErrors) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    run: x\n    retry: {limit: 1, on: [0, 255, 256, oom]}\n"),
            "p.yaml:5:36: each entry of retry on (an exit status) must be a whole number from 0 to 255, not '256'\n"
            "p.yaml:5:41: each entry of retry on (an exit status) must be a number, not 'oom'");
}

TEST(FlowSpecTest, RetryOnAnEmptyListIsAnError) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    run: x\n    retry: {limit: 1, on: []}\n"),
            "p.yaml:5:27: retry on: [] retries nothing; leave 'on' out to retry every failure");
}

TEST(FlowSpecTest, RetryOnAMapIsAnError) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    run: x\n    retry: {limit: 1, on: {code: 1}}\n"),
            "p.yaml:5:27: retry on must be a list of exit statuses ([137, 143]) or a condition "
            "(${{ attempt.timed_out }})");
}

TEST(FlowSpecTest, RetryOnWithAnUnknownAttemptFieldSuggestsTheRightOne) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    run: x\n    retry: {limit: 1, on: '${{ attempt.exit_cod == 1 }}'}\n"),
            "p.yaml:5:32: unknown name 'attempt.exit_cod' (retry on sees attempt.exit_code, attempt.signal, "
            "attempt.timed_out and attempt.reason) (did you mean 'exit_code'?)");
}

TEST(FlowSpecTest, RetryOnCannotReadSteps) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  b: {run: x}\n  a:\n    needs: b\n    run: x\n"
                  "    retry: {limit: 1, on: '${{ steps.b.state == \"failed\" }}'}\n"),
            "p.yaml:7:32: retry on sees attempt, params and env, not 'steps.b.state'");
}

TEST(FlowSpecTest, RetryOnCannotCallAStatusFunction) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    run: x\n    retry: {limit: 1, on: '${{ failure() }}'}\n"),
            "p.yaml:5:32: failure() has no meaning in retry on, which is asked about one failed attempt");
}

TEST(FlowSpecTest, RetryOnInDefaultsIsCheckedOnceAtItsPlace) {
  EXPECT_EQ(Error("name: demo\ndefaults:\n  retry: {limit: 1, on: '${{ attempt.code }}'}\nsteps:\n  a: {run: x}\n"
                  "  b: {run: x}\n"),
            "p.yaml:3:30: unknown name 'attempt.code' (retry on sees attempt.exit_code, attempt.signal, "
            "attempt.timed_out and attempt.reason)");
}

TEST(FlowSpecTest, AttemptOutsideRetryOnIsAnError) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a: {run: 'echo ${{ attempt.exit_code }}'}\n"),
            "p.yaml:3:22: 'attempt' is only defined in retry on (the failed attempt)");
}

// --- steps.X.exit_code -------------------------------------------------------

TEST(FlowSpecTest, AStepMayReadTheExitCodeOfAStepItNeeds) {
  Load("name: demo\nsteps:\n  a: {run: x, continue_on_error: true}\n"
       "  b: {needs: a, if: '${{ steps.a.exit_code == 3 }}', run: x}\n");
}

TEST(FlowSpecTest, ReadingTheExitCodeOfAStepNotNeededIsAnError) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a: {run: x}\n  b: {run: 'echo ${{ steps.a.exit_code }}'}\n"),
            "p.yaml:4:22: step 'b' reads steps.a but does not need it (add 'a' to its needs)");
}

TEST(FlowSpecTest, AnUnknownFieldOfAStepNamesTheThreeThereAre) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a: {run: x}\n  b: {needs: a, run: 'echo ${{ steps.a.exitcode }}'}\n"),
            "p.yaml:4:32: expected steps.a.outputs.<name>, steps.a.state or steps.a.exit_code");
}

// --- finally -----------------------------------------------------------------

TEST(FlowSpecTest, FinallyStepsComeAfterTheStepsAndAreFlagged) {
  Pipeline p = Load(
      "name: demo\nsteps:\n  a: {run: x}\n  b: {needs: a, run: x}\n"
      "finally:\n  notify: {run: x, env: {STATE: '${{ run.state }}', FAILED: '${{ run.failed_steps }}'}}\n"
      "  cleanup: {needs: notify, run: 'echo ${{ steps.b.outputs.x }} ${{ steps.notify.state }}'}\n");
  ASSERT_EQ(p.steps.size(), 4u);
  EXPECT_FALSE(p.steps[1].is_finally);
  EXPECT_EQ(p.steps[2].id, "notify");
  EXPECT_TRUE(p.steps[2].is_finally);
  EXPECT_TRUE(p.steps[3].is_finally);
}

TEST(FlowSpecTest, FinallyStepsTakeTheLayersAfterEveryStep) {
  Pipeline p = Load("name: demo\nsteps:\n  a: {run: x}\n  b: {needs: a, run: x}\n  c: {run: x}\n"
                    "finally:\n  f: {run: x}\n  g: {needs: f, run: x}\n");
  sluice::engine::Plan plan = sluice::engine::MakePlan(p);
  EXPECT_EQ(plan.layer, (std::vector<int>{0, 1, 0, 2, 3}));
  EXPECT_EQ(plan.order, (std::vector<size_t>{0, 2, 1, 3, 4}));
}

TEST(FlowSpecTest, APlanListsEachStepsNeedsInTheirOrderAndItsDependantsInStepOrder) {
  Pipeline p = Load("name: demo\nsteps:\n  a: {run: x}\n  b: {needs: a, run: x}\n  c: {needs: [b, a], run: x}\n"
                    "  d: {needs: b, run: x}\n");
  sluice::engine::Plan plan = sluice::engine::MakePlan(p);
  auto list = [](std::span<const size_t> s) { return std::vector<size_t>(s.begin(), s.end()); };
  EXPECT_EQ(list(plan.needs[0]), std::vector<size_t>{});
  EXPECT_EQ(list(plan.needs[2]), (std::vector<size_t>{1, 0}));
  EXPECT_EQ(list(plan.dependants[0]), (std::vector<size_t>{1, 2}));
  EXPECT_EQ(list(plan.dependants[1]), (std::vector<size_t>{2, 3}));
  EXPECT_EQ(list(plan.dependants[3]), std::vector<size_t>{});
  EXPECT_TRUE(plan.item_needs[2].empty());
  EXPECT_TRUE(plan.item_dependants[0].empty());
}

TEST(FlowSpecTest, AnIdInBothStepsAndFinallyIsAnError) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a: {run: x}\nfinally:\n  a: {run: y}\n"),
            "p.yaml:5:3: step id 'a' is used in both steps and finally");
}

TEST(FlowSpecTest, AStepNeedingAFinallyStepIsAnError) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a: {needs: f, run: x}\nfinally:\n  f: {run: y}\n"),
            "p.yaml:3:14: step 'a' needs 'f', a finally step (finally steps run after every step of steps:)");
}

TEST(FlowSpecTest, AFinallyStepNeedingAStepOfStepsIsAnError) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a: {run: x}\nfinally:\n  f: {needs: a, run: y}\n"),
            "p.yaml:5:14: finally step 'f' needs 'a', a step of steps: (finally steps run after all of them and "
            "may read their outputs without needs)");
}

TEST(FlowSpecTest, ACycleOfFinallyStepsIsAnError) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a: {run: x}\nfinally:\n  f: {needs: g, run: y}\n  g: {needs: f, run: y}\n"),
            "p.yaml:6:14: dependency cycle: f -> g -> f (each step needs the next)");
}

TEST(FlowSpecTest, AFinallyStepReadingAnotherFinallyStepMustNeedIt) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a: {run: x}\nfinally:\n  f: {run: y}\n  g: {run: 'echo ${{ steps.f.state }}'}\n"),
            "p.yaml:6:22: step 'g' reads steps.f but does not need it (add 'f' to its needs)");
}

TEST(FlowSpecTest, RunStateIsOnlyDefinedInFinallySteps) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a: {run: 'echo ${{ run.state }}'}\n"),
            "p.yaml:3:22: 'run.state' is only defined in finally steps");
}

TEST(FlowSpecTest, AnUnknownRunFieldSuggestsTheRightOne) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a: {run: x}\nfinally:\n  f: {run: 'echo ${{ run.failed }}'}\n"),
            "p.yaml:5:22: unknown name 'run.failed' (a run has scheduled_time, interval_start and interval_end, "
            "and in finally steps state and failed_steps) (did you mean 'failed_steps'?)");
}

TEST(FlowSpecTest, AnEmptyFinallyIsAnError) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a: {run: x}\nfinally: {}\n"),
            "p.yaml:4:10: finally must be a mapping of step ids to steps, with at least one step");
}

TEST(FlowRetryTest, ARetryRunsTheFinallyStepsAgainAfterTheStepsItResets) {
  Pipeline p = Load("name: demo\nsteps:\n  a: {run: x}\n  b: {run: x}\nfinally:\n  f: {run: x}\n");
  std::vector<sluice::engine::StepRecord> records = {
      {.step_id = "a", .state = sluice::engine::StepState::kSucceeded},
      {.step_id = "b", .state = sluice::engine::StepState::kFailed},
      {.step_id = "f", .state = sluice::engine::StepState::kSucceeded}};
  sluice::runs::RetryPlan plan = sluice::runs::PlanRetry(p, records, "", {});
  std::sort(plan.rerun.begin(), plan.rerun.end());
  EXPECT_EQ(plan.rerun, (std::vector<std::string>{"f"}));
  EXPECT_EQ(plan.failed_items, (std::vector<std::string>{"b"}));
}

TEST(FlowRetryTest, ReloadSeesAChangedFinallyStep) {
  Pipeline now = Load("name: demo\nsteps:\n  a: {run: x}\nfinally:\n  f: {run: y}\n");
  EXPECT_EQ(sluice::runs::ChangedSteps("name: demo\nsteps:\n  a: {run: x}\nfinally:\n  f: {run: x}\n", now),
            (std::vector<std::string>{"f"}));
}
