// The engine with a scripted executor, a fake clock, files and environment
// in memory and a journal in memory: no process, no sleep, no SQLite, no
// temp folder. (The SQLite journal has its own tests in store_test.cc.)
#include <gtest/gtest.h>

#include <deque>

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

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    files_ = FakeFiles();
    files_.MakeDir(dir_);
    fake_store_ = FakeRunStore();
  }

  // Loads `yaml` and runs it to the end; returns the run's state.
  // `cancel`: 1 cancels the run as it starts, 2 cancels it hard.
  RunState RunSpec(const std::string& yaml, int jobs = 2, std::vector<StepRecord> resume = {}, int cancel = 0) {
    auto p = spec::ParsePipeline("p.yaml", yaml);
    EXPECT_TRUE(p.ok()) << p.status().message();
    pipeline_ = std::move(p.value());
    auto params = spec::ResolveParams(pipeline_, {});
    EXPECT_TRUE(params.ok());
    params_ = *params;
    plan_ = MakePlan(pipeline_);
    if (run_id_ == 0) run_id_ = store_->CreateRun();
    EngineOptions o;
    o.jobs = jobs;
    o.grace = 10s;
    o.workdir = dir_;
    o.log_dir = dir_ + "/logs";
    o.env = &files_;
    Engine e(plan_, params_, run_id_, store_, &exec_, &clock_, nullptr, o, std::move(resume));
    if (cancel) e.RequestCancel(cancel == 2);
    auto r = e.Run();
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : RunState::kPending;
  }
  StepRecord Step(const std::string& id, int item = -1) {
    for (const StepRecord& r : store_->LoadSteps(run_id_))
      if (r.step_id == id && r.item == item) return r;
    ADD_FAILURE() << "no record of " << id;
    return {};
  }
  // Records `n` attempts of `step` (or its item) that a dead orchestrator
  // left running, then takes the run over as `sluice resume` does: they
  // become lost. The step's record says it is running, after `n` tries.
  StepRecord LoseAttempts(const std::string& step, int n, int item = -1) {
    if (run_id_ == 0) run_id_ = store_->CreateRun();
    StepRecord rec{.step_id = step, .item = item, .state = StepState::kRunning, .tries = n, .attempts = n};
    for (int k = 1; k <= n; ++k) {
      AttemptRecord a;
      a.run_id = run_id_;
      a.step_id = step;
      a.item = item;
      a.number = k;
      a.state = StepState::kRunning;
      EXPECT_TRUE(store_->BeginAttempt(&a, rec).ok());
      EXPECT_TRUE(store_->Flush().ok());
      store_->TakeOverRun(run_id_);
    }
    return rec;
  }
  // Runs 1,000 steps `body` that end without running, while every read of
  // the clock takes 1 ms and a cancel has been asked for in the store: the
  // engine should see it at its first poll (250 ms), well before the end.
  RunState RunStretchWithACancelAsked(const std::string& body) {
    run_id_ = store_->CreateRun();
    store_->RequestCancel(run_id_);
    clock_.tick = 1ms;
    std::string yaml = "name: t\nsteps:\n";
    for (int k = 0; k < 1000; ++k) yaml += "  s" + std::to_string(k) + ": " + body + "\n";
    return RunSpec(yaml);
  }
  std::vector<std::string> Order() const {
    std::vector<std::string> out;
    for (auto& [label, t] : exec_.starts) out.push_back(label);
    return out;
  }

  const std::string dir_ = "/work/p";  // the spec's folder, in files_
  FakeFiles files_;
  FakeRunStore fake_store_;
  FakeRunStore* store_ = &fake_store_;  // the journal the engine writes
  FakeClock clock_;
  FakeExecutor exec_{&clock_, &files_};
  spec::Pipeline pipeline_;
  spec::ParamValues params_;
  Plan plan_;
  int64_t run_id_ = 0;
};

}  // namespace

TEST_F(EngineTest, RunsStepsAfterTheirNeeds) {
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  c: {needs: [b], run: x}\n  b: {needs: [a], run: x}\n  a: {run: x}\n", 4),
            RunState::kSucceeded);
  EXPECT_EQ(Order(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(clock_.Seconds(), 3000);
}

TEST_F(EngineTest, JobsBoundHowManyStepsRunAtOnce) {
  std::string yaml = "name: t\nsteps:\n";
  for (int i = 0; i < 10; ++i) yaml += "  s" + std::to_string(i) + ": {run: x}\n";
  EXPECT_EQ(RunSpec(yaml, 3), RunState::kSucceeded);
  EXPECT_EQ(exec_.max_running, 3u);
  EXPECT_EQ(clock_.Seconds(), 4000);  // ceil(10 / 3) rounds of one second
}

TEST_F(EngineTest, AStepTakesAsManySlotsAsItsCpus) {
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  big: {run: x, resources: {cpu: 2}}\n  a: {run: x}\n  b: {run: x}\n", 2),
            RunState::kSucceeded);
  EXPECT_EQ(exec_.max_running, 2u);
  EXPECT_EQ(exec_.starts[0].first, "big");
  EXPECT_EQ(exec_.starts[1].second, 1000);  // a waits for big's two slots to free
}

TEST_F(EngineTest, AFailedStepSkipsItsDependantsAndFailsTheRun) {
  exec_.script["a"] = {{.exit_code = 3}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x}\n  b: {needs: [a], run: x}\n  c: {needs: [b], run: x}\n"),
            RunState::kFailed);
  EXPECT_EQ(Step("a").state, StepState::kFailed);
  EXPECT_EQ(Step("a").reason, "exit code 3");
  EXPECT_EQ(Step("b").state, StepState::kSkipped);
  EXPECT_EQ(Step("b").reason, "a needed step did not succeed");
  EXPECT_EQ(Step("c").state, StepState::kSkipped);
  EXPECT_EQ(Order(), (std::vector<std::string>{"a"}));
}

TEST_F(EngineTest, AlwaysAndFailureStepsRunAfterAFailure) {
  exec_.script["a"] = {{.exit_code = 1}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x}\n  b: {needs: [a], run: x}\n"
                    "  cleanup: {needs: [b], if: '${{ always() }}', run: x}\n"
                    "  alert: {needs: [b], if: failure(), run: x}\n"
                    "  happy: {needs: [b], if: success(), run: x}\n"),
            RunState::kFailed);
  EXPECT_EQ(Step("cleanup").state, StepState::kSucceeded);
  EXPECT_EQ(Step("alert").state, StepState::kSucceeded);
  EXPECT_EQ(Step("happy").state, StepState::kSkipped);
}

TEST_F(EngineTest, FailureStepIsSkippedWhenNothingFailed) {
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x}\n  alert: {needs: [a], if: failure(), run: x}\n"),
            RunState::kSucceeded);
  EXPECT_EQ(Step("alert").state, StepState::kSkipped);
  EXPECT_EQ(Step("alert").reason, "if: failure() is false");
}

TEST_F(EngineTest, ContinueOnErrorKeepsTheRunGreenAndDependantsRunning) {
  exec_.script["a"] = {{.exit_code = 1}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x, continue_on_error: true}\n  b: {needs: [a], run: x}\n"),
            RunState::kSucceeded);
  EXPECT_EQ(Step("a").state, StepState::kFailed);
  EXPECT_EQ(Step("b").state, StepState::kSucceeded);
}

TEST_F(EngineTest, RetriesAFailedStepUntilTheLimit) {
  exec_.script["a"] = {{.exit_code = 1}, {.exit_code = 1}, {.exit_code = 1}, {.exit_code = 0}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x, retry: {limit: 2, backoff: {initial: 1s}}}\n"), RunState::kFailed);
  EXPECT_EQ(exec_.starts.size(), 3u);
  auto attempts = store_->ListAttempts(run_id_);
  ASSERT_EQ(attempts.size(), 3u);
  EXPECT_EQ(attempts[2].number, 3);
  EXPECT_EQ(attempts[2].reason, "exit code 1");
}

TEST_F(EngineTest, RetrySucceedsWhenALaterAttemptSucceeds) {
  exec_.script["a"] = {{.exit_code = 1}, {.exit_code = 0, .outputs = "k=v\n"}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x, retry: 3}\n  b: {needs: [a], run: 'echo ${{ steps.a.outputs.k }}'}\n"),
            RunState::kSucceeded);
  EXPECT_EQ(Step("a").attempts, 2);
  EXPECT_EQ(Step("a").outputs.at("k").as_string(), "v");
}

TEST_F(EngineTest, BackoffGrowsByItsFactorUpToItsMax) {
  exec_.script["a"] = {{.exit_code = 1}, {.exit_code = 1}, {.exit_code = 1}, {.exit_code = 1}, {.exit_code = 1}};
  RunSpec("name: t\nsteps:\n  a:\n    run: x\n    retry: {limit: 4, backoff: {initial: 2s, factor: 3, max: 10s}}\n");
  std::vector<int64_t> starts;
  for (auto& [label, t] : exec_.starts) starts.push_back(t);
  // Each attempt takes 1s; the delays are 2s, 6s, 10s (capped), 10s.
  EXPECT_EQ(starts, (std::vector<int64_t>{0, 3000, 10000, 21000, 32000}));
}

TEST_F(EngineTest, JitterKeepsDelaysBetweenHalfAndAll) {
  exec_.script["a"] = {{.exit_code = 1}, {.exit_code = 1}};
  RunSpec("name: t\nsteps:\n  a:\n    run: x\n    retry: {limit: 1, backoff: {initial: 10s, jitter: true}}\n");
  ASSERT_EQ(exec_.starts.size(), 2u);
  int64_t delay = exec_.starts[1].second - 1000;
  EXPECT_GE(delay, 5000);
  EXPECT_LE(delay, 10000);
}

TEST_F(EngineTest, TimeoutSendsTermThenKillAfterTheGrace) {
  exec_.script["a"] = {{.duration = 1h, .ignores_sigterm = true}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x, timeout: 5s}\n"), RunState::kFailed);
  EXPECT_EQ(exec_.stops, (std::vector<std::string>{"a TERM", "a KILL"}));
  EXPECT_EQ(clock_.Seconds(), 15000);
  EXPECT_EQ(Step("a").reason, "timed out after 5.0s (SIGKILL after the grace period)");
}

TEST_F(EngineTest, TimeoutOfAStepThatHonoursTermIsRetried) {
  exec_.script["a"] = {{.duration = 1h}, {.duration = 1s}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x, timeout: 5s, retry: {limit: 1, backoff: {initial: 1s}}}\n"),
            RunState::kSucceeded);
  auto attempts = store_->ListAttempts(run_id_);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].reason, "timed out after 5.0s");
  EXPECT_EQ(clock_.Seconds(), 7000);
}

TEST_F(EngineTest, ACommandThatCannotStartFailsItsAttempt) {
  exec_.script["a"] = {{.exit_code = 127}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: [nope]}\n"), RunState::kFailed);
  EXPECT_EQ(Step("a").reason, "command not found: nope");
}

TEST_F(EngineTest, StepsFoundUnableToStartFailInTheBatchWithoutACommitEachAndAreRetriedAsTheirPolicySays) {
  exec_.missing_programs = {"nope"};
  std::string yaml = "name: t\nsteps:\n";
  std::vector<std::string> ids;
  for (int k = 0; k < 20; ++k) {
    ids.push_back("s");
    ids.back().append(std::to_string(k));
    yaml.append("  ").append(ids.back()).append(": {run: [nope], retry: 1}\n");
  }
  EXPECT_EQ(RunSpec(yaml), RunState::kFailed);
  EXPECT_TRUE(exec_.starts.empty());
  for (const std::string& id : ids) {
    EXPECT_EQ(Step(id).reason, "command not found: nope");
    EXPECT_EQ(Step(id).attempts, 2);
  }
  EXPECT_FALSE(files_.Exists(dir_ + "/logs/s7.2.log"));
  // Found when the executor starts them, each pair of attempts (--jobs 2)
  // was committed before its start failed: 25 commits.
  EXPECT_LE(store_->flushes, 5);
}

TEST_F(EngineTest, AStepThatFailsBeforeItStartsIsWrittenOnceAsAnEndedAttempt) {
  exec_.missing_programs = {"nope"};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: [nope]}\n  b: {run: ['${{ fromJSON(\"x\") }}']}\n"),
            RunState::kFailed);
  EXPECT_EQ(store_->begun, 0) << "no attempt begun as running, to be ended in a second write";
  std::vector<engine::AttemptRecord> attempts = store_->ListAttempts(run_id_);
  ASSERT_EQ(attempts.size(), 2u);
  for (const engine::AttemptRecord& a : attempts) {
    EXPECT_GT(a.id, 0);
    EXPECT_EQ(a.state, StepState::kFailed) << a.step_id;
    EXPECT_EQ(a.number, 1);
    EXPECT_GT(a.finished_ms, 0);
  }
  EXPECT_EQ(Step("a").reason, "command not found: nope");
}

TEST_F(EngineTest, AStepThatCouldNotBeReusedIsCheckedWithThePathItWouldRunWithBeforeItsFingerprintIsMade) {
  exec_.missing_programs = {"nope"};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: [nope], env: {PATH: /opt/tools}}\n  b: {run: [nope], cache: true}\n"),
            RunState::kFailed);
  EXPECT_EQ(exec_.checked_env["a"], std::vector<std::string>{"PATH=/opt/tools"});
  std::vector<engine::AttemptRecord> attempts = store_->ListAttempts(run_id_);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].step_id, "a");
  EXPECT_EQ(attempts[0].reason, "command not found: nope");
  EXPECT_EQ(attempts[0].fingerprint, "") << "no fingerprint made for a step that could not start";
  EXPECT_EQ(attempts[1].reason, "command not found: nope");
  EXPECT_NE(attempts[1].fingerprint, "") << "a cache hit would not need its command: looked for first";
}

TEST_F(EngineTest, AStretchOfStepsThatEndWithoutRunningIsCommittedEveryTwoHundredOfThem) {
  auto commits = [&](int n) {
    std::string yaml = "name: t\nsteps:\n";
    for (int k = 0; k < n; ++k) yaml += "  s" + std::to_string(k) + ": {if: 'false', run: x}\n";
    int before = store_->flushes;
    run_id_ = 0;
    EXPECT_EQ(RunSpec(yaml), RunState::kSucceeded);
    return store_->flushes - before;
  };
  int one = commits(1);
  EXPECT_EQ(commits(199), one) << "199 skipped steps end in the run's last commit";
  EXPECT_EQ(commits(200), one + 1) << "the 200th is committed with the 199 before it";
  EXPECT_EQ(commits(399), one + 1);
  EXPECT_EQ(commits(400), one + 2);
  EXPECT_TRUE(exec_.starts.empty());
}

TEST_F(EngineTest, ACancelIsSeenDuringALongStretchOfStepsDecidedWithoutRunning) {
  EXPECT_EQ(RunStretchWithACancelAsked("{if: 'false', run: x}"), RunState::kCancelled);
  EXPECT_EQ(Step("s0").state, StepState::kSkipped);
  EXPECT_EQ(Step("s999").state, StepState::kCancelled);
  EXPECT_EQ(Step("s999").reason, "run cancelled");
}

TEST_F(EngineTest, ACancelIsSeenDuringALongStretchOfStepsThatFailBeforeTheyStart) {
  exec_.missing_programs = {"nope"};
  EXPECT_EQ(RunStretchWithACancelAsked("{run: [nope]}"), RunState::kCancelled);
  EXPECT_EQ(Step("s0").reason, "command not found: nope");
  EXPECT_EQ(Step("s999").state, StepState::kCancelled);
  EXPECT_EQ(Step("s999").attempts, 0);
}

TEST_F(EngineTest, ForeachFansOutAndFansInOutputsInItemOrder) {
  exec_.script["shard[0]"] = {{.duration = 3s, .outputs = "part=A\n"}};
  exec_.script["shard[1]"] = {{.duration = 1s, .outputs = "part=B\n"}};
  exec_.script["shard[2]"] = {{.duration = 2s, .outputs = "part=C\n"}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  shard: {foreach: [a, b, c], run: 'echo ${{ item }}'}\n"
                    "  join: {needs: [shard], run: ['${{ steps.shard.outputs.part }}']}\n",
                    3),
            RunState::kSucceeded);
  EXPECT_EQ(exec_.last_request["join"].argv[0], "[\"A\",\"B\",\"C\"]");
  EXPECT_EQ(Step("shard", 1).item_value.as_string(), "b");
  EXPECT_EQ(exec_.last_request["shard[2]"].argv[2], "echo \"${SLUICE_EXPR_1}\"");
}

TEST_F(EngineTest, ForeachOverAnExpressionUsesTheListItGives) {
  exec_.script["list"] = {{.outputs = "names=[\"x\", \"y\"]\n"}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  list: {run: x}\n"
                    "  each: {needs: [list], foreach: '${{ fromJSON(steps.list.outputs.names) }}', run: ['${{ item }}']}\n"),
            RunState::kSucceeded);
  EXPECT_EQ(exec_.last_request["each[1]"].argv[0], "y");
}

TEST_F(EngineTest, ForeachOverSomethingThatIsNotAListFailsTheStep) {
  exec_.script["list"] = {{.outputs = "names=x\n"}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  list: {run: x}\n"
                    "  each: {needs: [list], foreach: '${{ steps.list.outputs.names }}', run: x}\n"),
            RunState::kFailed);
  EXPECT_EQ(Step("each").reason, "foreach: ${{ steps.list.outputs.names }} gave a string, not a list");
}

TEST_F(EngineTest, OneFailedItemFailsTheForeachStep) {
  exec_.script["s[1]"] = {{.exit_code = 2}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  s: {foreach: [a, b, c], run: x}\n"), RunState::kFailed);
  EXPECT_EQ(Step("s").state, StepState::kFailed);
  EXPECT_EQ(Step("s", 0).state, StepState::kSucceeded);
  EXPECT_EQ(Step("s", 1).state, StepState::kFailed);
}

TEST_F(EngineTest, ConditionComparesAnOutputWithAParam) {
  exec_.script["eval"] = {{.outputs = "accuracy=0.85\n"}};
  EXPECT_EQ(RunSpec("name: t\nparams:\n  gate: {type: float, default: 0.9}\nsteps:\n  eval: {run: x}\n"
                    "  deploy: {needs: [eval], if: '${{ steps.eval.outputs.accuracy >= params.gate }}', run: x}\n"
                    "  alarm: {needs: [eval], if: '${{ steps.eval.outputs.accuracy < params.gate }}', run: x}\n"),
            RunState::kSucceeded);
  EXPECT_EQ(Step("deploy").state, StepState::kSkipped);
  EXPECT_EQ(Step("alarm").state, StepState::kSucceeded);
}

TEST_F(EngineTest, AMissingOutputFailsTheStepThatReadsIt) {
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x}\n  b: {needs: [a], run: ['${{ steps.a.outputs.nope }}']}\n"),
            RunState::kFailed);
  EXPECT_EQ(Step("b").reason, "run: ${{ steps.a.outputs.nope }}: step 'a' has no output 'nope'");
}

TEST_F(EngineTest, CancelStopsRunningStepsAndCancelsTheRest) {
  exec_.script["a"] = {{.duration = 1h}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x}\n  b: {run: x}\n  c: {run: x}\n  d: {needs: [a], run: x}\n", 2, {},
                    /*cancel=*/true),
            RunState::kCancelled);
  EXPECT_EQ(exec_.starts.size(), 0u);
  EXPECT_EQ(Step("a").state, StepState::kCancelled);
  EXPECT_EQ(Step("d").state, StepState::kCancelled);
}

TEST_F(EngineTest, CancelRequestedInTheStoreStopsARunningStep) {
  exec_.script["a"] = {{.duration = 1h}};
  auto p = spec::ParsePipeline("p.yaml", "name: t\nsteps:\n  a: {run: x}\n  b: {needs: [a], run: x}\n");
  run_id_ = store_->CreateRun();
  store_->RequestCancel(run_id_);
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x}\n  b: {needs: [a], run: x}\n"), RunState::kCancelled);
  EXPECT_EQ(exec_.stops, (std::vector<std::string>{"a TERM"}));
  EXPECT_EQ(clock_.Seconds(), 250);  // the first cancel poll
  EXPECT_EQ(Step("a").state, StepState::kCancelled);
  EXPECT_EQ(Step("b").state, StepState::kCancelled);
}

TEST_F(EngineTest, ResumeRunsOnlyWhatDidNotFinish) {
  std::string yaml = "name: t\nsteps:\n  a: {run: x}\n  b: {needs: [a], run: x, retry: 1}\n  c: {needs: [b], run: x}\n";
  StepRecord a{.step_id = "a", .state = StepState::kSucceeded, .tries = 1, .attempts = 1};
  a.outputs["k"] = spec::Value::Str("v");
  StepRecord b{.step_id = "b", .state = StepState::kRunning, .tries = 1, .attempts = 1};
  EXPECT_EQ(RunSpec(yaml, 2, {a, b}), RunState::kSucceeded);
  EXPECT_EQ(Order(), (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(Step("b").attempts, 2);
}

TEST_F(EngineTest, ResumeRunsALostStepAgainWithoutSpendingARetry) {
  std::string yaml = "name: t\nsteps:\n  a: {run: x}\n  b: {needs: [a], run: x}\n";
  StepRecord a = LoseAttempts("a", 1);
  EXPECT_EQ(RunSpec(yaml, 2, {a}), RunState::kSucceeded);
  EXPECT_EQ(Order(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(Step("a").attempts, 2);
  EXPECT_EQ(Step("a").tries, 1);  // the lost attempt did not count
}

TEST_F(EngineTest, ResumeRunsAStepLostTwiceInARowOnceMore) {
  std::string yaml = "name: t\nsteps:\n  a: {run: x}\n";
  StepRecord a = LoseAttempts("a", Engine::kMaxLostInARow - 1);
  EXPECT_EQ(RunSpec(yaml, 2, {a}), RunState::kSucceeded);
  EXPECT_EQ(Step("a").attempts, Engine::kMaxLostInARow);
}

TEST_F(EngineTest, ResumeFailsAStepLostThreeTimesInARow) {
  std::string yaml = "name: t\nsteps:\n  a: {run: x}\n  b: {needs: [a], run: x}\n";
  StepRecord a = LoseAttempts("a", Engine::kMaxLostInARow);
  EXPECT_EQ(RunSpec(yaml, 2, {a}), RunState::kFailed);
  EXPECT_EQ(Step("a").reason, "its last 3 attempts were lost (the orchestrator stopped while each ran)");
  EXPECT_EQ(Order(), std::vector<std::string>{});
  EXPECT_EQ(Step("b").state, StepState::kSkipped);
}

TEST_F(EngineTest, ResumeKeepsFinishedForeachItems) {
  std::string yaml = "name: t\nsteps:\n  s: {foreach: [a, b, c], run: x}\n";
  StepRecord s{.step_id = "s", .state = StepState::kRunning};
  s.items = spec::List{spec::Value::Str("a"), spec::Value::Str("b"), spec::Value::Str("c")};
  StepRecord s0{.step_id = "s", .item = 0, .state = StepState::kSucceeded, .tries = 1, .attempts = 1};
  StepRecord s1{.step_id = "s", .item = 1, .state = StepState::kPending};
  EXPECT_EQ(RunSpec(yaml, 2, {s, s0, s1}), RunState::kSucceeded);
  EXPECT_EQ(Order(), (std::vector<std::string>{"s[1]", "s[2]"}));
}

TEST_F(EngineTest, EveryTransitionIsInTheStoreWhenTheRunEnds) {
  exec_.script["a"] = {{.exit_code = 1}, {.exit_code = 0}};
  RunSpec("name: t\nsteps:\n  a: {run: x, retry: {limit: 1, backoff: {initial: 1s}}}\n");
  EXPECT_EQ(store_->GetRunState(run_id_), RunState::kSucceeded);
  auto attempts = store_->ListAttempts(run_id_);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].state, StepState::kFailed);
  EXPECT_EQ(attempts[1].state, StepState::kSucceeded);
  EXPECT_EQ(attempts[1].pid, 1000 + attempts[1].id);
}

TEST_F(EngineTest, ResumeFailsAForeachItemLostThreeTimesAndStillRunsTheOthers) {
  std::string yaml = "name: t\nsteps:\n  s: {foreach: [a, b, c], run: x}\n";
  StepRecord s{.step_id = "s", .state = StepState::kRunning};
  s.items = spec::List{spec::Value::Str("a"), spec::Value::Str("b"), spec::Value::Str("c")};
  StepRecord s0 = LoseAttempts("s", Engine::kMaxLostInARow, 0);
  EXPECT_EQ(RunSpec(yaml, 2, {s, s0}), RunState::kFailed);
  EXPECT_EQ(Order(), (std::vector<std::string>{"s[1]", "s[2]"}));
  EXPECT_EQ(Step("s", 0).state, StepState::kFailed);
  EXPECT_EQ(Step("s", 2).state, StepState::kSucceeded);
  EXPECT_EQ(Step("s").state, StepState::kFailed);
}

TEST_F(EngineTest, RunsAsManyStepsAtOnceAsThereAreSlotsAtEveryWorkerCount) {
  std::string yaml = "name: t\nsteps:\n";
  for (int i = 0; i < 20; ++i) yaml += "  s" + std::to_string(i) + ": {run: x}\n";
  yaml += "  join: {needs: [";
  for (int i = 0; i < 20; ++i) yaml += (i ? ", s" : "s") + std::to_string(i);
  yaml += "], run: x}\n";
  for (int jobs : {1, 2, 3, 4, 8}) {
    SCOPED_TRACE("jobs " + std::to_string(jobs));
    TearDown();
    SetUp();
    exec_ = FakeExecutor(&clock_, &files_);
    clock_.now = TimePoint(std::chrono::hours(1));
    run_id_ = 0;
    EXPECT_EQ(RunSpec(yaml, jobs), RunState::kSucceeded);
    EXPECT_EQ(exec_.max_running, static_cast<size_t>(jobs));
    EXPECT_EQ(clock_.Seconds(), ((20 + jobs - 1) / jobs + 1) * 1000);
    EXPECT_EQ(exec_.starts.back().first, "join");
  }
}

TEST_F(EngineTest, ReplayingARecordedEventLogWithAFakeClockGivesTheSameDecisions) {
  // Retries with jittered backoff, a timeout, a fan-out, a tolerated failure
  // and a cleanup step: every kind of decision the scheduler makes.
  const std::string yaml = R"(name: t
steps:
  a: {run: x, retry: {limit: 2, backoff: {initial: 1s, factor: 2, jitter: true}}}
  b: {needs: [a], run: x, timeout: 5s, retry: 1}
  c: {needs: [a], foreach: [p, q, r], run: x}
  d: {needs: [b, c], run: x, continue_on_error: true}
  e: {needs: [d], run: x}
  cleanup: {needs: [e], if: "${{ always() }}", run: x}
)";
  using Script = std::map<std::string, std::deque<FakeExecutor::Outcome>>;
  // The event log: what each attempt did and how long it took.
  const Script log = {{"a", {{.exit_code = 1}, {.exit_code = 2, .duration = 3s}, {}}},
                      {"b", {{.duration = 10s}, {.duration = 2s}}},
                      {"c[0]", {{.duration = 4s}}},
                      {"c[1]", {{.duration = 1s}}},
                      {"c[2]", {{.duration = 2s}}},
                      {"d", {{.exit_code = 3}}}};
  struct Decisions {
    std::vector<std::pair<std::string, int64_t>> starts;
    std::vector<std::string> stops;
    std::vector<std::string> states;
    RunState run;
  };
  auto replay = [&] {
    exec_.script = log;
    exec_.starts.clear();
    exec_.stops.clear();
    clock_.now = TimePoint(std::chrono::hours(1));
    run_id_ = 0;
    Decisions d;
    d.run = RunSpec(yaml);
    d.starts = exec_.starts;
    d.stops = exec_.stops;
    for (const StepRecord& r : store_->LoadSteps(run_id_))
      d.states.push_back(r.step_id + "[" + std::to_string(r.item) + "] " + Name(r.state) + " " + std::to_string(r.attempts));
    return d;
  };
  Decisions first = replay(), second = replay();
  EXPECT_EQ(first.run, RunState::kSucceeded);  // d failed, tolerated
  EXPECT_EQ(first.starts, second.starts);
  EXPECT_EQ(first.stops, second.stops);
  EXPECT_EQ(first.states, second.states);
  EXPECT_EQ(first.stops, (std::vector<std::string>{"b TERM"}));  // the timeout
  EXPECT_EQ(first.starts.size(), 11u);  // a x3, b x2, c x3, d, e, cleanup
}

TEST_F(EngineTest, AnIfWithoutAStatusFunctionMeansSuccessAndIt) {
  exec_.script["a"] = {{.exit_code = 1}};
  EXPECT_EQ(RunSpec("name: t\nparams: {go: {type: bool, default: true}}\nsteps:\n  a: {run: x}\n"
                    "  gated: {needs: [a], if: \"${{ params.go }}\", run: x}\n"
                    "  cleanup: {needs: [a], if: \"${{ failure() && params.go }}\", run: x}\n"),
            RunState::kFailed);
  EXPECT_EQ(Step("gated").state, StepState::kSkipped);
  EXPECT_EQ(Step("gated").reason, "a needed step did not succeed");
  EXPECT_EQ(Step("cleanup").state, StepState::kSucceeded);
}

TEST_F(EngineTest, AForeachOverNoItemsGivesItsDependantsEmptyLists) {
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  shard: {foreach: [], run: x}\n"
                    "  join: {needs: [shard], run: [echo, '${{ steps.shard.outputs.part }}']}\n"),
            RunState::kSucceeded);
  EXPECT_EQ(exec_.last_request["join"].argv, (std::vector<std::string>{"echo", "[]"}));
}

TEST_F(EngineTest, ACachedResultIsReusedUntilItIsExactlyMaxAgeOldAndRunsOnceItIsOlder) {
  const char* yaml = "name: t\nsteps:\n  s: {run: x, cache: {max_age: 1h}}\n";
  EXPECT_EQ(RunSpec(yaml), RunState::kSucceeded);
  int64_t computed = store_->ListAttempts(run_id_).back().finished_ms;
  run_id_ = 0;
  clock_.now = TimePoint(std::chrono::milliseconds(computed + 3600000));  // exactly 1h old
  EXPECT_EQ(RunSpec(yaml), RunState::kSucceeded);
  EXPECT_EQ(Step("s").state, StepState::kCached);
  run_id_ = 0;
  clock_.now = TimePoint(std::chrono::milliseconds(computed + 3600001));  // 1 ms past it
  EXPECT_EQ(RunSpec(yaml), RunState::kSucceeded);
  EXPECT_EQ(Step("s").state, StepState::kSucceeded);
  EXPECT_EQ(exec_.starts.size(), 2u);
}

TEST_F(EngineTest, ADepThatMatchesNothingFailsTheStepBeforeItStartsWithoutRetrying) {
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  s: {run: x, deps: [model.pt], retry: 3}\n"), RunState::kFailed);
  EXPECT_TRUE(exec_.starts.empty());
  EXPECT_EQ(Step("s").reason, "deps: 'model.pt' of step 's' matches no file or folder in " + dir_);
  EXPECT_EQ(Step("s").attempts, 1);
}

TEST_F(EngineTest, EditingAFileTheCommandNamesRunsACachedStepAgain) {
  files_.Write(dir_ + "/train.py", "print(1)\n");
  const char* yaml = "name: t\nsteps:\n  s: {run: python3 train.py, cache: true}\n";
  EXPECT_EQ(RunSpec(yaml), RunState::kSucceeded);
  run_id_ = 0;
  EXPECT_EQ(RunSpec(yaml), RunState::kSucceeded);
  EXPECT_EQ(Step("s").state, StepState::kCached);
  files_.Write(dir_ + "/train.py", "print(2)\n");
  run_id_ = 0;
  EXPECT_EQ(RunSpec(yaml), RunState::kSucceeded);
  EXPECT_EQ(Step("s").state, StepState::kSucceeded);
  EXPECT_EQ(exec_.starts.size(), 2u);
}

TEST_F(EngineTest, AJoinAfterABranchNotTakenRuns) {
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x}\n  gpu: {needs: [a], if: 'false', run: x}\n"
                    "  cpu: {needs: [a], run: x}\n  join: {needs: [gpu, cpu], run: x}\n"),
            RunState::kSucceeded);
  EXPECT_EQ(Step("gpu").state, StepState::kSkipped);
  EXPECT_EQ(Step("join").state, StepState::kSucceeded);
}

TEST_F(EngineTest, AJoinAfterAStepSkippedBecauseOfAFailureIsSkipped) {
  exec_.script["a"] = {{.exit_code = 1}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x}\n  b: {needs: [a], run: x}\n  c: {run: x}\n"
                    "  join: {needs: [b, c], run: x}\n"),
            RunState::kFailed);
  EXPECT_EQ(Step("b").state, StepState::kSkipped);
  EXPECT_EQ(Step("join").state, StepState::kSkipped);
  EXPECT_EQ(Step("join").reason, "a needed step did not succeed");
}

TEST_F(EngineTest, ACancelRunsTheAlwaysAndCancelledStepsAndNothingElse) {
  exec_.script["a"] = {{.duration = 1h}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x}\n  b: {needs: [a], run: x}\n"
                    "  cleanup: {needs: [b], if: always(), run: x}\n"
                    "  on_cancel: {needs: [b], if: cancelled(), run: x}\n"
                    "  on_failure: {needs: [b], if: failure(), run: x}\n"
                    "  plain: {needs: [b], if: 'true', run: x}\n",
                    2, {}, /*cancel=*/1),
            RunState::kCancelled);
  EXPECT_EQ(Step("a").state, StepState::kCancelled);
  EXPECT_EQ(Step("b").state, StepState::kCancelled);
  EXPECT_EQ(Step("cleanup").state, StepState::kSucceeded);
  EXPECT_EQ(Step("on_cancel").state, StepState::kSucceeded);
  EXPECT_EQ(Step("on_failure").state, StepState::kCancelled);
  EXPECT_EQ(Step("plain").state, StepState::kCancelled);
  EXPECT_EQ(Order(), (std::vector<std::string>{"cleanup", "on_cancel"}));
}

TEST_F(EngineTest, ACancelledStepIsSkippedWhenNothingWasCancelled) {
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x}\n  on_cancel: {needs: [a], if: cancelled(), run: x}\n"),
            RunState::kSucceeded);
  EXPECT_EQ(Step("on_cancel").state, StepState::kSkipped);
}

TEST_F(EngineTest, AHardCancelRunsNoCleanupStep) {
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x}\n  cleanup: {needs: [a], if: always(), run: x}\n", 2, {},
                    /*cancel=*/2),
            RunState::kCancelled);
  EXPECT_EQ(Step("cleanup").state, StepState::kCancelled);
  EXPECT_TRUE(exec_.starts.empty());
}

TEST_F(EngineTest, ACleanupStepThatFailsDuringACancelIsFailed) {
  exec_.script["cleanup"] = {{.exit_code = 2}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: x}\n  cleanup: {needs: [a], if: always(), run: x, retry: 3}\n", 2,
                    {}, /*cancel=*/1),
            RunState::kCancelled);
  EXPECT_EQ(Step("cleanup").state, StepState::kFailed);
  EXPECT_EQ(Step("cleanup").attempts, 1);  // no retries during a cancel
}

TEST_F(EngineTest, TheLogFolderIsMadeThroughTheEnvAndACommandThatCannotStartWritesNoLog) {
  exec_.script["a"] = {{.exit_code = 127}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  a: {run: [nope]}\n"), RunState::kFailed);
  EXPECT_TRUE(files_.Exists(dir_ + "/logs"));
  EXPECT_FALSE(files_.Exists(dir_ + "/logs/a.1.log"));
  EXPECT_EQ(Step("a").reason, "command not found: nope");
}

// Per-item if, matrix, fail_fast, max_parallel, hashFiles -------------------

TEST_F(EngineTest, AForeachIfThatReadsItemSkipsSingleItemsAndTheFanInKeepsTheirPlace) {
  exec_.script["s[0]"] = {{.outputs = "v=A\n"}};
  exec_.script["s[2]"] = {{.outputs = "v=C\n"}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  s: {foreach: [a, b, c], if: \"item != 'b'\", run: x}\n"
                    "  join: {needs: [s], run: ['${{ steps.s.outputs.v }}']}\n"),
            RunState::kSucceeded);
  EXPECT_EQ(Order(), (std::vector<std::string>{"s[0]", "s[2]", "join"}));
  EXPECT_EQ(Step("s", 1).state, StepState::kSkipped);
  EXPECT_EQ(Step("s", 1).reason, "if: item != 'b' is false");
  EXPECT_EQ(Step("s").state, StepState::kSucceeded);
  EXPECT_EQ(exec_.last_request["join"].argv[0], "[\"A\",null,\"C\"]");
}

TEST_F(EngineTest, AForeachStepWhoseItemsAreAllSkippedIsSkippedAndItsDependantsRun) {
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  s: {foreach: [a, b], if: \"item == 'z'\", run: x}\n"
                    "  after: {needs: [s], run: x}\n"),
            RunState::kSucceeded);
  EXPECT_EQ(Step("s").state, StepState::kSkipped);
  EXPECT_EQ(Order(), (std::vector<std::string>{"after"}));
}

TEST_F(EngineTest, AForeachIfThatFailsToEvaluateFailsThatItemOnly) {
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  s: {foreach: ['1', '0'], if: '10 / item > 1', run: x}\n"), RunState::kFailed);
  EXPECT_EQ(Step("s", 0).state, StepState::kSucceeded);
  EXPECT_EQ(Step("s", 1).state, StepState::kFailed);
  EXPECT_EQ(Step("s", 1).reason, "if: ${{10 / item > 1}}: division by zero (at character 4 of the expression)");
}

TEST_F(EngineTest, AMatrixRunsTheCrossProductWithTheFirstKeyOutermost) {
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  s:\n    foreach: {matrix: {lr: [0.1, 0.01], depth: [3, 5]}}\n"
                    "    run: [echo, '${{ item.lr }}-${{ item.depth }}', '${{ item }}']\n",
                    1),
            RunState::kSucceeded);
  std::vector<std::string> got;
  for (int i = 0; i < 4; ++i) got.push_back(exec_.last_request["s[" + std::to_string(i) + "]"].argv[1]);
  EXPECT_EQ(got, (std::vector<std::string>{"0.1-3", "0.1-5", "0.01-3", "0.01-5"}));
  EXPECT_EQ(exec_.last_request["s[0]"].argv[2], R"({"depth":3,"lr":0.1})");
}

TEST_F(EngineTest, AMatrixExcludesMatchingCombinationsAndIncludesLikeGitHub) {
  // GitHub's documented example: {fruit: [apple, pear], animal: [cat, dog]}
  // with include [{color: green}, {color: pink, animal: cat}, {fruit: apple,
  // shape: circle}, {fruit: banana}, {fruit: banana, animal: cat}].
  EXPECT_EQ(RunSpec(R"(name: t
steps:
  s:
    foreach:
      matrix: {fruit: [apple, pear], animal: [cat, dog]}
      include:
        - {color: green}
        - {color: pink, animal: cat}
        - {fruit: apple, shape: circle}
        - {fruit: banana}
        - {fruit: banana, animal: cat}
      exclude: [{fruit: pear, animal: dog}]
    run: ['${{ item }}']
)",
                    1),
            RunState::kSucceeded);
  std::vector<std::string> got;
  for (int i = 0; i < 5; ++i) got.push_back(exec_.last_request["s[" + std::to_string(i) + "]"].argv[0]);
  EXPECT_EQ(got, (std::vector<std::string>{
                     R"({"animal":"cat","color":"pink","fruit":"apple","shape":"circle"})",
                     R"({"animal":"dog","color":"green","fruit":"apple","shape":"circle"})",
                     R"({"animal":"cat","color":"pink","fruit":"pear"})",
                     R"({"fruit":"banana"})",
                     R"({"animal":"cat","fruit":"banana"})",
                 }));
  EXPECT_EQ(exec_.last_request.count("s[5]"), 0u);
}

TEST_F(EngineTest, AMatrixValueMayBeAnExpressionGivingAList) {
  EXPECT_EQ(RunSpec("name: t\nparams:\n  lrs: {type: string, default: '[1, 2, 3]'}\nsteps:\n"
                    "  s: {foreach: {matrix: {lr: '${{ fromJSON(params.lrs) }}'}}, run: ['${{ item.lr * 10 }}']}\n",
                    1),
            RunState::kSucceeded);
  EXPECT_EQ(exec_.last_request["s[2]"].argv[0], "30");
}

TEST_F(EngineTest, AForeachExpressionOverTheItemLimitFailsTheStep) {
  std::string list = "[0";
  for (int i = 1; i < 10001; ++i) {
    list += ',';
    list += std::to_string(i);
  }
  list += "]";
  exec_.script["list"] = {{.outputs = "names=" + list + "\n"}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  list: {run: x}\n"
                    "  each: {needs: [list], foreach: '${{ fromJSON(steps.list.outputs.names) }}', run: x}\n"),
            RunState::kFailed);
  EXPECT_EQ(Step("each").reason,
            "foreach: ${{ fromJSON(steps.list.outputs.names) }} gave 10001 items, over the limit of 10000");
}

TEST_F(EngineTest, FailFastCancelsTheItemsNotStartedOnceOneFails) {
  exec_.script["s[1]"] = {{.exit_code = 2}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  s: {foreach: [a, b, c, d], fail_fast: true, run: x}\n", 1), RunState::kFailed);
  EXPECT_EQ(Order(), (std::vector<std::string>{"s[0]", "s[1]"}));
  EXPECT_EQ(Step("s", 2).state, StepState::kCancelled);
  EXPECT_EQ(Step("s", 2).reason, "fail_fast: item 1 failed");
  EXPECT_EQ(Step("s", 3).state, StepState::kCancelled);
  EXPECT_EQ(Step("s").state, StepState::kFailed);
}

TEST_F(EngineTest, WithoutFailFastEveryItemRunsAfterAFailure) {
  exec_.script["s[1]"] = {{.exit_code = 2}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  s: {foreach: [a, b, c, d], run: x}\n", 1), RunState::kFailed);
  EXPECT_EQ(Order().size(), 4u);
}

TEST_F(EngineTest, FailFastLetsRunningItemsFinish) {
  exec_.script["s[0]"] = {{.exit_code = 2, .duration = 1s}};
  exec_.script["s[1]"] = {{.duration = 3s, .outputs = "v=1\n"}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  s: {foreach: [a, b, c], fail_fast: true, run: x}\n", 2), RunState::kFailed);
  EXPECT_EQ(Step("s", 1).state, StepState::kSucceeded);
  EXPECT_EQ(Step("s", 2).state, StepState::kCancelled);
}

TEST_F(EngineTest, MaxParallelBoundsHowManyItemsRunAtOnce) {
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  s: {foreach: [a, b, c, d, e], max_parallel: 2, run: x}\n  o: {run: x}\n", 4),
            RunState::kSucceeded);
  EXPECT_EQ(exec_.max_running, 3u) << "two items and the other step";
  EXPECT_EQ(clock_.Seconds(), 3000);  // ceil(5 / 2) rounds of one second
  EXPECT_EQ(Order().front(), "s[0]");
}

TEST_F(EngineTest, MaxParallelCountsAnItemWaitingToRetry) {
  exec_.script["s[0]"] = {{.exit_code = 1}, {.exit_code = 0}};
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  s: {foreach: [a, b], max_parallel: 1, retry: {limit: 1, backoff: {initial: 5s}},"
                    " run: x}\n",
                    4),
            RunState::kSucceeded);
  EXPECT_EQ(Order(), (std::vector<std::string>{"s[0]", "s[0]", "s[1]"}));
}

TEST_F(EngineTest, HashFilesHashesTheMatchingFilesInPathOrder) {
  files_.MakeDir(dir_ + "/data");
  files_.Write(dir_ + "/data/b.csv", "2");
  files_.Write(dir_ + "/data/a.csv", "1");
  files_.Write(dir_ + "/data/c.txt", "3");
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  s: {run: [echo, '${{ hashFiles(\"data/*.csv\") }}', '${{ hashFiles(\"none/*\") }}']}\n"),
            RunState::kSucceeded);
  EXPECT_EQ(exec_.last_request["s"].argv[1], Sha256Hex(Sha256Hex("1") + Sha256Hex("2")));
  EXPECT_EQ(exec_.last_request["s"].argv[2], "");
}

TEST_F(EngineTest, FailFastCancelsTheLaterItemsWhenAnItemsIfCannotBeEvaluated) {
  EXPECT_EQ(RunSpec("name: t\nsteps:\n  s: {foreach: ['1', '0', '2'], if: '10 / item > 1', fail_fast: true, run: x}\n", 1),
            RunState::kFailed);
  EXPECT_EQ(Step("s", 1).state, StepState::kFailed);
  EXPECT_EQ(Step("s", 2).state, StepState::kCancelled);
  EXPECT_EQ(Step("s", 2).reason, "fail_fast: item 1 failed");
  EXPECT_EQ(Order(), (std::vector<std::string>{}));
}
