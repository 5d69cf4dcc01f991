// The `sluice` binary end to end: real processes, a real SQLite file.
#include <signal.h>
#include <sqlite3.h>

#include <chrono>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness.h"
#include "store/open.h"

using namespace sluice::testing;
using nlohmann::json;

namespace {

// Runs one SQL statement on the sandbox's store (to age a result).
void Sql(const Sandbox& box, const std::string& sql) {
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open((box.home() / "sluice.db").c_str(), &h), SQLITE_OK);
  char* error = nullptr;
  EXPECT_EQ(sqlite3_exec(h, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK) << (error ? error : "");
  sqlite3_free(error);
  sqlite3_close(h);
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The line of `step` in `sluice plan`'s text.
std::string PlanLine(const Sandbox& box, const std::string& step) {
  Output o = box.Sluice({"plan", "p.yaml"});
  EXPECT_EQ(o.code, 0) << o.err;
  size_t at = o.out.find("\n  " + step + " ");
  if (at == std::string::npos) return "no line for " + step + " in:\n" + o.out;
  return o.out.substr(at + 1, o.out.find('\n', at + 1) - at - 1);
}

std::string Integrity(const Sandbox& box) {
  auto s = sluice::store::Store::Open((box.home() / "sluice.db").string());
  if (!s.ok()) return s.status().message();
  return *(*s)->db().IntegrityCheck();
}

}  // namespace

TEST(CliTest, ValidatePrintsPositionedErrorsExitsTwoAndWritesNothing) {
  Sandbox box;
  box.Write("p.yaml", "name: demo\nsteps:\n  prepare: {run: x}\n  train:\n    needs: [prep]\n    run: y\n");
  Output o = box.Sluice({"validate", "p.yaml"});
  EXPECT_EQ(o.code, 2);
  EXPECT_EQ(o.err, "p.yaml:5:13: step 'train' needs unknown step 'prep' (did you mean 'prepare'?)\n");
  o = box.Sluice({"run", "p.yaml"});
  EXPECT_EQ(o.code, 2);
  EXPECT_FALSE(box.Exists(".sluice"));
}

TEST(CliTest, BadParamIsRefusedBeforeAnythingRuns) {
  Sandbox box;
  box.Write("p.yaml", "name: demo\nparams:\n  epochs: {type: int, default: 3, max: 10}\nsteps:\n  a: {run: touch ran}\n");
  Output o = box.Sluice({"run", "p.yaml", "-p", "epochs=11"});
  EXPECT_EQ(o.code, 2);
  EXPECT_EQ(o.err, "p.yaml:3:3: param 'epochs': 11 is above the maximum 10 (given with -p)\n");
  o = box.Sluice({"run", "p.yaml", "-p", "epoch=1"});
  EXPECT_EQ(o.err, "p.yaml:2:1: unknown param 'epoch' given with -p (did you mean 'epochs'?)\n");
  EXPECT_FALSE(box.Exists("ran"));
  EXPECT_FALSE(box.Exists(".sluice"));
}

TEST(CliTest, RunPassesParamsAndOutputsBetweenStepsAndShowPrintsThem) {
  Sandbox box;
  box.Write("p.yaml", R"(name: demo
params:
  epochs: {type: int, default: 3}
steps:
  train:
    run: [sh, -c, 'echo "accuracy=0.9$1" >> "$SLUICE_OUTPUT"', x, "${{ params.epochs }}"]
  report:
    needs: [train]
    run: echo "acc ${{ steps.train.outputs.accuracy }}" > report.txt
)");
  Output o = box.Sluice({"run", "p.yaml", "-p", "epochs=5", "--jobs", "2"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(box.Read("report.txt"), "acc 0.95\n");
  json run = ShowRun(box, "1");
  EXPECT_EQ(run["state"], "succeeded");
  EXPECT_EQ(run["params"]["epochs"], 5);
  EXPECT_EQ(StepOf(run, "train")["outputs"]["accuracy"], "0.95");
  Output text = box.Sluice({"show", "1"});
  EXPECT_NE(text.out.find("    accuracy = 0.95\n"), std::string::npos) << text.out;
  Output runs = box.Sluice({"runs"});
  EXPECT_NE(runs.out.find("demo"), std::string::npos);
  EXPECT_NE(runs.out.find("succeeded"), std::string::npos);
}

TEST(CliTest, PipedRunPrintsOneLinePerEventWithRunAndStepIds) {
  Sandbox box;
  box.Write("p.yaml", "name: demo\nsteps:\n  a: {run: 'true'}\n  b: {needs: [a], run: 'exit 3'}\n");
  Output o = box.Sluice({"run", "p.yaml"});
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.out.find(" run=1 step=a attempt=1 event=started pid="), std::string::npos) << o.out;
  EXPECT_NE(o.out.find(" run=1 step=a attempt=1 event=succeeded\n"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find(" run=1 step=b attempt=1 event=failed reason=\"exit code 3\"\n"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find(" run=1 event=finished state=failed\n"), std::string::npos) << o.out;
}

TEST(CliTest, StepsRunInTheSpecFolderAndTheirWorkdir) {
  Sandbox box;
  box.Write("sub/p.yaml", "name: demo\nsteps:\n  a: {run: pwd > here.txt}\n  b: {run: pwd > ../there.txt, workdir: deeper}\n");
  std::filesystem::create_directories(box.dir() / "sub/deeper");
  Output o = box.Sluice({"run", "sub/p.yaml"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(box.Read("sub/here.txt"), (box.dir() / "sub").string() + "\n");
  EXPECT_EQ(box.Read("sub/there.txt"), (box.dir() / "sub/deeper").string() + "\n");
}

TEST(CliTest, FailuresAreRecordedWithTheirReason) {
  Sandbox box;
  box.Write("p.yaml", R"(name: demo
steps:
  missing: {run: [no-such-command-here]}
  segv: {run: "kill -SEGV $$"}
  code: {run: "echo oops >&2; exit 4"}
  baddir: {run: "true", workdir: nowhere}
)");
  Output o = box.Sluice({"run", "p.yaml"});
  EXPECT_EQ(o.code, 1);
  json run = ShowRun(box, "1");
  EXPECT_EQ(StepOf(run, "missing")["reason"], "command not found: no-such-command-here");
  EXPECT_EQ(StepOf(run, "segv")["reason"], "killed by signal 11 (SIGSEGV)");
  EXPECT_EQ(StepOf(run, "code")["reason"], "exit code 4");
  EXPECT_EQ(StepOf(run, "baddir")["reason"], "workdir " + (box.dir() / "nowhere").string() + ": No such file or directory");
  Output logs = box.Sluice({"logs", "1", "code"});
  EXPECT_EQ(logs.out, "oops\n");
  logs = box.Sluice({"logs", "1", "missing"});
  EXPECT_EQ(logs.code, 0);
  EXPECT_EQ(logs.out, "");
  EXPECT_EQ(logs.err, "sluice: run 1 step missing attempt 1 wrote no log; it ended failed: command not found: "
                      "no-such-command-here\n");
}

TEST(CliTest, TimeoutKillsTheStepsWholeProcessGroup) {
  Sandbox box;
  box.Write("p.yaml", R"(name: demo
steps:
  slow:
    run: "sleep 100 & echo $! > grandchild.pid; wait"
    timeout: 500ms
)");
  Output o = box.Sluice({"run", "p.yaml", "--grace", "1s"});
  EXPECT_EQ(o.code, 1);
  json run = ShowRun(box, "1");
  EXPECT_EQ(StepOf(run, "slow")["reason"], "timed out after 500ms");
  pid_t grandchild = std::stoi(box.Read("grandchild.pid"));
  EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(grandchild); }, std::chrono::seconds(5)))
      << "sleep 100 survived the timeout";
}

TEST(CliTest, TimeoutEscalatesToKillWhenTermIsIgnored) {
  Sandbox box;
  box.Write("p.yaml", R"(name: demo
steps:
  stubborn:
    run: "trap '' TERM; sleep 100 & echo $! > grandchild.pid; while true; do sleep 0.05; done"
    timeout: 300ms
)");
  Output o = box.Sluice({"run", "p.yaml", "--grace", "300ms"});
  EXPECT_EQ(o.code, 1);
  EXPECT_EQ(StepOf(ShowRun(box, "1"), "stubborn")["reason"], "timed out after 300ms (SIGKILL after the grace period)");
  pid_t grandchild = std::stoi(box.Read("grandchild.pid"));
  EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(grandchild); }, std::chrono::seconds(5)));
}

TEST(CliTest, CancelFromAnotherProcessStopsTheRun) {
  Sandbox box;
  box.Write("p.yaml", R"(name: demo
steps:
  long: {run: "echo $$ > long.pid; sleep 100"}
  after: {needs: [long], run: touch after-ran}
)");
  pid_t pid = box.Start({"run", "p.yaml"}, "run.log");
  ASSERT_TRUE(WaitFor([&] { return box.Exists("long.pid") && !box.Read("long.pid").empty(); }));
  pid_t step = std::stoi(box.Read("long.pid"));
  Output o = box.Sluice({"cancel", "1"});
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("run 1 cancelled"), std::string::npos) << o.out;
  EXPECT_EQ(Sandbox::Reap(pid), 130);
  json run = ShowRun(box, "1");
  EXPECT_EQ(run["state"], "cancelled");
  EXPECT_EQ(StepOf(run, "long")["state"], "cancelled");
  EXPECT_EQ(StepOf(run, "after")["state"], "cancelled");
  EXPECT_FALSE(box.Exists("after-ran"));
  EXPECT_FALSE(ProcessAlive(step));
}

TEST(CliTest, InterruptCancelsTheRunCleanly) {
  Sandbox box;
  box.Write("p.yaml", "name: demo\nsteps:\n  long: {run: \"echo $$ > long.pid; sleep 100\"}\n");
  pid_t pid = box.Start({"run", "p.yaml"}, "run.log");
  ASSERT_TRUE(WaitFor([&] { return box.Exists("long.pid") && !box.Read("long.pid").empty(); }));
  ::kill(pid, SIGINT);
  EXPECT_EQ(Sandbox::Reap(pid), 130);
  EXPECT_EQ(ShowRun(box, "1")["state"], "cancelled");
  EXPECT_FALSE(ProcessAlive(std::stoi(box.Read("long.pid"))));
}

TEST(CliTest, SecondInterruptKillsAtOnce) {
  Sandbox box;
  box.Write("p.yaml", "name: demo\nsteps:\n  stubborn: {run: \"trap '' TERM; echo $$ > s.pid; while true; do sleep 0.05; done\"}\n");
  pid_t pid = box.Start({"run", "p.yaml", "--grace", "60s"}, "run.log");
  ASSERT_TRUE(WaitFor([&] { return box.Read("s.pid").find('\n') != std::string::npos; }));
  auto t0 = std::chrono::steady_clock::now();
  ::kill(pid, SIGINT);
  ASSERT_TRUE(WaitFor([&] { return box.Read("run.log").find("event=cancelling") != std::string::npos; }));
  ::kill(pid, SIGINT);
  EXPECT_EQ(Sandbox::Reap(pid), 130);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));  // not the 60 s grace
  json step = StepOf(ShowRun(box, "1"), "stubborn");
  EXPECT_EQ(step["reason"], "cancelled (SIGKILL at once)");
  EXPECT_FALSE(ProcessAlive(std::stoi(box.Read("s.pid"))));
}

TEST(CliTest, ResumeAfterKillNineFinishesTheRunAndRunsNoSucceededStepTwice) {
  Sandbox box;
  // The first attempt of step c never ends by itself: sluice is killed while
  // it runs, and resume must kill it and run c again.
  std::string yaml = "name: demo\nsteps:\n";
  const char* ids[] = {"a", "b", "c", "d", "e"};
  for (int i = 0; i < 5; ++i) {
    yaml += std::string("  ") + ids[i] + ":\n";
    if (i) yaml += std::string("    needs: [") + ids[i - 1] + "]\n";
    yaml += "    run: echo $SLUICE_STEP >> ran.txt; if [ $SLUICE_STEP$SLUICE_ATTEMPT = c1 ]; then echo $$ >> c.pid;"
            " while true; do sleep 0.05; done; fi\n    retry: 1\n";
  }
  box.Write("p.yaml", yaml);
  pid_t pid = box.Start({"run", "p.yaml"}, "run.log");
  ASSERT_TRUE(WaitFor([&] { return box.Read("c.pid").find('\n') != std::string::npos; }));
  ::kill(pid, SIGKILL);
  Sandbox::Reap(pid);
  pid_t orphan = std::stoi(box.Read("c.pid"));
  EXPECT_TRUE(ProcessAlive(orphan));  // the step outlived its orchestrator
  EXPECT_EQ(ShowRun(box, "1")["interrupted"], true);
  Output o = box.Sluice({"resume", "1"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  json run = ShowRun(box, "1");
  EXPECT_EQ(run["state"], "succeeded");
  std::string ran = box.Read("ran.txt");
  EXPECT_EQ(CountLines(ran, "a"), 1);
  EXPECT_EQ(CountLines(ran, "b"), 1);
  EXPECT_EQ(CountLines(ran, "c"), 2);  // lost when sluice died, then retried
  EXPECT_EQ(CountLines(ran, "d"), 1);
  EXPECT_EQ(CountLines(ran, "e"), 1);
  json c = StepOf(run, "c");
  EXPECT_EQ(c["attempts"][0]["state"], "lost");
  EXPECT_EQ(c["attempts"][1]["state"], "succeeded");
  EXPECT_FALSE(ProcessAlive(orphan));
  EXPECT_EQ(Integrity(box), "ok");
  EXPECT_EQ(box.Sluice({"resume", "1"}).err,
            "sluice: run 1 already succeeded; nothing to resume (sluice retry 1 runs failed steps again)\n");
}

TEST(CliTest, RetryRunsFailedStepsAndDependantsAndKeepsSucceededOnes) {
  Sandbox box;
  box.Write("p.yaml", R"(name: demo
steps:
  a: {run: echo a >> ran.txt}
  b: {needs: [a], run: "echo b >> ran.txt; test -e fixed"}
  c: {needs: [b], run: echo c >> ran.txt}
  side: {needs: [a], run: echo side >> ran.txt}
)");
  EXPECT_EQ(box.Sluice({"run", "p.yaml"}).code, 1);
  EXPECT_EQ(StepOf(ShowRun(box, "1"), "c")["state"], "skipped");
  box.Write("fixed", "");
  Output o = box.Sluice({"retry", "1"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  std::string ran = box.Read("ran.txt");
  EXPECT_EQ(CountLines(ran, "a"), 1);
  EXPECT_EQ(CountLines(ran, "side"), 1);
  EXPECT_EQ(CountLines(ran, "b"), 2);
  EXPECT_EQ(CountLines(ran, "c"), 1);
  json run = ShowRun(box, "1");
  EXPECT_EQ(run["state"], "succeeded");
  EXPECT_EQ(StepOf(run, "b")["attempts"].size(), 2u);
  EXPECT_EQ(StepOf(run, "b")["attempts"][1]["number"], 2);
  o = box.Sluice({"retry", "1", "--from", "c"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(CountLines(box.Read("ran.txt"), "c"), 2);
  EXPECT_EQ(CountLines(box.Read("ran.txt"), "b"), 2);
}

TEST(CliTest, LogsFollowPrintsUntilTheAttemptEnds) {
  Sandbox box;
  box.Write("p.yaml", "name: demo\nsteps:\n  talk: {run: \"echo one; while [ ! -e go ]; do sleep 0.05; done; echo two\"}\n");
  pid_t run = box.Start({"run", "p.yaml"}, "run.log");
  Output last;
  ASSERT_TRUE(WaitFor([&] { return (last = box.Sluice({"logs", "1", "talk"})).out == "one\n"; }))
      << last.out << last.err << box.Read("run.log") << box.Read("run.log.err");
  pid_t follow = box.Start({"logs", "1", "talk", "--follow"}, "follow.log");
  ASSERT_TRUE(WaitFor([&] { return box.Read("follow.log") == "one\n"; }));
  box.Write("go", "");
  EXPECT_EQ(Sandbox::Reap(follow), 0);
  EXPECT_EQ(box.Read("follow.log"), "one\ntwo\n");
  EXPECT_EQ(Sandbox::Reap(run), 0);
}

TEST(CliTest, PlanShowsTheDagAndWhatParamsSkip) {
  Sandbox box;
  box.Write("p.yaml", R"(name: demo
params:
  mode: {type: string, default: fast, enum: [fast, full]}
steps:
  prepare: {run: x}
  full: {needs: [prepare], if: "${{ params.mode == 'full' }}", run: x}
  report: {needs: [full], run: x}
  shard: {needs: [prepare], foreach: [a, b], run: x}
)");
  Output o = box.Sluice({"plan", "p.yaml"});
  EXPECT_EQ(o.code, 0);
  EXPECT_EQ(o.out,
            "pipeline demo: 4 steps in 3 layers (params: mode=fast)\n"
            "layer 0\n"
            "  prepare              runs\n"
            "layer 1\n"
            "  full                 skipped (if: ${{ params.mode == 'full' }} is false)  needs prepare\n"
            "  shard                runs, 2 items  needs prepare\n"
            "layer 2\n"
            "  report               skipped (needs skipped step 'full')  needs full\n");
  o = box.Sluice({"plan", "p.yaml", "-p", "mode=full", "--format", "json"});
  json j = json::parse(o.out);
  EXPECT_EQ(j["steps"][1]["forecast"], "runs");
  o = box.Sluice({"plan", "p.yaml", "--format", "dot"});
  EXPECT_NE(o.out.find("\"prepare\" -> \"full\";"), std::string::npos);
  EXPECT_FALSE(box.Exists(".sluice"));
}

// Hostile values reach steps byte for byte and never run as shell text.
TEST(CliTest, ValuesNeverBecomeShellText) {
  const std::vector<std::string> corpus = {
      "$(touch PWNED)", "`touch PWNED`", "; touch PWNED", "a\nb; touch PWNED", "it's", "say \"hi\"",
      "$HOME", "back\\slash", "${{ params.v }}", "  spaced  ", "*", "-n", "'; touch PWNED; '", "\"; touch PWNED; \""};
  for (size_t k = 0; k < corpus.size(); ++k) {
    SCOPED_TRACE("value " + std::to_string(k));
    Sandbox box;
    const std::string& v = corpus[k];
    json items = json::array({v, v + "!"});
    box.Write("p.yaml", R"(name: hostile
params:
  v: {type: string, default: ""}
steps:
  bare:
    run: printf '%s' ${{ params.v }} > bare.out
  dq:
    run: printf '%s' "${{ params.v }}" > dq.out
  sq:
    run: printf '%s' '${{ params.v }}' > sq.out
  argv:
    run: [sh, -c, 'printf "%s" "$1" > argv.out', x, "${{ params.v }}"]
  emit:
    env: {V: "${{ params.v }}"}
    run: printf 'v<<EOF_MARK\n%s\nEOF_MARK\n' "$V" >> "$SLUICE_OUTPUT"
  out:
    needs: [emit]
    run: printf '%s' ${{ steps.emit.outputs.v }} > out.out
  each:
    foreach: )" + items.dump() + R"(
    run: printf '%s' ${{ item }} > "item-$SLUICE_ITEM_INDEX.out"
)");
    Output o = box.Sluice({"run", "p.yaml", "-p", "v=" + v});
    ASSERT_EQ(o.code, 0) << o.out << o.err;
    for (const char* f : {"bare.out", "dq.out", "sq.out", "argv.out", "out.out", "item-0.out"}) EXPECT_EQ(box.Read(f), v) << f;
    EXPECT_EQ(box.Read("item-1.out"), v + "!");
    EXPECT_FALSE(box.Exists("PWNED"));
  }
}

TEST(CliTest, ValuesReachInnerProgramsAsDataThroughEnvAndArgv) {
  const std::vector<std::string> corpus = {"$(touch PWNED)", "`touch PWNED`", "'; touch PWNED; '", "\"); import os; os.system('touch PWNED'); (\"",
                                           "a\nb; touch PWNED", "-n", "} system(\"touch PWNED\") {"};
  for (size_t k = 0; k < corpus.size(); ++k) {
    SCOPED_TRACE("value " + std::to_string(k));
    Sandbox box;
    const std::string& v = corpus[k];
    box.Write("p.yaml", R"~(name: inner
params:
  v: {type: string, default: ""}
steps:
  inner_sh:
    env: {V: "${{ params.v }}"}
    run: sh -c 'printf "%s" "$V" > inner_sh.out'
  py:
    run: python3 -c 'import sys; open("py.out", "w").write(sys.argv[1])' "${{ params.v }}"
  here:
    run: |
      python3 - "${{ params.v }}" <<'EOF'
      import sys
      open("here.out", "w").write(sys.argv[1])
      EOF
  awk:
    env: {V: "${{ params.v }}"}
    run: awk 'BEGIN { printf "%s", ENVIRON["V"] }' > awk.out
)~");
    Output o = box.Sluice({"run", "p.yaml", "-p", "v=" + v});
    ASSERT_EQ(o.code, 0) << o.out << o.err;
    for (const char* f : {"inner_sh.out", "py.out", "here.out", "awk.out"}) EXPECT_EQ(box.Read(f), v) << f;
    EXPECT_FALSE(box.Exists("PWNED"));
  }
}

TEST(CliTest, ValidateRefusesEveryValueSplicedIntoAnInnerProgramAndRunsNothing) {
  Sandbox box;
  box.Write("p.yaml", R"~(name: spliced
params:
  v: {type: string, default: "$(touch PWNED)"}
steps:
  a:
    run: sh -c 'echo got ${{ params.v }}'
  b:
    run: python3 -c 'print("${{ params.v }}")'
  c:
    run: bash -c "echo got ${{ params.v }}"
  d:
    run: eval "echo ${{ params.v }}"
  e:
    run: |
      sh <<EOF
      echo ${{ params.v }}
      EOF
)~");
  Output o = box.Sluice({"validate", "p.yaml"});
  EXPECT_EQ(o.code, 2);
  // A block scalar's continuation lines are located at the scalar (14:10).
  for (const char* at : {"p.yaml:6:26: step 'a': ${{ params.v }} would become part of a program: this line runs `sh -c`",
                         "p.yaml:8:29: step 'b': ${{ params.v }} would become part of a program: this line runs `python3 -c`",
                         "p.yaml:10:28: step 'c': ${{ params.v }} would become part of a program: this line runs `bash -c`",
                         "p.yaml:12:21: step 'd': ${{ params.v }} would become part of a program: this line runs `eval`",
                         "p.yaml:14:10: step 'e': ${{ params.v }} would become part of a program: it stands inside a heredoc"})
    EXPECT_NE(o.err.find(at), std::string::npos) << at << "\n" << o.err;
  EXPECT_EQ(box.Sluice({"run", "p.yaml"}).code, 2);
  EXPECT_FALSE(box.Exists("PWNED"));
  EXPECT_FALSE(box.Exists(".sluice"));
}

// Every file under `dir` that holds `needle`.
std::vector<std::string> FilesHolding(const std::filesystem::path& dir, const std::string& needle) {
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir, ec)) {
    if (!e.is_regular_file()) continue;
    std::ifstream f(e.path(), std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (text.find(needle) != std::string::npos) found.push_back(e.path().string());
  }
  return found;
}

TEST(CliTest, StepsGetSluicesEnvironmentWithoutItsSecretsAndOnlyTheSecretsTheyList) {
  Sandbox box;
  const std::string token = "tok-5f2a9c1e-secret";
  ::setenv("DEPLOY_TOKEN", token.c_str(), 1);
  ::setenv("HOOK_SIGNING_FOR_TEST", "hook-secret-value", 1);
  ::setenv("SLUICE_OPENLINEAGE_API_KEY", "ol-key-value-123", 1);
  ::setenv("PLAIN_SETTING", "visible", 1);
  box.Write("p.yaml", R"(name: secrets
on:
  webhook: {secret_env: HOOK_SIGNING_FOR_TEST}
steps:
  plain:
    run: env > plain.env
  asks:
    secrets: [DEPLOY_TOKEN]
    run: |
      echo "token is $DEPLOY_TOKEN"
      printf 'seen=%s\n' "$DEPLOY_TOKEN" >> "$SLUICE_OUTPUT"
      env > asks.env
)");
  Output o = box.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  std::string plain = box.Read("plain.env");
  EXPECT_NE(plain.find("PLAIN_SETTING=visible\n"), std::string::npos);
  for (const char* name : {"DEPLOY_TOKEN=", "HOOK_SIGNING_FOR_TEST=", "SLUICE_OPENLINEAGE_API_KEY="})
    EXPECT_EQ(plain.find(name), std::string::npos) << name;
  std::string asks = box.Read("asks.env");
  EXPECT_NE(asks.find("DEPLOY_TOKEN=" + token), std::string::npos);
  EXPECT_EQ(asks.find("HOOK_SIGNING_FOR_TEST="), std::string::npos);
  EXPECT_NE(box.Sluice({"logs", "1", "asks"}).out.find("token is ***\n"), std::string::npos);
  EXPECT_EQ(StepOf(ShowRun(box, "1"), "asks")["outputs"]["seen"], "***");
  // Nothing sluice keeps (the database, logs, outputs) holds the value.
  EXPECT_EQ(FilesHolding(box.home(), token), std::vector<std::string>{});
}

TEST(CliTest, ASecretIsNeverRenderedIntoAValueAndAMissingOneFailsTheStepBeforeItStarts) {
  Sandbox box;
  box.Write("p.yaml", "name: s\nsteps:\n  a: {run: [echo, \"${{ env.GITHUB_TOKEN }}\"]}\n");
  Output o = box.Sluice({"validate", "p.yaml"});
  EXPECT_EQ(o.code, 2);
  EXPECT_EQ(o.err, "p.yaml:3:24: env.GITHUB_TOKEN is a secret, and secrets are never rendered into a spec's values; "
                   "list it under secrets: and read $GITHUB_TOKEN in the step\n");
  ::unsetenv("NOT_SET_TOKEN");
  box.Write("q.yaml", "name: s\nsecrets: [NOT_SET_TOKEN]\nsteps:\n  a: {run: touch ran}\n");
  EXPECT_EQ(box.Sluice({"run", "q.yaml"}).code, 1);
  EXPECT_EQ(StepOf(ShowRun(box, "1"), "a")["reason"], "secret NOT_SET_TOKEN is not set in sluice's environment");
  EXPECT_FALSE(box.Exists("ran"));
}

TEST(CliTest, ACachedStepReadsAsSucceededInConditions) {
  Sandbox box;
  box.Write("p.yaml", R"(name: gate
steps:
  a: {run: 'true', cache: true}
  b:
    needs: [a]
    if: "${{ steps.a.state == 'succeeded' }}"
    run: echo b >> ran.txt
)");
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
  EXPECT_EQ(StepOf(ShowRun(box, "2"), "a")["state"], "cached");  // still shown as cached
  EXPECT_EQ(box.Read("ran.txt"), "b\nb\n");
}

TEST(CliTest, ARunWhoseSluiceWasKilledShowsAsInterruptedWithTheResumeHint) {
  Sandbox box;
  box.Write("p.yaml", "name: long\nsteps:\n  a: {run: sleep 30}\n");
  pid_t pid = box.Start({"run", "p.yaml"}, "run.log");
  ASSERT_TRUE(WaitFor([&] { return box.Read("run.log").find("step=a attempt=1 event=started") != std::string::npos; }));
  ::kill(pid, SIGKILL);
  Sandbox::Reap(pid);
  Output runs = box.Sluice({"runs"});
  EXPECT_NE(runs.out.find("1      long                     interrupted "), std::string::npos) << runs.out;
  EXPECT_EQ(runs.out.substr(runs.out.size() - 2), "-\n") << runs.out;  // no growing duration
  Output show = box.Sluice({"show", "1"});
  EXPECT_NE(show.out.find(") is gone; sluice resume 1 finishes it\n"), std::string::npos) << show.out;
  EXPECT_EQ(ShowRun(box, "1")["interrupted"], true);
  box.Write("p.yaml", "name: long\nsteps:\n  a: {run: 'true'}\n");
  // Resume runs the stored spec (sleep 30): cancel it from here instead of waiting.
  pid_t resumed = box.Start({"resume", "1"}, "resume.log");
  ASSERT_TRUE(WaitFor([&] { return box.Read("resume.log").find("event=started") != std::string::npos; }));
  EXPECT_NE(box.Sluice({"runs"}).out.find("running"), std::string::npos);  // driven again
  EXPECT_EQ(box.Sluice({"cancel", "1"}).code, 0);
  EXPECT_EQ(Sandbox::Reap(resumed), 130);
}

TEST(CliTest, AnOutputThatIsNotUtf8FailsItsStepInsteadOfCrashingSluice) {
  Sandbox box;
  box.Write("p.yaml", R"(name: u8
steps:
  a: {run: 'printf "x=\377bad\n" >> "$SLUICE_OUTPUT"'}
  b: {needs: [a], run: [echo, "${{ steps.a.outputs.x }}"]}
)");
  Output o = box.Sluice({"run", "p.yaml"});
  EXPECT_EQ(o.code, 1) << o.err;  // a failed run, not an abort (it was 134)
  EXPECT_EQ(StepOf(ShowRun(box, "1"), "a")["reason"],
            "output 'x' is not UTF-8 text; write binary data to a file and declare that as an output (outputs: {x: file})");
}

TEST(CliTest, SchedulesListsEachScheduleWithItsNextFireTimesInItsZone) {
  Sandbox box;
  box.Write("pipelines/nightly.yaml", R"(name: nightly
on:
  schedule:
    - {cron: "0 3 * * *", timezone: Europe/Berlin}
    - {cron: "@hourly"}
steps:
  a: {run: "true"}
)");
  box.Write("pipelines/plain.yaml", "name: plain\nsteps:\n  a: {run: 'true'}\n");
  Output o = box.Sluice({"schedules", "pipelines", "--format", "json", "-n", "2"});
  ASSERT_EQ(o.code, 0) << o.err;
  nlohmann::json j = nlohmann::json::parse(o.out);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["timezone"], "Europe/Berlin");
  ASSERT_EQ(j[0]["next"].size(), 2u);
  std::string local = j[0]["next"][0]["local"];
  EXPECT_EQ(local.substr(11, 5), "03:00") << local;  // 03:00 on Berlin's clock
  EXPECT_TRUE(local.substr(17) == "+01:00" || local.substr(17) == "+02:00") << local;
  EXPECT_EQ(j[1]["next"][0]["utc"].get<std::string>().substr(14), "00:00.000Z");  // on the hour
  box.Write("pipelines/bad.yaml", "name: bad\non:\n  schedule: [{cron: '0 25 * * *'}]\nsteps:\n  a: {run: 'true'}\n");
  o = box.Sluice({"schedules", "pipelines"});
  EXPECT_EQ(o.code, 2);
  EXPECT_EQ(o.err, "pipelines/bad.yaml:3:21: cron '0 25 * * *': hour: 25 is out of range 0-23\n");
  EXPECT_NE(o.out.find("nightly"), std::string::npos);  // the others are still listed
}

TEST(CliTest, TokenCreatePrintsATokenOnceAndListAndRevokeNeverShowIt) {
  Sandbox box;
  Output created = box.Sluice({"token", "create", "--scope", "run", "--name", "ci"});
  ASSERT_EQ(created.code, 0) << created.err;
  std::string token = created.out.substr(0, created.out.size() - 1);
  EXPECT_EQ(token.size(), 68u);
  EXPECT_NE(created.err.find("cannot be shown again"), std::string::npos);
  Output list = box.Sluice({"token", "list", "--format", "json"});
  EXPECT_EQ(list.out.find(token.substr(4)), std::string::npos);
  nlohmann::json j = nlohmann::json::parse(list.out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["scope"], "run");
  EXPECT_TRUE(j[0]["revoked"].is_null());
  EXPECT_EQ(box.Sluice({"token", "revoke", "1"}).code, 0);
  EXPECT_EQ(box.Sluice({"token", "revoke", "1"}).err, "sluice: no valid token with id 1\n");
  EXPECT_EQ(box.Sluice({"token", "create", "--scope", "root"}).code, 2);
}

TEST(CliTest, ADeclaredValueOutputTheStepDidNotSetFailsItsAttempt) {
  Sandbox box;
  box.Write("p.yaml", R"(name: demo
steps:
  a:
    run: echo "other=1" >> "$SLUICE_OUTPUT"
    outputs: {accuracy: value}
)");
  Output o = box.Sluice({"run", "p.yaml"});
  EXPECT_EQ(o.code, 1);
  json a = StepOf(ShowRun(box, "1"), "a");
  EXPECT_EQ(a["state"], "failed");
  EXPECT_EQ(a["reason"], "declared output 'accuracy' was not set (a value: write accuracy=... to $SLUICE_OUTPUT)");
}

TEST(CliTest, EditingAScriptTheCommandNamesOrADepRunsACachedStepAgainAndPlanNamesTheFile) {
  Sandbox box;
  box.Write("p.yaml", R"(name: stale
steps:
  train:
    run: sh train.sh --config=conf.txt
    deps: ['data/*.csv']
    cache: true
  report: {needs: [train], run: echo report >> ran.txt}
)");
  box.Write("train.sh", "echo train >> ran.txt\n");
  box.Write("conf.txt", "lr=1\n");
  box.Write("data/a.csv", "1\n");
  auto trained = [&] { return CountLines(box.Read("ran.txt"), "train"); };
  EXPECT_EQ(PlanLine(box, "train"), "  train                runs: no earlier result");
  EXPECT_FALSE(box.Exists(".sluice"));  // plan creates no store
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
  EXPECT_EQ(trained(), 1);
  // Unchanged: cached.
  EXPECT_EQ(PlanLine(box, "train"), "  train                cached (run 1)");
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
  EXPECT_EQ(trained(), 1);
  EXPECT_EQ(StepOf(ShowRun(box, "2"), "train")["state"], "cached");
  // The script the command runs.
  box.Write("train.sh", "echo train >> ran.txt; true\n");
  EXPECT_EQ(PlanLine(box, "train"), "  train                runs: deps changed: train.sh");
  json plan = json::parse(box.Sluice({"plan", "p.yaml", "--format", "json"}).out);
  EXPECT_EQ(plan["steps"][0]["cache"], json({{"decision", "runs"}, {"why", "deps changed: train.sh"}}));
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
  EXPECT_EQ(trained(), 2);
  // A file named after --config=.
  box.Write("conf.txt", "lr=2\n");
  EXPECT_EQ(PlanLine(box, "train"), "  train                runs: deps changed: conf.txt");
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
  EXPECT_EQ(trained(), 3);
  // A declared dep: edited, then one more file matching its glob.
  box.Write("data/a.csv", "2\n");
  EXPECT_EQ(PlanLine(box, "train"), "  train                runs: deps changed: data/*.csv");
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
  EXPECT_EQ(trained(), 4);
  box.Write("data/b.csv", "3\n");
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
  EXPECT_EQ(trained(), 5);
  // A file the glob does not match changes nothing.
  box.Write("data/notes.txt", "x\n");
  EXPECT_EQ(PlanLine(box, "train"), "  train                cached (run 6)");
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
  EXPECT_EQ(trained(), 5);
  // A dep that matches nothing fails the step before it starts.
  std::filesystem::remove(box.dir() / "data/a.csv");
  std::filesystem::remove(box.dir() / "data/b.csv");
  std::string why = "deps: 'data/*.csv' of step 'train' matches no file or folder in " + box.dir().string();
  EXPECT_EQ(PlanLine(box, "train"), "  train                runs: fails before it starts: " + why);
  EXPECT_EQ(box.Sluice({"run", "p.yaml"}).code, 1);
  EXPECT_EQ(StepOf(ShowRun(box, "latest"), "train")["reason"], why);
  EXPECT_EQ(trained(), 5);
}

TEST(CliTest, ACachedResultIsReusedUntilMaxAgeAndRunsOnceItIsOlderSayingWhy) {
  Sandbox box;
  box.Write("p.yaml", "name: aged\nsteps:\n  fetch: {run: echo fetch >> ran.txt, cache: {max_age: 1h}}\n");
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
  // Just within max_age (the few seconds are for starting sluice): reused.
  Sql(box, "UPDATE attempts SET finished_ms = " + std::to_string(NowMs() - 3600000 + 5000) + " WHERE run_id = 1");
  EXPECT_EQ(PlanLine(box, "fetch"), "  fetch                cached (run 1)");
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
  EXPECT_EQ(StepOf(ShowRun(box, "2"), "fetch")["state"], "cached");
  EXPECT_EQ(CountLines(box.Read("ran.txt"), "fetch"), 1);
  // A second past it: the step runs, and the run says why.
  Sql(box, "UPDATE attempts SET finished_ms = " + std::to_string(NowMs() - 3600000 - 1000) + " WHERE run_id = 1");
  std::string line = PlanLine(box, "fetch");
  EXPECT_EQ(line.rfind("  fetch                runs: the result of run 1 is 1h00m0", 0), 0u) << line;
  EXPECT_NE(line.find("s old, older than max_age 1h"), std::string::npos) << line;
  Output o = box.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("step=fetch event=warning reason=\"cache entry of run 1 is 1h00m0"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("s old, older than max_age 1h; running the step\""), std::string::npos) << o.out;
  EXPECT_EQ(StepOf(ShowRun(box, "3"), "fetch")["state"], "succeeded");
  EXPECT_EQ(CountLines(box.Read("ran.txt"), "fetch"), 2);
  // The fresh result is reused again.
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
  EXPECT_EQ(StepOf(ShowRun(box, "4"), "fetch")["state"], "cached");
}

TEST(CliTest, ARunawayStepsLogKeepsItsFirstAndLastEightMebibytes) {
  Sandbox box;
  box.Write("p.yaml", R"(name: demo
steps:
  a:
    run: head -c 20000000 /dev/zero | tr '\0' x; echo END
)");
  Output o = box.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.err;
  Output log = box.Sluice({"logs", "1", "a"});
  ASSERT_EQ(log.code, 0) << log.err;
  const size_t kKept = 16u << 20;
  EXPECT_GT(log.out.size(), kKept);
  EXPECT_LT(log.out.size(), kKept + 400);
  EXPECT_EQ(log.out.substr(0, 8), "xxxxxxxx");
  EXPECT_EQ(log.out.substr(log.out.size() - 8), "xxxxEND\n");
  EXPECT_NE(log.out.find("[sluice: " + std::to_string(20000004 - kKept) +
                         " bytes of output were dropped here; the last 8388608 follow]\n"),
            std::string::npos);
}
