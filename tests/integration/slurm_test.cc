// The Slurm executor on a real one-node Slurm cluster that the test starts:
// munged, slurmctld and slurmd as root, from Debian's slurm-wlm and munge,
// with a minimal slurm.conf in a temporary folder. Skipped, saying why, only
// when those packages are missing.
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "../common/slurm_cluster.h"
#include "harness.h"

namespace sluice::testing {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

SlurmCluster* g_cluster = nullptr;

class SlurmTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!SlurmCluster::Missing().empty()) return;
    g_cluster = new SlurmCluster;
    if (!g_cluster->Start()) {
      std::fprintf(stderr, "the test cluster did not start:\n%s\n", g_cluster->Log().c_str());
      g_cluster->Stop();
      delete g_cluster;
      g_cluster = nullptr;
    }
  }
  static void TearDownTestSuite() {
    if (!g_cluster) return;
    g_cluster->Stop();
    delete g_cluster;
    g_cluster = nullptr;
  }
  void SetUp() override {
    if (std::string why = SlurmCluster::Missing(); !why.empty()) GTEST_SKIP() << why;
    ASSERT_NE(g_cluster, nullptr) << "the one-node Slurm cluster did not start";
  }

  Sandbox box_;
};

// Ten steps: a fan-out of eight computing squares, a join, a report.
std::string TenSteps(const std::string& executor) {
  std::string spec = "name: squares\ndefaults:\n  executor: " + executor + "\nsteps:\n  start: {run: \"echo n=3 > $SLUICE_OUTPUT\"}\n";
  for (int i = 1; i <= 8; ++i)
    spec += "  sq" + std::to_string(i) + ": {needs: [start], run: [\"sh\", \"-c\", \"echo v=$(( $0 * $0 + $1 )) > $SLUICE_OUTPUT\", \"" +
            std::to_string(i) + "\", \"${{ steps.start.outputs.n }}\"]}\n";
  spec += "  total:\n    needs: [sq1, sq2, sq3, sq4, sq5, sq6, sq7, sq8]\n    run: [\"sh\", \"-c\", \"echo sum=$(( $0+$1+$2+$3+$4+$5+$6+$7 )) > $SLUICE_OUTPUT\"";
  for (int i = 1; i <= 8; ++i) spec += ", \"${{ steps.sq" + std::to_string(i) + ".outputs.v }}\"";
  spec += "]\n";
  return spec;
}

std::map<std::string, json> OutputsOf(const json& run) {
  std::map<std::string, json> out;
  for (const auto& s : run["steps"]) out[s["id"]] = s["outputs"];
  return out;
}

TEST_F(SlurmTest, ATenStepPipelineRunsOnTheClusterWithTheSameOutputsAsLocally) {
  box_.Write("local.yaml", TenSteps("local"));
  box_.Write("cluster.yaml", TenSteps("slurm"));
  Output local = box_.Sluice({"run", "local.yaml"});
  ASSERT_EQ(local.code, 0) << local.out << local.err;
  json local_run = ShowRun(box_, "latest");
  Output cluster = box_.Sluice({"run", "cluster.yaml"});
  ASSERT_EQ(cluster.code, 0) << cluster.out << cluster.err;
  json cluster_run = ShowRun(box_, "latest");
  EXPECT_EQ(OutputsOf(cluster_run), OutputsOf(local_run));
  EXPECT_EQ(StepOf(cluster_run, "total")["outputs"]["sum"], "228");  // 1+4+...+64 + 8*3
  for (const auto& s : cluster_run["steps"]) {
    std::string job = s["attempts"][0]["job_id"];
    EXPECT_EQ(job.rfind("slurm:", 0), 0u) << s.dump();
  }
  EXPECT_NE(cluster.out.find("event=started job=slurm:"), std::string::npos);
}

TEST_F(SlurmTest, ResourcesAndSlurmSettingsBecomeSbatchArgumentsAndTheLogIsTheJobsOutput) {
  box_.Write("p.yaml", R"yaml(name: placed
defaults:
  executor: slurm
  slurm: {partition: debug, extra: ["--comment=made by sluice"]}
steps:
  show:
    resources: {cpu: 2, memory: 100M}
    run: ["sh", "-c", "echo cpus=$SLURM_CPUS_PER_TASK job=$SLURM_JOB_ID partition=$SLURM_JOB_PARTITION; echo arg=$0", "a b; $(touch pwned)"]
)yaml");
  Output o = box_.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  Output log = box_.Sluice({"logs", "latest", "show"});
  EXPECT_NE(log.out.find("cpus=2 job="), std::string::npos) << log.out;
  EXPECT_NE(log.out.find("partition=debug"), std::string::npos) << log.out;
  EXPECT_NE(log.out.find("arg=a b; $(touch pwned)"), std::string::npos) << log.out;
  EXPECT_FALSE(box_.Exists("pwned"));
  std::string job = StepOf(ShowRun(box_, "latest"), "show")["attempts"][0]["job_id"];
  std::string info = Capture("scontrol show job " + job.substr(6));
  EXPECT_NE(info.find("Comment=made by sluice"), std::string::npos) << info;
  EXPECT_NE(info.find("JobState=COMPLETED"), std::string::npos) << info;
}

TEST_F(SlurmTest, AnUnknownPartitionFailsTheAttemptWithSlurmsOwnMessage) {
  box_.Write("p.yaml", "name: bad\nsteps:\n  a: {run: \"true\", executor: slurm, slurm: {partition: nosuch}}\n");
  Output o = box_.Sluice({"run", "p.yaml"});
  EXPECT_EQ(o.code, 1);
  std::string reason = StepOf(ShowRun(box_, "latest"), "a")["attempts"][0]["reason"];
  EXPECT_NE(reason.find("sbatch: error: invalid partition specified: nosuch"), std::string::npos) << reason;
}

TEST_F(SlurmTest, AJobScancelledFromOutsideFailsItsAttemptWithThatReasonAndIsRetried) {
  box_.Write("p.yaml", R"(name: outside
steps:
  a:
    executor: slurm
    retry: {limit: 1, backoff: {initial: 100ms}}
    run: "test -f second || { touch second; sleep 60; }"
)");
  pid_t pid = box_.Start({"run", "p.yaml"}, "run.log");
  std::string job;
  ASSERT_TRUE(WaitFor([&] {
    std::string log = box_.Read("run.log");
    size_t at = log.find("job=slurm:");
    if (at == std::string::npos) return false;
    job = log.substr(at + 10, log.find_first_not_of("0123456789", at + 10) - at - 10);
    // Running per Slurm is not yet running the step: wait for its mark, or
    // a scancel before it leaves the retry to sleep its 60 s.
    return fs::exists(box_.dir() / "second");
  }));
  ASSERT_EQ(std::system(("scancel " + job).c_str()), 0);
  EXPECT_EQ(Sandbox::Reap(pid), 0) << box_.Read("run.log");
  json a = StepOf(ShowRun(box_, "latest"), "a");
  EXPECT_EQ(a["attempts"][0]["state"], "failed");
  EXPECT_EQ(a["attempts"][0]["reason"], "Slurm: CANCELLED (scancel from outside sluice) of job " + job);
  EXPECT_EQ(a["attempts"][1]["state"], "succeeded");
}

TEST_F(SlurmTest, CancellingTheRunCancelsItsJobs) {
  box_.Write("p.yaml", "name: long\ndefaults: {executor: slurm}\nsteps:\n  a: {run: \"sleep 60\"}\n  b: {run: \"sleep 60\"}\n");
  pid_t pid = box_.Start({"run", "p.yaml"}, "run.log");
  ASSERT_TRUE(WaitFor([&] {
    return Capture("squeue --noheader --states=RUNNING --format=%j").find("sluice.b") != std::string::npos &&
           Capture("squeue --noheader --states=RUNNING --format=%j").find("sluice.a") != std::string::npos;
  }));
  Output c = box_.Sluice({"cancel", "latest"});
  EXPECT_EQ(c.code, 0) << c.err;
  EXPECT_EQ(Sandbox::Reap(pid), 130);
  EXPECT_TRUE(WaitFor([] {
    std::string left = Capture("squeue --noheader --states=PENDING,RUNNING,COMPLETING --format=%j");
    return left.find("sluice.") == std::string::npos;
  }, std::chrono::seconds(15))) << Capture("squeue --states=all");
  json run = ShowRun(box_, "latest");
  EXPECT_EQ(run["state"], "cancelled");
  EXPECT_EQ(StepOf(run, "a")["attempts"][0]["state"], "cancelled");
}

TEST_F(SlurmTest, ResumeAfterKill9AdoptsTheJobsStillRunningInsteadOfSubmittingThemAgain) {
  // An sbatch first on PATH that counts its calls.
  box_.Write("shim/sbatch", "#!/bin/sh\necho x >> \"" + (box_.dir() / "sbatch-calls").string() + "\"\nexec /usr/bin/sbatch \"$@\"\n");
  fs::permissions(box_.dir() / "shim/sbatch", fs::perms::owner_all);
  std::string old_path = std::getenv("PATH");
  ::setenv("PATH", ((box_.dir() / "shim").string() + ":" + old_path).c_str(), 1);
  box_.Write("p.yaml", R"(name: adopt
defaults: {executor: slurm}
steps:
  slow: {run: "sleep 4; echo slow=done > $SLUICE_OUTPUT"}
  other: {run: "sleep 4; echo other=done > $SLUICE_OUTPUT"}
  after: {needs: [slow, other], run: "echo after ${{ steps.slow.outputs.slow }}"}
)");
  pid_t pid = box_.Start({"run", "p.yaml"}, "run.log");
  ASSERT_TRUE(WaitFor([&] {
    std::string q = Capture("squeue --noheader --states=RUNNING --format=%j");
    return q.find("sluice.slow") != std::string::npos && q.find("sluice.other") != std::string::npos;
  })) << box_.Read("run.log");
  ::kill(pid, SIGKILL);
  Sandbox::Reap(pid);
  Output resumed = box_.Sluice({"resume", "latest"});
  ::setenv("PATH", old_path.c_str(), 1);
  EXPECT_EQ(resumed.code, 0) << resumed.out << resumed.err;
  EXPECT_NE(resumed.out.find("step=slow attempt=1 event=adopted job=slurm:"), std::string::npos) << resumed.out;
  EXPECT_EQ(CountLines(box_.Read("sbatch-calls"), "x"), 3) << "slow, other and after: each submitted once";
  json run = ShowRun(box_, "latest");
  EXPECT_EQ(run["state"], "succeeded");
  EXPECT_EQ(StepOf(run, "slow")["attempts"].size(), 1u);
  EXPECT_EQ(StepOf(run, "slow")["outputs"]["slow"], "done");
  EXPECT_EQ(StepOf(run, "after")["state"], "succeeded");
}

TEST_F(SlurmTest, APluginStepRunsOnTheNodeInAPluginHostAndItsOutputsAndMetricsComeBack) {
  ::setenv("SLUICE_PLUGIN_PATH", (std::string(SLUICE_TEST_PLUGINS) + "/testkit").c_str(), 1);
  box_.Write("p.yaml", R"(name: plugged
steps:
  echo:
    uses: testkit/echo
    executor: slurm
    with: {epochs: 3, greeting: "hi there", nested: {k: [1, 2]}}
  after:
    needs: [echo]
    run: [sh, -c, 'printf "%s|%s" "$0" "$1" > got.txt', "${{ steps.echo.outputs.greeting }}", "${{ steps.echo.outputs.nested }}"]
)");
  Output o = box_.Sluice({"run", "p.yaml"});
  ::unsetenv("SLUICE_PLUGIN_PATH");
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(box_.Read("got.txt"), "hi there|{\"k\":[1,2]}");
  json echo = StepOf(ShowRun(box_, "latest"), "echo");
  EXPECT_EQ(echo["attempts"][0]["job_id"].get<std::string>().rfind("slurm:", 0), 0u);
  ASSERT_EQ(echo["metrics"].size(), 3u);
  EXPECT_EQ(echo["metrics"][2]["name"], "loss");
  EXPECT_NE(box_.Sluice({"logs", "latest", "echo"}).out.find("echo attempt 1\n"), std::string::npos);
}

TEST_F(SlurmTest, AForeachOfAHundredItemsRunsAsOneJobArray) {
  box_.Write("shim/sbatch", "#!/bin/sh\necho \"$@\" >> \"" + (box_.dir() / "sbatch-calls").string() + "\"\nexec /usr/bin/sbatch \"$@\"\n");
  fs::permissions(box_.dir() / "shim/sbatch", fs::perms::owner_all);
  std::string old_path = std::getenv("PATH");
  ::setenv("PATH", ((box_.dir() / "shim").string() + ":" + old_path).c_str(), 1);
  box_.Write("p.yaml", R"(name: fan
steps:
  items: {run: "seq 0 99 | paste -sd, | sed 's/^/list=[/; s/$/]/' > $SLUICE_OUTPUT"}
  square:
    needs: [items]
    executor: slurm
    foreach: "${{ fromJSON(steps.items.outputs.list) }}"
    run: ["sh", "-c", "echo squared=$(( $0 * $0 )) > $SLUICE_OUTPUT; echo item $0", "${{ item }}"]
)");
  Output o = box_.Sluice({"run", "p.yaml"});
  ::setenv("PATH", old_path.c_str(), 1);
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  std::string calls = box_.Read("sbatch-calls");
  EXPECT_EQ(std::count(calls.begin(), calls.end(), '\n'), 1) << calls;
  EXPECT_NE(calls.find("--array=0-99"), std::string::npos) << calls;
  json square = StepOf(ShowRun(box_, "latest"), "square");
  ASSERT_EQ(square["items"].size(), 100u);
  std::string array = square["items"][0]["attempts"][0]["job_id"];
  array = array.substr(0, array.find('_'));
  for (int i = 0; i < 100; ++i) {
    const json& item = square["items"][i];
    EXPECT_EQ(item["state"], "succeeded");
    EXPECT_EQ(item["outputs"]["squared"], std::to_string(i * i));
    EXPECT_EQ(item["attempts"][0]["job_id"], array + "_" + std::to_string(i));
  }
  EXPECT_EQ(box_.Sluice({"logs", "latest", "square[42]"}).out, "item 42\n");
}

TEST_F(SlurmTest, AJobOverItsSlurmTimeLimitFailsWithTimeout) {
  // Slurm counts time limits in minutes and checks them every 30 s: this
  // test takes 60 to 100 s.
  box_.Write("p.yaml", "name: slow\nsteps:\n  a: {run: \"sleep 600\", executor: slurm, slurm: {time: \"1\"}}\n");
  Output o = box_.Sluice({"run", "p.yaml"});
  EXPECT_EQ(o.code, 1) << o.out;
  std::string reason = StepOf(ShowRun(box_, "latest"), "a")["attempts"][0]["reason"];
  EXPECT_EQ(reason.rfind("Slurm: TIMEOUT", 0), 0u) << reason;
}

}  // namespace
}  // namespace sluice::testing
