// Concurrency groups and pools with real processes: two `sluice run`
// processes of one group run one after the other (or the newer replaces or
// cancels the older); steps of two runs in a pool of one slot never overlap;
// a killed driver neither holds its group nor keeps its lease.
#include <signal.h>
#include <sys/types.h>

#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "../common/free_port.h"
#include "harness.h"
#include "store/open.h"

namespace sluice::testing {
namespace {

using json = nlohmann::json;

// A step that records when it started and ended (ns) in times.<run>.<step>
// of the sandbox (the folder above SLUICE_HOME, wherever the spec is).
std::string TimedStep(const std::string& seconds) {
  return R"(["sh", "-c", "f=$SLUICE_HOME/../times.$SLUICE_RUN_ID.$SLUICE_STEP; echo $(date +%s%N) > $f; sleep )" +
         seconds + R"(; echo $(date +%s%N) >> $f"])";
}

std::string GroupSpec(bool cancel_in_progress, const std::string& seconds) {
  return "name: deploy\n"
         "params:\n  env: {type: string, default: prod}\n"
         "concurrency: {group: \"deploy-${{ params.env }}\", cancel_in_progress: " +
         std::string(cancel_in_progress ? "true" : "false") +
         "}\n"
         "steps:\n  work: {run: " +
         TimedStep(seconds) + "}\n";
}

struct Span {
  long long start = 0, end = 0;
};

Span Times(const Sandbox& box, int run, const std::string& step) {
  std::istringstream in(box.Read("times." + std::to_string(run) + "." + step));
  Span s;
  in >> s.start >> s.end;
  return s;
}

std::string RunState(const Sandbox& box, int run) {
  json j = ShowRun(box, std::to_string(run));
  return j.is_object() ? j.value("state", "") : "";
}

// The run's step has started (its times file exists).
bool Started(const Sandbox& box, int run, const std::string& step) {
  return box.Exists("times." + std::to_string(run) + "." + step);
}

TEST(ConcurrencyGroupTest, TwoRunsOfOneGroupRunOneAfterTheOtherAndTheSecondSaysWhatItWaitsFor) {
  Sandbox box;
  box.Write("p.yaml", GroupSpec(false, "1"));
  pid_t first = box.Start({"run", "p.yaml"}, "first.log");
  ASSERT_TRUE(WaitFor([&] { return Started(box, 1, "work"); })) << box.Read("first.log");
  pid_t second = box.Start({"run", "p.yaml"}, "second.log");
  ASSERT_TRUE(WaitFor([&] { return box.Read("second.log").find("waits") != std::string::npos; }));
  Output shown = box.Sluice({"show", "2"});
  EXPECT_NE(shown.out.find("concurrency group 'deploy-prod': waiting for run 1, which holds it"), std::string::npos)
      << shown.out;
  EXPECT_EQ(Sandbox::Reap(first), 0) << box.Read("first.log");
  EXPECT_EQ(Sandbox::Reap(second), 0) << box.Read("second.log");
  EXPECT_NE(box.Read("second.log").find("run 2 waits: concurrency group 'deploy-prod' is held by run 1"),
            std::string::npos)
      << box.Read("second.log");
  EXPECT_GE(Times(box, 2, "work").start, Times(box, 1, "work").end);
}

TEST(ConcurrencyGroupTest, RunsWithOtherParamsAreInOtherGroupsAndOverlap) {
  Sandbox box;
  box.Write("p.yaml", GroupSpec(false, "2"));
  pid_t first = box.Start({"run", "p.yaml"}, "first.log");
  ASSERT_TRUE(WaitFor([&] { return Started(box, 1, "work"); })) << box.Read("first.log");
  pid_t second = box.Start({"run", "p.yaml", "-p", "env=staging"}, "second.log");
  EXPECT_EQ(Sandbox::Reap(second), 0) << box.Read("second.log");
  EXPECT_EQ(Sandbox::Reap(first), 0) << box.Read("first.log");
  EXPECT_LT(Times(box, 2, "work").start, Times(box, 1, "work").end);
  EXPECT_EQ(box.Read("second.log").find("waits"), std::string::npos);
}

TEST(ConcurrencyGroupTest, ANewRunCancelsTheOlderRunThatWaitedInTheGroup) {
  Sandbox box;
  box.Write("p.yaml", GroupSpec(false, "2"));
  pid_t first = box.Start({"run", "p.yaml"}, "first.log");
  ASSERT_TRUE(WaitFor([&] { return Started(box, 1, "work"); })) << box.Read("first.log");
  pid_t second = box.Start({"run", "p.yaml"}, "second.log");
  ASSERT_TRUE(WaitFor([&] { return box.Read("second.log").find("waits") != std::string::npos; }));
  pid_t third = box.Start({"run", "p.yaml"}, "third.log");
  EXPECT_EQ(Sandbox::Reap(second), 130) << box.Read("second.log");
  EXPECT_NE(box.Read("second.log").find("run 2 cancelled before it started (it waited in concurrency group 'deploy-prod')"),
            std::string::npos)
      << box.Read("second.log");
  EXPECT_EQ(Sandbox::Reap(first), 0) << box.Read("first.log");
  EXPECT_EQ(Sandbox::Reap(third), 0) << box.Read("third.log");
  EXPECT_NE(box.Read("third.log").find("run 3 replaces run 2, which waited in concurrency group 'deploy-prod'"),
            std::string::npos)
      << box.Read("third.log");
  EXPECT_EQ(RunState(box, 2), "cancelled");
  EXPECT_FALSE(Started(box, 2, "work"));
  EXPECT_GE(Times(box, 3, "work").start, Times(box, 1, "work").end);
}

TEST(ConcurrencyGroupTest, CancelInProgressCancelsTheRunningRunAndTheNewOneRuns) {
  Sandbox box;
  box.Write("p.yaml", GroupSpec(true, "30"));
  pid_t first = box.Start({"run", "p.yaml"}, "first.log");
  ASSERT_TRUE(WaitFor([&] { return Started(box, 1, "work"); })) << box.Read("first.log");
  box.Write("p.yaml", GroupSpec(true, "0"));
  pid_t second = box.Start({"run", "p.yaml"}, "second.log");
  EXPECT_EQ(Sandbox::Reap(first), 130) << box.Read("first.log");
  EXPECT_EQ(Sandbox::Reap(second), 0) << box.Read("second.log");
  EXPECT_NE(box.Read("second.log").find("run 2 cancels run 1, running in concurrency group 'deploy-prod' (cancel_in_progress)"),
            std::string::npos)
      << box.Read("second.log");
  EXPECT_EQ(RunState(box, 1), "cancelled");
  EXPECT_EQ(StepOf(ShowRun(box, "1"), "work")["state"], "cancelled");
}

TEST(ConcurrencyGroupTest, ARunWhoseDriverWasKilledDoesNotHoldItsGroup) {
  Sandbox box;
  box.Write("p.yaml", GroupSpec(false, "30"));
  pid_t first = box.Start({"run", "p.yaml"}, "first.log");
  ASSERT_TRUE(WaitFor([&] { return Started(box, 1, "work"); })) << box.Read("first.log");
  ::kill(first, SIGKILL);
  Sandbox::Reap(first);
  box.Write("p.yaml", GroupSpec(false, "0"));
  Output second = box.Sluice({"run", "p.yaml"});
  EXPECT_EQ(second.code, 0) << second.out << second.err;
  EXPECT_EQ(second.out.find("waits"), std::string::npos) << second.out;
  box.Sluice({"cancel", "1"});  // kills the step its driver left
}

TEST(ConcurrencyGroupTest, CancellingARunThatWaitsInItsGroupEndsItWithoutStartingIt) {
  Sandbox box;
  box.Write("p.yaml", GroupSpec(false, "2"));
  pid_t first = box.Start({"run", "p.yaml"}, "first.log");
  ASSERT_TRUE(WaitFor([&] { return Started(box, 1, "work"); })) << box.Read("first.log");
  pid_t second = box.Start({"run", "p.yaml"}, "second.log");
  ASSERT_TRUE(WaitFor([&] { return box.Read("second.log").find("waits") != std::string::npos; }));
  Output cancel = box.Sluice({"cancel", "2"});
  EXPECT_EQ(cancel.code, 0) << cancel.out << cancel.err;
  EXPECT_EQ(Sandbox::Reap(second), 130) << box.Read("second.log");
  EXPECT_EQ(RunState(box, 2), "cancelled");
  EXPECT_EQ(Sandbox::Reap(first), 0);
  EXPECT_FALSE(Started(box, 2, "work"));
}

std::string PoolSpec(const std::string& seconds) {
  return "name: train\nsteps:\n  fit: {pool: gpu, run: " + TimedStep(seconds) + "}\n";
}

TEST(PoolTest, StepsOfTwoRunsInAPoolOfOneSlotDoNotOverlap) {
  Sandbox box;
  ASSERT_EQ(box.Sluice({"pool", "set", "gpu", "--slots", "1"}).code, 0);
  box.Write("p.yaml", PoolSpec("1"));
  pid_t first = box.Start({"run", "p.yaml"}, "first.log");
  pid_t second = box.Start({"run", "p.yaml"}, "second.log");
  ASSERT_TRUE(WaitFor([&] {
    Output a = box.Sluice({"show", "1"}), b = box.Sluice({"show", "2"});
    return (a.out + b.out).find("waiting for pool 'gpu': 1 of 1 slots taken") != std::string::npos;
  }));
  EXPECT_EQ(Sandbox::Reap(first), 0) << box.Read("first.log");
  EXPECT_EQ(Sandbox::Reap(second), 0) << box.Read("second.log");
  Span a = Times(box, 1, "fit"), b = Times(box, 2, "fit");
  EXPECT_TRUE(a.end <= b.start || b.end <= a.start) << a.start << "-" << a.end << " vs " << b.start << "-" << b.end;
  Output list = box.Sluice({"pool", "list", "--format", "json"});
  EXPECT_EQ(json::parse(list.out), json::parse(R"([{"name": "gpu", "slots": 1, "used": 0, "leases": []}])"));
}

TEST(PoolTest, AStepWaitingForAPoolTakesNoJobsSlot) {
  Sandbox box;
  ASSERT_EQ(box.Sluice({"pool", "set", "gpu", "--slots", "1"}).code, 0);
  box.Write("hold.yaml", PoolSpec("2"));
  box.Write("p.yaml", "name: both\nsteps:\n  fit: {pool: gpu, run: " + TimedStep("0") +
                          "}\n  other: {run: " + TimedStep("0") + "}\n");
  pid_t holder = box.Start({"run", "hold.yaml"}, "hold.log");
  ASSERT_TRUE(WaitFor([&] { return Started(box, 1, "fit"); })) << box.Read("hold.log");
  Output run = box.Sluice({"run", "p.yaml", "--jobs", "1"});
  EXPECT_EQ(run.code, 0) << run.out << run.err;
  EXPECT_EQ(Sandbox::Reap(holder), 0);
  EXPECT_LT(Times(box, 2, "other").end, Times(box, 1, "fit").end);
  EXPECT_GE(Times(box, 2, "fit").start, Times(box, 1, "fit").end);
}

TEST(PoolTest, CancellingARunWhoseStepWaitsForAPoolCancelsTheStepWithoutStartingIt) {
  Sandbox box;
  ASSERT_EQ(box.Sluice({"pool", "set", "gpu", "--slots", "1"}).code, 0);
  box.Write("p.yaml", PoolSpec("30"));
  pid_t holder = box.Start({"run", "p.yaml"}, "hold.log");
  ASSERT_TRUE(WaitFor([&] { return Started(box, 1, "fit"); })) << box.Read("hold.log");
  pid_t waiter = box.Start({"run", "p.yaml"}, "wait.log");
  ASSERT_TRUE(WaitFor([&] {
    return box.Sluice({"show", "2"}).out.find("waiting for pool 'gpu': 1 of 1 slots taken") != std::string::npos;
  }));
  EXPECT_NE(box.Read("wait.log").find("waiting for pool 'gpu'"), std::string::npos) << box.Read("wait.log");
  EXPECT_EQ(box.Sluice({"cancel", "2"}).code, 0);
  EXPECT_EQ(Sandbox::Reap(waiter), 130) << box.Read("wait.log");
  EXPECT_EQ(StepOf(ShowRun(box, "2"), "fit")["state"], "cancelled");
  EXPECT_FALSE(Started(box, 2, "fit"));
  EXPECT_EQ(box.Sluice({"cancel", "1"}).code, 0);
  EXPECT_EQ(Sandbox::Reap(holder), 130);
  Output list = box.Sluice({"pool", "list", "--format", "json"});
  EXPECT_EQ(json::parse(list.out)[0]["used"], 0) << list.out;
}

TEST(PoolTest, TheLeaseOfAKilledDriverIsReclaimedByTheNextRun) {
  Sandbox box;
  ASSERT_EQ(box.Sluice({"pool", "set", "gpu", "--slots", "1"}).code, 0);
  box.Write("p.yaml", PoolSpec("30"));
  pid_t first = box.Start({"run", "p.yaml"}, "first.log");
  ASSERT_TRUE(WaitFor([&] { return Started(box, 1, "fit"); })) << box.Read("first.log");
  Output held = box.Sluice({"pool", "list"});
  EXPECT_NE(held.out.find("run 1 fit"), std::string::npos) << held.out;
  ::kill(first, SIGKILL);
  Sandbox::Reap(first);
  box.Write("p.yaml", PoolSpec("0"));
  Output second = box.Sluice({"run", "p.yaml"});
  EXPECT_EQ(second.code, 0) << second.out << second.err;
  EXPECT_TRUE(Started(box, 2, "fit"));
  box.Sluice({"cancel", "1"});  // kills the step its driver left
}

TEST(PoolTest, AnUnknownPoolIsALocatedErrorAndNoRunIsRecorded) {
  Sandbox box;
  box.Write("p.yaml", "name: train\nsteps:\n  fit: {run: \"true\", pool: gpu}\n");
  Output run = box.Sluice({"run", "p.yaml"});
  EXPECT_EQ(run.code, 2);
  EXPECT_EQ(run.err, "p.yaml:3:28: step 'fit' uses pool 'gpu', which does not exist (sluice pool set gpu --slots N "
                     "creates it)\n");
  EXPECT_EQ(box.Sluice({"runs", "--format", "json"}).out, "[]\n");
}

TEST(PoolTest, AStepTakingMoreSlotsThanThePoolHasIsALocatedError) {
  Sandbox box;
  ASSERT_EQ(box.Sluice({"pool", "set", "gpu", "--slots", "2"}).code, 0);
  box.Write("p.yaml", "name: train\nsteps:\n  fit: {run: \"true\", pool: gpu, pool_slots: 3}\n");
  Output run = box.Sluice({"run", "p.yaml"});
  EXPECT_EQ(run.code, 2);
  EXPECT_EQ(run.err, "p.yaml:3:28: step 'fit' takes 3 slots of pool 'gpu', which has 2\n");
  box.Write("p.yaml", "name: train\nsteps:\n  fit: {run: \"true\", pool: gpu, pool_slots: 2}\n");
  EXPECT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
}

TEST(PoolTest, PoolsAreSetListedAndDeleted) {
  Sandbox box;
  EXPECT_EQ(box.Sluice({"pool", "set", "gpu", "--slots", "2"}).out, "pool gpu: 2 slots\n");
  EXPECT_EQ(box.Sluice({"pool", "set", "gpu", "--slots", "3"}).out, "pool gpu: 3 slots\n");
  Output bad = box.Sluice({"pool", "set", "bad/name", "--slots", "1"});
  EXPECT_EQ(bad.code, 2);
  Output list = box.Sluice({"pool", "list"});
  EXPECT_NE(list.out.find("gpu"), std::string::npos) << list.out;
  EXPECT_EQ(box.Sluice({"pool", "delete", "gpu"}).out, "pool gpu deleted\n");
  Output again = box.Sluice({"pool", "delete", "gpu"});
  EXPECT_EQ(again.code, 1);
  EXPECT_EQ(again.err, "sluice: no pool gpu\n");
}

// A pipeline whose schedule has a missed fire time (its last fire was
// hours ago), so `sluice serve` fires it at once on start, while run 1 of
// the pipeline, started by `sluice run`, is active.
struct OverlapFixture {
  Sandbox box;
  pid_t active = 0, server = 0;
  void Start(const std::string& overlap) {
    // A */5 fire time falling while the test runs would be a second fire: start clear of one.
    int64_t now_s =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    if (now_s % 300 > 280) std::this_thread::sleep_for(std::chrono::seconds(301 - now_s % 300));
    std::filesystem::create_directories(box.dir() / "pipelines");
    box.Write("pipelines/nightly.yaml", "name: nightly\non:\n  schedule: [{cron: \"*/5 * * * *\", overlap: " + overlap +
                                            "}]\nsteps:\n  work: {run: " + TimedStep("30") + "}\n");
    std::filesystem::create_directories(box.home());
    {
      auto store = store::Store::Open((box.home() / "sluice.db").string());
      ASSERT_TRUE(store.ok());
      ASSERT_TRUE((*store)->access().SetLastFire("nightly", "*/5 * * * * UTC", (now_s - 3 * 3600) * 1000).ok());
    }
    active = box.Start({"run", "pipelines/nightly.yaml"}, "active.log");
    ASSERT_TRUE(WaitFor([&] { return Started(box, 1, "work"); })) << box.Read("active.log");
    server = box.Start({"serve", "--dir", "pipelines", "--port", std::to_string(FreePort())}, "serve.log");
  }
  void Stop() {
    ::kill(server, SIGTERM);
    Sandbox::Reap(server);
    if (ProcessAlive(active)) box.Sluice({"cancel", "1"});
    Sandbox::Reap(active);
  }
};

TEST(ScheduleOverlapTest, SchedulesListEachScheduleWithItsOverlap) {
  Sandbox box;
  box.Write("pipelines/p.yaml", "name: p\non:\n  schedule:\n    - {cron: \"@hourly\", overlap: forbid}\n"
                                "    - {cron: \"@daily\"}\nsteps:\n  a: {run: \"true\"}\n");
  Output o = box.Sluice({"schedules", "pipelines", "--format", "json"});
  ASSERT_EQ(o.code, 0) << o.err;
  json j = json::parse(o.out);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["overlap"], "forbid");
  EXPECT_EQ(j[1]["overlap"], "allow");
}

TEST(ScheduleOverlapTest, ForbidSkipsAFireWhileARunOfThePipelineIsActive) {
  OverlapFixture f;
  f.Start("forbid");
  ASSERT_TRUE(WaitFor([&] { return f.box.Read("serve.log.err").find("event=schedule-skipped") != std::string::npos; }))
      << f.box.Read("serve.log.err");
  EXPECT_NE(f.box.Read("serve.log.err").find("reason='run 1 is active (overlap: forbid)'"), std::string::npos)
      << f.box.Read("serve.log.err");
  EXPECT_EQ(RunState(f.box, 1), "running");
  f.Stop();
  EXPECT_EQ(json::parse(f.box.Sluice({"runs", "--format", "json"}).out).size(), 1u);
}

TEST(ScheduleOverlapTest, ReplaceCancelsTheActiveRunAndStartsTheNewOne) {
  OverlapFixture f;
  f.Start("replace");
  ASSERT_TRUE(WaitFor([&] { return f.box.Read("serve.log").find("event=schedule-fired") != std::string::npos; }))
      << f.box.Read("serve.log");
  EXPECT_EQ(Sandbox::Reap(f.active), 130) << f.box.Read("active.log");
  EXPECT_NE(f.box.Read("serve.log").find("event=schedule-replaced pipeline=nightly"), std::string::npos)
      << f.box.Read("serve.log");
  EXPECT_EQ(RunState(f.box, 1), "cancelled");
  ASSERT_TRUE(WaitFor([&] { return Started(f.box, 2, "work"); })) << f.box.Read("serve.log");
  f.box.Sluice({"cancel", "2"});
  f.Stop();
}

// Three fire times missed while no server ran, catchup: all and forbid:
// a run for each, oldest first, never two at once.
TEST(ScheduleOverlapTest, CatchupAllWithForbidRunsEachMissedFireOneAfterAnother) {
  Sandbox box;
  int64_t now_s =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  if (now_s % 300 > 270) {  // a */5 fire time falling while the test runs would be a fourth
    std::this_thread::sleep_for(std::chrono::seconds(301 - now_s % 300));
    now_s += 301 - now_s % 300;
  }
  std::filesystem::create_directories(box.dir() / "pipelines");
  box.Write("pipelines/nightly.yaml", "name: nightly\non:\n  schedule: [{cron: \"*/5 * * * *\", catchup: all, "
                                      "overlap: forbid}]\nsteps:\n  work: {run: \"sleep 1\"}\n");
  std::filesystem::create_directories(box.home());
  {
    auto store = store::Store::Open((box.home() / "sluice.db").string());
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->access().SetLastFire("nightly", "*/5 * * * * UTC", (now_s / 300 * 300 - 900) * 1000).ok());
  }
  pid_t server = box.Start({"serve", "--dir", "pipelines", "--port", std::to_string(FreePort())}, "serve.log");
  auto finished = [&] {
    json runs = json::parse(box.Sluice({"runs", "--format", "json"}).out);
    return runs.size() == 3 && std::all_of(runs.begin(), runs.end(), [](const json& r) { return r["state"] == "succeeded"; });
  };
  EXPECT_TRUE(WaitFor(finished, std::chrono::seconds(40))) << box.Read("serve.log");
  ::kill(server, SIGTERM);
  Sandbox::Reap(server);
  json runs = json::parse(box.Sluice({"runs", "--format", "json"}).out);
  ASSERT_EQ(runs.size(), 3u) << runs.dump();
  std::sort(runs.begin(), runs.end(), [](const json& a, const json& b) { return a["id"] < b["id"]; });
  for (size_t i = 1; i < runs.size(); ++i) {
    EXPECT_GE(runs[i]["started_ms"].get<int64_t>(), runs[i - 1]["finished_ms"].get<int64_t>()) << runs.dump();
    EXPECT_GT(runs[i]["scheduled"].get<std::string>(), runs[i - 1]["scheduled"].get<std::string>()) << runs.dump();
  }
}

}  // namespace
}  // namespace sluice::testing
