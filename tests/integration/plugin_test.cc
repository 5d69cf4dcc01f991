// Plugin steps end to end: the real binary, the testkit plugin built with
// the SDK, isolated hosts and in-process threads.
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "exec/plugin_catalog.h"
#include "exec/plugin_runner.h"
#include "harness.h"

using namespace sluice::testing;
using nlohmann::json;

namespace {

const std::string kPlugins = SLUICE_TEST_PLUGINS;

class PluginTest : public ::testing::Test {
 protected:
  void SetUp() override { ::setenv("SLUICE_PLUGIN_PATH", (kPlugins + "/testkit").c_str(), 1); }
  json Step(int run, const std::string& id) { return StepOf(ShowRun(box_, std::to_string(run)), id); }
  Sandbox box_;
};

}  // namespace

TEST_F(PluginTest, PluginsListsStepTypesAndRefusesBadLibraries) {
  ::setenv("SLUICE_PLUGIN_PATH",
           (kPlugins + "/testkit:" + kPlugins + "/wrong_major:" + kPlugins + "/no_entry").c_str(), 1);
  box_.Write("plugins/not-a-library.so", "just text\n");
  Output o = box_.Sluice({"plugins", "--format", "json"});
  ASSERT_EQ(o.code, 0) << o.err;
  json j = json::parse(o.out);
  // The two built-in ones, testkit, and data and torch beside the sluice binary.
  ASSERT_EQ(j["plugins"].size(), 5u);
  EXPECT_EQ(j["plugins"][0]["name"], "sluice");
  EXPECT_EQ(j["plugins"][0]["path"], "built into sluice");
  EXPECT_EQ(j["plugins"][1]["name"], "deploy");
  EXPECT_EQ(j["plugins"][1]["path"], "built into sluice");
  EXPECT_EQ(j["plugins"][1]["step_types"].size(), 5u);  // canary, blue-green, rollback, shadow, ab-test
  EXPECT_EQ(j["plugins"][2]["name"], "testkit");
  EXPECT_EQ(j["plugins"][2]["version"], "0.3.1");
  EXPECT_EQ(j["plugins"][2]["step_types"].size(), 7u);
  EXPECT_EQ(j["plugins"][2]["step_types"][0]["nonblocking"], true);    // noop
  EXPECT_FALSE(j["plugins"][2]["step_types"][1].contains("nonblocking"));  // echo
  EXPECT_EQ(j["plugins"][3]["name"], "data");
  EXPECT_EQ(j["plugins"][4]["name"], "torch");
  ASSERT_EQ(j["refused"].size(), 3u);
  EXPECT_EQ(j["refused"][0], "plugin " + kPlugins + "/wrong_major/libwrong_major.so was built for plugin ABI 99; "
                             "this sluice speaks ABI 1");
  EXPECT_EQ(j["refused"][1], "plugin " + kPlugins + "/no_entry/libno_entry.so has no sluice_plugin_entry() entry function");
  EXPECT_NE(j["refused"][2].get<std::string>().find("plugin " + (box_.dir() / "plugins/not-a-library.so").string() +
                                                    " is not a loadable shared library: "),
            std::string::npos);
}

TEST_F(PluginTest, TwoPluginsWithTheSameNameAreRefused) {
  ::setenv("SLUICE_PLUGIN_PATH", (kPlugins + "/testkit").c_str(), 1);
  std::filesystem::create_directories(box_.dir() / "plugins");
  std::filesystem::copy_file(kPlugins + "/testkit/libtestkit.so", box_.dir() / "plugins/libcopy.so");
  json j = json::parse(box_.Sluice({"plugins", "--format", "json"}).out);
  ASSERT_EQ(j["refused"].size(), 1u);
  EXPECT_EQ(j["refused"][0], "plugin " + (box_.dir() / "plugins/libcopy.so").string() + " is named 'testkit' like " +
                                 kPlugins + "/testkit/libtestkit.so, which was found first; rename or remove one");
}

TEST_F(PluginTest, ValidateChecksWithAgainstTheStepTypesSchema) {
  box_.Write("p.yaml", R"(name: demo
steps:
  a:
    uses: testkit/wait
    with: {secnds: 1}
  b:
    uses: testkit/wait
    with: {seconds: soon}
  c:
    uses: testkit/fail
  d:
    uses: testkit/wiat
  e:
    uses: testkits/wait
)");
  Output o = box_.Sluice({"validate", "p.yaml"});
  EXPECT_EQ(o.code, 2);
  EXPECT_EQ(o.err,
            "p.yaml:5:12: step 'a': unknown param 'secnds' for testkit/wait (did you mean 'seconds'?)\n"
            "p.yaml:5:11: step 'a': missing required param 'seconds' for testkit/wait\n"
            "p.yaml:8:21: step 'b': param 'seconds' of testkit/wait must be a number, not 'soon'\n"
            "p.yaml:10:11: step 'c': missing required param 'message' for testkit/fail\n"
            "p.yaml:12:11: plugin 'testkit' has no step type 'wiat' (did you mean 'wait'?) (it has noop, echo, fail, crash, wait, thread, thread-nonblocking)\n"
            "p.yaml:14:11: step 'e' uses unknown plugin 'testkits' (did you mean 'testkit'?)\n"
            "sluice: plugins are looked for in " + kPlugins + "/testkit, " + box_.dir().string() +
                "/plugins, " + std::filesystem::path(SLUICE_BINARY).parent_path().parent_path().string() +
                "/lib/sluice/plugins, " + std::filesystem::path(SLUICE_BINARY).parent_path().string() + "/plugins\n");
  EXPECT_FALSE(box_.Exists(".sluice"));
}

TEST_F(PluginTest, OutputsAndMetricsFlowToDependantsInBothIsolationModes) {
  for (const char* isolation : {"process", "inprocess"}) {
    SCOPED_TRACE(isolation);
    Sandbox box;
    box.Write("p.yaml", std::string(R"(name: demo
params:
  who: {type: string, default: world}
steps:
  echo:
    uses: testkit/echo
    isolation: )") + isolation + R"(
    with: {epochs: 3, greeting: "hi ${{ params.who }}", nested: {k: [1, 2]}}
  after:
    needs: [echo]
    run: [sh, -c, 'printf "%s|%s" "$1" "$2" > got.txt', x, "${{ steps.echo.outputs.greeting }}", "${{ steps.echo.outputs.nested }}"]
)");
    Output o = box.Sluice({"run", "p.yaml", "-p", "who=you"});
    ASSERT_EQ(o.code, 0) << o.out << o.err;
    EXPECT_EQ(box.Read("got.txt"), "hi you|{\"k\":[1,2]}");
    Output show = box.Sluice({"show", "1", "--format", "json"});
    json j = json::parse(show.out);
    json echo = j["steps"][0]["id"] == "echo" ? j["steps"][0] : j["steps"][1];
    ASSERT_EQ(echo["metrics"].size(), 3u);
    EXPECT_EQ(echo["metrics"][2]["name"], "loss");
    EXPECT_EQ(echo["metrics"][2]["index"], 3);
    EXPECT_NE(box.Sluice({"show", "1"}).out.find("    metric loss = 0.333333 (index 3, 3 values)\n"), std::string::npos);
    EXPECT_EQ(box.Sluice({"logs", "1", "echo"}).out, "echo attempt 1\n");
  }
}

TEST_F(PluginTest, ACrashingPluginFailsItsAttemptAndTheRunGoesOn) {
  box_.Write("p.yaml", R"(name: demo
steps:
  segv: {uses: testkit/crash, with: {how: segv}}
  abort: {uses: testkit/crash, with: {how: abort}}
  exit: {uses: testkit/crash, with: {how: exit}}
  fine: {uses: testkit/echo, with: {ok: "yes"}}
  after: {needs: [fine], run: touch after-ran}
)");
  Output o = box_.Sluice({"run", "p.yaml"});
  EXPECT_EQ(o.code, 1);
  EXPECT_EQ(Step(1, "segv")["reason"], "plugin host killed by signal 11 (SIGSEGV)");
  EXPECT_EQ(Step(1, "abort")["reason"], "plugin host killed by signal 6 (SIGABRT)");
  EXPECT_EQ(Step(1, "exit")["reason"], "the plugin host exited with code 3 during the step");
  EXPECT_EQ(Step(1, "fine")["state"], "succeeded");
  EXPECT_TRUE(box_.Exists("after-ran"));
}

TEST_F(PluginTest, AnExceptionBecomesAFailedAttemptWithItsText) {
  for (const char* isolation : {"process", "inprocess"}) {
    SCOPED_TRACE(isolation);
    Sandbox box;
    box.Write("p.yaml", std::string("name: demo\nsteps:\n  f:\n    uses: testkit/fail\n    isolation: ") + isolation +
                            "\n    with: {message: 'disk is full'}\n    retry: 1\n");
    EXPECT_EQ(box.Sluice({"run", "p.yaml"}).code, 1);
    Output o = box.Sluice({"show", "1", "--format", "json"});
    json f = json::parse(o.out)["steps"][0];
    EXPECT_EQ(f["reason"], "disk is full");
    EXPECT_EQ(f["attempts"].size(), 2u);
  }
}

TEST_F(PluginTest, TimeoutStopsAPluginThatHonoursCancelInBothModes) {
  for (const char* isolation : {"process", "inprocess"}) {
    SCOPED_TRACE(isolation);
    Sandbox box;
    box.Write("p.yaml", std::string("name: demo\nsteps:\n  w:\n    uses: testkit/wait\n    isolation: ") + isolation +
                            "\n    with: {seconds: 100}\n    timeout: 300ms\n");
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(box.Sluice({"run", "p.yaml", "--grace", "20s"}).code, 1);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
    Output o = box.Sluice({"show", "1", "--format", "json"});
    EXPECT_EQ(json::parse(o.out)["steps"][0]["reason"], "timed out after 300ms");
  }
}

TEST_F(PluginTest, APluginThatIgnoresCancelIsKilledOrAbandonedAfterTheGrace) {
  for (const char* isolation : {"process", "inprocess"}) {
    SCOPED_TRACE(isolation);
    Sandbox box;
    box.Write("p.yaml", std::string("name: demo\nsteps:\n  w:\n    uses: testkit/wait\n    isolation: ") + isolation +
                            "\n    with: {seconds: 100, ignore_cancel: true}\n    timeout: 300ms\n");
    EXPECT_EQ(box.Sluice({"run", "p.yaml", "--grace", "300ms"}).code, 1);
    Output o = box.Sluice({"show", "1", "--format", "json"});
    std::string reason = json::parse(o.out)["steps"][0]["reason"];
    if (std::string(isolation) == "process")
      EXPECT_EQ(reason, "timed out after 300ms (SIGKILL after the grace period)");
    else
      EXPECT_EQ(reason, "timed out after 300ms (it ignored cancel past the grace period; its thread was abandoned)");
  }
}

TEST_F(PluginTest, CancelStopsPluginStepsInBothModes) {
  box_.Write("p.yaml", R"(name: demo
steps:
  iso: {uses: testkit/wait, with: {seconds: 100}}
  thread: {uses: testkit/wait, isolation: inprocess, with: {seconds: 100}}
)");
  pid_t pid = box_.Start({"run", "p.yaml"}, "run.log");
  ASSERT_TRUE(WaitFor([&] {
    std::string log = box_.Read("run.log");
    return log.find("step=iso attempt=1 event=started") != std::string::npos &&
           log.find("step=thread attempt=1 event=started") != std::string::npos;
  }));
  EXPECT_NE(box_.Read("run.log").find("step=thread attempt=1 event=started in-process\n"), std::string::npos);  // no pid=0
  EXPECT_EQ(box_.Sluice({"cancel", "1"}).code, 0);
  EXPECT_EQ(Sandbox::Reap(pid), 130);
  EXPECT_EQ(Step(1, "iso")["state"], "cancelled");
  EXPECT_EQ(Step(1, "thread")["state"], "cancelled");
}

// Pids of `sluice plugin-host` processes whose working folder is `dir`.
std::vector<pid_t> PluginHostsIn(const std::filesystem::path& dir) {
  std::vector<pid_t> found;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream f(e.path() / "cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (cmdline.find(std::string("plugin-host") + '\0') == std::string::npos) continue;
    if (std::filesystem::read_symlink(e.path() / "cwd", ec) == dir && ProcessAlive(std::stoi(name)))
      found.push_back(std::stoi(name));
  }
  return found;
}

TEST_F(PluginTest, APluginHostRunningAStepDiesWithItsOrchestrator) {
  box_.Write("p.yaml", "name: demo\nsteps:\n  iso: {uses: testkit/wait, with: {seconds: 100}}\n");
  pid_t pid = box_.Start({"run", "p.yaml"}, "run.log");
  ASSERT_TRUE(WaitFor([&] { return box_.Read("run.log").find("step=iso attempt=1 event=started") != std::string::npos; }));
  std::vector<pid_t> hosts = PluginHostsIn(box_.dir());
  ASSERT_EQ(hosts.size(), 1u);
  ::kill(pid, SIGKILL);
  Sandbox::Reap(pid);
  EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(hosts[0]); }, std::chrono::seconds(5)));
}

TEST_F(PluginTest, AHostCancelsARunWhoseCancelCameBeforeTheHostTookIt) {
  // The run and its cancel reach the host in one write, so its reader has
  // both before the host's main thread takes the run.
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
  posix_spawnattr_t attr;  // its own process group, as the orchestrator starts it
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  const char* argv[] = {SLUICE_BINARY, "plugin-host", nullptr};
  pid_t host = 0;
  ASSERT_EQ(::posix_spawn(&host, SLUICE_BINARY, &fa, &attr, const_cast<char* const*>(argv), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(sv[1]);
  json run = {{"attempt_id", 7},
              {"library", kPlugins + "/testkit/libtestkit.so"},
              {"step_type", "wait"},
              {"params", R"({"seconds": 100})"},
              {"output_dir", box_.dir().string()},
              {"workdir", box_.dir().string()}};
  std::string both = json{{"run", run}}.dump() + "\n" + json{{"cancel", 7}}.dump() + "\n";
  ASSERT_EQ(::write(sv[0], both.data(), both.size()), static_cast<ssize_t>(both.size()));
  std::string got;
  char buf[4096];
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (got.find(R"({"done")") == std::string::npos && std::chrono::steady_clock::now() < until) {
    pollfd p{sv[0], POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    ssize_t n = ::read(sv[0], buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  ::close(sv[0]);  // an idle host leaves when its socket closes
  EXPECT_NE(got.find(R"({"done":2})"), std::string::npos) << got;  // SLUICE_STATUS_CANCELLED, at once
  EXPECT_EQ(Sandbox::Reap(host), 0);
}

TEST_F(PluginTest, AnAbandonedInProcessAttemptReportsNoMoreProgress) {
  // Its thread runs on past the runner, and may outlive the sink.
  auto plugin = sluice::exec::LoadPlugin(kPlugins + "/testkit/libtestkit.so");
  ASSERT_TRUE(plugin.ok()) << plugin.status().message();
  auto calls = std::make_shared<std::atomic<int>>(0);
  sluice::exec::ProgressSink sink = [calls](int64_t, double, const std::string&) { ++*calls; };
  sluice::exec::InProcessRunner runner(&sink);
  sluice::engine::AttemptRequest r;
  r.plugin = sluice::engine::PluginCall{};
  r.plugin->plugin = "testkit";
  r.plugin->step_type = "wait";
  r.plugin->params = R"({"seconds": 100, "ignore_cancel": true})";
  r.plugin->isolated = false;
  r.workdir = box_.dir().string();
  r.log_path = (box_.dir() / "attempt.log").string();
  runner.Start(1, (*plugin)->Find("wait"), r);
  ASSERT_TRUE(WaitFor([&] { return calls->load() > 0; }));
  ASSERT_TRUE(runner.Abandon(1).has_value());
  int at_abandon = calls->load();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the plugin reports every 10 ms
  EXPECT_EQ(calls->load(), at_abandon);
}

TEST_F(PluginTest, PipedOutputGetsAStepsProgressAtMostEveryTenSeconds) {
  box_.Write("p.yaml", "name: demo\nsteps:\n  w: {uses: testkit/wait, with: {seconds: 10.6}}\n");
  Output o = box_.Sluice({"run", "p.yaml"});  // stdout is a file here: piped
  ASSERT_EQ(o.code, 0) << o.err;
  int lines = 0;
  std::istringstream in(o.out);
  for (std::string l; std::getline(in, l);)
    if (l.find(" run=1 step=w event=progress progress=") != std::string::npos && l.find("message=waiting") != std::string::npos)
      ++lines;
  EXPECT_EQ(lines, 2) << o.out;  // at the start and ten seconds in, of a thousand reports
}

TEST_F(PluginTest, ExpressionValuesInWithAreCheckedAgainstTheSchemaAndDefaultsAreFilledIn) {
  box_.Write("p.yaml", R"(name: demo
params:
  e: {type: int, default: 2}
steps:
  echo: {uses: testkit/echo, with: {epochs: "${{ params.e }}"}}
)");
  ASSERT_EQ(box_.Sluice({"run", "p.yaml"}).code, 0);
  EXPECT_EQ(Step(1, "echo")["outputs"]["greeting"], "hello");  // the schema's default reached the plugin
  EXPECT_EQ(Step(1, "echo")["outputs"]["epochs"], "2");
  // At the limit (minimum 0) it runs; one past it never reaches the plugin.
  ASSERT_EQ(box_.Sluice({"run", "p.yaml", "-p", "e=0"}).code, 0);
  EXPECT_EQ(box_.Sluice({"run", "p.yaml", "-p", "e=-1"}).code, 1);
  json step = Step(3, "echo");
  EXPECT_EQ(step["state"], "failed");
  EXPECT_EQ(step["reason"], "with: param 'epochs' must be at least 0, not -1 (checked against testkit/echo's params schema)");
  EXPECT_EQ(step["attempts"].size(), 1u);
  EXPECT_EQ(step["outputs"], json::object());
}

TEST_F(PluginTest, ANewPluginVersionIsACacheMiss) {
  box_.Write("p.yaml", R"(name: demo
steps:
  echo: {uses: testkit/echo, with: {epochs: 1}, cache: true}
)");
  ASSERT_EQ(box_.Sluice({"run", "p.yaml"}).code, 0);
  ASSERT_EQ(box_.Sluice({"run", "p.yaml"}).code, 0);
  EXPECT_EQ(Step(2, "echo")["state"], "cached");
  ::setenv("SLUICE_PLUGIN_PATH", (kPlugins + "/testkit_next").c_str(), 1);
  ASSERT_EQ(box_.Sluice({"run", "p.yaml"}).code, 0);
  EXPECT_EQ(Step(3, "echo")["state"], "succeeded");  // 0.3.2 is not 0.3.1: it ran
  ASSERT_EQ(box_.Sluice({"run", "p.yaml"}).code, 0);
  EXPECT_EQ(Step(4, "echo")["state"], "cached");
}

TEST_F(PluginTest, ValidateRefusesAReadOfAnOutputTheStepTypeDoesNotDeclare) {
  box_.Write("p.yaml", R"(name: demo
steps:
  a:
    uses: testkit/noop
  b:
    needs: [a]
    run: echo ${{ steps.a.outputs.rows }}
)");
  Output o = box_.Sluice({"validate", "p.yaml"});
  EXPECT_EQ(o.code, 2);
  EXPECT_EQ(o.err, "p.yaml:7:19: step 'b' reads steps.a.outputs.rows, which step 'a' does not declare (it declares none)\n");
}

TEST_F(PluginTest, AnInProcessStepOfANonblockingTypeRunsOnTheEnginesThreadAndOfAnyOtherTypeOnAWorker) {
  box_.Write("p.yaml", R"(name: demo
steps:
  nonblocking: {uses: testkit/thread-nonblocking, isolation: inprocess}
  other: {uses: testkit/thread, isolation: inprocess}
  check:
    needs: [nonblocking, other]
    run: test "${{ steps.nonblocking.outputs.main_thread }}/${{ steps.other.outputs.main_thread }}" = yes/no
)");
  Output o = box_.Sluice({"run", "p.yaml"});
  EXPECT_EQ(o.code, 0) << o.out << o.err;
}

TEST_F(PluginTest, StepTypesBuiltBeforeOutputsWereDeclaredLoadAtTheirOwnSizeAndTheirReadsAreNotChecked) {
  ::setenv("SLUICE_PLUGIN_PATH", (kPlugins + "/abi_1_0").c_str(), 1);
  box_.Write("p.yaml", R"(name: demo
steps:
  a:
    uses: abi-one-oh/old
  b:
    needs: [a]
    run: test "${{ steps.a.outputs.anything }}" = 1
  c:
    uses: abi-one-oh/older
)");
  Output o = box_.Sluice({"run", "p.yaml"});
  EXPECT_EQ(o.code, 0) << o.err;
}

TEST_F(PluginTest, PluginsInstallCopiesALoadableLibraryBesideTheSpecsAndRefusesOneSluiceWouldRefuse) {
  ::setenv("SLUICE_PLUGIN_PATH", "", 1);
  Output bad = box_.Sluice({"plugins", "install", kPlugins + "/wrong_major/libwrong_major.so"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_EQ(bad.err, "sluice: not installed: plugin " + kPlugins + "/wrong_major/libwrong_major.so was built for "
                     "plugin ABI 99; this sluice speaks ABI 1\n");
  EXPECT_FALSE(box_.Exists("plugins"));
  Output ok = box_.Sluice({"plugins", "install", kPlugins + "/testkit/libtestkit.so"});
  ASSERT_EQ(ok.code, 0) << ok.err;
  EXPECT_EQ(ok.out, "installed testkit 0.3.1 (7 step types) as " + (box_.dir() / "plugins/libtestkit.so").string() + "\n");
  EXPECT_TRUE(box_.Exists("plugins/libtestkit.so.json"));  // its descriptor, for the copy (a run would refuse a stale one)
  box_.Write("p.yaml", "name: demo\nsteps:\n  a: {uses: testkit/noop}\n");
  Output run = box_.Sluice({"run", "p.yaml"});
  EXPECT_EQ(run.code, 0) << run.err;
  // The next version of the same file replaces it; the same plugin in another file is refused.
  std::filesystem::copy_file(kPlugins + "/testkit_next/libtestkit_next.so", box_.dir() / "libother.so");
  Output clash = box_.Sluice({"plugins", "install", "libother.so"});
  EXPECT_EQ(clash.code, 2);
  EXPECT_EQ(clash.err, "sluice: not installed: " + (box_.dir() / "plugins/libtestkit.so").string() +
                           " already holds plugin 'testkit' (version 0.3.1); remove it first\n");
}

TEST_F(PluginTest, ABuiltInStepTypeRunsInBothIsolationsWithItsOutputsChecked) {
  box_.Write("p.yaml", R"(name: demo
steps:
  pause:
    uses: sluice/wait
    with: {duration: 300ms}
  inproc:
    uses: sluice/wait
    isolation: inprocess
    with: {duration: 100ms}
  after:
    needs: [pause]
    run: echo "waited ${{ steps.pause.outputs.waited_ms }}" > waited.txt
)");
  Output o = box_.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(box_.Read("waited.txt"), "waited 300\n");
  json shown = ShowRun(box_, "1");
  EXPECT_EQ(StepOf(shown, "pause")["state"], "succeeded");
  EXPECT_EQ(StepOf(shown, "inproc")["state"], "succeeded");
}

TEST_F(PluginTest, ABuiltInStepTypesWithIsCheckedAtValidateLikeAPlugins) {
  box_.Write("p.yaml", R"(name: demo
steps:
  pause:
    uses: sluice/wait
    with: {duraton: 3s}
  after:
    needs: [pause]
    run: echo ${{ steps.pause.outputs.waited }}
)");
  Output o = box_.Sluice({"validate", "p.yaml"});
  EXPECT_EQ(o.code, 2);
  EXPECT_NE(o.err.find("p.yaml:5:12: step 'pause': unknown param 'duraton' for sluice/wait (did you mean 'duration'?)"),
            std::string::npos)
      << o.err;
  EXPECT_NE(o.err.find("p.yaml:8:19: step 'after' reads steps.pause.outputs.waited, which step 'pause' does not declare "
                       "(did you mean 'waited_ms'?)"),
            std::string::npos)
      << o.err;
}

TEST_F(PluginTest, ABuiltInWaitIsCancelledAtOnceAndABadDurationFailsTheStep) {
  box_.Write("p.yaml", "name: demo\nsteps:\n  bad:\n    uses: sluice/wait\n    with: {duration: soon}\n");
  Output bad = box_.Sluice({"run", "p.yaml"});
  EXPECT_EQ(bad.code, 1);
  EXPECT_EQ(StepOf(ShowRun(box_, "1"), "bad")["reason"], "duration: 'soon' is not a duration (use 500ms, 30s, 5m, 1h)");
  box_.Write("q.yaml", "name: demo\nsteps:\n  long:\n    uses: sluice/wait\n    with: {duration: 1h}\n");
  pid_t pid = box_.Start({"run", "q.yaml"}, "q.log");
  ASSERT_TRUE(WaitFor([&] { return box_.Sluice({"show", "2"}).out.find("running") != std::string::npos; }));
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(box_.Sluice({"cancel", "2"}).code, 0);
  EXPECT_EQ(Sandbox::Reap(pid), 130) << box_.Read("q.log");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
  EXPECT_EQ(StepOf(ShowRun(box_, "2"), "long")["state"], "cancelled");
}

TEST_F(PluginTest, ALibraryNamedLikeTheBuiltInPluginIsRefused) {
  ::setenv("SLUICE_PLUGIN_PATH", (kPlugins + "/testkit_as_sluice").c_str(), 1);
  json j = json::parse(box_.Sluice({"plugins", "--format", "json"}).out);
  EXPECT_EQ(j["plugins"][0]["name"], "sluice");
  EXPECT_EQ(j["plugins"][0]["path"], "built into sluice");
  ASSERT_EQ(j["refused"].size(), 1u);
  EXPECT_EQ(j["refused"][0], "plugin " + kPlugins + "/testkit_as_sluice/libtestkit_as_sluice.so is named 'sluice' like "
                             "the step types built into sluice; rename or remove one");
}
