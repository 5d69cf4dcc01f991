// The run-level flow end to end, with the `sluice` binary, real processes
// and a real SQLite file: the run's timeout (also across `sluice resume`),
// finally steps on failure and on Ctrl-C, and steps.X.exit_code read back
// from the store after a resume.
#include <signal.h>

#include <chrono>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness.h"

using namespace sluice::testing;
using nlohmann::json;

namespace {

bool HasLine(const Sandbox& box, const std::string& name) {
  return box.Exists(name) && box.Read(name).find('\n') != std::string::npos;
}

}  // namespace

TEST(FlowTest, TheRunTimeoutStopsARealStepAndFailsTheRunNamingTheTimeout) {
  Sandbox box;
  box.Write("p.yaml",
            "name: demo\ntimeout: 500ms\nsteps:\n"
            "  slow: {run: \"echo $$ > slow.pid; sleep 30\"}\n"
            "  after: {needs: slow, run: \"touch after-ran\"}\n");
  auto t0 = std::chrono::steady_clock::now();
  Output o = box.Sluice({"run", "p.yaml"});
  EXPECT_EQ(o.code, 1) << o.out << o.err;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(8));  // not the 30 s sleep
  EXPECT_NE(o.out.find("run 1 failed in "), std::string::npos) << o.out;
  EXPECT_NE(o.out.find(" (the run's timeout of 500ms passed): 2 steps, 1 failed"), std::string::npos) << o.out;
  json run = ShowRun(box, "1");
  EXPECT_EQ(run["state"], "failed");
  EXPECT_EQ(StepOf(run, "slow")["state"], "failed");
  EXPECT_EQ(StepOf(run, "slow")["reason"], "the run's timeout of 500ms passed");
  EXPECT_EQ(StepOf(run, "after")["state"], "cancelled");
  EXPECT_EQ(StepOf(run, "after")["reason"], "not started: the run's timeout of 500ms passed");
  EXPECT_FALSE(box.Exists("after-ran"));
  EXPECT_FALSE(ProcessAlive(std::stoi(box.Read("slow.pid"))));
}

TEST(FlowTest, ResumeAfterTheRunTimeoutFailsTheRunAtOnce) {
  Sandbox box;
  box.Write("p.yaml",
            "name: demo\ntimeout: 1s\nsteps:\n"
            "  slow: {run: \"echo $$ > slow.pid; sleep 30\"}\n"
            "finally:\n  notify: {run: \"echo ${{ run.state }} > notify.txt\"}\n");
  pid_t pid = box.Start({"run", "p.yaml"}, "run.log");
  ASSERT_TRUE(WaitFor([&] { return HasLine(box, "slow.pid"); }));
  ::kill(pid, SIGKILL);
  Sandbox::Reap(pid);
  // Past the deadline counted from the run's stored start.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  auto t0 = std::chrono::steady_clock::now();
  Output o = box.Sluice({"resume", "1"});
  EXPECT_EQ(o.code, 1) << o.out << o.err;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  json run = ShowRun(box, "1");
  EXPECT_EQ(run["state"], "failed");
  EXPECT_EQ(StepOf(run, "slow")["reason"], "not started: the run's timeout of 1s passed");
  EXPECT_EQ(box.Read("notify.txt"), "failed\n");  // the finally step still ran
  EXPECT_FALSE(ProcessAlive(std::stoi(box.Read("slow.pid"))));
}

TEST(FlowTest, ResumeBeforeTheRunTimeoutKeepsCountingFromTheRunsStart) {
  Sandbox box;
  box.Write("p.yaml",
            "name: demo\ntimeout: 3s\nsteps:\n"
            "  slow: {run: \"echo $$ >> slow.pid; sleep 30\"}\n");
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = box.Start({"run", "p.yaml"}, "run.log");
  ASSERT_TRUE(WaitFor([&] { return HasLine(box, "slow.pid"); }));
  ::kill(pid, SIGKILL);
  Sandbox::Reap(pid);
  Output o = box.Sluice({"resume", "1"});
  EXPECT_EQ(o.code, 1) << o.out << o.err;
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, std::chrono::milliseconds(2900));
  EXPECT_LT(took, std::chrono::seconds(6));  // 3 s from the first start, not from the resume
  EXPECT_EQ(StepOf(ShowRun(box, "1"), "slow")["reason"], "the run's timeout of 3s passed");
}

TEST(FlowTest, AFinallyStepGetsTheRunsStateAndFailedStepsAsValues) {
  Sandbox box;
  box.Write("p.yaml",
            "name: demo\nsteps:\n"
            "  bad: {run: \"exit 3\"}\n"
            "  fine: {run: \"true\"}\n"
            "finally:\n"
            "  notify:\n"
            "    env: {STATE: '${{ run.state }}', FAILED: '${{ run.failed_steps }}'}\n"
            "    run: 'echo \"$STATE $FAILED ${{ steps.bad.exit_code }}\" > notify.txt'\n");
  Output o = box.Sluice({"run", "p.yaml"});
  EXPECT_EQ(o.code, 1) << o.out << o.err;
  EXPECT_EQ(box.Read("notify.txt"), "failed [\"bad\"] 3\n");
  json run = ShowRun(box, "1");
  EXPECT_EQ(run["state"], "failed");
  EXPECT_EQ(StepOf(run, "notify")["state"], "succeeded");
}

TEST(FlowTest, CtrlCStopsTheStepsThenRunsTheFinallyStepsAndTheRunStaysCancelled) {
  Sandbox box;
  box.Write("p.yaml",
            "name: demo\nsteps:\n"
            "  long: {run: \"echo $$ > long.pid; sleep 100\"}\n"
            "finally:\n"
            "  cleanup: {run: \"echo ${{ run.state }} > cleanup.txt; exit 1\"}\n");
  pid_t pid = box.Start({"run", "p.yaml"}, "run.log");
  ASSERT_TRUE(WaitFor([&] { return HasLine(box, "long.pid"); }));
  ::kill(pid, SIGINT);
  EXPECT_EQ(Sandbox::Reap(pid), 130);
  EXPECT_EQ(box.Read("cleanup.txt"), "cancelled\n");
  json run = ShowRun(box, "1");
  EXPECT_EQ(run["state"], "cancelled");  // a failing finally step does not change a cancel
  EXPECT_EQ(StepOf(run, "long")["state"], "cancelled");
  EXPECT_EQ(StepOf(run, "cleanup")["state"], "failed");
  EXPECT_FALSE(ProcessAlive(std::stoi(box.Read("long.pid"))));
}

TEST(FlowTest, ASecondCtrlCStopsTheFinallyStepsToo) {
  Sandbox box;
  box.Write("p.yaml",
            "name: demo\nsteps:\n"
            "  long: {run: \"echo $$ > long.pid; sleep 100\"}\n"
            "finally:\n"
            "  cleanup: {run: \"echo $$ > cleanup.pid; sleep 100\"}\n");
  pid_t pid = box.Start({"run", "p.yaml"}, "run.log");
  ASSERT_TRUE(WaitFor([&] { return HasLine(box, "long.pid"); }));
  ::kill(pid, SIGINT);
  ASSERT_TRUE(WaitFor([&] { return HasLine(box, "cleanup.pid"); }));
  ::kill(pid, SIGINT);
  EXPECT_EQ(Sandbox::Reap(pid), 130);
  json run = ShowRun(box, "1");
  EXPECT_EQ(StepOf(run, "cleanup")["state"], "cancelled");
  EXPECT_EQ(StepOf(run, "cleanup")["reason"], "cancelled (SIGKILL at once)");
  EXPECT_FALSE(ProcessAlive(std::stoi(box.Read("cleanup.pid"))));
}

TEST(FlowTest, AnExitCodeIsReadBackFromTheStoreAfterAResume) {
  Sandbox box;
  box.Write("p.yaml",
            "name: demo\nsteps:\n"
            "  a: {run: \"exit 3\", continue_on_error: true}\n"
            "  shard: {foreach: [0, 4], run: \"exit ${{ item }}\", continue_on_error: true}\n"
            "  b: {needs: [a, shard], run: \"if [ ! -e go ]; then echo $$ > b.pid; sleep 100; fi\"}\n"
            "  c: {needs: b, run: \"echo ${{ steps.a.exit_code }} ${{ steps.shard.exit_code }} > code.txt\"}\n");
  pid_t pid = box.Start({"run", "p.yaml"}, "run.log");
  ASSERT_TRUE(WaitFor([&] { return HasLine(box, "b.pid"); }));
  ::kill(pid, SIGKILL);
  Sandbox::Reap(pid);
  box.Write("go", "");
  Output o = box.Sluice({"resume", "1"});
  EXPECT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(box.Read("code.txt"), "3 [0,4]\n");
}

TEST(FlowTest, SluiceShowPrintsTheRunsOutputsAndAnAbsentOneWithItsReason) {
  Sandbox box;
  box.Write("p.yaml",
            "name: demo\nparams: {lr: {type: float, default: 0.5}}\nsteps:\n"
            "  train:\n    run: \"echo model=m-$LR >> $SLUICE_OUTPUT\"\n    env: {LR: \"${{ params.lr }}\"}\n"
            "  judge: {needs: train, run: \"exit 4\", continue_on_error: true}\n"
            "finally:\n  notify: {run: \"echo sent=yes >> $SLUICE_OUTPUT\"}\n"
            "outputs:\n"
            "  model: ${{ steps.train.outputs.model }}\n"
            "  verdict: ${{ steps.judge.outputs.verdict }}\n"
            "  notified: ${{ steps.notify.outputs.sent }} at lr ${{ params.lr }}\n");
  Output o = box.Sluice({"run", "p.yaml"});
  EXPECT_EQ(o.code, 0) << o.out << o.err;
  Output show = box.Sluice({"show", "1"});
  EXPECT_EQ(show.code, 0) << show.err;
  EXPECT_NE(show.out.find("\noutputs\n"
                          "  model = m-0.5\n"
                          "  verdict: none (${{ steps.judge.outputs.verdict }}: step 'judge' has no output 'verdict' (it failed))\n"
                          "  notified = yes at lr 0.5\n"),
            std::string::npos)
      << show.out;
  json run = ShowRun(box, "1");
  json expected = {{{"name", "model"}, {"value", "m-0.5"}, {"reason", ""}},
                   {{"name", "verdict"}, {"value", nullptr}, {"reason", "${{ steps.judge.outputs.verdict }}: step 'judge' has no output 'verdict' (it failed)"}},
                   {{"name", "notified"}, {"value", "yes at lr 0.5"}, {"reason", ""}}};
  EXPECT_EQ(run["outputs"], expected);
}
