// Slots end to end: the executor says how many of --jobs an attempt takes,
// so a built-in step that only waits runs beside a subprocess step under
// --jobs 1 (exec/builtin.h, Executor::Slots); a step that fails before it
// starts gives its slot back at once.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness.h"

using namespace sluice::testing;
using nlohmann::json;

namespace {

bool Running(const json& run, const std::string& step) { return StepOf(run, step)["state"] == "running"; }

// Both steps long, so whichever starts first, seeing them run at once shows
// the wait took no slot; with one it holds the only slot for its minute.
TEST(CapacityTest, AWaitingBuiltInStepTakesNoSlotSoASubprocessStepRunsBesideItWithJobs1) {
  Sandbox box;
  box.Write("p.yaml", R"(name: demo
steps:
  pause:
    uses: sluice/wait
    with: {duration: 60s}
  work:
    run: touch started && sleep 60
)");
  pid_t pid = box.Start({"run", "p.yaml", "--jobs", "1"}, "run.log");
  bool both = WaitFor(
      [&] {
        if (!box.Exists("started")) return false;
        json run = ShowRun(box, "1");
        return Running(run, "pause") && Running(run, "work");
      },
      std::chrono::seconds(20));
  EXPECT_TRUE(both) << box.Read("run.log");
  EXPECT_EQ(box.Sluice({"cancel", "1"}).code, 0);
  EXPECT_EQ(Sandbox::Reap(pid), 130) << box.Read("run.log");
}

TEST(CapacityTest, TwoSubprocessStepsStillTakeOneSlotEachWithJobs1) {
  Sandbox box;
  box.Write("p.yaml", R"(name: demo
steps:
  a:
    run: touch a && sleep 60
  b:
    run: touch b && sleep 60
)");
  pid_t pid = box.Start({"run", "p.yaml", "--jobs", "1"}, "run.log");
  ASSERT_TRUE(WaitFor([&] { return box.Exists("a") || box.Exists("b"); }, std::chrono::seconds(20)))
      << box.Read("run.log");
  // One runs; the other waits for its slot for as long as we look.
  bool both = WaitFor([&] { return box.Exists("a") && box.Exists("b"); }, std::chrono::seconds(2));
  EXPECT_FALSE(both);
  EXPECT_EQ(box.Sluice({"cancel", "1"}).code, 0);
  EXPECT_EQ(Sandbox::Reap(pid), 130) << box.Read("run.log");
}

// Under --jobs 1, `failing` and `sibling` become ready together when `a`
// ends, `failing` first; it fails before its process exists, and the
// sibling takes the slot at once, not at the engine's next timer (the
// cancel poll, every 250 ms).
TEST(CapacityTest, AStepThatFailsBeforeItStartsGivesItsSlotToTheNextReadyStepAtOnce) {
  const std::pair<const char*, const char*> kFailures[] = {
      {"command not found", "run: [no-such-command-here]"},
      {"bad workdir", "run: 'true'\n    workdir: nowhere"},
      {"expression error in run", "run: echo ${{ steps.a.outputs.nope }}"},
      {"expression error in env", "run: 'true'\n    env: {X: '${{ steps.a.outputs.nope }}'}"},
  };
  for (const auto& [what, failing] : kFailures) {
    SCOPED_TRACE(what);
    Sandbox box;
    box.Write("p.yaml", std::string("name: demo\nsteps:\n  a:\n    run: 'true'\n  failing:\n    needs: [a]\n    ") +
                            failing + "\n  sibling:\n    needs: [a]\n    run: 'true'\n");
    Output o = box.Sluice({"run", "p.yaml", "--jobs", "1"});
    EXPECT_EQ(o.code, 1) << o.out << o.err;
    json run = ShowRun(box, "1");
    ASSERT_EQ(StepOf(run, "failing")["state"], "failed") << run.dump(2);
    ASSERT_EQ(StepOf(run, "sibling")["state"], "succeeded") << run.dump(2);
    json failed = StepOf(run, "failing")["attempts"][0], next = StepOf(run, "sibling")["attempts"][0];
    ASSERT_LE(failed["started_ms"].get<int64_t>(), next["started_ms"].get<int64_t>()) << "the failing step went first";
    EXPECT_LT(next["started_ms"].get<int64_t>() - failed["finished_ms"].get<int64_t>(), 100) << run.dump(2);
  }
}

}  // namespace
