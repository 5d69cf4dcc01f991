// The run-level flow in the engine, with a scripted executor and a fake
// clock (no process, no sleep): the run's timeout, retry.on,
// steps.X.exit_code and finally steps. Argo's examples retry-conditional,
// exit-handlers and timeouts-workflow are re-told here in Sluice's terms.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include "engine/attempt_end.h"
#include "engine/engine.h"
#include "spec/pipeline.h"

#include "../common/fake_clock.h"
#include "../common/fake_executor.h"
#include "../common/fake_files.h"
#include "../common/fake_run_store.h"

using namespace sluice;
using namespace sluice::engine;
using namespace std::chrono_literals;
using sluice::testing::FakeClock;
using sluice::testing::FakeExecutor;
using sluice::testing::FakeFiles;
using sluice::testing::FakeRunStore;

namespace {

// Calls `act` with each event as the engine emits it (to cancel mid-run).
class Hook : public Observer {
 public:
  std::function<void(const Event&)> act;
  void OnEvent(const Event& e) override {
    if (act) act(e);
  }
};

class FlowEngineTest : public ::testing::Test {
 protected:
  void SetUp() override { files_.MakeDir(dir_); }

  // Loads `yaml` and runs it to the end; returns the run's state.
  // `started_ms`: when the run first started (a resume), 0 for now.
  RunState RunSpec(const std::string& yaml, int64_t started_ms = 0, std::vector<StepRecord> resume = {}) {
    auto p = spec::ParsePipeline("p.yaml", yaml);
    EXPECT_TRUE(p.ok()) << p.status().message();
    pipeline_ = std::move(p.value());
    params_ = *spec::ResolveParams(pipeline_, {});
    plan_ = MakePlan(pipeline_);
    if (run_id_ == 0) run_id_ = store_.CreateRun();
    EngineOptions o;
    o.jobs = 2;
    o.grace = 10s;
    o.workdir = dir_;
    o.log_dir = dir_ + "/logs";
    o.env = &files_;
    o.started_ms = started_ms;
    Engine e(plan_, params_, run_id_, &store_, &exec_, &clock_, &hook_, o, std::move(resume));
    engine_ = &e;
    auto r = e.Run();
    engine_ = nullptr;
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : RunState::kPending;
  }
  StepRecord Step(const std::string& id, int item = -1) {
    for (const StepRecord& r : store_.LoadSteps(run_id_))
      if (r.step_id == id && r.item == item) return r;
    ADD_FAILURE() << "no record of " << id;
    return {};
  }
  std::vector<std::string> Order() const {
    std::vector<std::string> out;
    for (auto& [label, t] : exec_.starts) out.push_back(label);
    return out;
  }
  // The value of variable `name` the last attempt of `label` got.
  std::string EnvOf(const std::string& label, const std::string& name) {
    for (const std::string& kv : exec_.last_request[label].env)
      if (kv.rfind(name + "=", 0) == 0) return kv.substr(name.size() + 1);
    ADD_FAILURE() << label << " got no " << name;
    return "";
  }
  // Cancels the run (hard: at once) when `label` starts.
  void CancelWhenStarted(const std::string& label, bool hard) {
    hook_.act = [this, label, hard](const Event& e) {
      if (e.kind == Event::Kind::kStarted && e.step == label && engine_) engine_->RequestCancel(hard);
    };
  }

  const std::string dir_ = "/work/p";
  FakeFiles files_;
  FakeRunStore store_;
  FakeClock clock_;
  FakeExecutor exec_{&clock_, &files_};
  Hook hook_;
  Engine* engine_ = nullptr;
  spec::Pipeline pipeline_;
  spec::ParamValues params_;
  Plan plan_;
  int64_t run_id_ = 0;
};

}  // namespace

// --- the run's timeout (Argo's activeDeadlineSeconds, timeouts-workflow) ----

TEST_F(FlowEngineTest, TheRunTimeoutStopsRunningStepsAndStartsNoOthersAndFailsTheRun) {
  exec_.script["a"] = {{.duration = 1h}};
  exec_.script["b"] = {{.duration = 1h}};
  EXPECT_EQ(RunSpec("name: t\ntimeout: 5s\nsteps:\n  a: {run: x}\n  b: {run: x}\n  c: {run: x}\n"
                    "  d: {needs: a, run: x}\n"),
            RunState::kFailed);
  EXPECT_EQ(clock_.Seconds(), 5000);
  EXPECT_EQ(exec_.stops, (std::vector<std::string>{"a TERM", "b TERM"}));
  EXPECT_EQ(Order(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(Step("a").state, StepState::kFailed);
  EXPECT_EQ(Step("a").reason, "the run's timeout of 5s passed");
  EXPECT_EQ(Step("c").state, StepState::kCancelled);  // queued behind the two slots
  EXPECT_EQ(Step("c").reason, "not started: the run's timeout of 5s passed");
  EXPECT_EQ(Step("d").state, StepState::kCancelled);
  EXPECT_EQ(Step("d").reason, "not started: the run's timeout of 5s passed");
  EXPECT_EQ(store_.GetRunState(run_id_), RunState::kFailed);
}

TEST_F(FlowEngineTest, TheRunTimeoutStartsNoItemHeldBackByMaxParallel) {
  exec_.script["shard[0]"] = {{.duration = 1h}};
  EXPECT_EQ(RunSpec("name: t\ntimeout: 5s\nsteps:\n  shard: {foreach: [a, b, c], max_parallel: 1, run: x}\n"),
            RunState::kFailed);
  EXPECT_EQ(Order(), (std::vector<std::string>{"shard[0]"}));
  EXPECT_EQ(Step("shard", 0).reason, "the run's timeout of 5s passed");
  for (int item : {1, 2}) {
    EXPECT_EQ(Step("shard", item).state, StepState::kCancelled) << item;
    EXPECT_EQ(Step("shard", item).reason, "not started: the run's timeout of 5s passed") << item;
  }
}

TEST_F(FlowEngineTest, TheRunTimeoutKillsAStepThatIgnoresSigtermAfterTheGrace) {
  exec_.script["a"] = {{.duration = 1h, .ignores_sigterm = true}};
  EXPECT_EQ(RunSpec("name: t\ntimeout: 5s\nsteps:\n  a: {run: x}\n"), RunState::kFailed);
  EXPECT_EQ(exec_.stops, (std::vector<std::string>{"a TERM", "a KILL"}));
  EXPECT_EQ(clock_.Seconds(), 15000);
  EXPECT_EQ(Step("a").reason, "the run's timeout of 5s passed (SIGKILL after the grace period)");
}

TEST_F(FlowEngineTest, AStepEndingExactlyAtTheRunTimeoutEndsInTime) {
  exec_.script["a"] = {{.duration = 5s}};
  EXPECT_EQ(RunSpec("name: t\ntimeout: 5s\nsteps:\n  a: {run: x}\n"), RunState::kSucceeded);
  EXPECT_TRUE(exec_.stops.empty());  // its end is taken before the deadline's timer
}

TEST_F(FlowEngineTest, AStepEndingOneMillisecondPastTheRunTimeoutIsStopped) {
  exec_.script["a"] = {{.duration = 5001ms}};
  EXPECT_EQ(RunSpec("name: t\ntimeout: 5s\nsteps:\n  a: {run: x}\n"), RunState::kFailed);
  EXPECT_EQ(exec_.stops, (std::vector<std::string>{"a TERM"}));
}

TEST_F(FlowEngineTest, AStepWaitingToRetryWhenTheRunTimeoutPassesFailsWithItsFailure) {
  exec_.script["a"] = {{.exit_code = 3}};
  EXPECT_EQ(RunSpec("name: t\ntimeout: 5s\nsteps:\n  a: {run: x, retry: {limit: 3, backoff: {initial: 1m}}}\n"),
            RunState::kFailed);
  EXPECT_EQ(Step("a").state, StepState::kFailed);
  EXPECT_EQ(Step("a").reason, "exit code 3; not retried: the run's timeout of 5s passed");
  EXPECT_EQ(Step("a").attempts, 1);
}

TEST_F(FlowEngineTest, ResumingAfterTheRunTimeoutFailsTheRunAtOnce) {
  int64_t started = clock_.WallMs() - 6000;  // the run started 6 s ago; its timeout is 5 s
  EXPECT_EQ(RunSpec("name: t\ntimeout: 5s\nsteps:\n  a: {run: x}\n  b: {needs: a, run: x}\n", started),
            RunState::kFailed);
  EXPECT_TRUE(exec_.starts.empty());
  EXPECT_EQ(clock_.Seconds(), 0);
  EXPECT_EQ(Step("a").reason, "not started: the run's timeout of 5s passed");
  EXPECT_EQ(Step("b").state, StepState::kCancelled);
}

TEST_F(FlowEngineTest, ResumingBeforeTheRunTimeoutCountsFromTheStoredStart) {
  exec_.script["a"] = {{.duration = 1h}};
  EXPECT_EQ(RunSpec("name: t\ntimeout: 5s\nsteps:\n  a: {run: x}\n", clock_.WallMs() - 3000), RunState::kFailed);
  EXPECT_EQ(clock_.Seconds(), 2000);
  EXPECT_EQ(exec_.stops, (std::vector<std::string>{"a TERM"}));
}

TEST_F(FlowEngineTest, TheRunTimeoutDoesNotStopFinallyStepsOnceTheStepsAreDone) {
  exec_.script["notify"] = {{.duration = 1h}};
  EXPECT_EQ(RunSpec("name: t\ntimeout: 5s\nsteps:\n  a: {run: x}\nfinally:\n  notify: {run: x}\n"),
            RunState::kSucceeded);
  EXPECT_TRUE(exec_.stops.empty());
  EXPECT_EQ(Step("notify").state, StepState::kSucceeded);
}

// --- retry.on (Argo's retryStrategy.expression, retry-conditional) ---------

TEST_F(FlowEngineTest, RetryOnAConditionRetriesWhileItHoldsAndNoMore) {
  // retry-conditional: retried while the exit code is above 1.
  exec_.script["a"] = {{.exit_code = 3}, {.exit_code = 2}, {.exit_code = 1}, {.exit_code = 0}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a:\n    run: x\n"
                    "    retry: {limit: 10, on: '${{ attempt.exit_code > 1 }}', backoff: {initial: 1s}}\n"),
            RunState::kFailed);
  EXPECT_EQ(Step("a").attempts, 3);
  EXPECT_EQ(Step("a").reason, "exit code 1; not retried: retry on ${{ attempt.exit_code > 1 }} is false");
}

TEST_F(FlowEngineTest, RetryOnAListRetriesOnlyTheExitStatusesItNames) {
  exec_.script["a"] = {{.exit_code = 143}, {.exit_code = 1}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x, retry: {limit: 3, on: [137, 143]}}\n"), RunState::kFailed);
  EXPECT_EQ(Step("a").attempts, 2);
  EXPECT_EQ(Step("a").reason, "exit code 1; not retried: retry on [137, 143] does not match exit status 1");
}

TEST_F(FlowEngineTest, RetryOnAListMatchesADeathBySignalAs128PlusItsNumber) {
  exec_.script["a"] = {{.duration = 1h}, {.duration = 1h}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x, timeout: 1s, retry: {limit: 1, on: [143]}}\n"), RunState::kFailed);
  EXPECT_EQ(Step("a").attempts, 2);  // SIGTERM at the timeout: status 143, retried until the limit
  EXPECT_EQ(Step("a").reason, "timed out after 1.0s");
}

TEST_F(FlowEngineTest, RetryOnSeesTheSignalAndTheTimeoutOfTheFailedAttempt) {
  exec_.script["a"] = {{.duration = 1h}, {.exit_code = 4}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a:\n    run: x\n    timeout: 1s\n"
                    "    retry: {limit: 5, on: '${{ attempt.timed_out && attempt.signal == 15 && "
                    "attempt.exit_code == null }}'}\n"),
            RunState::kFailed);
  EXPECT_EQ(Step("a").attempts, 2);
  EXPECT_EQ(Step("a").reason,
            "exit code 4; not retried: retry on ${{ attempt.timed_out && attempt.signal == 15 && "
            "attempt.exit_code == null }} is false");
}

TEST_F(FlowEngineTest, RetryOnMayReadTheReasonAndParams) {
  exec_.script["a"] = {{.exit_code = 2}, {.exit_code = 2}};
  EXPECT_EQ(RunSpec("name: t\nparams:\n  retry_twos: {type: bool, default: true}\nsteps:\n  a:\n    run: x\n"
                    "    retry: {limit: 1, on: \"${{ params.retry_twos && attempt.reason == 'exit code 2' }}\"}\n"),
            RunState::kFailed);
  EXPECT_EQ(Step("a").attempts, 2);
  EXPECT_EQ(Step("a").reason, "exit code 2");  // the limit ended it, not the condition
}

TEST_F(FlowEngineTest, RetryOnThatCannotBeEvaluatedEndsTheRetriesWithTheReason) {
  exec_.script["a"] = {{.exit_code = 2}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x, retry: {limit: 3, on: '${{ attempt.exit_code < \"two\" }}'}}\n"),
            RunState::kFailed);
  EXPECT_EQ(Step("a").attempts, 1);
  EXPECT_EQ(Step("a").reason.rfind("exit code 2; not retried: retry on: ", 0), 0u) << Step("a").reason;
}

TEST_F(FlowEngineTest, AStepWithoutRetryOnRetriesEveryFailure) {
  exec_.script["a"] = {{.exit_code = 1}, {.exit_code = 200}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x, retry: 2}\n"), RunState::kSucceeded);
  EXPECT_EQ(Step("a").attempts, 3);
}

// --- steps.X.exit_code --------------------------------------------------------

TEST_F(FlowEngineTest, AStepReadsTheExitCodeOfTheStepItNeeds) {
  exec_.script["a"] = {{.exit_code = 3}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x, continue_on_error: true}\n"
                    "  b: {needs: a, if: '${{ steps.a.exit_code == 3 }}', run: [echo, '${{ steps.a.exit_code }}']}\n"
                    "  c: {needs: a, if: '${{ steps.a.exit_code == 0 }}', run: x}\n"),
            RunState::kSucceeded);
  EXPECT_EQ(exec_.last_request["b"].argv, (std::vector<std::string>{"echo", "3"}));
  EXPECT_EQ(Step("c").state, StepState::kSkipped);
}

TEST_F(FlowEngineTest, TheExitCodeOfAStepASignalEndedIsNull) {
  exec_.script["a"] = {{.duration = 1h}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x, timeout: 1s}\n"
                    "  b: {needs: a, if: '${{ always() && steps.a.exit_code == null }}', run: x}\n"),
            RunState::kFailed);
  EXPECT_EQ(Step("b").state, StepState::kSucceeded);
}

TEST_F(FlowEngineTest, TheExitCodeOfAStepThatNeverStartedIsNull) {
  exec_.script["a"] = {{.exit_code = 127}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: [nope], continue_on_error: true}\n"
                    "  b: {needs: a, run: [echo, '${{ toJSON(steps.a.exit_code) }}']}\n"),
            RunState::kSucceeded);
  EXPECT_EQ(exec_.last_request["b"].argv, (std::vector<std::string>{"echo", "null"}));
}

TEST_F(FlowEngineTest, TheExitCodeOfAForeachStepIsTheListOfItsItemsInItemOrder) {
  exec_.script["shard[1]"] = {{.exit_code = 7}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  shard: {foreach: [a, b, c], run: x, continue_on_error: true}\n"
                    "  b: {needs: shard, run: [echo, '${{ steps.shard.exit_code }}']}\n"),
            RunState::kSucceeded);
  EXPECT_EQ(exec_.last_request["b"].argv, (std::vector<std::string>{"echo", "[0,7,0]"}));
}

TEST_F(FlowEngineTest, TheExitCodeIsTheLastAttempts) {
  exec_.script["a"] = {{.exit_code = 5}, {.exit_code = 0}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x, retry: 1}\n  b: {needs: a, run: [echo, '${{ steps.a.exit_code }}']}\n"),
            RunState::kSucceeded);
  EXPECT_EQ(exec_.last_request["b"].argv, (std::vector<std::string>{"echo", "0"}));
}

// --- finally (Argo's onExit, exit-handlers) -----------------------------------

const char* kExitHandlers =
    "name: t\nsteps:\n  a: {run: x}\n  b: {needs: a, run: x}\n"
    "finally:\n"
    "  notify: {run: x, env: {STATE: '${{ run.state }}', FAILED: '${{ run.failed_steps }}'}}\n"
    "  celebrate: {needs: notify, if: \"${{ run.state == 'succeeded' }}\", run: x}\n"
    "  cry: {needs: notify, if: \"${{ run.state != 'succeeded' }}\", run: x}\n";

TEST_F(FlowEngineTest, FinallyStepsRunAfterEveryStepOfASucceededRun) {
  EXPECT_EQ(RunSpec(kExitHandlers), RunState::kSucceeded);
  EXPECT_EQ(Order(), (std::vector<std::string>{"a", "b", "notify", "celebrate"}));
  EXPECT_EQ(EnvOf("notify", "STATE"), "succeeded");
  EXPECT_EQ(EnvOf("notify", "FAILED"), "[]");
  EXPECT_EQ(Step("cry").state, StepState::kSkipped);
}

TEST_F(FlowEngineTest, FinallyStepsRunAfterAFailureAndSeeWhatFailed) {
  exec_.script["a"] = {{.exit_code = 1}};
  EXPECT_EQ(RunSpec(kExitHandlers), RunState::kFailed);
  EXPECT_EQ(Order(), (std::vector<std::string>{"a", "notify", "cry"}));
  EXPECT_EQ(EnvOf("notify", "STATE"), "failed");
  EXPECT_EQ(EnvOf("notify", "FAILED"), "[\"a\"]");
  EXPECT_EQ(Step("b").state, StepState::kSkipped);
  EXPECT_EQ(Step("notify").state, StepState::kSucceeded);
}

TEST_F(FlowEngineTest, AFailingFinallyStepFailsASucceededRun) {
  exec_.script["notify"] = {{.exit_code = 1}};
  EXPECT_EQ(RunSpec(kExitHandlers), RunState::kFailed);
  EXPECT_EQ(Step("celebrate").state, StepState::kSkipped);  // its need failed
  EXPECT_EQ(Step("cry").state, StepState::kSkipped);
}

TEST_F(FlowEngineTest, AFinallyStepWithContinueOnErrorLeavesTheRunSucceeded) {
  exec_.script["f"] = {{.exit_code = 1}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x}\nfinally:\n  f: {run: x, continue_on_error: true}\n"),
            RunState::kSucceeded);
}

TEST_F(FlowEngineTest, ACancelStopsTheStepsThenRunsTheFinallySteps) {
  exec_.script["a"] = {{.duration = 1h}};
  CancelWhenStarted("a", /*hard=*/false);
  EXPECT_EQ(RunSpec(kExitHandlers), RunState::kCancelled);
  EXPECT_EQ(exec_.stops, (std::vector<std::string>{"a TERM"}));
  EXPECT_EQ(Order(), (std::vector<std::string>{"a", "notify", "cry"}));
  EXPECT_EQ(EnvOf("notify", "STATE"), "cancelled");
  EXPECT_EQ(Step("a").state, StepState::kCancelled);
  EXPECT_EQ(Step("b").state, StepState::kCancelled);
}

TEST_F(FlowEngineTest, ARunCancelledStaysCancelledWhenAFinallyStepFails) {
  exec_.script["a"] = {{.duration = 1h}};
  exec_.script["notify"] = {{.exit_code = 1}};
  CancelWhenStarted("a", /*hard=*/false);
  EXPECT_EQ(RunSpec(kExitHandlers), RunState::kCancelled);
  EXPECT_EQ(Step("notify").state, StepState::kFailed);
}

TEST_F(FlowEngineTest, ACancelWhileFinallyStepsRunLetsThemFinish) {
  exec_.script["notify"] = {{.duration = 1h}};
  CancelWhenStarted("notify", /*hard=*/false);
  EXPECT_EQ(RunSpec(kExitHandlers), RunState::kCancelled);
  EXPECT_TRUE(exec_.stops.empty());
  EXPECT_EQ(Step("notify").state, StepState::kSucceeded);
}

TEST_F(FlowEngineTest, FinallyStepsKeepTheirRetriesAfterACancel) {
  exec_.script["a"] = {{.duration = 1h}};
  exec_.script["notify"] = {{.exit_code = 1}};
  CancelWhenStarted("a", /*hard=*/false);
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x}\nfinally:\n  notify: {run: x, retry: 1}\n"),
            RunState::kCancelled);
  EXPECT_EQ(Step("notify").attempts, 2);
  EXPECT_EQ(Step("notify").state, StepState::kSucceeded);
}

TEST_F(FlowEngineTest, ASecondCancelStopsTheFinallyStepsToo) {
  exec_.script["notify"] = {{.duration = 1h}};
  CancelWhenStarted("notify", /*hard=*/true);
  EXPECT_EQ(RunSpec(kExitHandlers), RunState::kCancelled);
  EXPECT_EQ(exec_.stops, (std::vector<std::string>{"notify KILL"}));
  EXPECT_EQ(Step("notify").state, StepState::kCancelled);
  EXPECT_EQ(Step("celebrate").state, StepState::kCancelled);
  EXPECT_EQ(Step("cry").state, StepState::kCancelled);
}

TEST_F(FlowEngineTest, AHardCancelRunsNoFinallyStep) {
  exec_.script["a"] = {{.duration = 1h}};
  CancelWhenStarted("a", /*hard=*/true);
  EXPECT_EQ(RunSpec(kExitHandlers), RunState::kCancelled);
  EXPECT_EQ(Order(), (std::vector<std::string>{"a"}));
  EXPECT_EQ(Step("notify").state, StepState::kCancelled);
}

TEST_F(FlowEngineTest, FinallyStepsRunAfterTheRunTimeoutAndSeeTheRunFailed) {
  exec_.script["a"] = {{.duration = 1h}};
  EXPECT_EQ(RunSpec(std::string("timeout: 5s\n") + kExitHandlers), RunState::kFailed);
  EXPECT_EQ(Order(), (std::vector<std::string>{"a", "notify", "cry"}));
  EXPECT_EQ(EnvOf("notify", "STATE"), "failed");
  EXPECT_EQ(EnvOf("notify", "FAILED"), "[\"a\"]");
}

TEST_F(FlowEngineTest, AFinallyStepReadsOutputsOfTheSteps) {
  exec_.script["a"] = {{.outputs = "acc=0.93\n"}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x}\nfinally:\n  f: {run: [echo, '${{ steps.a.outputs.acc }}']}\n"),
            RunState::kSucceeded);
  EXPECT_EQ(exec_.last_request["f"].argv, (std::vector<std::string>{"echo", "0.93"}));
}

TEST_F(FlowEngineTest, AFinallyStepReadingAnOutputAFailedStepDidNotSetFails) {
  exec_.script["a"] = {{.exit_code = 1}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x}\nfinally:\n  f: {run: [echo, '${{ steps.a.outputs.acc }}']}\n"),
            RunState::kFailed);
  EXPECT_EQ(Step("f").state, StepState::kFailed);
  EXPECT_EQ(Step("f").reason, "run: ${{ steps.a.outputs.acc }}: step 'a' has no output 'acc' (it failed)");
}

TEST_F(FlowEngineTest, FinallyStepsWaitForEveryStepNotOnlyTheFirstToFinish) {
  exec_.script["slow"] = {{.duration = 10s}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  fast: {run: x}\n  slow: {run: x}\nfinally:\n  f: {run: x}\n"),
            RunState::kSucceeded);
  EXPECT_EQ(exec_.starts.back(), (std::pair<std::string, int64_t>{"f", 10000}));
}

TEST_F(FlowEngineTest, ResumeRunsTheFinallyStepsThatDidNotFinish) {
  std::vector<StepRecord> resume = {{.step_id = "a", .state = StepState::kSucceeded, .tries = 1, .attempts = 1},
                                    {.step_id = "f", .state = StepState::kSucceeded, .tries = 1, .attempts = 1}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x}\nfinally:\n  f: {run: x}\n  g: {run: x}\n", 0, resume),
            RunState::kSucceeded);
  EXPECT_EQ(Order(), (std::vector<std::string>{"g"}));
}

TEST(RunTimeoutReasonTest, NamesTheTimeoutAsASpecWritesIt) {
  EXPECT_EQ(RunTimeoutReason(2h), "the run's timeout of 2h passed");
  EXPECT_EQ(RunTimeoutReason(90min), "the run's timeout of 1h30m passed");
  EXPECT_EQ(RunTimeoutReason(500ms), "the run's timeout of 500ms passed");
  EXPECT_EQ(RunTimeoutReason(std::chrono::hours(25) + 1500ms), "the run's timeout of 1d1h1s500ms passed");
}

// Twenty items of one step wait for a pool of one slot, each running a
// second. Each asks the store once when it becomes ready; after that, each
// poll (every 250 ms: 80 in the 20 s) asks once for the pool, plus once per
// item when it gets its slot; not once per waiting item (about 800).
TEST_F(FlowEngineTest, ItemsWaitingForAFullPoolAskTheStoreOncePerPollNotOncePerItem) {
  store_.pools["gpu"] = 1;
  std::string items;
  for (int k = 0; k < 20; ++k) items += (k ? ", " : "") + std::to_string(k);
  EXPECT_EQ(RunSpec("name: p\nsteps:\n  fit: {run: \"true\", pool: gpu, foreach: [" + items + "]}\n"), RunState::kSucceeded);
  EXPECT_EQ(Order().size(), 20u);
  EXPECT_LE(store_.lease_calls, 20 + 80 + 20);
}

// --- services (specs/pipeline.md "Services") ----------------------------------

namespace {

const char* kService =
    "name: t\nsteps:\n  db: {run: x, service: {timeout: 2s}}\n  use: {needs: db, run: [y, \"${{ steps.db.port }}\"]}\n";

}  // namespace

TEST_F(FlowEngineTest, AServiceReadyAtItsTimeoutServesItsDependantAndIsStoppedAfterIt) {
  exec_.ready_after["db"] = 2s;  // ready exactly at its timeout
  exec_.script["db"] = {{.duration = 1h}};
  EXPECT_EQ(RunSpec(kService), RunState::kSucceeded);
  EXPECT_EQ(Order(), (std::vector<std::string>{"db", "use"}));
  EXPECT_EQ(exec_.starts[1].second, 2000);  // use starts when db is ready
  EXPECT_EQ(exec_.last_request["use"].argv[1], EnvOf("db", "SLUICE_SERVICE_PORT"));
  EXPECT_EQ(exec_.stops, (std::vector<std::string>{"db TERM"}));
  EXPECT_EQ(clock_.Seconds(), 3000);  // stopped as use ended, after its one second
  EXPECT_EQ(Step("db").state, StepState::kSucceeded);
  EXPECT_EQ(Step("db").reason, "stopped once the steps that need it were final");
}

TEST_F(FlowEngineTest, AServiceReadyAMillisecondPastItsTimeoutFailsAndItsDependantIsSkipped) {
  exec_.ready_after["db"] = 2001ms;
  exec_.script["db"] = {{.duration = 1h}};
  EXPECT_EQ(RunSpec(kService), RunState::kFailed);
  EXPECT_EQ(Order(), (std::vector<std::string>{"db"}));
  EXPECT_EQ(Step("db").state, StepState::kFailed);
  EXPECT_EQ(Step("db").reason, "not ready after 2s");
  EXPECT_EQ(Step("use").state, StepState::kSkipped);
  EXPECT_EQ(clock_.Seconds(), 2000);
}

TEST_F(FlowEngineTest, AServiceIsCheckedEveryTwoHundredMilliseconds) {
  exec_.ready_after["db"] = 1ms;  // missed by the check at its start: the next one sees it
  exec_.script["db"] = {{.duration = 1h}};
  EXPECT_EQ(RunSpec(kService), RunState::kSucceeded);
  EXPECT_EQ(exec_.starts[1].second, 200);
}

TEST_F(FlowEngineTest, AServiceNotReadyIsRetriedUnderItsRetryAndGetsANewPort) {
  exec_.ready_after["db"] = 1h;
  exec_.script["db"] = {{.duration = 1h}, {.duration = 1h}};
  std::string yaml = "name: t\nsteps:\n  db: {run: x, retry: 1, service: {timeout: 2s}}\n  use: {needs: db, run: y}\n";
  EXPECT_EQ(RunSpec(yaml), RunState::kFailed);
  EXPECT_EQ(Order(), (std::vector<std::string>{"db", "db"}));
  EXPECT_EQ(EnvOf("db", "SLUICE_SERVICE_PORT"), "40001");
}

TEST_F(FlowEngineTest, AServiceHoldsNoJobSlot) {
  exec_.script["db"] = {{.duration = 1h}};
  std::string yaml = "name: t\nsteps:\n  db: {run: x, service: true}\n  a: {needs: db, run: y}\n  b: {needs: db, run: y}\n";
  EXPECT_EQ(RunSpec(yaml), RunState::kSucceeded);
  EXPECT_EQ(exec_.max_running, 3u);  // db, a and b: jobs 2 bound a and b only
}

TEST_F(FlowEngineTest, AServiceThatExitsWhileServingFailsAndIsNotRetried) {
  exec_.script["db"] = {{.exit_code = 3, .duration = 500ms}};
  exec_.script["use"] = {{.duration = 2s}};
  std::string yaml = "name: t\nsteps:\n  db: {run: x, retry: 3, service: true}\n  use: {needs: db, run: y}\n";
  EXPECT_EQ(RunSpec(yaml), RunState::kFailed);
  EXPECT_EQ(Order(), (std::vector<std::string>{"db", "use"}));
  EXPECT_EQ(Step("db").reason, "service exited with 3 before its dependants finished");
  EXPECT_EQ(Step("use").state, StepState::kSucceeded);
}
