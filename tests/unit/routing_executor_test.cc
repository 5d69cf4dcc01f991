// RoutingExecutor sends each attempt to the executor its placement names and
// multiplexes their ends; each executor says how many slots an attempt takes.
#include <unistd.h>

#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "exec/local_executor.h"
#include "exec/plugin_catalog.h"
#include "exec/routing_executor.h"
#include "exec/slurm_executor.h"

namespace sluice::exec {
namespace {

using engine::AttemptExit;
using engine::AttemptRequest;
using engine::Started;

// Records what it is asked; ends come from `ended`, in order, never blocking.
class RecordingExecutor : public engine::Executor {
 public:
  explicit RecordingExecutor(std::string name) : name_(std::move(name)) {}
  std::vector<std::string> starts;            // labels, in order
  std::vector<size_t> batches;                // sizes of StartAll calls
  std::vector<std::string> stops;             // "attempt id TERM|KILL"
  std::deque<AttemptExit> ended;
  std::vector<engine::TimePoint> waits;       // deadlines Wait() was given
  int slots = 7;
  Status adopt = Status::NotFound("not mine");

  Result<Started> Start(const AttemptRequest& r) override {
    starts.push_back(r.step_label);
    return Started{0, name_ + ":" + r.step_label};
  }
  std::vector<Result<Started>> StartAll(const std::vector<const AttemptRequest*>& requests) override {
    batches.push_back(requests.size());
    return Executor::StartAll(requests);
  }
  void Stop(int64_t id, bool hard) override { stops.push_back(std::to_string(id) + (hard ? " KILL" : " TERM")); }
  std::optional<AttemptExit> Wait(engine::TimePoint deadline) override {
    waits.push_back(deadline);
    if (ended.empty()) return std::nullopt;
    AttemptExit e = ended.front();
    ended.pop_front();
    return e;
  }
  void Wake() override {}
  int Slots(const AttemptRequest&) override { return slots; }
  nlohmann::json CodeIdentity(const AttemptRequest&) override { return name_; }
  Status Adopt(const engine::AttemptRecord&) override { return adopt; }

 private:
  std::string name_;
};

AttemptRequest Request(int64_t id, const std::string& label, const std::string& executor, int cpu = 1) {
  AttemptRequest r;
  r.attempt_id = id;
  r.step_label = label;
  r.placement.executor = executor;
  r.placement.cpu = cpu;
  return r;
}

TEST(RoutingExecutorTest, SendsEachPlacementToItsExecutor) {
  RecordingExecutor local("local"), slurm("slurm");
  RoutingExecutor router(&local, &slurm);
  auto a = router.Start(Request(1, "prep", "local"));
  auto b = router.Start(Request(2, "train", "slurm"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->job_id, "local:prep");
  EXPECT_EQ(b->job_id, "slurm:train");
  EXPECT_EQ(local.starts, std::vector<std::string>{"prep"});
  EXPECT_EQ(slurm.starts, std::vector<std::string>{"train"});
}

TEST(RoutingExecutorTest, StartAllGivesEachExecutorItsRequestsInOneCallAndKeepsTheirOrder) {
  RecordingExecutor local("local"), slurm("slurm");
  RoutingExecutor router(&local, &slurm);
  AttemptRequest r[] = {Request(1, "s[0]", "slurm"), Request(2, "a", "local"), Request(3, "s[1]", "slurm"),
                        Request(4, "b", "local")};
  auto started = router.StartAll({&r[0], &r[1], &r[2], &r[3]});
  ASSERT_EQ(started.size(), 4u);
  EXPECT_EQ(started[0]->job_id, "slurm:s[0]");
  EXPECT_EQ(started[1]->job_id, "local:a");
  EXPECT_EQ(started[2]->job_id, "slurm:s[1]");
  EXPECT_EQ(started[3]->job_id, "local:b");
  EXPECT_EQ(local.batches, std::vector<size_t>{2});
  EXPECT_EQ(slurm.batches, std::vector<size_t>{2});  // one call: Slurm can make it one job array
}

TEST(RoutingExecutorTest, ASlurmPlacementFailsToStartWhenTheRunHasNoSlurmExecutor) {
  RecordingExecutor local("local");
  RoutingExecutor router(&local, nullptr);
  auto started = router.Start(Request(1, "train", "slurm"));
  ASSERT_FALSE(started.ok());
  EXPECT_EQ(started.status().message(), "step train runs on Slurm, but this run has no Slurm executor");
  AttemptRequest r[] = {Request(2, "a", "local"), Request(3, "t", "slurm")};
  auto all = router.StartAll({&r[0], &r[1]});
  EXPECT_TRUE(all[0].ok());
  EXPECT_FALSE(all[1].ok());
  EXPECT_TRUE(local.starts == std::vector<std::string>{"a"});
}

TEST(RoutingExecutorTest, StopGoesToTheExecutorThatStartedTheAttempt) {
  RecordingExecutor local("local"), slurm("slurm");
  RoutingExecutor router(&local, &slurm);
  ASSERT_TRUE(router.Start(Request(1, "prep", "local")).ok());
  ASSERT_TRUE(router.Start(Request(2, "train", "slurm")).ok());
  router.Stop(2, false);
  router.Stop(1, true);
  EXPECT_EQ(slurm.stops, std::vector<std::string>{"2 TERM"});
  EXPECT_EQ(local.stops, std::vector<std::string>{"1 KILL"});
}

TEST(RoutingExecutorTest, WaitHandsOverWhatSlurmQueuedBeforeBlockingInTheLocalExecutor) {
  RecordingExecutor local("local"), slurm("slurm");
  RoutingExecutor router(&local, &slurm);
  ASSERT_TRUE(router.Start(Request(1, "prep", "local")).ok());
  ASSERT_TRUE(router.Start(Request(2, "train", "slurm")).ok());
  slurm.ended.push_back({2, 0});
  local.ended.push_back({1, 3});
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  auto first = router.Wait(deadline);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->attempt_id, 2);
  EXPECT_TRUE(local.waits.empty());  // nothing blocked while an end was queued
  auto second = router.Wait(deadline);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->attempt_id, 1);
  EXPECT_EQ(second->exit_code, 3);
  ASSERT_EQ(local.waits.size(), 1u);
  EXPECT_EQ(local.waits[0], deadline);  // the local executor is where it blocks
  for (engine::TimePoint t : slurm.waits) EXPECT_LT(t, std::chrono::steady_clock::now());  // Slurm's: never blocks
  EXPECT_FALSE(router.Wait(deadline));  // nothing left
}

TEST(RoutingExecutorTest, AdoptAsksSlurmFirstThenTheLocalExecutor) {
  RecordingExecutor local("local"), slurm("slurm");
  RoutingExecutor router(&local, &slurm);
  engine::AttemptRecord a;
  a.id = 5;
  a.job_id = "slurm:77";
  slurm.adopt = Status::Ok();
  ASSERT_TRUE(router.Adopt(a).ok());
  router.Stop(5, false);
  EXPECT_EQ(slurm.stops, std::vector<std::string>{"5 TERM"});
  slurm.adopt = Status::NotFound("not a Slurm job");
  local.adopt = Status::Ok();
  a.id = 6;
  ASSERT_TRUE(router.Adopt(a).ok());
  router.Stop(6, false);
  EXPECT_EQ(local.stops, std::vector<std::string>{"6 TERM"});
  slurm.adopt = Status::IoError("squeue: down");  // Slurm's own job it cannot follow: said so
  EXPECT_EQ(router.Adopt(a).message(), "squeue: down");
}

TEST(RoutingExecutorTest, SlotsAreTheRoutedExecutorsAndCodeIdentityTheLocalOnes) {
  RecordingExecutor local("local"), slurm("slurm");
  local.slots = 3;
  slurm.slots = 0;
  RoutingExecutor router(&local, &slurm);
  EXPECT_EQ(router.Slots(Request(1, "a", "local", 3)), 3);
  EXPECT_EQ(router.Slots(Request(2, "b", "slurm", 3)), 0);
  EXPECT_EQ(router.CodeIdentity(Request(2, "b", "slurm")), "local");  // the plugin catalog is this machine's
}

TEST(RoutingExecutorTest, ASlurmStepTakesNoLocalSlot) {
  PluginCatalog catalog;
  LocalExecutor local(&catalog);
  SlurmExecutor slurm("/bin/true", {});
  RoutingExecutor router(&local, &slurm);
  EXPECT_EQ(router.Slots(Request(1, "train", "slurm", 8)), 0);
  EXPECT_EQ(router.Slots(Request(2, "prep", "local", 2)), 2);
}

AttemptRequest PluginRequest(const std::string& plugin, const std::string& type, int cpu) {
  AttemptRequest r = Request(1, type, "local", cpu);
  engine::PluginCall call;
  call.plugin = plugin;
  call.step_type = type;
  r.plugin = call;
  return r;
}

TEST(LocalExecutorTest, AWaitingBuiltInStepTakesNoSlotAndOtherStepsTheirCpu) {
  PluginCatalog catalog;  // the built-in plugins only
  LocalExecutor local(&catalog);
  EXPECT_EQ(local.Slots(PluginRequest("sluice", "wait", 1)), 0);
  EXPECT_EQ(local.Slots(PluginRequest("sluice", "wait", 4)), 0);
  EXPECT_EQ(local.Slots(PluginRequest("testkit", "noop", 2)), 2);  // not in this catalog: its cpu
  EXPECT_EQ(local.Slots(Request(1, "train", "local", 3)), 3);
}

// A step that ends may install what a later one runs: a command not found is
// looked for again once an attempt has ended, and not before (a thousand
// steps that cannot start cost one PATH search).
TEST(LocalExecutorTest, ACommandNotFoundIsLookedForAgainOnlyAfterAnAttemptEnds) {
  std::filesystem::path dir = std::filesystem::temp_directory_path() / ("sluice-local-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "bin");
  LocalExecutor local;
  AttemptRequest tool = Request(1, "tool", "local");
  tool.argv = {"tool"};
  tool.env = {"PATH=" + (dir / "bin").string()};
  tool.workdir = dir.string();
  EXPECT_EQ(local.CheckStart(tool).message(), "command not found: tool");
  {
    std::ofstream script(dir / "bin" / "tool");
    script << "#!/bin/sh\n";
  }
  std::filesystem::permissions(dir / "bin" / "tool", std::filesystem::perms::owner_all);
  EXPECT_EQ(local.CheckStart(tool).message(), "command not found: tool");  // no attempt has ended since

  AttemptRequest installer = Request(2, "install", "local");
  installer.argv = {"/bin/true"};
  installer.workdir = dir.string();
  installer.log_path = (dir / "install.log").string();
  ASSERT_TRUE(local.Start(installer).ok());
  std::optional<AttemptExit> ended = local.Wait(std::chrono::steady_clock::now() + std::chrono::seconds(30));
  ASSERT_TRUE(ended);
  EXPECT_EQ(ended->attempt_id, 2);
  EXPECT_TRUE(local.CheckStart(tool).ok());
  std::filesystem::remove_all(dir);
}

TEST(PluginCatalogTest, TheBuiltInWaitIsRegisteredAsTakingNoSlot) {
  PluginCatalog catalog;
  const PluginInfo* sluice = catalog.Find("sluice");
  ASSERT_NE(sluice, nullptr);
  const StepTypeInfo* wait = sluice->Find("wait");
  ASSERT_NE(wait, nullptr);
  EXPECT_FALSE(wait->takes_slot);
  EXPECT_TRUE(catalog.refused().empty());
}

TEST(SlurmExecutorTest, WakeEndsABlockedWait) {
  SlurmExecutor slurm("/bin/true", {});
  auto t0 = std::chrono::steady_clock::now();
  slurm.Wake();
  EXPECT_FALSE(slurm.Wait(t0 + std::chrono::seconds(30)));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

TEST(SlurmExecutorTest, AnAttemptThatWasNoSlurmJobIsNotAdopted) {
  SlurmExecutor slurm("/bin/true", {});
  engine::AttemptRecord a;
  a.id = 3;
  a.job_id = "";
  Status st = slurm.Adopt(a);
  EXPECT_EQ(st.code(), Code::kNotFound);
}

}  // namespace
}  // namespace sluice::exec
