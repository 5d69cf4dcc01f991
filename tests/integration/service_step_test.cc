// `service:` steps (specs/pipeline.md "Services") run for real: a Python
// HTTP server on the loopback port Sluice picks, reached by the steps that
// need it, checked until ready, stopped after them (its pid is gone).
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <string>

#include "harness.h"

using namespace sluice::testing;
using nlohmann::json;

namespace {

bool HasLine(const Sandbox& box, const std::string& name) {
  return box.Exists(name) && box.Read(name).find('\n') != std::string::npos;
}

int PidIn(const Sandbox& box, const std::string& name) { return std::stoi(box.Read(name)); }

// A service that writes its pid and port, then serves the sandbox over HTTP.
const char* kHttpService =
    "    run: \"echo $$ > db.pid; echo $SLUICE_SERVICE_PORT > db.port; "
    "exec python3 -m http.server --bind 127.0.0.1 $SLUICE_SERVICE_PORT\"\n";

}  // namespace

TEST(ServiceStepTest, ADependantReachesTheServiceThroughItsPortAndTheServiceIsStoppedAfterIt) {
  Sandbox box;
  box.Write("hello.txt", "hello from the service\n");
  box.Write("p.yaml", std::string("name: demo\nsteps:\n  db:\n") + kHttpService +
                          "    service: {ready: {http: /hello.txt}}\n"
                          "  load:\n    needs: db\n"
                          "    env: {PORT: \"${{ steps.db.port }}\"}\n"
                          "    run: \"kill -0 $(cat db.pid) && echo $PORT > load.port && "
                          "curl -fsS http://127.0.0.1:$PORT/hello.txt -o got.txt\"\n");
  Output o = box.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(box.Read("got.txt"), "hello from the service\n");
  EXPECT_EQ(box.Read("load.port"), box.Read("db.port"));  // ${{ steps.db.port }} is $SLUICE_SERVICE_PORT
  json run = ShowRun(box, "1");
  EXPECT_EQ(StepOf(run, "db")["state"], "succeeded");
  EXPECT_EQ(StepOf(run, "db")["reason"], "stopped once the steps that need it were final");
  EXPECT_FALSE(ProcessAlive(PidIn(box, "db.pid")));
}

TEST(ServiceStepTest, AServiceStaysUpUntilItsLastDependantIsFinal) {
  Sandbox box;
  box.Write("p.yaml", std::string("name: demo\nsteps:\n  db:\n") + kHttpService +
                          "    service: true\n"
                          "  quick:\n    needs: db\n    run: [curl, -fsS, -o, /dev/null, \"http://127.0.0.1:${{ steps.db.port }}/\"]\n"
                          "  slow:\n    needs: db\n"
                          "    run: \"sleep 1; curl -fsS -o /dev/null http://127.0.0.1:${{ steps.db.port }}/ && echo ok > slow.txt\"\n");
  Output o = box.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(box.Read("slow.txt"), "ok\n");
  EXPECT_FALSE(ProcessAlive(PidIn(box, "db.pid")));
}

TEST(ServiceStepTest, ARunCheckMakesTheServiceReadyWhenItExitsZero) {
  Sandbox box;
  box.Write("p.yaml",
            "name: demo\nsteps:\n  db:\n"
            "    run: \"echo $$ > db.pid; sleep 0.3; touch ready.flag; sleep 100\"\n"
            "    service: {ready: {run: [test, -e, ready.flag]}}\n"
            "  use:\n    needs: db\n    run: \"test -e ready.flag && kill -0 $(cat db.pid) && echo ok > use.txt\"\n");
  Output o = box.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(box.Read("use.txt"), "ok\n");
  EXPECT_FALSE(ProcessAlive(PidIn(box, "db.pid")));
}

TEST(ServiceStepTest, AServiceReadyBeforeItsTimeoutServes) {
  Sandbox box;
  box.Write("p.yaml",
            "name: demo\nsteps:\n  db:\n"
            "    run: \"sleep 0.5; exec python3 -m http.server --bind 127.0.0.1 $SLUICE_SERVICE_PORT\"\n"
            "    service: {timeout: 2s}\n"
            "  use: {needs: db, run: \"echo ok > use.txt\"}\n");
  Output o = box.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(box.Read("use.txt"), "ok\n");
}

TEST(ServiceStepTest, AServiceThatNeverBecomesReadyFailsAfterItsTimeoutAndItsDependantsDoNotRun) {
  Sandbox box;
  box.Write("p.yaml",
            "name: demo\nsteps:\n  db:\n"
            "    run: \"echo $$ > db.pid; sleep 100\"\n"
            "    service: {ready: {tcp: true}, timeout: 1s}\n"
            "  use: {needs: db, run: \"touch used\"}\n");
  auto start = std::chrono::steady_clock::now();
  Output o = box.Sluice({"run", "p.yaml"});
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(o.code, 1) << o.out << o.err;
  EXPECT_GE(took, std::chrono::seconds(1));
  EXPECT_LT(took, std::chrono::seconds(8));
  json run = ShowRun(box, "1");
  EXPECT_EQ(StepOf(run, "db")["state"], "failed");
  EXPECT_EQ(StepOf(run, "db")["reason"], "not ready after 1s");
  EXPECT_EQ(StepOf(run, "use")["state"], "skipped");
  EXPECT_FALSE(box.Exists("used"));
  EXPECT_FALSE(ProcessAlive(PidIn(box, "db.pid")));
}

TEST(ServiceStepTest, AServiceThatExitsBeforeItIsReadyFails) {
  Sandbox box;
  box.Write("p.yaml",
            "name: demo\nsteps:\n  db: {run: \"exit 3\", service: true}\n"
            "  use: {needs: db, run: \"touch used\"}\n");
  Output o = box.Sluice({"run", "p.yaml"});
  EXPECT_EQ(o.code, 1) << o.out << o.err;
  json run = ShowRun(box, "1");
  EXPECT_EQ(StepOf(run, "db")["reason"], "service exited with 3 before it was ready");
  EXPECT_EQ(StepOf(run, "use")["state"], "skipped");
  EXPECT_FALSE(box.Exists("used"));
}

TEST(ServiceStepTest, AServiceThatDiesBeforeItsDependantsFinishFailsTheRunWithTheReason) {
  Sandbox box;
  box.Write("p.yaml",
            "name: demo\nsteps:\n  db:\n"
            "    run: \"touch up; while [ ! -e die ]; do sleep 0.05; done; exit 3\"\n"
            "    service: {ready: {run: [test, -e, up]}}\n"
            "  use:\n    needs: db\n    run: \"touch die; sleep 1; echo done > use.txt\"\n"
            "  late:\n    needs: [db, use]\n    run: \"touch late\"\n");
  Output o = box.Sluice({"run", "p.yaml"});
  EXPECT_EQ(o.code, 1) << o.out << o.err;
  json run = ShowRun(box, "1");
  EXPECT_EQ(run["state"], "failed");
  EXPECT_EQ(StepOf(run, "db")["state"], "failed");
  EXPECT_EQ(StepOf(run, "db")["reason"], "service exited with 3 before its dependants finished");
  EXPECT_EQ(StepOf(run, "use")["state"], "succeeded");  // running: it keeps its own outcome
  EXPECT_EQ(StepOf(run, "late")["state"], "skipped");
  EXPECT_FALSE(box.Exists("late"));
}

TEST(ServiceStepTest, AServingServiceShowsRunningWithItsAddressAndCancelStopsIt) {
  Sandbox box;
  box.Write("p.yaml", std::string("name: demo\nsteps:\n  db:\n") + kHttpService +
                          "    service: true\n"
                          "  use: {needs: db, run: \"echo $$ > use.pid; sleep 100\"}\n");
  pid_t pid = box.Start({"run", "p.yaml"}, "run.log");
  ASSERT_TRUE(WaitFor([&] { return HasLine(box, "use.pid"); }));
  json serving = ShowRun(box, "1");  // while it serves: running, and where
  EXPECT_EQ(StepOf(serving, "db")["state"], "running");
  std::string port = box.Read("db.port");
  EXPECT_EQ(StepOf(serving, "db")["reason"], "ready on 127.0.0.1:" + port.substr(0, port.size() - 1));
  Output c = box.Sluice({"cancel", "1"});
  EXPECT_EQ(c.code, 0) << c.out << c.err;
  EXPECT_EQ(Sandbox::Reap(pid), 130);
  json run = ShowRun(box, "1");
  EXPECT_EQ(run["state"], "cancelled");
  EXPECT_EQ(StepOf(run, "db")["state"], "cancelled");
  EXPECT_FALSE(ProcessAlive(PidIn(box, "db.pid")));
  EXPECT_FALSE(ProcessAlive(PidIn(box, "use.pid")));
}

TEST(ServiceStepTest, WithOneJobAServiceAndItsDependantRunSideBySide) {
  Sandbox box;
  box.Write("p.yaml", std::string("name: demo\nsteps:\n  db:\n") + kHttpService +
                          "    service: true\n"
                          "  a: {needs: db, run: [curl, -fsS, -o, /dev/null, \"http://127.0.0.1:${{ steps.db.port }}/\"]}\n"
                          "  b: {needs: [db, a], run: [curl, -fsS, -o, /dev/null, \"http://127.0.0.1:${{ steps.db.port }}/\"]}\n");
  Output o = box.Sluice({"run", "p.yaml", "--jobs", "1"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_FALSE(ProcessAlive(PidIn(box, "db.pid")));
}

TEST(ServiceStepTest, AResumedRunStartsTheServiceAgainForTheDependantsLeftToRun) {
  Sandbox box;
  box.Write("p.yaml", std::string("name: demo\nsteps:\n  db:\n") + kHttpService +
                          "    service: true\n"
                          "  use:\n    needs: db\n"
                          "    run: \"if [ ! -e go ]; then echo $$ > use.pid; sleep 100; fi; "
                          "curl -fsS -o /dev/null http://127.0.0.1:${{ steps.db.port }}/ && echo ok > use.txt\"\n");
  pid_t pid = box.Start({"run", "p.yaml"}, "run.log");
  ASSERT_TRUE(WaitFor([&] { return HasLine(box, "use.pid"); }));
  int first_db = PidIn(box, "db.pid");
  ::kill(pid, SIGKILL);
  Sandbox::Reap(pid);
  ::kill(PidIn(box, "use.pid"), SIGKILL);  // what the dead orchestrator left behind
  ::kill(first_db, SIGKILL);
  box.Write("go", "");
  Output o = box.Sluice({"resume", "1"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(box.Read("use.txt"), "ok\n");
  EXPECT_NE(PidIn(box, "db.pid"), first_db);
  EXPECT_FALSE(ProcessAlive(PidIn(box, "db.pid")));
}

TEST(ServiceStepTest, ARetryOfAFailedDependantStartsTheStoppedServiceAgain) {
  Sandbox box;
  box.Write("p.yaml", std::string("name: demo\nsteps:\n  db:\n") + kHttpService +
                          "    service: true\n"
                          "  use:\n    needs: db\n"
                          "    run: \"test -e go && curl -fsS -o /dev/null http://127.0.0.1:${{ steps.db.port }}/ && "
                          "echo ok > use.txt\"\n");
  Output o = box.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 1) << o.out << o.err;
  int first_db = PidIn(box, "db.pid");
  EXPECT_EQ(StepOf(ShowRun(box, "1"), "db")["state"], "succeeded");
  box.Write("go", "");
  o = box.Sluice({"retry", "1"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(box.Read("use.txt"), "ok\n");
  EXPECT_NE(PidIn(box, "db.pid"), first_db);
  EXPECT_FALSE(ProcessAlive(PidIn(box, "db.pid")));
}

TEST(ServiceStepTest, DependantsQueuedWhenTheServiceDiesAreSkippedAndSoAreTheirDependants) {
  Sandbox box;
  box.Write("p.yaml",
            "name: demo\nsteps:\n  db:\n"
            "    run: \"touch up; while [ ! -e die ]; do sleep 0.05; done; exit 3\"\n"
            "    service: {ready: {run: [test, -e, up]}}\n"
            "  a: {needs: db, run: \"touch die; sleep 1\"}\n"
            "  b: {needs: db, run: \"touch b\"}\n"
            "  c: {needs: b, run: \"touch c\"}\n");
  Output o = box.Sluice({"run", "p.yaml", "--jobs", "1"});  // b waits for a's slot
  EXPECT_EQ(o.code, 1) << o.out << o.err;
  json run = ShowRun(box, "1");
  EXPECT_EQ(StepOf(run, "db")["reason"], "service exited with 3 before its dependants finished");
  EXPECT_EQ(StepOf(run, "a")["state"], "succeeded");
  EXPECT_EQ(StepOf(run, "b")["state"], "skipped");
  EXPECT_EQ(StepOf(run, "b")["reason"], "not started: service 'db' failed");
  EXPECT_EQ(StepOf(run, "c")["state"], "skipped");
  EXPECT_FALSE(box.Exists("b"));
  EXPECT_FALSE(box.Exists("c"));
}

TEST(ServiceStepTest, TheRunsTimeoutStopsTheServiceAndFailsIt) {
  Sandbox box;
  box.Write("p.yaml", std::string("name: demo\ntimeout: 1s\nsteps:\n  db:\n") + kHttpService +
                          "    service: true\n"
                          "  use: {needs: db, run: \"echo $$ > use.pid; sleep 100\"}\n");
  Output o = box.Sluice({"run", "p.yaml"});
  EXPECT_EQ(o.code, 1) << o.out << o.err;
  json run = ShowRun(box, "1");
  EXPECT_EQ(StepOf(run, "db")["state"], "failed");
  EXPECT_EQ(StepOf(run, "db")["reason"], "the run's timeout of 1s passed");
  EXPECT_EQ(StepOf(run, "use")["reason"], "the run's timeout of 1s passed");
  EXPECT_FALSE(ProcessAlive(PidIn(box, "db.pid")));
  EXPECT_FALSE(ProcessAlive(PidIn(box, "use.pid")));
}

TEST(ServiceStepTest, PlanSaysACachedStepReadingAServicesPortIsDecidedAtRunTime) {
  Sandbox box;
  box.Write("p.yaml", std::string("name: demo\nsteps:\n  db:\n") + kHttpService +
                          "    service: true\n"
                          "  use: {needs: db, cache: true, run: [echo, \"${{ steps.db.port }}\"]}\n");
  Output o = box.Sluice({"plan", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_NE(o.out.find("depends on outputs of 'db'; cached if they match"), std::string::npos) << o.out;
}

TEST(ServiceStepTest, AServiceInATemplateServesTheTemplatesStepsInTheCall) {
  Sandbox box;
  box.Write("p.yaml", std::string("name: demo\ntemplates:\n  with-db:\n    steps:\n      db:\n") +
                          "        run: \"echo $$ > db.pid; exec python3 -m http.server --bind 127.0.0.1 $SLUICE_SERVICE_PORT\"\n"
                          "        service: true\n"
                          "      load:\n        needs: db\n"
                          "        run: [curl, -fsS, -o, got.html, \"http://127.0.0.1:${{ steps.db.port }}/\"]\n"
                          "steps:\n  c: {call: with-db}\n  after: {needs: c, run: \"test -s got.html\"}\n");
  Output o = box.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  json run = ShowRun(box, "1");
  EXPECT_EQ(StepOf(run, "c.db")["state"], "succeeded");
  EXPECT_EQ(StepOf(run, "after")["state"], "succeeded");
  EXPECT_FALSE(ProcessAlive(PidIn(box, "db.pid")));
}
