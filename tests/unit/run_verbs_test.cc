// The run verbs (runs/verbs.h): the rules of resume, retry and cancel on a
// run's row, retry's plan, and the verbs against a real store on a temp file.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "../common/fake_clock.h"
#include "exec/process.h"
#include "runs/verbs.h"
#include "store/open.h"

using namespace sluice;
using engine::RunState;
using engine::StepRecord;
using engine::StepState;
using runs::Refusal;
using Why = runs::Refusal::Why;

namespace {

const char* kChain = "name: t\nsteps:\n  a: {run: x}\n  b: {needs: [a], run: x}\n  c: {needs: [b], run: x}\n";

store::RunRow Row(RunState state) {
  store::RunRow r;
  r.id = 7;
  r.state = state;
  return r;
}

// A row whose driver is this test's parent: alive, and not this process.
store::RunRow Driven(RunState state) {
  store::RunRow r = Row(state);
  r.driver_pid = ::getppid();
  r.driver_start = exec::ProcessStartTime(::getppid());
  return r;
}

spec::Pipeline Parse(const std::string& yaml) {
  auto p = spec::ParsePipeline("p.yaml", yaml);
  EXPECT_TRUE(p.ok()) << p.status().message();
  return p.ok() ? std::move(p.value()) : spec::Pipeline{};
}

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

TEST(RunVerbsTest, TheDriverIsAliveOnlyWhileItsRecordedProcessIsAnotherLiveOne) {
  store::RunRow r = Driven(RunState::kRunning);
  EXPECT_TRUE(runs::DriverAlive(r));
  r.driver_start += 1;  // the pid was reused by another process
  EXPECT_FALSE(runs::DriverAlive(r));
  r.driver_pid = ::getpid();  // a process does not wait for itself
  r.driver_start = exec::ProcessStartTime(::getpid());
  EXPECT_FALSE(runs::DriverAlive(r));
  EXPECT_FALSE(runs::DriverAlive(Row(RunState::kRunning))) << "no driver recorded";
}

TEST(RunVerbsTest, AnUnfinishedRunIsInterruptedWhenItsRecordedDriverIsGone) {
  store::RunRow r = Driven(RunState::kRunning);
  EXPECT_FALSE(runs::Interrupted(r));
  r.driver_start += 1;  // gone; its pid reused
  EXPECT_TRUE(runs::Interrupted(r));
  r.state = RunState::kPending;
  EXPECT_TRUE(runs::Interrupted(r));
  r.state = RunState::kFailed;
  EXPECT_FALSE(runs::Interrupted(r)) << "it ended";
  EXPECT_FALSE(runs::Interrupted(Row(RunState::kRunning))) << "no driver recorded yet";
}

TEST(RunVerbsTest, ARunWhoseDriverIsGoneCanBeResumed) {
  EXPECT_FALSE(runs::CanResume(Row(RunState::kRunning)));
  EXPECT_FALSE(runs::CanResume(Row(RunState::kPending)));
}

TEST(RunVerbsTest, ARunItsDriverStillDrivesCannotBeResumed) {
  Refusal no = runs::CanResume(Driven(RunState::kRunning));
  EXPECT_EQ(no.why, Why::kDriven);
  EXPECT_EQ(no.driver_pid, ::getppid());
}

TEST(RunVerbsTest, AFinishedRunCannotBeResumed) {
  for (RunState s : {RunState::kSucceeded, RunState::kFailed, RunState::kCancelled}) {
    Refusal no = runs::CanResume(Row(s));
    EXPECT_EQ(no.why, Why::kFinished) << engine::Name(s);
    EXPECT_EQ(no.state, s);
  }
}

TEST(RunVerbsTest, AQueuedRetryIsLeftToRetryAndAQueuedStartToAClaim) {
  store::RunRow r = Row(RunState::kQueued);
  EXPECT_EQ(runs::CanResume(r).why, Why::kQueued);
  r.queued_retry = true;
  EXPECT_EQ(runs::CanResume(r).why, Why::kQueuedForRetry);
  EXPECT_EQ(runs::CanRetry(r, false).why, Why::kQueuedForRetry);
}

TEST(RunVerbsTest, ARunningRunCannotBeRetried) {
  EXPECT_EQ(runs::CanRetry(Row(RunState::kRunning), true).why, Why::kUnfinished);
  EXPECT_EQ(runs::CanRetry(Row(RunState::kPending), true).why, Why::kUnfinished);
  Refusal no = runs::CanRetry(Driven(RunState::kRunning), true);
  EXPECT_EQ(no.why, Why::kDriven);
  EXPECT_EQ(no.driver_pid, ::getppid());
}

TEST(RunVerbsTest, AQueuedFirstStartCannotBeRetried) {
  EXPECT_EQ(runs::CanRetry(Row(RunState::kQueued), true).why, Why::kQueued);
}

TEST(RunVerbsTest, AFailedOrCancelledRunCanBeRetried) {
  EXPECT_FALSE(runs::CanRetry(Row(RunState::kFailed), false));
  EXPECT_FALSE(runs::CanRetry(Row(RunState::kCancelled), false));
}

TEST(RunVerbsTest, ASucceededRunCanBeRetriedOnlyByNamingSteps) {
  EXPECT_EQ(runs::CanRetry(Row(RunState::kSucceeded), false).why, Why::kNothingToRetry);
  EXPECT_FALSE(runs::CanRetry(Row(RunState::kSucceeded), true));
}

TEST(RunVerbsTest, AQueuedPendingOrRunningRunCanBeCancelledAndAFinishedOneCannot) {
  for (RunState s : {RunState::kQueued, RunState::kPending, RunState::kRunning})
    EXPECT_FALSE(runs::CanCancel(Row(s))) << engine::Name(s);
  for (RunState s : {RunState::kSucceeded, RunState::kFailed, RunState::kCancelled})
    EXPECT_EQ(runs::CanCancel(Row(s)).why, Why::kFinished) << engine::Name(s);
}

TEST(RunVerbsTest, ARetryRunsTheFailedStepsItemsAndEverythingDownstreamWhole) {
  spec::Pipeline p = Parse(kChain);
  std::vector<StepRecord> records = {{.step_id = "a", .state = StepState::kSucceeded},
                                     {.step_id = "b", .state = StepState::kFailed},
                                     {.step_id = "c", .state = StepState::kSkipped}};
  runs::RetryPlan plan = runs::PlanRetry(p, records, "", {});
  EXPECT_FALSE(plan.refused);
  EXPECT_EQ(plan.rerun, std::vector<std::string>{"c"});
  EXPECT_EQ(plan.failed_items, std::vector<std::string>{"b"}) << "only b's failed items, if it has any";
  EXPECT_EQ(plan.steps(), 2u);
}

TEST(RunVerbsTest, ARetryFromAStepRunsItWholeWithWhatFollows) {
  spec::Pipeline p = Parse(kChain);
  std::vector<StepRecord> records = {{.step_id = "a", .state = StepState::kSucceeded},
                                     {.step_id = "b", .state = StepState::kSucceeded},
                                     {.step_id = "c", .state = StepState::kFailed}};
  runs::RetryPlan plan = runs::PlanRetry(p, records, "a", {});
  EXPECT_EQ(Sorted(plan.rerun), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(plan.failed_items.empty());
}

TEST(RunVerbsTest, ARetryFromAnUnknownStepIsRefusedWithASuggestion) {
  runs::RetryPlan plan = runs::PlanRetry(Parse(kChain), {}, "bb", {});
  EXPECT_EQ(plan.refused.why, Why::kNoSuchStep);
  EXPECT_EQ(plan.refused.hint, " (did you mean 'b'?)");
}

TEST(RunVerbsTest, ARetryWithNothingFailedNamedOrChangedIsRefused) {
  std::vector<StepRecord> records = {{.step_id = "a", .state = StepState::kSucceeded}};
  EXPECT_EQ(runs::PlanRetry(Parse(kChain), records, "", {}).refused.why, Why::kNothingToRetry);
  runs::RetryPlan plan = runs::PlanRetry(Parse(kChain), records, "", {"b"});
  EXPECT_FALSE(plan.refused);
  EXPECT_EQ(Sorted(plan.rerun), (std::vector<std::string>{"b", "c"}));
}

TEST(RunVerbsTest, AReloadChangesTheStepsWhoseDefinitionChangedOrAllWhenEnvChanged) {
  std::string before = "name: t\nsteps:\n  a: {run: x}\n  b: {needs: [a], run: x}\n";
  // Layout alone changes nothing.
  EXPECT_TRUE(runs::ChangedSteps(before, Parse("name: t\nsteps:\n  a:\n    run: x\n  b: {run: x, needs: [a]}\n")).empty());
  EXPECT_EQ(runs::ChangedSteps(before, Parse("name: t\nsteps:\n  a: {run: x}\n  b: {needs: [a], run: y}\n")),
            std::vector<std::string>{"b"});
  EXPECT_EQ(runs::ChangedSteps(before, Parse("name: t\nenv: {K: v}\nsteps:\n  a: {run: x}\n  b: {needs: [a], run: x}\n")),
            (std::vector<std::string>{"a", "b"}));
}

// The verbs on a real store.
class RunVerbsStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sluice-run-verbs-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto s = store::Store::Open((dir_ / "sluice.db").string());
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = std::move(s.value());
    verbs_ = std::make_unique<runs::RunVerbs>(store_->runs(), dir_.string(), &clock_);
  }
  void TearDown() override {
    verbs_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  int64_t Create(bool queued = false) {
    spec::Pipeline p = Parse(kChain);
    p.file = (dir_ / "p.yaml").string();
    auto id = verbs_->Create(p, {}, 1, "api", queued);
    EXPECT_TRUE(id.ok()) << id.status().message();
    return id.ok() ? *id : 0;
  }
  void Set(int64_t id, RunState state, std::vector<StepRecord> steps = {}) {
    std::vector<const StepRecord*> ptrs;
    for (const StepRecord& s : steps) ptrs.push_back(&s);
    ASSERT_TRUE(store_->runs().SaveSteps(id, ptrs).ok());
    ASSERT_TRUE(store_->runs().SetRunState(id, state, clock_.WallMs()).ok());
    ASSERT_TRUE(store_->runs().Flush().ok());
  }
  store::RunRow Get(int64_t id) { return *store_->runs().GetRun(id); }
  StepRecord Step(int64_t id, const std::string& step) {
    auto records = store_->runs().LoadSteps(id);
    EXPECT_TRUE(records.ok()) << records.status().message();
    if (records.ok())
      for (const StepRecord& r : *records)
        if (r.step_id == step && r.item < 0) return r;
    ADD_FAILURE() << "no step " << step;
    return {};
  }

  std::filesystem::path dir_;
  sluice::testing::FakeClock clock_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<runs::RunVerbs> verbs_;
};

TEST_F(RunVerbsStoreTest, ARunIsRecordedWithItsSpecFileMadeAbsoluteAndStepsRunInItsFolder) {
  store::RunRow r = Get(Create());
  EXPECT_EQ(r.state, RunState::kPending);
  EXPECT_EQ(r.spec_path, (dir_ / "p.yaml").string());
  EXPECT_EQ(r.workdir, dir_.string());
  EXPECT_EQ(r.trigger, "api");
  EXPECT_EQ(r.created_ms, clock_.WallMs());
  EXPECT_EQ(Get(Create(/*queued=*/true)).state, RunState::kQueued);
}

TEST_F(RunVerbsStoreTest, ARunsSpecIsKeptWithItsStepsInPlanOrderAndAReloadedSpecWithItsOwn) {
  spec::Pipeline p = Parse("name: t\nsteps:\n  c: {needs: [b], run: x}\n  b: {needs: [a], run: x}\n  a: {run: x}\n");
  p.file = (dir_ / "p.yaml").string();
  auto id = verbs_->Create(p, {}, 1);
  ASSERT_TRUE(id.ok()) << id.status().message();
  EXPECT_EQ(*store_->runs().StepOrder(Get(*id).spec_hash), (std::vector<std::string>{"a", "b", "c"}));

  Set(*id, RunState::kFailed, {{.step_id = "a", .state = StepState::kFailed}});
  auto run = runs::LoadStoredRun(store_->runs(), *id);
  ASSERT_TRUE(run.ok()) << run.status().message();
  spec::Pipeline reloaded = Parse("name: t\nsteps:\n  c: {needs: [b], run: x}\n  b: {run: x}\n  a: {needs: [c], run: x}\n");
  reloaded.file = p.file;
  auto start = verbs_->Retry(&*run, "", reloaded);
  ASSERT_TRUE(start.ok()) << start.status().message();
  EXPECT_EQ(*store_->runs().StepOrder(Get(*id).spec_hash), (std::vector<std::string>{"b", "c", "a"}));
}

TEST_F(RunVerbsStoreTest, AQueuedRunIsClaimedOnce) {
  store::RunRow r = Get(Create(/*queued=*/true));
  EXPECT_TRUE(*verbs_->Claim(&r));
  EXPECT_EQ(r.state, RunState::kPending) << "the row is read again";
  EXPECT_FALSE(*verbs_->Claim(&r));
}

TEST_F(RunVerbsStoreTest, ResumeClaimsAQueuedStartAndHandsItsStepsOver) {
  int64_t id = Create(/*queued=*/true);
  store::RunRow r = Get(id);
  auto resumed = verbs_->Resume(&r);
  ASSERT_TRUE(resumed.ok()) << resumed.status().message();
  EXPECT_FALSE(resumed->refused);
  EXPECT_TRUE(resumed->claimed);
  EXPECT_EQ(Get(id).state, RunState::kPending);
}

TEST_F(RunVerbsStoreTest, ResumeOfAQueuedRetryChangesNothing) {
  int64_t id = Create();
  Set(id, RunState::kFailed, {{.step_id = "a", .state = StepState::kFailed}});
  ASSERT_TRUE(*store_->runs().QueueRetry(id));
  store::RunRow r = Get(id);
  auto resumed = verbs_->Resume(&r);
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(resumed->refused.why, Why::kQueuedForRetry);
  EXPECT_FALSE(resumed->claimed);
  EXPECT_EQ(Get(id).state, RunState::kQueued);
}

TEST_F(RunVerbsStoreTest, ARetryClaimsAQueuedRetryAndResetsThePlannedSteps) {
  int64_t id = Create();
  Set(id, RunState::kFailed,
      {{.step_id = "a", .state = StepState::kSucceeded, .tries = 1, .attempts = 1},
       {.step_id = "b", .state = StepState::kFailed, .tries = 2, .attempts = 2},
       {.step_id = "c", .state = StepState::kSkipped}});
  ASSERT_TRUE(*store_->runs().QueueRetry(id));
  auto run = runs::LoadStoredRun(store_->runs(), id);
  ASSERT_TRUE(run.ok()) << run.status().message();
  auto no = verbs_->CheckRetry(&run->row, false);
  ASSERT_TRUE(no.ok());
  EXPECT_FALSE(*no);
  EXPECT_EQ(run->row.state, RunState::kFailed) << "the claimed retry is back in the state it had";
  auto start = verbs_->Retry(&*run, "");
  ASSERT_TRUE(start.ok()) << start.status().message();
  EXPECT_EQ(start->plan.steps(), 2u);
  EXPECT_EQ(Get(id).state, RunState::kPending);
  EXPECT_EQ(Step(id, "a").state, StepState::kSucceeded);
  EXPECT_EQ(Step(id, "b").state, StepState::kPending);
  EXPECT_EQ(Step(id, "b").tries, 0) << "a fresh retry budget";
  EXPECT_EQ(Step(id, "c").state, StepState::kPending);
}

TEST_F(RunVerbsStoreTest, ARetryRecordsThisProcessAsTheDriverOfTheRunItMakesPendingAgain) {
  // Else, while the retry starts, `sluice serve` would find the run pending
  // under its old driver, dead, and fail it.
  int64_t id = Create();
  Set(id, RunState::kFailed,
      {{.step_id = "a", .state = StepState::kSucceeded}, {.step_id = "b", .state = StepState::kFailed}});
  ASSERT_TRUE(store_->runs().SetDriver(id, ::getppid(), exec::ProcessStartTime(::getppid()) + 1).ok());  // gone
  auto run = runs::LoadStoredRun(store_->runs(), id);
  ASSERT_TRUE(run.ok());
  ASSERT_TRUE(verbs_->Retry(&*run, "").ok());
  EXPECT_EQ(Get(id).state, RunState::kPending);
  EXPECT_EQ(Get(id).driver_pid, ::getpid());
  EXPECT_EQ(Get(id).driver_start, exec::ProcessStartTime(::getpid()));
}

TEST_F(RunVerbsStoreTest, AnAbandonedRunIsFailedOnlyWhileTheDriverThatLeftItIsStillTheRecordedOne) {
  int64_t id = Create();
  Set(id, RunState::kRunning);
  int64_t start = exec::ProcessStartTime(::getppid());
  ASSERT_TRUE(store_->runs().SetDriver(id, ::getppid(), start).ok());  // a new driver took over
  EXPECT_FALSE(*store_->runs().FailIfDrivenBy(id, ::getppid(), start + 1, 0)) << "read before the takeover";
  EXPECT_EQ(Get(id).state, RunState::kRunning);
  EXPECT_TRUE(*store_->runs().FailIfDrivenBy(id, ::getppid(), start, 0));
  EXPECT_EQ(Get(id).state, RunState::kFailed);
  EXPECT_FALSE(*store_->runs().FailIfDrivenBy(id, ::getppid(), start, 0)) << "it ended";
}

TEST_F(RunVerbsStoreTest, ARetryWithNothingToRunAgainChangesNothing) {
  int64_t id = Create();
  Set(id, RunState::kFailed, {{.step_id = "a", .state = StepState::kSucceeded}});
  auto run = runs::LoadStoredRun(store_->runs(), id);
  ASSERT_TRUE(run.ok());
  auto start = verbs_->Retry(&*run, "");
  ASSERT_TRUE(start.ok());
  EXPECT_EQ(start->plan.refused.why, Why::kNothingToRetry);
  EXPECT_EQ(Get(id).state, RunState::kFailed);
}

TEST_F(RunVerbsStoreTest, CancellingAQueuedRunCancelsItNow) {
  int64_t id = Create(/*queued=*/true);
  auto c = verbs_->Cancel(Get(id));
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->was_queued);
  EXPECT_EQ(Get(id).state, RunState::kCancelled);
}

TEST_F(RunVerbsStoreTest, CancellingAStartedRunLeavesTheRequestForItsDriver) {
  int64_t id = Create();
  Set(id, RunState::kRunning, {{.step_id = "a", .state = StepState::kRunning}});
  auto c = verbs_->Cancel(Get(id));
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->refused);
  EXPECT_FALSE(c->was_queued);
  EXPECT_FALSE(c->driven) << "no driver recorded";
  EXPECT_TRUE(Get(id).cancel_requested);
  EXPECT_EQ(Get(id).state, RunState::kRunning);
}

TEST_F(RunVerbsStoreTest, ARunNobodyDrivesIsCancelledInTheStore) {
  int64_t id = Create();
  Set(id, RunState::kRunning,
      {{.step_id = "a", .state = StepState::kSucceeded}, {.step_id = "b", .state = StepState::kRunning}});
  ASSERT_TRUE(verbs_->CancelUndriven(id).ok());
  EXPECT_EQ(Get(id).state, RunState::kCancelled);
  EXPECT_EQ(Step(id, "a").state, StepState::kSucceeded);
  EXPECT_EQ(Step(id, "b").state, StepState::kCancelled);
  EXPECT_EQ(Step(id, "b").reason, "run cancelled");
}

TEST_F(RunVerbsStoreTest, CancellingAFinishedRunIsRefused) {
  int64_t id = Create();
  Set(id, RunState::kSucceeded);
  auto c = verbs_->Cancel(Get(id));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->refused.why, Why::kFinished);
  EXPECT_EQ(c->refused.state, RunState::kSucceeded);
  EXPECT_FALSE(Get(id).cancel_requested);
}

TEST_F(RunVerbsStoreTest, ARunItsDriverLeftUnfinishedIsFailedAndNoOtherIs) {
  int64_t left = Create(), done = Create(), driven = Create();
  Set(left, RunState::kRunning);
  Set(done, RunState::kSucceeded);
  Set(driven, RunState::kRunning);
  ASSERT_TRUE(store_->runs().SetDriver(driven, ::getppid(), exec::ProcessStartTime(::getppid())).ok());
  EXPECT_TRUE(*verbs_->FailAbandoned(left));
  EXPECT_EQ(Get(left).state, RunState::kFailed);
  EXPECT_FALSE(*verbs_->FailAbandoned(done));
  EXPECT_EQ(Get(done).state, RunState::kSucceeded);
  EXPECT_FALSE(*verbs_->FailAbandoned(driven)) << "its driver lives";
  EXPECT_EQ(Get(driven).state, RunState::kRunning);
  EXPECT_EQ(verbs_->FailAbandoned(999).status().code(), Code::kNotFound);
}

TEST_F(RunVerbsStoreTest, ThisProcessBecomesTheDriver) {
  int64_t id = Create();
  ASSERT_TRUE(verbs_->BecomeDriver(id).ok());
  EXPECT_EQ(Get(id).driver_pid, ::getpid());
  EXPECT_EQ(Get(id).driver_start, exec::ProcessStartTime(::getpid()));
}
