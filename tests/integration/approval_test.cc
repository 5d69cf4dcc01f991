// sluice/approval with real processes: `sluice run` waits at the step while
// `sluice approve` / `sluice reject` (another process) or `sluice serve`'s
// API decides; the timeout decides for nobody; a driver killed while
// waiting resumes waiting and honours a decision made meanwhile.
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>

#include "../common/free_port.h"
#include "harness.h"

namespace sluice::testing {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

const char* kRelease = R"(name: release
steps:
  gate:
    uses: sluice/approval
    with:
      message: "Deploy to prod?"
      values:
        reason: {type: string}
        replicas: {type: int, default: 2, min: 1}
  deploy:
    needs: [gate]
    run: ["sh", "-c", "echo $0 $1 $2 $3 > deployed.txt", "${{ steps.gate.outputs.replicas }}",
          "${{ steps.gate.outputs.approved }}", "${{ steps.gate.outputs.approver }}", "${{ steps.gate.outputs.reason }}"]
  on_reject:
    needs: [gate]
    if: ${{ failure() }}
    run: echo rejected > rejected.txt
)";

std::string Me() {
  const passwd* pw = ::getpwuid(::getuid());
  return "user:" + std::string(pw ? pw->pw_name : "");
}

// The approval of `step` in `sluice show RUN --format json`, once the step is
// waiting for it (running, its request open); null if it never is.
json WaitForApproval(const Sandbox& box, const std::string& run, const std::string& step) {
  json found;
  WaitFor([&] {
    Output o = box.Sluice({"show", run, "--format", "json"});
    json j = json::parse(o.out, nullptr, false);
    if (!j.is_object()) return false;
    for (const json& a : j.value("approvals", json::array()))
      if (a["step"] == step && a["decision"].is_null())
        for (const json& s : j["steps"])
          if (s["id"] == step && s["state"] == "running") {
            found = a;
            return true;
          }
    return false;
  });
  return found;
}

TEST(ApprovalTest, ARunWaitsUntilApprovedFromTheCliAndADownstreamStepReadsTheValues) {
  Sandbox box;
  box.Write("p.yaml", kRelease);
  pid_t pid = box.Start({"run", "p.yaml"}, "run.log");
  json a = WaitForApproval(box, "1", "gate");
  ASSERT_FALSE(a.is_null()) << box.Read("run.log");
  EXPECT_EQ(a["message"], "Deploy to prod?");
  ASSERT_EQ(a["values"].size(), 2u);
  EXPECT_EQ(a["values"][0]["name"], "reason");
  EXPECT_EQ(a["values"][1], (json{{"name", "replicas"}, {"type", "int"}, {"description", ""}, {"default", 2},
                                  {"required", false}, {"min", 1.0}}));
  Output shown = box.Sluice({"show", "1"});
  EXPECT_NE(shown.out.find("    waiting for approval: Deploy to prod?\n"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("sluice approve 1 gate [-v reason=VALUE] [-v replicas=VALUE]"), std::string::npos) << shown.out;
  EXPECT_FALSE(box.Exists("deployed.txt"));
  Output o = box.Sluice({"approve", "1", "gate", "-v", "replicas=3", "-v", "reason=ship it", "--comment", "looks good"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, "run 1 step gate approved by " + Me() + "\n");
  EXPECT_EQ(Sandbox::Reap(pid), 0) << box.Read("run.log");
  EXPECT_EQ(box.Read("deployed.txt"), "3 true " + Me() + " ship it\n");
  json run = ShowRun(box, "1");
  EXPECT_EQ(StepOf(run, "gate")["state"], "succeeded");
  EXPECT_EQ(StepOf(run, "on_reject")["state"], "skipped");
  json decided = run["approvals"][0];
  EXPECT_EQ(decided["decision"], "approve");
  EXPECT_EQ(decided["decided_by"], Me());
  EXPECT_EQ(decided["comment"], "looks good");
  EXPECT_EQ(decided["decided_values"], (json{{"reason", "ship it"}, {"replicas", 3}}));
  EXPECT_GE(decided["decided_ms"].get<int64_t>(), decided["requested_ms"].get<int64_t>());
}

TEST(ApprovalTest, ARejectedApprovalFailsTheStepAndAFailureHandlerRuns) {
  Sandbox box;
  box.Write("p.yaml", kRelease);
  pid_t pid = box.Start({"run", "p.yaml"}, "run.log");
  ASSERT_FALSE(WaitForApproval(box, "1", "gate").is_null()) << box.Read("run.log");
  Output o = box.Sluice({"reject", "1", "gate", "--reason", "freeze week"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(Sandbox::Reap(pid), 1) << box.Read("run.log");
  json run = ShowRun(box, "1");
  EXPECT_EQ(run["state"], "failed");
  json gate = StepOf(run, "gate");
  EXPECT_EQ(gate["state"], "failed");
  EXPECT_EQ(gate["attempts"][0]["reason"], "rejected by " + Me() + ": freeze week");
  EXPECT_EQ(StepOf(run, "deploy")["state"], "skipped");
  EXPECT_EQ(box.Read("rejected.txt"), "rejected\n");
  EXPECT_EQ(run["approvals"][0]["decision"], "reject");
  Output again = box.Sluice({"approve", "1", "gate", "-v", "reason=x"});
  EXPECT_EQ(again.code, 1);
  EXPECT_EQ(again.err, "sluice: run 1 step 'gate' is not waiting for approval: rejected by " + Me() + "\n");
}

TEST(ApprovalTest, ARetryOfARejectedApprovalAsksAgainInANewRound) {
  Sandbox box;
  box.Write("p.yaml", kRelease);
  pid_t pid = box.Start({"run", "p.yaml"}, "run.log");
  ASSERT_FALSE(WaitForApproval(box, "1", "gate").is_null()) << box.Read("run.log");
  ASSERT_EQ(box.Sluice({"reject", "1", "gate"}).code, 0);
  EXPECT_EQ(Sandbox::Reap(pid), 1);
  pid_t retry = box.Start({"retry", "1"}, "retry.log");
  json again = WaitForApproval(box, "1", "gate");
  ASSERT_FALSE(again.is_null()) << box.Read("retry.log");
  EXPECT_EQ(again["round"], 2);
  ASSERT_EQ(box.Sluice({"approve", "1", "gate", "-v", "reason=second look"}).code, 0);
  EXPECT_EQ(Sandbox::Reap(retry), 0) << box.Read("retry.log");
  EXPECT_EQ(box.Read("deployed.txt"), "2 true " + Me() + " second look\n");
  json run = ShowRun(box, "1");
  ASSERT_EQ(run["approvals"].size(), 2u);
  EXPECT_EQ(run["approvals"][0]["decision"], "reject");
  EXPECT_EQ(run["approvals"][1]["decision"], "approve");
}

TEST(ApprovalTest, ABadValueFromTheCliIsAnErrorNamingItAndTheStepKeepsWaiting) {
  Sandbox box;
  box.Write("p.yaml", kRelease);
  pid_t pid = box.Start({"run", "p.yaml"}, "run.log");
  ASSERT_FALSE(WaitForApproval(box, "1", "gate").is_null()) << box.Read("run.log");
  Output bad = box.Sluice({"approve", "1", "gate", "-v", "reason=x", "-v", "replicas=0"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_EQ(bad.err, "sluice: value 'replicas': 0 is below the minimum 1 (given with -v)\nsluice: the step keeps waiting\n");
  Output missing = box.Sluice({"approve", "1", "gate"});
  EXPECT_EQ(missing.err, "sluice: value 'reason' has no default; give it with -v reason=VALUE\nsluice: the step keeps waiting\n");
  EXPECT_FALSE(WaitForApproval(box, "1", "gate").is_null()) << "still waiting";
  Output other = box.Sluice({"approve", "1", "deploy"});
  EXPECT_EQ(other.code, 1);
  EXPECT_EQ(other.err, "sluice: run 1 step 'deploy' is not waiting for approval\n");
  ASSERT_EQ(box.Sluice({"approve", "1", "gate", "-v", "reason=x", "-v", "replicas=1"}).code, 0);
  EXPECT_EQ(Sandbox::Reap(pid), 0) << box.Read("run.log");
  EXPECT_EQ(box.Read("deployed.txt"), "1 true " + Me() + " x\n");
}

TEST(ApprovalTest, WithoutADecisionTheTimeoutRejectsByDefaultAsTimeout) {
  Sandbox box;
  box.Write("p.yaml", "name: p\nsteps:\n  gate:\n    uses: sluice/approval\n    with: {message: ok?, timeout: 1s}\n");
  Output o = box.Sluice({"run", "p.yaml"});
  EXPECT_EQ(o.code, 1) << o.err;
  json run = ShowRun(box, "1");
  json gate = StepOf(run, "gate");
  EXPECT_EQ(gate["state"], "failed");
  EXPECT_EQ(gate["attempts"][0]["reason"], "rejected by timeout: no decision within the timeout");
  EXPECT_EQ(run["approvals"][0]["decided_by"], "timeout");
  EXPECT_EQ(run["approvals"][0]["deadline_ms"], run["approvals"][0]["requested_ms"].get<int64_t>() + 1000);
}

TEST(ApprovalTest, OnTimeoutApproveApprovesWithTheDefaultValues) {
  Sandbox box;
  box.Write("p.yaml", R"(name: p
steps:
  gate:
    uses: sluice/approval
    with: {timeout: 500ms, on_timeout: approve, values: {replicas: {type: int, default: 2}}}
  use:
    needs: [gate]
    run: echo ${{ steps.gate.outputs.replicas }} ${{ steps.gate.outputs.approver }} > used.txt
)");
  Output o = box.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(box.Read("used.txt"), "2 timeout\n");
  EXPECT_EQ(ShowRun(box, "1")["approvals"][0]["decision"], "approve");
}

TEST(ApprovalTest, ADriverKilledWhileWaitingResumesWaitingAndHonoursADecisionMadeMeanwhile) {
  Sandbox box;
  box.Write("p.yaml", kRelease);
  pid_t pid = box.Start({"run", "p.yaml"}, "run.log");
  json first = WaitForApproval(box, "1", "gate");
  ASSERT_FALSE(first.is_null()) << box.Read("run.log");
  ::kill(pid, SIGKILL);
  Sandbox::Reap(pid);
  // Resumed: the step waits again, with the request its first attempt opened.
  pid_t resumed = box.Start({"resume", "1"}, "resume.log");
  ASSERT_TRUE(WaitFor([&] { return StepOf(ShowRun(box, "1"), "gate")["attempts"].size() == 2; })) << box.Read("resume.log");
  json again = WaitForApproval(box, "1", "gate");
  ASSERT_FALSE(again.is_null()) << box.Read("resume.log");
  EXPECT_EQ(again["requested_ms"], first["requested_ms"]);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // a few polls: still waiting, not failed
  EXPECT_TRUE(ProcessAlive(resumed)) << box.Read("resume.log");
  EXPECT_EQ(StepOf(ShowRun(box, "1"), "gate")["attempts"][1]["state"], "running");
  // Killed again; decided while nothing drives the run; resumed: honoured.
  ::kill(resumed, SIGKILL);
  Sandbox::Reap(resumed);
  Output o = box.Sluice({"approve", "1", "gate", "-v", "reason=meanwhile"});
  ASSERT_EQ(o.code, 0) << o.err;
  Output r = box.Sluice({"resume", "1"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(box.Read("deployed.txt"), "2 true " + Me() + " meanwhile\n");
  json run = ShowRun(box, "1");
  EXPECT_EQ(run["state"], "succeeded");
  EXPECT_EQ(run["approvals"].size(), 1u);
}

// Argo Workflows' suspend-template example (examples/suspend-template.yaml):
// `approve` suspends until `argo resume`, `delay` suspends for a duration,
// then `release` runs. In Sluice the first is sluice/approval (resumed with
// sluice approve), the second sluice/wait.
TEST(ApprovalTest, ArgosSuspendTemplateExampleWaitsForApprovalThenDelaysThenReleases) {
  Sandbox box;
  box.Write("p.yaml", R"(name: suspend-template
steps:
  approve:
    uses: sluice/approval
  delay:
    needs: [approve]
    uses: sluice/wait
    with: {duration: 1s}
  release:
    needs: [delay]
    run: echo hello world > released.txt
)");
  pid_t pid = box.Start({"run", "p.yaml"}, "run.log");
  ASSERT_FALSE(WaitForApproval(box, "1", "approve").is_null()) << box.Read("run.log");
  json run = ShowRun(box, "1");
  EXPECT_EQ(StepOf(run, "delay")["state"], "pending");
  EXPECT_FALSE(box.Exists("released.txt"));
  ASSERT_EQ(box.Sluice({"approve", "1", "approve"}).code, 0);
  EXPECT_EQ(Sandbox::Reap(pid), 0) << box.Read("run.log");
  EXPECT_EQ(box.Read("released.txt"), "hello world\n");
  run = ShowRun(box, "1");
  EXPECT_GE(StepOf(run, "delay")["duration_ms"].get<int64_t>(), 1000);
}

// The API's route against a live server and a run waiting at the step.
TEST(ApprovalTest, TheApiRouteNeedsScopeRunChecksValuesAndRefusesAStepThatIsNotWaiting) {
  Sandbox box;
  fs::create_directories(box.dir() / "pipelines");
  box.Write("pipelines/release.yaml", kRelease);
  std::map<std::string, std::string> tokens;
  for (const char* scope : {"read", "run"}) {
    Output o = box.Sluice({"token", "create", "--scope", scope, "--name", std::string("ci-") + scope});
    size_t at = o.out.find("slc_");
    ASSERT_NE(at, std::string::npos) << o.out << o.err;
    tokens[scope] = o.out.substr(at, 4 + 64);
  }
  int port = FreePort();
  pid_t server = box.Start({"serve", "--dir", "pipelines", "--port", std::to_string(port)}, "serve.log");
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(10, 0);
  ASSERT_TRUE(WaitFor([&] { return static_cast<bool>(c.Get("/api/health")); })) << box.Read("serve.log");
  auto auth = [&](const std::string& scope) { return httplib::Headers{{"Authorization", "Bearer " + tokens[scope]}}; };
  auto started = c.Post("/api/pipelines/release/runs", auth("run"), "{}", "application/json");
  ASSERT_TRUE(started && started->status == 201) << (started ? started->body : "no answer");
  int64_t id = json::parse(started->body)["id"];
  std::string run_path = "/api/runs/" + std::to_string(id);
  ASSERT_TRUE(WaitFor([&] {
    auto r = c.Get(run_path.c_str(), auth("read"));
    if (!r || r->status != 200) return false;
    json j = json::parse(r->body);
    return !j["approvals"].empty() && j["approvals"][0]["decision"].is_null();
  })) << box.Read("serve.log");
  json shown = json::parse(c.Get(run_path.c_str(), auth("read"))->body);
  EXPECT_EQ(shown["approvals"][0]["message"], "Deploy to prod?");
  EXPECT_EQ(shown["approvals"][0]["values"][1]["name"], "replicas");

  std::string route = run_path + "/steps/gate/approval";
  std::string body = R"({"decision": "approve", "values": {"reason": "via api", "replicas": 4}, "comment": "lgtm"})";
  auto none = c.Post(route.c_str(), body, "application/json");
  EXPECT_EQ(none->status, 401);
  auto reader = c.Post(route.c_str(), auth("read"), body, "application/json");
  EXPECT_EQ(reader->status, 403);
  EXPECT_NE(reader->body.find("needs scope run"), std::string::npos) << reader->body;
  auto bad = c.Post(route.c_str(), auth("run"), R"({"decision": "approve", "values": {"reason": "x", "replicas": 0}})",
                    "application/json");
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(json::parse(bad->body)["error"]["message"], "value 'replicas': 0 is below the minimum 1 (given in values)");
  auto other = c.Post((run_path + "/steps/deploy/approval").c_str(), auth("run"), body, "application/json");
  EXPECT_EQ(other->status, 409);
  auto ok = c.Post(route.c_str(), auth("run"), body, "application/json");
  ASSERT_EQ(ok->status, 200) << ok->body;
  json decided = json::parse(ok->body);
  EXPECT_EQ(decided["decided_by"], "token:ci-run");
  EXPECT_EQ(decided["decided_values"], (json{{"reason", "via api"}, {"replicas", 4}}));
  auto twice = c.Post(route.c_str(), auth("run"), R"({"decision": "reject"})", "application/json");
  EXPECT_EQ(twice->status, 409);
  EXPECT_NE(twice->body.find("approved by token:ci-run"), std::string::npos) << twice->body;
  ASSERT_TRUE(WaitFor([&] { return json::parse(c.Get(run_path.c_str(), auth("read"))->body)["state"] == "succeeded"; }))
      << box.Read("serve.log");
  EXPECT_EQ(box.Read("pipelines/deployed.txt"), "4 true token:ci-run via api\n");
  ::kill(server, SIGTERM);
  EXPECT_EQ(Sandbox::Reap(server), 0) << box.Read("serve.log");
}

}  // namespace
}  // namespace sluice::testing
