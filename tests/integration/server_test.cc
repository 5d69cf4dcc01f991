// `sluice serve` as a user meets it: a real server on a free loopback port,
// a real store, real runs, and HTTP clients (cpp-httplib, raw sockets).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <iostream>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>

#include "../common/free_port.h"
#include "harness.h"
#include "serve_fixture.h"
#include "server/webhook.h"
#include "store/open.h"
#include "util/strings.h"

namespace sluice::testing {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// Writes `request` to a new connection and reads the answer until `limit`
// passes, the server closes it, or `enough` says what was read is enough.
std::string Exchange(int port, const std::string& request, std::chrono::milliseconds limit = std::chrono::seconds(5),
                     const std::function<bool(const std::string&)>& enough = nullptr) {
  int fd = ConnectLoopback(port);
  if (fd < 0) return "";
  if (!request.empty()) (void)!::write(fd, request.data(), request.size());
  std::string out;
  auto end = std::chrono::steady_clock::now() + limit;
  char buf[4096];
  while (std::chrono::steady_clock::now() < end && !(enough && enough(out))) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}


// The routes, with the scope each needs.
struct Route {
  const char* method;
  const char* path;
  const char* scope;
};
const Route kRoutes[] = {
    {"GET", "/api/pipelines", "read"},        {"GET", "/api/pipelines/hello", "read"},
    {"GET", "/api/pipelines/hello/runs", "read"}, {"POST", "/api/validate", "read"},
    {"GET", "/api/runs", "read"},             {"GET", "/api/runs/1", "read"},
    {"GET", "/api/runs/1/attempts", "read"},  {"GET", "/api/runs/1/log", "read"},
    {"GET", "/api/runs/1/steps/greet/log", "read"}, {"GET", "/api/events", "read"},
    {"GET", "/api/artifacts/" "0000000000000000000000000000000000000000000000000000000000000000", "read"},
    {"POST", "/api/pipelines/hello/runs", "run"}, {"POST", "/api/runs/1/cancel", "run"},
    {"POST", "/api/runs/1/retry", "run"},     {"POST", "/api/runs/1/steps/greet/approval", "run"},
    {"GET", "/api/services/fashion/rollouts", "read"}, {"GET", "/api/services/fashion/series", "read"},
    {"GET", "/api/rollouts/1", "read"},
    {"POST", "/api/services/fashion/promote", "run"}, {"POST", "/api/services/fashion/abort", "run"},
    {"GET", "/api/models", "read"},           {"GET", "/api/models/fashion", "read"},
    {"POST", "/api/models/fashion/aliases", "run"}, {"GET", "/api/runs/1/artifacts", "read"},
    {"GET", "/api/lineage?run=1&step=greet", "read"},
};

httplib::Result Send(httplib::Client& c, const Route& r, const httplib::Headers& h) {
  if (std::string(r.method) == "GET") return c.Get(r.path, h);
  return c.Post(r.path, h, "{}", "application/json");
}

TEST_F(ServeTest, EveryApiRouteRefusesARequestWithoutATokenOrWithAForgedOne) {
  for (const Route& r : kRoutes) {
    auto none = Send(*client_, r, {});
    ASSERT_TRUE(none) << r.path;
    EXPECT_EQ(none->status, 401) << r.method << " " << r.path;
    EXPECT_EQ(json::parse(none->body)["error"]["code"], "unauthenticated");
    std::string forged = "slc_" + std::string(64, 'a');
    auto bad = Send(*client_, r, {{"Authorization", "Bearer " + forged}});
    ASSERT_TRUE(bad);
    EXPECT_EQ(bad->status, 401) << r.method << " " << r.path;
  }
  auto list = client_->Get("/api/runs", {{"Authorization", "Basic abc"}});
  EXPECT_EQ(list->status, 401);
  EXPECT_EQ(GetJson("/api/runs")["runs"].size(), 0u) << "nothing ran";
}

TEST_F(ServeTest, ATokenWithTooSmallAScopeIsForbiddenOnEveryRouteThatNeedsMore) {
  for (const Route& r : kRoutes) {
    if (std::string(r.scope) != "run") continue;
    auto res = Send(*client_, r, Auth("read"));
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 403) << r.method << " " << r.path;
    EXPECT_NE(res->body.find("needs scope run"), std::string::npos) << res->body;
  }
  EXPECT_EQ(GetJson("/api/runs")["runs"].size(), 0u);
}

TEST_F(ServeTest, ARevokedTokenStopsWorkingAtOnce) {
  ASSERT_EQ(Get("/api/runs")->status, 200);
  Output list = box_.Sluice({"token", "list", "--format", "json"});
  for (auto& t : json::parse(list.out)) {
    if (t["scope"] != "read") continue;
    ASSERT_EQ(box_.Sluice({"token", "revoke", std::to_string(t["id"].get<int>())}).code, 0);
  }
  EXPECT_EQ(Get("/api/runs")->status, 401);
}

TEST_F(ServeTest, ARunStartedOverTheApiGetsTypedParamsAsArgvAndSucceeds) {
  std::string evil = "$(touch pwned); `touch pwned2` 'x\" <b>";
  int64_t id = StartRun("hello", {{"who", evil}, {"n", 4}});
  ASSERT_GT(id, 0);
  ASSERT_TRUE(WaitForRun(id, "succeeded")) << box_.Read("serve.log");
  json run = GetJson("/api/runs/" + std::to_string(id));
  EXPECT_EQ(run["params"]["n"], 4);
  EXPECT_EQ(run["params"]["who"], evil);
  EXPECT_EQ(run["trigger"], "api");
  auto log = Get("/api/runs/" + std::to_string(id) + "/steps/greet/log");
  EXPECT_EQ(log->body, "hello " + evil + " 4\n");
  EXPECT_FALSE(fs::exists(box_.home() / "pwned"));
  EXPECT_FALSE(box_.Exists("pwned"));
  // The CLI reads the same store while the server runs.
  Output show = box_.Sluice({"show", std::to_string(id), "--format", "json"});
  EXPECT_EQ(show.code, 0) << show.err;
  EXPECT_EQ(json::parse(show.out)["state"], "succeeded");
}

TEST_F(ServeTest, BadParamsAre400WithTheParamsPlaceAndStartNothing) {
  for (const json& params : {json{{"n", 9}}, json{{"n", "many"}}, json{{"nope", 1}}, json{{"n", json::array()}}}) {
    auto r = Post("/api/pipelines/hello/runs", json{{"params", params}}.dump());
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << params.dump();
    EXPECT_EQ(json::parse(r->body)["error"]["code"], "invalid_params") << r->body;
  }
  auto r = Post("/api/pipelines/hello/runs", json{{"params", {{"n", 9}}}}.dump());
  EXPECT_NE(r->body.find("hello.yaml:5:"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("9 is above the maximum 5 (given in the request)"), std::string::npos) << r->body;
  EXPECT_EQ(r->body.find("-p"), std::string::npos) << r->body;  // not the CLI's words
  EXPECT_EQ(Post("/api/pipelines/hello/runs", "not json")->status, 400);
  EXPECT_EQ(GetJson("/api/runs")["runs"].size(), 0u);
}

TEST_F(ServeTest, AnInvalidSpecIsListedWithItsFileLineColumnAndCannotBeRun) {
  json list = GetJson("/api/pipelines");
  json broken;
  for (auto& p : list["pipelines"])
    if (p["name"] == "broken") broken = p;
  ASSERT_FALSE(broken.is_null()) << list.dump();
  EXPECT_FALSE(broken["valid"].get<bool>());
  EXPECT_NE(broken["errors"][0].get<std::string>().find("broken.yaml:3:"), std::string::npos) << broken.dump();
  auto r = Post("/api/pipelines/broken/runs", "{}");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("broken.yaml:3:"), std::string::npos);
  auto v = client_->Post("/api/validate?file=mine.yaml", Auth("read"), "name: x\nsteps: {a: {run: 1, bad: 2}}\n", "text/yaml");
  EXPECT_EQ(v->status, 400);
  EXPECT_NE(v->body.find("mine.yaml:2:"), std::string::npos) << v->body;
}

TEST_F(ServeTest, UnknownThingsAre404AndWrongMethodsAre405) {
  EXPECT_EQ(Get("/api/runs/999")->status, 404);
  EXPECT_EQ(Get("/api/runs/abc")->status, 404);
  EXPECT_EQ(Get("/api/pipelines/nope")->status, 404);
  EXPECT_EQ(Post("/api/pipelines/nope/runs", "{}")->status, 404);
  EXPECT_EQ(Get("/api/nothing")->status, 404);
  auto r = client_->Delete("/api/runs", Auth("admin"));
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->get_header_value("Allow"), "GET");
  EXPECT_EQ(Get("/api/pipelines/hello/runs?limit=0")->status, 400);
  EXPECT_EQ(Get("/api/runs?state=bogus")->status, 400);
}

TEST_F(ServeTest, CancelStopsARunningRunAndBadStateChangesAre409) {
  int64_t id = StartRun("slow");
  ASSERT_TRUE(WaitForRun(id, "running"));
  EXPECT_EQ(Post("/api/runs/" + std::to_string(id) + "/retry", "")->status, 409);
  auto c = Post("/api/runs/" + std::to_string(id) + "/cancel", "");
  EXPECT_EQ(c->status, 202);
  ASSERT_TRUE(WaitForRun(id, "cancelled"));
  auto again = Post("/api/runs/" + std::to_string(id) + "/cancel", "");
  EXPECT_EQ(again->status, 409);
  EXPECT_NE(again->body.find("already cancelled"), std::string::npos);
}

TEST_F(ServeTest, RetryRerunsTheFailedStepsOfAFailedRun) {
  int64_t id = StartRun("flaky");
  ASSERT_TRUE(WaitForRun(id, "failed"));
  json run = GetJson("/api/runs/" + std::to_string(id));
  EXPECT_EQ(run["steps"][0]["state"], "failed");
  EXPECT_EQ(run["steps"][1]["state"], "skipped");
  box_.Write("pipelines/fixed", "");  // the run's workdir is the spec's folder
  EXPECT_EQ(Post("/api/runs/" + std::to_string(id) + "/retry", "")->status, 202);
  ASSERT_TRUE(WaitForRun(id, "succeeded"));
  run = GetJson("/api/runs/" + std::to_string(id));
  EXPECT_EQ(run["steps"][0]["attempts"], 2);
  EXPECT_EQ(Post("/api/runs/" + std::to_string(id) + "/retry", "")->status, 409) << "nothing failed any more";
}

TEST_F(ServeTest, ARunsOutputsAreInItsJsonAbsentWithTheReasonUntilARetryRendersThem) {
  int64_t id = StartRun("flaky");
  ASSERT_TRUE(WaitForRun(id, "failed"));
  json run = GetJson("/api/runs/" + std::to_string(id));
  json absent = {{{"name", "verdict"}, {"value", nullptr}, {"reason", "${{ steps.finish.outputs.verdict }}: step 'finish' has no output 'verdict' (it skipped)"}}};
  EXPECT_EQ(run["outputs"], absent);
  box_.Write("pipelines/fixed", "");
  ASSERT_EQ(Post("/api/runs/" + std::to_string(id) + "/retry", "")->status, 202);
  ASSERT_TRUE(WaitForRun(id, "succeeded"));
  run = GetJson("/api/runs/" + std::to_string(id));
  json present = {{{"name", "verdict"}, {"value", "<b>fixed</b>"}, {"reason", ""}}};
  EXPECT_EQ(run["outputs"], present);
  // A run's list entry carries no outputs: they are the run page's.
  EXPECT_FALSE(GetJson("/api/runs?pipeline=flaky")["runs"][0].contains("outputs"));
}

TEST_F(ServeTest, AStepsDurationIsItsLastAttemptsNotTheSpanSinceItsFirst) {
  int64_t id = StartRun("flaky");
  ASSERT_TRUE(WaitForRun(id, "failed"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // between the attempts, not in either
  box_.Write("pipelines/fixed", "");
  ASSERT_EQ(Post("/api/runs/" + std::to_string(id) + "/retry", "")->status, 202);
  ASSERT_TRUE(WaitForRun(id, "succeeded"));
  json run = GetJson("/api/runs/" + std::to_string(id));
  json last;
  for (const json& a : run["attempts"])
    if (a["step"] == "check") last = a;
  ASSERT_EQ(last["number"], 2);
  EXPECT_EQ(run["steps"][0]["id"], "check");
  EXPECT_EQ(run["steps"][0]["duration_ms"], last["finished_ms"].get<int64_t>() - last["started_ms"].get<int64_t>());
}

TEST_F(ServeTest, RunsAreListedNewestFirstWithAFilterAndPages) {
  std::vector<int64_t> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(StartRun("hello"));
  ids.push_back(StartRun("flaky"));
  for (int64_t id : ids) ASSERT_TRUE(WaitFor([&] {
    std::string s = GetJson("/api/runs/" + std::to_string(id))["state"];
    return s == "succeeded" || s == "failed";
  }));
  json page1 = GetJson("/api/runs?pipeline=hello&limit=2");
  ASSERT_EQ(page1["runs"].size(), 2u);
  EXPECT_EQ(page1["runs"][0]["id"], ids[2]);
  EXPECT_EQ(page1["runs"][1]["id"], ids[1]);
  json page2 = GetJson("/api/runs?pipeline=hello&limit=2&before=" + std::to_string(page1["next_before"].get<int64_t>()));
  ASSERT_EQ(page2["runs"].size(), 1u);
  EXPECT_EQ(page2["runs"][0]["id"], ids[0]);
  json failed = GetJson("/api/runs?state=failed");
  ASSERT_EQ(failed["runs"].size(), 1u);
  EXPECT_EQ(failed["runs"][0]["pipeline"], "flaky");
}

TEST_F(ServeTest, RunsAreFilteredByTriggerAndTimeAndABadFilterIsRefused) {
  int64_t id = StartRun("hello");
  ASSERT_TRUE(WaitFor([&] { return GetJson("/api/runs/" + std::to_string(id))["state"] == "succeeded"; }));
  int64_t created = GetJson("/api/runs/" + std::to_string(id))["created_ms"];
  EXPECT_EQ(GetJson("/api/runs?trigger=api")["runs"].size(), 1u);
  EXPECT_EQ(GetJson("/api/runs?trigger=schedule")["runs"].size(), 0u);
  EXPECT_EQ(GetJson("/api/runs?since_ms=" + std::to_string(created))["runs"].size(), 1u);
  EXPECT_EQ(GetJson("/api/runs?since_ms=" + std::to_string(created + 1))["runs"].size(), 0u);
  EXPECT_EQ(Get("/api/runs?trigger=manual")->status, 400);
  EXPECT_EQ(Get("/api/runs?since_ms=yesterday")->status, 400);
  EXPECT_EQ(Get("/api/runs?since_ms=0")->status, 400);
}

TEST_F(ServeTest, TheEventStreamReportsEachStepChangeOfARun) {
  std::atomic<int64_t> id{0};
  std::atomic<bool> subscribed{false};
  std::thread starter([&] {
    if (WaitFor([&] { return subscribed.load(); })) id = StartRun("hello");
  });
  std::string req = "GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tokens_["read"] + "\r\n\r\n";
  std::string stream = Exchange(port_, req, std::chrono::seconds(20), [&](const std::string& out) {
    if (out.find("event: hello") != std::string::npos) subscribed = true;
    return id != 0 && out.find("\"run\":" + std::to_string(id) + ",\"state\":\"succeeded\"}") != std::string::npos;
  });
  starter.join();
  EXPECT_NE(stream.find("Content-Type: text/event-stream"), std::string::npos) << stream;
  EXPECT_NE(stream.find("event: step\ndata: {\"attempts\":1,\"item\":-1,\"run\":" + std::to_string(id) +
                        ",\"state\":\"succeeded\",\"step\":\"greet\"}"),
            std::string::npos)
      << stream;
  EXPECT_NE(stream.find("\"state\":\"succeeded\""), std::string::npos);
  EXPECT_NE(stream.find("event: run\ndata: {\"pipeline\":\"hello\",\"run\":" + std::to_string(id) + ",\"state\":\"succeeded\"}"),
            std::string::npos)
      << stream;
}

TEST_F(ServeTest, LogsAreServedByRangeAsTextAndFollowedUntilTheAttemptEnds) {
  box_.Write("pipelines/talk.yaml", "name: talk\nsteps:\n  t: {run: \"for i in 1 2 3; do echo line $i; sleep 0.3; done\"}\n");
  int64_t id = StartRun("talk");
  ASSERT_TRUE(WaitFor([&] { return Get("/api/runs/" + std::to_string(id) + "/steps/t/log")->status == 200; }));
  std::string req = "GET /api/runs/" + std::to_string(id) + "/steps/t/log?follow=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                    tokens_["read"] + "\r\n\r\n";
  std::string stream = Exchange(port_, req, std::chrono::seconds(8));
  EXPECT_NE(stream.find("event: end"), std::string::npos) << stream;
  std::string text;
  for (size_t p = 0; (p = stream.find("event: log\ndata: ", p)) != std::string::npos;) {
    p += 17;
    text += json::parse(stream.substr(p, stream.find('\n', p) - p))["text"].get<std::string>();
  }
  EXPECT_EQ(text, "line 1\nline 2\nline 3\n");
  auto range = Get("/api/runs/" + std::to_string(id) + "/steps/t/log?offset=7&limit=7");
  EXPECT_EQ(range->body, "line 2\n");
  EXPECT_EQ(range->get_header_value("X-Log-Size"), "21");
  EXPECT_EQ(range->get_header_value("X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(range->get_header_value("Content-Type"), "text/plain; charset=utf-8");
}

TEST_F(ServeTest, TheLogOfAnAttemptThatEndedWithoutOutputIsEmptyNotMissing) {
  box_.Write("pipelines/quiet.yaml", "name: quiet\nsteps:\n  q: {run: \"true\"}\n");
  int64_t id = StartRun("quiet");
  ASSERT_TRUE(WaitFor([&] { return GetJson("/api/runs/" + std::to_string(id))["state"] == "succeeded"; }));
  auto log = Get("/api/runs/" + std::to_string(id) + "/steps/q/log");
  ASSERT_TRUE(log);
  EXPECT_EQ(log->status, 200);
  EXPECT_EQ(log->body, "");
  EXPECT_EQ(log->get_header_value("X-Log-Size"), "0");
  EXPECT_EQ(log->get_header_value("X-Attempt-State"), "succeeded");
  EXPECT_EQ(Get("/api/runs/" + std::to_string(id) + "/steps/q/log?attempt=2")->status, 404);  // no such attempt
}

TEST_F(ServeTest, NoRouteReadsOutsideTheStoreOrThePipelinesFolder) {
  box_.Write("outside.yaml", "name: outside\nsteps:\n  a: {run: \"true\"}\n");
  fs::create_symlink(box_.dir() / "outside.yaml", box_.dir() / "pipelines/outside.yaml");
  EXPECT_EQ(Get("/api/pipelines/outside")->status, 404);
  for (const char* path : {"/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc%2fpasswd",
                           "/%2fetc%2fpasswd", "/api/artifacts/..%2f..%2fsluice.db", "/api/pipelines/..%2foutside",
                           "/api/runs/1/steps/..%2f..%2fsluice.db/log"}) {
    auto r = Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 404) << path << ": " << r->body;
    EXPECT_EQ(r->body.find("root:"), std::string::npos);
  }
  // An artifact folder with a symlink that points out of the store.
  std::string hash(64, 'b');
  fs::create_directories(box_.home() / "artifacts" / hash);
  box_.Write(".sluice/artifacts/" + hash + "/ok.txt", "fine");
  fs::create_symlink("/etc/passwd", box_.home() / "artifacts" / hash / "passwd");
  auto ok = Get("/api/artifacts/" + hash + "?path=ok.txt");
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->body, "fine");
  EXPECT_EQ(ok->get_header_value("Content-Disposition"), "attachment; filename=\"ok.txt\"");
  EXPECT_EQ(ok->get_header_value("X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(ok->get_header_value("Content-Security-Policy"), "sandbox");
  for (const char* sub : {"passwd", "../../../etc/passwd", "/etc/passwd", "%2e%2e/ok.txt"}) {
    auto r = Get("/api/artifacts/" + hash + "?path=" + sub);
    EXPECT_EQ(r->status, 404) << sub;
  }
}

TEST_F(ServeTest, ASessionCookieWorksOnlyWithItsCsrfTokenFromTheSameOrigin) {
  auto login = client_->Post("/api/session", json{{"token", tokens_["run"]}}.dump(), "application/json");
  ASSERT_EQ(login->status, 200);
  std::string cookie = login->get_header_value("Set-Cookie");
  EXPECT_NE(cookie.find("HttpOnly"), std::string::npos);
  EXPECT_NE(cookie.find("SameSite=Strict"), std::string::npos);
  std::string session = cookie.substr(0, cookie.find(';'));
  std::string csrf = json::parse(login->body)["csrf"];
  httplib::Headers with_cookie = {{"Cookie", session}};
  EXPECT_EQ(client_->Get("/api/runs", with_cookie)->status, 200) << "reads need no CSRF token";
  EXPECT_EQ(client_->Post("/api/pipelines/hello/runs", with_cookie, "{}", "application/json")->status, 403);
  httplib::Headers cross = {{"Cookie", session}, {"X-CSRF-Token", csrf}, {"Origin", "http://evil.example"}};
  EXPECT_EQ(client_->Post("/api/pipelines/hello/runs", cross, "{}", "application/json")->status, 403);
  httplib::Headers wrong = {{"Cookie", session}, {"X-CSRF-Token", std::string(64, '0')}};
  EXPECT_EQ(client_->Post("/api/pipelines/hello/runs", wrong, "{}", "application/json")->status, 403);
  EXPECT_EQ(GetJson("/api/runs")["runs"].size(), 0u);
  httplib::Headers good = {{"Cookie", session}, {"X-CSRF-Token", csrf}, {"Origin", "http://127.0.0.1:" + std::to_string(port_)}};
  EXPECT_EQ(client_->Post("/api/pipelines/hello/runs", good, "{}", "application/json")->status, 201);
  auto bad_login = client_->Post("/api/session", json{{"token", "slc_nope"}}.dump(), "application/json");
  EXPECT_EQ(bad_login->status, 401);
}

std::string Hook(int port, const std::string& body, const std::string& signature, const std::string& delivery) {
  std::string req = "POST /hooks/hello HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n";
  if (!signature.empty()) req += "X-Hub-Signature-256: " + signature + "\r\n";
  if (!delivery.empty()) req += "X-GitHub-Delivery: " + delivery + "\r\n";
  req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  return Exchange(port, req);
}

TEST_F(ServeTest, ASignedWebhookStartsOneRunPerDeliveryWithParamsFromThePayload) {
  std::string body = R"({"ref": "refs/heads/main; rm -rf /", "count": 3})";
  std::string sig = server::Sign("It's a Secret to Everybody", body);
  std::string first = Hook(port_, body, sig, "delivery-1");
  EXPECT_NE(first.find("HTTP/1.1 202"), std::string::npos) << first;
  std::string again = Hook(port_, body, sig, "delivery-1");
  EXPECT_NE(again.find("HTTP/1.1 200"), std::string::npos) << again;
  EXPECT_NE(again.find("\"duplicate\":true"), std::string::npos);
  json runs = GetJson("/api/runs");
  ASSERT_EQ(runs["runs"].size(), 1u);
  EXPECT_EQ(runs["runs"][0]["trigger"], "webhook");
  EXPECT_EQ(runs["runs"][0]["params"]["who"], "refs/heads/main; rm -rf /");
  EXPECT_EQ(runs["runs"][0]["params"]["n"], 3);
  int64_t id = runs["runs"][0]["id"];
  ASSERT_TRUE(WaitForRun(id, "succeeded"));
  EXPECT_EQ(Get("/api/runs/" + std::to_string(id) + "/steps/greet/log")->body, "hello refs/heads/main; rm -rf / 3\n");
}

TEST_F(ServeTest, AWebhookWithoutOrWithABadSignatureIs401AndStartsNothing) {
  std::string body = R"({"ref": "main", "count": 1})";
  std::string good = server::Sign("It's a Secret to Everybody", body);  // "sha256=<hex>"
  for (const std::string& sig : {std::string(), "sha256=" + std::string(64, '0'), "sha1=" + good.substr(7),
                                 server::Sign("wrong secret", body), good.substr(0, good.size() - 1)}) {
    std::string res = Hook(port_, body, sig, "d-" + std::to_string(sig.size()));
    EXPECT_NE(res.find("HTTP/1.1 401"), std::string::npos) << sig << "\n" << res;
  }
  std::string tampered = Hook(port_, R"({"ref": "evil", "count": 1})", good, "d-x");
  EXPECT_NE(tampered.find("HTTP/1.1 401"), std::string::npos);
  std::string out_of_range = Hook(port_, R"({"ref": "main", "count": 99})",
                                  server::Sign("It's a Secret to Everybody", R"({"ref": "main", "count": 99})"), "d-y");
  EXPECT_NE(out_of_range.find("HTTP/1.1 400"), std::string::npos) << out_of_range;
  EXPECT_EQ(GetJson("/api/runs")["runs"].size(), 0u);
}

TEST_F(ServeTest, ADeliveryValueNestedDeeperThanSixtyFourIsRefusedAndTheServerGoesOnAnswering) {
  // The params read event.ref, which would be converted by recursion (200,000 deep crashed the server).
  auto deliver = [&](int levels, const std::string& id) {
    std::string body = R"({"count": 2, "ref": )" + std::string(levels, '[') + std::string(levels, ']') + "}";
    return Hook(port_, body, server::Sign("It's a Secret to Everybody", body), id);
  };
  for (int levels : {65, 200000}) {
    std::string res = deliver(levels, "deep-" + std::to_string(levels));
    EXPECT_NE(res.find("HTTP/1.1 400"), std::string::npos) << res.substr(0, 300);
    EXPECT_NE(res.find("the delivery's event.ref nests deeper than 64 levels (the limit)"), std::string::npos)
        << res.substr(0, 300);
  }
  std::string res = deliver(64, "deep-64");
  EXPECT_NE(res.find("HTTP/1.1 202"), std::string::npos) << res.substr(0, 300);
  auto health = client_->Get("/api/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

TEST_F(ServeTest, AnOversizeBodyIsRefusedWith413BeforeItIsRead) {
  // Only the headers are sent: the answer comes without the 10 MB body.
  std::string req = "POST /hooks/hello HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: sha256=00\r\nContent-Length: 10000000\r\n\r\n";
  auto t0 = std::chrono::steady_clock::now();
  std::string res = Exchange(port_, req, std::chrono::seconds(3));
  EXPECT_NE(res.find("HTTP/1.1 413"), std::string::npos) << res;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  // A chunked body has no length up front: it is cut off when it passes the limit.
  std::string chunk(1536 << 10, ' ');
  char size[32];
  std::snprintf(size, sizeof size, "%zx", chunk.size());
  std::string chunked = "POST /api/pipelines/hello/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tokens_["run"] +
                        "\r\nTransfer-Encoding: chunked\r\n\r\n" + size + "\r\n" + chunk + "\r\n0\r\n\r\n";
  std::string cut = Exchange(port_, chunked, std::chrono::seconds(3));
  EXPECT_TRUE(cut.empty() || cut.find("HTTP/1.1 413") != std::string::npos) << cut.substr(0, 200);
  EXPECT_EQ(GetJson("/api/runs")["runs"].size(), 0u);
}

TEST_F(ServeTest, AChunkedBodysTrailersAndChunkExtensionsAreBoundedToo) {
  // Found by tests/fuzz/http_request_fuzz: Beast counts neither trailers nor chunk extensions against a limit.
  std::string head = "POST /api/validate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tokens_["read"] +
                     "\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nname\r\n";
  std::string trailers;
  while (trailers.size() < (20 << 10)) trailers += "X-Trailer: " + std::string(50, 't') + "\r\n";
  // 20 KiB of trailers, ended: more header fields than the 16 KiB --max-header allows.
  std::string res = Exchange(port_, head + "0\r\n" + trailers + "\r\n");
  EXPECT_NE(res.find("HTTP/1.1 431"), std::string::npos) << res.substr(0, 200);
  // Trailers that never end, and a chunk extension that never ends: refused once the buffer is full.
  std::string endless;
  while (endless.size() < (256 << 10)) endless += "X-Trailer: " + std::string(50, 't') + "\r\n";
  res = Exchange(port_, head + "0\r\n" + endless);
  EXPECT_NE(res.find("HTTP/1.1 413"), std::string::npos) << res.substr(0, 200);
  res = Exchange(port_, head + "4;ext=" + std::string(256 << 10, 'e'));
  EXPECT_NE(res.find("HTTP/1.1 413"), std::string::npos) << res.substr(0, 200);
  // Trailers within the limit are fine.
  res = Exchange(port_, head + "0\r\nX-Trailer: t\r\n\r\n");
  EXPECT_NE(res.find("HTTP/1.1 400"), std::string::npos) << "an invalid spec, not a refusal: " << res.substr(0, 200);
  auto health = client_->Get("/api/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

TEST_F(ServeTest, OversizeHeadersAre431) {
  std::string req = "GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(64 << 10, 'a') + "\r\n\r\n";
  std::string res = Exchange(port_, req);
  EXPECT_NE(res.find("HTTP/1.1 431"), std::string::npos) << res.substr(0, 200);
}

TEST_F(ServeTest, HostileSpecsSentToValidateAreLocatedErrorsAndTheServerGoesOnAnswering) {
  // A billion laughs: nine levels of ten aliases, 10^9 nodes if copied.
  std::string laughs = "name: lol\nsteps:\n  a:\n    uses: data/split\n    with:\n      l0: &l0 [lol";
  for (int k = 1; k < 10; ++k) laughs += ", lol";
  laughs += "]\n";
  for (int i = 1; i <= 9; ++i) {
    std::string prev = "*l" + std::to_string(i - 1);
    laughs += "      l" + std::to_string(i) + ": &l" + std::to_string(i) + " [" + prev;
    for (int k = 1; k < 10; ++k) laughs += ", " + prev;
    laughs += "]\n";
  }
  // An expression nested 100,000 deep, and YAML nested 100,000 deep.
  std::string deep_expr = "name: deep\nsteps:\n  a:\n    run: [\"true\"]\n    if: ${{ " + std::string(100000, '(') +
                          "true" + std::string(100000, ')') + " }}\n";
  std::string deep_yaml = "name: deep\nsteps:\n  a:\n    uses: data/split\n    with:\n      k: " +
                          std::string(100000, '[') + std::string(100000, ']') + "\n";
  struct Case {
    const std::string& body;
    const char* error;
  } cases[] = {
      {laughs, "lol.yaml:10:46: the anchors and aliases in this spec copy more than 100000 nodes (the limit)"},
      {deep_expr, "nested deeper than 32 levels of parentheses, operators and calls (the limit)"},
      {deep_yaml, "lol.yaml:6:70: the YAML nests deeper than 64 levels (the limit)"},
  };
  for (const Case& c : cases) {
    auto t0 = std::chrono::steady_clock::now();
    auto r = client_->Post("/api/validate?file=lol.yaml", Auth("read"), c.body, "text/yaml");
    ASSERT_TRUE(r) << "the server did not answer: " << box_.Read("serve.log");
    EXPECT_EQ(r->status, 400) << r->body.substr(0, 300);
    json j = json::parse(r->body, nullptr, false);
    EXPECT_EQ(j["error"]["code"], "invalid_spec");
    std::string message = j["error"]["message"].is_string() ? j["error"]["message"].get<std::string>() : "";
    EXPECT_NE(message.find(c.error), std::string::npos) << message.substr(0, 300);
    EXPECT_EQ(message.rfind("lol.yaml:", 0), 0u) << "located: " << message.substr(0, 100);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
    auto health = client_->Get("/api/health");
    ASSERT_TRUE(health) << "the server stopped answering: " << box_.Read("serve.log");
    EXPECT_EQ(health->status, 200);
  }
  EXPECT_EQ(GetJson("/api/pipelines")["pipelines"].size(), 4u);
}

class ServeLimitsTest : public ServeTest {
 protected:
  void SetUp() override { Serve({"--read-timeout", "1s", "--max-connections", "8"}); }
};

TEST_F(ServeLimitsTest, ASlowClientIsDroppedWhileOthersAreServed) {
  std::string slow_result;
  auto t0 = std::chrono::steady_clock::now();
  std::thread slow([&] { slow_result = Exchange(port_, "GET /api/health HTTP/1.1\r\nHost: x\r\n", std::chrono::seconds(5)); });
  for (int i = 0; i < 20; ++i) {
    auto r = client_->Get("/api/health");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  slow.join();
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(slow_result, "") << "the half-sent request got no answer";
  EXPECT_LT(took, std::chrono::seconds(3)) << "dropped after the 1 s read timeout, not at the client's 5 s";
}

TEST_F(ServeLimitsTest, ConnectionsOverTheLimitAreAnswered503AndClosed) {
  std::vector<int> idle;
  for (int i = 0; i < 8; ++i) {
    int fd = ConnectLoopback(port_);
    ASSERT_GE(fd, 0);
    idle.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::string res = Exchange(port_, "GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n", std::chrono::seconds(2));
  EXPECT_NE(res.find("HTTP/1.1 503"), std::string::npos) << res;
  for (int fd : idle) ::close(fd);
  EXPECT_TRUE(WaitFor([&] { return Exchange(port_, "GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").find("200 OK") != std::string::npos; }));
}

class ServeSlowlorisTest : public ServeTest {
 protected:
  void SetUp() override {
    rlimit files{};
    ::getrlimit(RLIMIT_NOFILE, &files);
    files.rlim_cur = std::min<rlim_t>(files.rlim_max, 4096);  // 1,000 clients here, 1,000 in the server it starts
    ::setrlimit(RLIMIT_NOFILE, &files);
    Serve({"--read-timeout", "2s", "--max-connections", "1100"});
  }
  // The 99th percentile of 100 sequential /api/health requests, in ms.
  double P99() {
    std::vector<double> ms;
    for (int i = 0; i < 100; ++i) {
      auto t = std::chrono::steady_clock::now();
      auto r = client_->Get("/api/health");
      EXPECT_TRUE(r && r->status == 200);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count());
    }
    std::sort(ms.begin(), ms.end());
    return ms[98];
  }
};

TEST_F(ServeSlowlorisTest, AThousandSlowlorisClientsDoNotMoveOthersP99AndEachIsClosedAtItsDeadline) {
  double before = P99();
  std::vector<int> slow;
  auto opened = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; ++i) {
    int fd = ConnectLoopback(port_);
    ASSERT_GE(fd, 0) << "client " << i;
    ASSERT_EQ(::send(fd, "G", 1, MSG_NOSIGNAL), 1);
    slow.push_back(fd);
  }
  // A header byte from each every 250 ms: never idle, never done.
  std::atomic<bool> stop{false};
  std::thread drip([&] {
    const std::string rest = "ET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(200, 'a');
    for (size_t k = 0; k < rest.size() && !stop; ++k) {
      for (int fd : slow) ::send(fd, &rest[k], 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  });
  double during = P99();
  // Each is closed when its 2 s header deadline passes, trickle or not.
  size_t closed = 0;
  WaitFor([&] {
    closed = 0;
    for (int fd : slow) {
      char c;
      ssize_t n = ::recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
      closed += n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
    }
    return closed == slow.size();
  }, std::chrono::seconds(6));
  auto took = std::chrono::steady_clock::now() - opened;
  stop = true;
  drip.join();
  for (int fd : slow) ::close(fd);
  EXPECT_EQ(closed, slow.size());
  EXPECT_LT(took, std::chrono::milliseconds(4500)) << "closed at the 2 s deadline, not left open";
  std::cout << "p99 of /api/health: " << before << " ms alone, " << during << " ms beside 1,000 slowloris clients\n";
  EXPECT_LT(during, std::max(50.0, before * 5));
}

TEST(ServeScheduleTest, AScheduleMissedWhileTheServerWasDownRunsOnceOnStartUnlessCatchupIsOff) {
  // A */5 fire time falling while the test runs (about 2 s) would be a real
  // second fire of both pipelines: start clear of one.
  int64_t into_window =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count() % 300;
  if (into_window > 290) std::this_thread::sleep_for(std::chrono::seconds(301 - into_window));
  Sandbox box;
  fs::create_directories(box.dir() / "pipelines");
  box.Write("pipelines/caught.yaml", "name: caught\non:\n  schedule: [{cron: \"*/5 * * * *\"}]\nsteps:\n  a: {run: \"true\"}\n");
  box.Write("pipelines/skipped.yaml",
            "name: skipped\non:\n  schedule: [{cron: \"*/5 * * * *\", catchup: false}]\nsteps:\n  a: {run: \"true\"}\n");
  fs::create_directories(box.home());
  int64_t hours_ago = (std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count() -
                       3 * 3600) * 1000;
  {
    auto store = store::Store::Open((box.home() / "sluice.db").string());
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->access().SetLastFire("caught", "*/5 * * * * UTC", hours_ago).ok());
    ASSERT_TRUE((*store)->access().SetLastFire("skipped", "*/5 * * * * UTC", hours_ago).ok());
  }
  int port = FreePort();
  pid_t pid = box.Start({"serve", "--dir", "pipelines", "--port", std::to_string(port)}, "serve.log");
  ASSERT_TRUE(WaitFor([&] { return box.Read("serve.log").find("event=schedule-fired pipeline=caught") != std::string::npos; }))
      << box.Read("serve.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // a second pass must not fire again
  ::kill(pid, SIGTERM);
  EXPECT_EQ(Sandbox::Reap(pid), 0);
  Output runs = box.Sluice({"runs", "--format", "json"});
  json all = json::parse(runs.out);
  ASSERT_EQ(all.size(), 1u) << runs.out;
  EXPECT_EQ(all[0]["pipeline"], "caught");
  auto store = store::Store::Open((box.home() / "sluice.db").string());
  auto caught = (*store)->access().LastFire("caught", "*/5 * * * * UTC");
  auto skipped = (*store)->access().LastFire("skipped", "*/5 * * * * UTC");
  ASSERT_TRUE(caught.ok() && *caught && skipped.ok() && *skipped);
  EXPECT_GT(**caught, hours_ago + 3 * 3600 * 1000 - 5 * 60 * 1000) << "the newest missed time is remembered";
  EXPECT_EQ(**caught, **skipped);
}

// --- replays and signed timestamps --------------------------------------------

TEST_F(ServeTest, StartingARunWithAnUnknownPoolOrABadGroupIsRefusedWith400AndRecordsNoRun) {
  box_.Write("pipelines/pooled.yaml", "name: pooled\nsteps:\n  fit: {run: \"true\", pool: gpu}\n");
  box_.Write("pipelines/grouped.yaml",
             "name: grouped\nparams:\n  env: {type: string, default: prod}\nconcurrency: \"${{ params.env }}\"\n"
             "steps:\n  a: {run: \"true\"}\n");
  auto pooled = Post("/api/pipelines/pooled/runs", "{}");
  ASSERT_TRUE(pooled);
  EXPECT_EQ(pooled->status, 400) << pooled->body;
  EXPECT_EQ(json::parse(pooled->body)["error"]["code"], "invalid_spec") << pooled->body;
  EXPECT_NE(pooled->body.find("pooled.yaml:3:28: step 'fit' uses pool 'gpu', which does not exist"), std::string::npos)
      << pooled->body;
  auto grouped = Post("/api/pipelines/grouped/runs", R"({"params": {"env": ""}})");
  ASSERT_TRUE(grouped);
  EXPECT_EQ(grouped->status, 400) << grouped->body;
  EXPECT_NE(grouped->body.find("renders to an empty string"), std::string::npos) << grouped->body;
  EXPECT_TRUE(GetJson("/api/runs")["runs"].empty());
  ASSERT_EQ(box_.Sluice({"pool", "set", "gpu", "--slots", "1"}).code, 0);
  EXPECT_TRUE(WaitForRun(StartRun("pooled"), "succeeded"));
}

TEST_F(ServeTest, AReplayedSignedBodyWithANewDeliveryIdStartsNoSecondRun) {
  std::string body = R"({"ref": "main", "count": 2})";
  std::string sig = server::Sign("It's a Secret to Everybody", body);
  std::string first = Hook(port_, body, sig, "delivery-a");
  ASSERT_NE(first.find("HTTP/1.1 202"), std::string::npos) << first;
  int64_t run = json::parse(first.substr(first.find("\r\n\r\n") + 4))["run"];
  for (const std::string& replay_id : {std::string("delivery-b"), std::string("delivery-c"), std::string()}) {
    std::string replay = Hook(port_, body, sig, replay_id);
    ASSERT_NE(replay.find("HTTP/1.1 200"), std::string::npos) << replay;
    json answer = json::parse(replay.substr(replay.find("\r\n\r\n") + 4));
    EXPECT_EQ(answer["duplicate"], true);
    EXPECT_EQ(answer["run"], run);
    EXPECT_EQ(answer["reason"], "the same body was delivered within the last 24 hours (delivery delivery-a)");
  }
  // Another body is another event.
  std::string other = R"({"ref": "main", "count": 3})";
  std::string next = Hook(port_, other, server::Sign("It's a Secret to Everybody", other), "delivery-d");
  EXPECT_NE(next.find("HTTP/1.1 202"), std::string::npos) << next;
  EXPECT_EQ(GetJson("/api/runs")["runs"].size(), 2u);
}

const char* kSvixSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";  // Svix's documented example secret
const char* kSvixPipeline = R"(name: svix
on:
  webhook:
    secret_env: SLUICE_TEST_SVIX_SECRET
    params: {who: "${{ event.who }}"}
params:
  who: {type: string, default: nobody}
steps:
  greet: {run: ["echo", "hello", "${{ params.who }}"]}
)";

int64_t UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A Standard Webhooks delivery to /hooks/svix; `signature` empty: signed with kSvixSecret.
std::string StandardHook(int port, const std::string& body, const std::string& id, int64_t timestamp,
                         std::string signature = "") {
  if (signature.empty()) signature = server::SignStandard(*server::DecodeStandardSecret(kSvixSecret), id, timestamp, body);
  std::string req = "POST /hooks/svix HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n";
  req += "webhook-id: " + id + "\r\nwebhook-timestamp: " + std::to_string(timestamp) + "\r\n";
  req += "webhook-signature: " + signature + "\r\n";
  req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  return Exchange(port, req);
}

class ServeStandardWebhooksTest : public ServeTest {
 protected:
  void SetUp() override {
    ::setenv("SLUICE_TEST_SVIX_SECRET", kSvixSecret, 1);
    fs::create_directories(box_.dir() / "pipelines");
    box_.Write("pipelines/svix.yaml", kSvixPipeline);
    Serve({});
  }
};

TEST_F(ServeStandardWebhooksTest, ADeliveryWithAFreshTimestampStartsOneRunAndItsIdIsTheDeliveryId) {
  std::string body = R"({"who": "svix"})";
  int64_t now = UnixSeconds();
  std::string res = StandardHook(port_, body, "msg_1", now);
  ASSERT_NE(res.find("HTTP/1.1 202"), std::string::npos) << res;
  json answer = json::parse(res.substr(res.find("\r\n\r\n") + 4));
  EXPECT_EQ(answer["delivery"], "msg_1");
  int64_t run = answer["run"];
  ASSERT_TRUE(WaitForRun(run, "succeeded"));
  EXPECT_EQ(Get("/api/runs/" + std::to_string(run) + "/steps/greet/log")->body, "hello svix\n");
  // The sender's retry: the same webhook-id, re-signed with a new timestamp.
  std::string again = StandardHook(port_, body, "msg_1", now + 1);
  EXPECT_NE(again.find("HTTP/1.1 200"), std::string::npos) << again;
  EXPECT_NE(again.find("\"duplicate\":true"), std::string::npos) << again;
  EXPECT_EQ(GetJson("/api/runs")["runs"].size(), 1u);
}

TEST_F(ServeStandardWebhooksTest, ATimestampFiveMinutesAndOneSecondOldIs401AndOneExactlyFiveMinutesOldStartsARun) {
  std::string old_body = R"({"who": "late"})";
  std::string res = StandardHook(port_, old_body, "msg_old", UnixSeconds() - 301);
  EXPECT_NE(res.find("HTTP/1.1 401"), std::string::npos) << res;
  EXPECT_NE(res.find("webhook-timestamp is 301 s old, more than the 300 s allowed"), std::string::npos) << res;
  res = StandardHook(port_, old_body, "msg_future", UnixSeconds() + 301);
  EXPECT_NE(res.find("HTTP/1.1 401"), std::string::npos) << res;
  EXPECT_EQ(GetJson("/api/runs")["runs"].size(), 0u);
  // Exactly 300 s: the server reads its clock in whole seconds, so the
  // request is sent at the start of a second and must arrive within it
  // (no margin is added; a loopback POST takes milliseconds).
  WaitFor([] { return std::chrono::system_clock::now().time_since_epoch() % std::chrono::seconds(1) < std::chrono::milliseconds(50); },
          std::chrono::seconds(2));
  res = StandardHook(port_, R"({"who": "on time"})", "msg_edge", UnixSeconds() - 300);
  EXPECT_NE(res.find("HTTP/1.1 202"), std::string::npos) << res;
  EXPECT_EQ(GetJson("/api/runs")["runs"].size(), 1u);
}

TEST_F(ServeStandardWebhooksTest, ABadV1SignatureIs401AndStartsNothing) {
  std::string body = R"({"who": "mallory"})";
  int64_t now = UnixSeconds();
  std::string key = *server::DecodeStandardSecret(kSvixSecret);
  std::string good = server::SignStandard(key, "msg_2", now, body);
  for (const std::string& sig : {server::SignStandard("wrong key", "msg_2", now, body),  // another secret
                                 server::SignStandard(kSvixSecret, "msg_2", now, body),  // the whsec_ text, not decoded
                                 server::SignStandard(key, "msg_other", now, body),      // signed for another id
                                 "v1," + std::string(44, 'A'), "v1a," + good.substr(3), good.substr(0, good.size() - 4)}) {
    std::string res = StandardHook(port_, body, "msg_2", now, sig);
    EXPECT_NE(res.find("HTTP/1.1 401"), std::string::npos) << sig << "\n" << res;
  }
  // A good signature over another body (a tampered payload).
  std::string tampered = StandardHook(port_, R"({"who": "eve"})", "msg_2", now, good);
  EXPECT_NE(tampered.find("HTTP/1.1 401"), std::string::npos) << tampered;
  EXPECT_NE(tampered.find("webhook-signature does not match"), std::string::npos) << tampered;
  EXPECT_EQ(GetJson("/api/runs")["runs"].size(), 0u);
  // The refusals recorded nothing: the good delivery still starts its run.
  EXPECT_NE(StandardHook(port_, body, "msg_2", now).find("HTTP/1.1 202"), std::string::npos);
}

// --- caps on active runs --------------------------------------------------------

// Each run waits for the file `release` in the pipelines folder.
const char* kGated = "name: gated\nmax_active_runs: 1\nsteps:\n  wait: {run: \"while [ ! -f release ]; do sleep 0.05; done\"}\n";
const char* kGate = "name: gate\nsteps:\n  wait: {run: \"while [ ! -f release ]; do sleep 0.05; done\"}\n";

class ServeQueueTest : public ServeTest {
 protected:
  void SetUp() override {
    fs::create_directories(box_.dir() / "pipelines");
    box_.Write("pipelines/gated.yaml", kGated);
    box_.Write("pipelines/gate.yaml", kGate);
    Serve(extra_);
  }
  std::string State(int64_t id) { return GetJson("/api/runs/" + std::to_string(id)).value("state", ""); }
  void Release() { box_.Write("pipelines/release", ""); }
  // Milliseconds: when the run's first attempt started, and when its last ended.
  std::pair<int64_t, int64_t> Span(int64_t id) {
    json a = GetJson("/api/runs/" + std::to_string(id) + "/attempts")["attempts"];
    if (a.empty()) return {0, 0};
    return {a.front()["started_ms"], a.back()["finished_ms"]};
  }
  std::vector<std::string> extra_;
};

TEST_F(ServeQueueTest, WithMaxActiveRunsOneThreeRunsQueueThenRunOneAfterAnotherAndAllSucceed) {
  int64_t a = StartRun("gated"), b = StartRun("gated"), c = StartRun("gated");
  EXPECT_NE(State(a), "queued");
  EXPECT_EQ(State(b), "queued");
  EXPECT_EQ(State(c), "queued");
  EXPECT_EQ(GetJson("/api/runs?state=queued")["runs"].size(), 2u);
  // Another pipeline is not held back by this one's cap.
  int64_t other = StartRun("hello");
  EXPECT_TRUE(WaitForRun(other, "succeeded"));
  EXPECT_EQ(State(b), "queued");
  Release();
  for (int64_t id : {a, b, c}) EXPECT_TRUE(WaitForRun(id, "succeeded")) << id;
  auto [a0, a1] = Span(a);
  auto [b0, b1] = Span(b);
  auto [c0, c1] = Span(c);
  EXPECT_GE(b0, a1) << "b started after a finished";
  EXPECT_GE(c0, b1) << "c started after b finished";
  EXPECT_GT(a0, 0);
}

class ServeGlobalCapTest : public ServeQueueTest {
 protected:
  void SetUp() override {
    extra_ = {"--max-active-runs", "1"};
    ServeQueueTest::SetUp();
  }
};

TEST_F(ServeGlobalCapTest, TheServersCapQueuesRunsOfEveryPipelineAndRetriesToo) {
  int64_t failed = StartRun("flaky");
  ASSERT_TRUE(WaitForRun(failed, "failed"));
  int64_t a = StartRun("gate");
  int64_t b = StartRun("hello");
  EXPECT_EQ(State(b), "queued");
  auto retry = Post("/api/runs/" + std::to_string(failed) + "/retry", "");
  ASSERT_TRUE(retry);
  EXPECT_EQ(retry->status, 202) << retry->body;
  EXPECT_EQ(json::parse(retry->body)["queued"], true);
  EXPECT_EQ(State(failed), "queued");
  EXPECT_EQ(Post("/api/runs/" + std::to_string(failed) + "/retry", "")->status, 409) << "already queued";
  box_.Write("pipelines/fixed", "");
  Release();
  EXPECT_TRUE(WaitForRun(a, "succeeded"));
  EXPECT_TRUE(WaitForRun(b, "succeeded"));
  EXPECT_TRUE(WaitForRun(failed, "succeeded"));
  EXPECT_GE(Span(b).first, Span(a).second);
  json attempts = GetJson("/api/runs/" + std::to_string(failed) + "/attempts")["attempts"];
  ASSERT_FALSE(attempts.empty());
  EXPECT_GE(attempts.back()["started_ms"].get<int64_t>(), Span(b).second) << "the retry waited its turn";
}

TEST_F(ServeQueueTest, CancellingAQueuedRunMarksItCancelledWithoutStartingIt) {
  int64_t a = StartRun("gated"), b = StartRun("gated");
  ASSERT_EQ(State(b), "queued");
  auto r = Post("/api/runs/" + std::to_string(b) + "/cancel", "");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 202) << r->body;
  EXPECT_EQ(State(b), "cancelled");
  EXPECT_EQ(Post("/api/runs/" + std::to_string(b) + "/cancel", "")->status, 409);
  Release();
  EXPECT_TRUE(WaitForRun(a, "succeeded"));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the slot a left must not go to b
  json run = GetJson("/api/runs/" + std::to_string(b));
  EXPECT_EQ(run["state"], "cancelled");
  EXPECT_TRUE(run["started"].is_null());
  EXPECT_TRUE(run["attempts"].empty());
  EXPECT_FALSE(run["driver_log"].get<bool>());
}

TEST_F(ServeQueueTest, QueuedRunsSurviveARestartAndStartInIdOrder) {
  int64_t a = StartRun("gated"), b = StartRun("gated"), c = StartRun("gated");
  ASSERT_EQ(State(c), "queued");
  ASSERT_TRUE(WaitForRun(a, "running"));
  Stop();  // cancels a, the run it drives; b and c stay queued
  Output runs = box_.Sluice({"runs", "--format", "json"});
  std::map<int64_t, std::string> states;
  for (const json& r : json::parse(runs.out)) states[r["id"]] = r["state"];
  EXPECT_EQ(states[a], "cancelled");
  EXPECT_EQ(states[b], "queued");
  EXPECT_EQ(states[c], "queued");
  Output shown = box_.Sluice({"show", std::to_string(b)});
  EXPECT_EQ(shown.code, 0) << shown.err;
  EXPECT_NE(shown.out.find("queued"), std::string::npos) << shown.out;
  Release();
  Serve({});
  EXPECT_TRUE(WaitForRun(b, "succeeded"));
  EXPECT_TRUE(WaitForRun(c, "succeeded"));
  EXPECT_GE(Span(c).first, Span(b).second) << "b, the older, went first";
}

TEST_F(ServeQueueTest, SluiceResumeStartsAQueuedRunAtOnceAndSluiceCancelCancelsOne) {
  int64_t a = StartRun("gated"), b = StartRun("gated"), c = StartRun("gated");
  ASSERT_EQ(State(c), "queued");
  Output cancelled = box_.Sluice({"cancel", std::to_string(c)});
  EXPECT_EQ(cancelled.code, 0) << cancelled.err;
  EXPECT_EQ(cancelled.out, "run " + std::to_string(c) + " cancelled (it was queued)\n");
  // Claimed while a still holds the cap (both wait at the gate), so the
  // server's queue cannot start b first however slow this machine is.
  pid_t resumed = box_.Start({"resume", std::to_string(b)}, "resume.log");  // outside the cap
  ASSERT_TRUE(WaitFor([&] { return State(b) == "running"; }));
  Release();
  EXPECT_EQ(Sandbox::Reap(resumed), 0) << box_.Read("resume.log.err");
  EXPECT_NE(box_.Read("resume.log").find("was queued by sluice serve; starting it now"), std::string::npos)
      << box_.Read("resume.log");
  EXPECT_TRUE(WaitForRun(a, "succeeded"));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the server's queue must skip b and c
  EXPECT_EQ(State(b), "succeeded");
  EXPECT_EQ(State(c), "cancelled");
  EXPECT_EQ(GetJson("/api/runs/" + std::to_string(b) + "/attempts")["attempts"].size(), 1u) << "b ran once";
  EXPECT_FALSE(GetJson("/api/runs/" + std::to_string(b))["driver_log"].get<bool>()) << "the server never started b";
}

}  // namespace
const char* kPushPipeline = R"(name: pushed
on:
  webhook:
    secret_env: SLUICE_TEST_HOOK_SECRET
    events: [push]
    params: {ref: "${{ event.ref }}", kind: "${{ event_name }}"}
params:
  ref: {type: string, default: none}
  kind: {type: string, default: none}
steps:
  greet: {run: [echo, "${{ params.kind }}", "${{ params.ref }}"]}
)";

// A GitHub delivery of event `event` to /hooks/pushed.
std::string GitHubHook(int port, const std::string& event, const std::string& body, const std::string& delivery) {
  std::string req = "POST /hooks/pushed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n";
  req += "X-GitHub-Event: " + event + "\r\nX-GitHub-Delivery: " + delivery + "\r\n";
  req += "X-Hub-Signature-256: " + server::Sign("It's a Secret to Everybody", body) + "\r\n";
  req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  return Exchange(port, req);
}

class ServeWebhookEventsTest : public ServeTest {
 protected:
  void SetUp() override {
    fs::create_directories(box_.dir() / "pipelines");
    box_.Write("pipelines/pushed.yaml", kPushPipeline);
    Serve({});
  }
};

TEST_F(ServeWebhookEventsTest, GitHubsPingIsAnsweredAnUnlistedEventIsIgnoredAndTheEventNameReachesTheParams) {
  std::string ping = GitHubHook(port_, "ping", R"({"zen": "Keep it logically awesome.", "hook_id": 1})", "d-ping");
  EXPECT_NE(ping.find("HTTP/1.1 200"), std::string::npos) << ping;
  EXPECT_NE(ping.find("\"ping\":true"), std::string::npos) << ping;
  std::string issue = GitHubHook(port_, "issues", R"({"action": "opened"})", "d-issue");
  EXPECT_NE(issue.find("HTTP/1.1 200"), std::string::npos) << issue;
  EXPECT_NE(issue.find("\"ignored\":true"), std::string::npos) << issue;
  EXPECT_EQ(GetJson("/api/runs")["runs"].size(), 0u);
  std::string push = GitHubHook(port_, "push", R"({"ref": "refs/heads/main"})", "d-push");
  ASSERT_NE(push.find("HTTP/1.1 202"), std::string::npos) << push;
  int64_t run = json::parse(push.substr(push.find("\r\n\r\n") + 4))["run"];
  ASSERT_TRUE(WaitForRun(run, "succeeded"));
  EXPECT_EQ(Get("/api/runs/" + std::to_string(run) + "/steps/greet/log")->body, "push refs/heads/main\n");
  // A bad signature is refused before the event is looked at, ping or not.
  std::string forged = "POST /hooks/pushed HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: ping\r\nConnection: close\r\n"
                       "X-Hub-Signature-256: sha256=" + std::string(64, '0') + "\r\nContent-Length: 2\r\n\r\n{}";
  EXPECT_NE(Exchange(port_, forged).find("HTTP/1.1 401"), std::string::npos);
}

TEST_F(ServeTest, EachRequestThatChangesSomethingOrIsRefusedWritesOneLogLineAndReadsWriteNone) {
  int64_t id = StartRun("hello", {{"who", "a b"}, {"n", 1}});
  ASSERT_GT(id, 0);
  ASSERT_TRUE(WaitForRun(id, "succeeded"));
  GetJson("/api/runs");
  ASSERT_TRUE(client_->Post("/api/validate", Auth("read"), "name: x\nsteps: {a: {run: x}}\n", "application/yaml"));
  ASSERT_EQ(client_->Get("/api/runs", httplib::Headers{{"Authorization", "Bearer slc_forged"}})->status, 401);
  std::string body = R"({"ref": "main", "count": 1})";
  EXPECT_NE(Hook(port_, body, server::Sign("wrong secret", body), "d-1").find("HTTP/1.1 401"), std::string::npos);
  std::string log;
  ASSERT_TRUE(WaitFor([&] {
    log = box_.Read("serve.log");
    return log.find("path=/hooks/hello") != std::string::npos;
  })) << log;
  auto lines_with = [&](const std::string& text) {
    std::vector<std::string> found;
    for (const std::string& line : Split(log, '\n'))
      if (line.find(text) != std::string::npos) found.push_back(line);
    return found;
  };
  auto started = lines_with("event=request method=POST path=/api/pipelines/hello/runs status=201 who=");
  ASSERT_EQ(started.size(), 1u) << log;
  EXPECT_NE(started[0].find(" run=" + std::to_string(id)), std::string::npos) << started[0];
  auto refused = lines_with("event=request method=GET path=/api/runs status=401");
  ASSERT_EQ(refused.size(), 1u) << log;
  EXPECT_NE(refused[0].find(" reason=\"the token is not valid (unknown or revoked)\""), std::string::npos) << refused[0];
  auto hook = lines_with("event=request method=POST path=/hooks/hello status=401 who=webhook reason=");
  EXPECT_EQ(hook.size(), 1u) << log;
  EXPECT_TRUE(lines_with("status=200").empty()) << log;       // reads are not logged
  EXPECT_TRUE(lines_with("path=/api/validate").empty()) << log;
  EXPECT_TRUE(lines_with("slc_").empty()) << log;             // no token text
}

}  // namespace sluice::testing
