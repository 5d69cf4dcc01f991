// The API's routing and auth, checked against specs/api.yaml route by route:
// every operation the spec lists is routed, and needs exactly the scope its
// `x-scope` names (at that scope it is let through, one scope below it is
// refused), and what the spec does not list is 404 or 405. The requests go
// straight to Api::Handle, without a socket; the store is a real one in a
// temporary folder, and the launcher's driver program is /bin/true, so a run
// the API starts ends at once.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <cctype>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "server/api.h"
#include "server/api_helpers.h"
#include "server/catalog.h"
#include "server/events.h"
#include "server/launcher.h"
#include "spec/yaml_tree.h"
#include "runs/verbs.h"
#include "serving/service_view.h"
#include "serving/stats.h"
#include "store/open.h"

namespace sluice::server {
namespace {

namespace fs = std::filesystem;

struct Operation {
  std::string method;  // GET, POST, ...
  std::string path;    // as the spec writes it: /api/runs/{id}
  std::string scope;   // none, read, run, admin or signature
};

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Every operation of specs/api.yaml with its x-scope ("" when it has none).
std::vector<Operation> SpecOperations() {
  auto parsed = spec::ParseYaml(ReadFile(fs::path(SLUICE_SOURCE_DIR) / "specs" / "api.yaml"));
  std::vector<Operation> ops;
  if (const auto* error = std::get_if<spec::YamlError>(&parsed)) {
    ADD_FAILURE() << "specs/api.yaml:" << error->pos.line << ":" << error->pos.column << ": " << error->message;
    return ops;
  }
  const auto& root = std::get<spec::YamlNode>(parsed);
  if (!root.IsMap()) return ops;
  for (const auto& top : root.entries) {
    if (top.first.Scalar() != "paths") continue;
    for (const auto& path : top.second.entries)
      for (const auto& op : path.second.entries) {
        static const std::set<std::string> kMethods = {"get", "post", "put", "delete", "patch", "head"};
        if (!kMethods.count(op.first.Scalar())) continue;  // parameters: and the like
        Operation o{op.first.Scalar(), path.first.Scalar(), ""};
        for (char& c : o.method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        for (const auto& field : op.second.entries)
          if (field.first.Scalar() == "x-scope") o.scope = field.second.Scalar();
        ops.push_back(o);
      }
  }
  return ops;
}

class ApiRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sluice-api-routes-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    home_ = tmpl;
    fs::create_directories(home_ / "pipelines");
    ::setenv("SLUICE_TEST_ROUTES_SECRET", "a secret", 1);
    std::ofstream(home_ / "pipelines" / "hello.yaml")
        << "name: hello\non:\n  webhook:\n    secret_env: SLUICE_TEST_ROUTES_SECRET\nsteps:\n  a:\n    run: \"true\"\n";
    auto opened = store::Store::Open((home_ / "sluice.db").string());
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    store_ = std::move(*opened);
    for (auto [scope, name] : {std::pair{store::TokenScope::kRead, "reader"}, {store::TokenScope::kRun, "runner"},
                               {store::TokenScope::kAdmin, "admin"}}) {
      auto t = store_->access().CreateToken(name, scope, 1);
      ASSERT_TRUE(t.ok());
      tokens_[scope] = *t;
    }
    auto run = store_->runs().CreateRun("hello", ReadFile(home_ / "pipelines" / "hello.yaml"),
                                        (home_ / "pipelines" / "hello.yaml").string(), home_.string(), "{}", 1, 1);
    ASSERT_TRUE(run.ok());
    run_id_ = *run;
    catalog_ = std::make_unique<Catalog>((home_ / "pipelines").string());
    launcher_ = std::make_unique<Launcher>(home_.string(), "/bin/true");
    events_ = std::make_unique<EventHub>((home_ / "sluice.db").string());
    api_ = std::make_unique<Api>(ApiOptions{home_.string()}, catalog_.get(), launcher_.get(), events_.get());
    // A service "fashion" with two command versions, blue 90 and green 10.
    Response put = Put("fashion", kFashion);
    ASSERT_EQ(put.status, 200) << put.body;
    ops_ = SpecOperations();
    ASSERT_GE(ops_.size(), 19u) << "specs/api.yaml could not be read, or lost operations";
  }

  void TearDown() override {
    api_.reset();
    events_.reset();
    if (launcher_) launcher_->Stop(std::chrono::milliseconds(2000));
    launcher_.reset();
    store_.reset();
    std::error_code ec;
    fs::remove_all(home_, ec);
  }

  // The spec's path with its parameters filled in.
  std::string Concrete(std::string path) const {
    const std::map<std::string, std::string> values = {
        {"{name}", "hello"}, {"{pipeline}", "hello"}, {"{id}", std::to_string(run_id_)},
        {"{step}", "a"},     {"{hash}", std::string(64, '0')}, {"{service}", "fashion"},
        {"{rollout}", "1"}};
    for (const auto& [key, value] : values)
      if (auto at = path.find(key); at != std::string::npos) path.replace(at, key.size(), value);
    return path;
  }

  // A request as the HTTP server hands it to the API.
  Request Make(const std::string& method, const std::string& path, const std::optional<store::TokenScope>& scope) {
    Request r;
    r.method = method;
    r.target = path;
    std::stringstream ss(path.substr(1));
    for (std::string seg; std::getline(ss, seg, '/');) r.segments.push_back(seg);
    r.headers.emplace_back("host", "127.0.0.1:8080");
    if (scope) r.headers.emplace_back("authorization", "Bearer " + tokens_.at(*scope));
    if (method == "POST") r.body = path == "/api/validate" ? "name: x\nsteps:\n  a:\n    run: \"true\"\n" : "{}";
    return r;
  }

  Response Send(const std::string& method, const std::string& path, const std::optional<store::TokenScope>& scope) {
    return api_->Handle(Make(method, path, scope));
  }

  // A request with a body, by a token of `scope` (admin by default).
  Response SendBody(const std::string& method, const std::string& path, const std::string& body,
                    store::TokenScope scope = store::TokenScope::kAdmin) {
    Request r = Make(method, path.substr(0, path.find('?')), scope);
    r.target = path;
    if (auto q = path.find('?'); q != std::string::npos) {
      std::stringstream ss(path.substr(q + 1));
      for (std::string kv; std::getline(ss, kv, '&');) r.query.emplace_back(kv.substr(0, kv.find('=')), kv.substr(kv.find('=') + 1));
    }
    r.body = body;
    return api_->Handle(r);
  }
  Response Put(const std::string& name, const std::string& body) {
    return SendBody("PUT", "/api/services/" + name, body);
  }
  Response Get(const std::string& path) {
    Request r = Make("GET", path.substr(0, path.find('?')), store::TokenScope::kRead);
    r.target = path;
    if (auto q = path.find('?'); q != std::string::npos) {
      std::stringstream ss(path.substr(q + 1));
      for (std::string kv; std::getline(ss, kv, '&');) r.query.emplace_back(kv.substr(0, kv.find('=')), kv.substr(kv.find('=') + 1));
    }
    return api_->Handle(r);
  }
  static nlohmann::json Body(const Response& r) { return nlohmann::json::parse(r.body, nullptr, false); }

  static constexpr const char* kFashion =
      R"({"service": "fashion", "versions": {"blue": {"command": ["python3", "srv.py"], "replicas": 2},)"
      R"( "green": {"command": ["python3", "srv.py", "--green"]}}, "traffic": {"blue": 90, "green": 10}})";

  static std::string Code(const Response& r) {
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (!j.is_object() || !j.contains("error")) return "";
    return j["error"].value("code", "");
  }

  fs::path home_;
  std::unique_ptr<store::Store> store_;
  std::map<store::TokenScope, std::string> tokens_;
  int64_t run_id_ = 0;
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<Launcher> launcher_;
  std::unique_ptr<EventHub> events_;
  std::unique_ptr<Api> api_;
  std::vector<Operation> ops_;  // specs/api.yaml's
};

TEST_F(ApiRoutesTest, EveryOperationInTheSpecNamesItsScope) {
  for (const Operation& o : ops_)
    EXPECT_TRUE(o.scope == "none" || o.scope == "read" || o.scope == "run" || o.scope == "admin" ||
                o.scope == "signature")
        << o.method << " " << o.path << " has x-scope '" << o.scope << "'";
}

TEST_F(ApiRoutesTest, EveryOperationNeedsExactlyTheScopeTheSpecNames) {
  for (const Operation& o : ops_) {
    std::string path = Concrete(o.path);
    SCOPED_TRACE(o.method + " " + path + " (x-scope " + o.scope + ")");
    if (o.scope == "none") {
      // Open: never a 403, and a GET needs no credentials (signing out
      // without a session is a 401 of its own: there is nothing to end).
      Response r = Send(o.method, path, std::nullopt);
      if (o.method == "GET") {
        EXPECT_NE(r.status, 401) << r.body;
      }
      EXPECT_NE(r.status, 403) << r.body;
      EXPECT_NE(r.status, 404) << r.body;
      EXPECT_NE(r.status, 405) << r.body;
    } else if (o.scope == "signature") {
      EXPECT_EQ(Send(o.method, path, store::TokenScope::kAdmin).status, 401) << "a token is no signature";
    } else {
      EXPECT_EQ(Send(o.method, path, std::nullopt).status, 401);
      store::TokenScope needed = o.scope == "read"  ? store::TokenScope::kRead
                                 : o.scope == "run" ? store::TokenScope::kRun
                                                    : store::TokenScope::kAdmin;
      Response at = Send(o.method, path, needed);
      EXPECT_NE(at.status, 401) << at.body;
      EXPECT_NE(at.status, 403) << at.body;
      EXPECT_NE(at.status, 405) << at.body;
      EXPECT_NE(Code(at) == "not_found" && at.body.find("no such route") != std::string::npos, true) << at.body;
      if (needed == store::TokenScope::kRun) {
        Response below = Send(o.method, path, store::TokenScope::kRead);
        EXPECT_EQ(below.status, 403) << below.body;
        EXPECT_NE(below.body.find("needs scope run"), std::string::npos) << below.body;
      }
      if (needed == store::TokenScope::kAdmin) {
        for (store::TokenScope lower : {store::TokenScope::kRead, store::TokenScope::kRun}) {
          Response below = Send(o.method, path, lower);
          EXPECT_EQ(below.status, 403) << below.body;
          EXPECT_NE(below.body.find("needs scope admin"), std::string::npos) << below.body;
        }
      }
    }
  }
}

TEST_F(ApiRoutesTest, AMethodTheSpecDoesNotListOnAPathIs405WithTheAllowedOnes) {
  std::map<std::string, std::set<std::string>> methods;
  for (const Operation& o : ops_) methods[o.path].insert(o.method);
  for (const auto& [path, listed] : methods) {
    for (const char* m : {"GET", "POST", "DELETE", "PUT"}) {
      if (listed.count(m)) continue;
      // GET /api/pipelines/{name}/runs and POST share a path: both listed.
      Response r = Send(m, Concrete(path), store::TokenScope::kAdmin);
      SCOPED_TRACE(std::string(m) + " " + Concrete(path));
      EXPECT_EQ(r.status, 405) << r.body;
      bool allow = false;
      for (const auto& [name, value] : r.headers) allow |= name == "Allow" && !value.empty();
      EXPECT_TRUE(allow);
    }
  }
}

TEST_F(ApiRoutesTest, APathTheSpecDoesNotListIs404EvenForAnAdmin) {
  for (const char* path : {"/api/nope", "/api/runs/1/nope", "/api/pipelines/hello/nope", "/api/runs/1/steps/a/nope",
                           "/hooks/hello/extra", "/api/runs/abc"}) {
    Response r = Send("GET", path, store::TokenScope::kAdmin);
    EXPECT_EQ(r.status, 404) << path << ": " << r.body;
  }
}

TEST_F(ApiRoutesTest, ARevokedTokenIsRefusedOnTheNextRequest) {
  ASSERT_EQ(Send("GET", "/api/runs", store::TokenScope::kRead).status, 200);
  auto tokens = store_->access().ListTokens();
  ASSERT_TRUE(tokens.ok());
  for (const auto& t : *tokens) {
    if (t.name == "reader") {
      ASSERT_TRUE(store_->access().RevokeToken(t.id, 2).ok());
    }
  }
  EXPECT_EQ(Send("GET", "/api/runs", store::TokenScope::kRead).status, 401);
}

TEST_F(ApiRoutesTest, ASessionCookieChangesStateOnlyWithItsCsrfTokenFromItsOwnOrigin) {
  Request login = Make("POST", "/api/session", std::nullopt);
  login.body = nlohmann::json{{"token", tokens_.at(store::TokenScope::kRun)}}.dump();
  Response in = api_->Handle(login);
  ASSERT_EQ(in.status, 200) << in.body;
  std::string cookie, csrf = nlohmann::json::parse(in.body).value("csrf", "");
  for (const auto& [name, value] : in.headers)
    if (name == "Set-Cookie") cookie = value.substr(0, value.find(';'));
  ASSERT_FALSE(cookie.empty());
  auto cancel = [&](const std::string& token, const std::string& origin) {
    Request r = Make("POST", "/api/runs/" + std::to_string(run_id_) + "/cancel", std::nullopt);
    r.headers.emplace_back("cookie", cookie);
    if (!token.empty()) r.headers.emplace_back("x-csrf-token", token);
    if (!origin.empty()) r.headers.emplace_back("origin", origin);
    return api_->Handle(r);
  };
  EXPECT_EQ(cancel("", "").status, 403);
  EXPECT_EQ(cancel(csrf + "x", "").status, 403);
  EXPECT_EQ(cancel(csrf, "http://evil.example").status, 403);
  Response ok = cancel(csrf, "http://127.0.0.1:8080");
  EXPECT_NE(ok.status, 401);
  EXPECT_NE(ok.status, 403) << ok.body;
  // A read with the cookie needs no CSRF token.
  Request read = Make("GET", "/api/runs", std::nullopt);
  read.headers.emplace_back("cookie", cookie);
  EXPECT_EQ(api_->Handle(read).status, 200);
}

TEST_F(ApiRoutesTest, ARetryOfAFailedRunWithNoFailedStepsIs409AndStartsNothing) {
  // The run's driver never started a step: the run is failed, its steps pending.
  runs::RunVerbs verbs(store_->runs(), home_.string());
  auto failed = verbs.FailAbandoned(run_id_);
  ASSERT_TRUE(failed.ok() && *failed);
  Response r = Send("POST", "/api/runs/" + std::to_string(run_id_) + "/retry", store::TokenScope::kRun);
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(r.body.find("no failed or cancelled steps"), std::string::npos) << r.body;
  EXPECT_EQ(store_->runs().GetRun(run_id_)->state, engine::RunState::kFailed);
}

// --- services (/api/services; specs/services-design.md section 8)

TEST_F(ApiRoutesTest, ServicesListVersionsReplicaRowsTheLastMinuteAndNoGateway) {
  store::ReplicaRow row;
  row.service = "fashion";
  row.version = "blue";
  row.slot = 0;
  row.revision = 1;
  row.pid = 1234;
  row.port = 5000;
  row.state = "ready";
  row.restarts = 1;
  row.last_exit = "exited with status 3";
  row.log_path = "/tmp/blue.0.log";
  row.updated_ms = 1;
  ASSERT_TRUE(store_->services().PutReplica(row).ok());
  int64_t from = 0, to = 0;
  serving::LastMinuteSpan(internal::NowMs(), &from, &to);
  auto window = [&](int64_t start, int64_t requests, int64_t errors, std::vector<int64_t> latency) {
    store::WindowRow w;
    w.service = "fashion";
    w.version = "blue";
    w.role = "live";
    w.start_ms = start;
    w.requests = requests;
    w.errors = errors;
    latency.resize(serving::kLatencyBuckets);
    w.latency = nlohmann::json(latency).dump();
    return w;
  };
  std::vector<int64_t> fast(serving::kLatencyBuckets), slow(serving::kLatencyBuckets);
  fast[6] = 60;   // <= 10 ms
  slow[12] = 39;  // <= 50 ms
  slow[16] = 1;   // <= 200 ms
  store::WindowRow old = window(from - 10'000, 1000, 1000, fast);  // before the last minute: not counted
  old.latency = nlohmann::json(fast).dump();
  ASSERT_TRUE(store_->gateway()
                  .AppendWindows({old, window(to - 20'000, 60, 0, fast), window(to - 10'000, 40, 2, slow)}, 1, 1)
                  .ok());
  Response r = Get("/api/services");
  ASSERT_EQ(r.status, 200) << r.body;
  nlohmann::json j = Body(r);
  EXPECT_TRUE(j["gateway"].is_null());
  ASSERT_EQ(j["services"].size(), 1u);
  nlohmann::json s = j["services"][0];
  EXPECT_EQ(s["name"], "fashion");
  EXPECT_EQ(s["generation"], 1);
  EXPECT_TRUE(s["mirror"].is_null());
  EXPECT_TRUE(s["traffic_owner"].is_null());
  EXPECT_FALSE(s.contains("spec"));
  nlohmann::json blue = s["versions"][0];
  EXPECT_EQ(blue["weight"], "90");
  EXPECT_EQ(blue["weight_bp"], 9000);
  EXPECT_EQ(blue["replicas"], 2);
  EXPECT_EQ(blue["command"], (nlohmann::json{"python3", "srv.py"}));
  ASSERT_EQ(blue["replica_rows"].size(), 1u);
  EXPECT_EQ(blue["replica_rows"][0]["pid"], 1234);
  EXPECT_EQ(blue["replica_rows"][0]["port"], 5000);
  EXPECT_EQ(blue["replica_rows"][0]["state"], "ready");
  EXPECT_EQ(blue["replica_rows"][0]["restarts"], 1);
  EXPECT_EQ(blue["replica_rows"][0]["last_exit"], "exited with status 3");
  nlohmann::json minute = blue["last_minute"];
  EXPECT_EQ(minute["requests"], 100);
  EXPECT_EQ(minute["errors"], 2);
  EXPECT_NEAR(minute["requests_per_s"].get<double>(), 100.0 / 60.0, 1e-9);
  EXPECT_NEAR(minute["error_rate"].get<double>(), 0.02, 1e-12);
  EXPECT_EQ(minute["p50_ms"], 10.0);
  EXPECT_EQ(minute["p99_ms"], 50.0);
  nlohmann::json green = s["versions"][1];
  EXPECT_EQ(green["replica_rows"].size(), 0u);
  EXPECT_EQ(green["last_minute"]["requests"], 0);
  EXPECT_TRUE(green["last_minute"]["error_rate"].is_null());
  EXPECT_TRUE(green["last_minute"]["p99_ms"].is_null());
}

TEST_F(ApiRoutesTest, ServicesShowTheGatewayRowWithItsHeartbeatAge) {
  store::GatewayRecord me;
  me.pid = ::getpid();
  me.listen = "127.0.0.1";
  me.port = 8081;
  me.mode = "serve";
  me.heartbeat_ms = internal::NowMs() - 5000;
  auto claimed = store_->gateway().Claim(me, [](int64_t, int64_t) { return false; });
  ASSERT_TRUE(claimed.ok());
  nlohmann::json g = Body(Get("/api/services"))["gateway"];
  EXPECT_EQ(g["pid"], ::getpid());
  EXPECT_EQ(g["url"], "http://127.0.0.1:8081");
  EXPECT_EQ(g["mode"], "serve");
  EXPECT_GE(g["heartbeat_age_ms"].get<int64_t>(), 5000);
}

TEST_F(ApiRoutesTest, AServiceIsShownWithItsSpecAndAnUnknownOneIs404WithDidYouMean) {
  Response r = Get("/api/services/fashion");
  ASSERT_EQ(r.status, 200) << r.body;
  nlohmann::json j = Body(r);
  EXPECT_EQ(j["spec"]["traffic"], (nlohmann::json{{"blue", 90}, {"green", 10}}));
  EXPECT_EQ(j["spec_hash"].get<std::string>().size(), 64u);
  EXPECT_TRUE(j.contains("gateway"));
  Response missing = Get("/api/services/fashon");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(Body(missing)["error"]["message"],
            "no service named 'fashon' (services: fashion) (did you mean 'fashion'?)");
}

TEST_F(ApiRoutesTest, ServiceHistoryIsNewestFirstFiftyByDefaultAndLimit500PassesAnd501Is400) {
  for (int i = 0; i < 60; ++i)
    ASSERT_EQ(SendBody("PATCH", "/api/services/fashion/traffic",
                       i % 2 ? R"({"traffic": {"blue": 90, "green": 10}})" : R"({"traffic": {"blue": 80, "green": 20}})")
                  .status,
              200);
  nlohmann::json page = Body(Get("/api/services/fashion/history"));
  ASSERT_EQ(page["changes"].size(), 50u);
  EXPECT_GT(page["changes"][0]["id"].get<int64_t>(), page["changes"][1]["id"].get<int64_t>());
  EXPECT_EQ(page["changes"][0]["kind"], "traffic");
  int64_t next = page["next_before"].get<int64_t>();
  nlohmann::json rest = Body(Get("/api/services/fashion/history?before=" + std::to_string(next)));
  ASSERT_EQ(rest["changes"].size(), 11u);  // 60 traffic + 1 apply
  EXPECT_EQ(rest["changes"][10]["kind"], "apply");
  EXPECT_EQ(Get("/api/services/fashion/history?limit=500").status, 200);
  Response over = Get("/api/services/fashion/history?limit=501");
  EXPECT_EQ(over.status, 400);
  EXPECT_EQ(Body(over)["error"]["message"], "limit must be from 1 to 500, not '501'");
  EXPECT_EQ(Get("/api/services/fashion/history?limit=0").status, 400);
  EXPECT_EQ(Get("/api/services/nope/history").status, 404);
}

TEST_F(ApiRoutesTest, ServiceWindows8640PassAnd8641Are400) {
  std::vector<store::WindowRow> rows;
  for (int i = 0; i < 8641; ++i) {
    store::WindowRow w;
    w.service = "fashion";
    w.version = "blue";
    w.role = "live";
    w.start_ms = int64_t{i} * 10'000;
    w.requests = 1;
    rows.push_back(w);
  }
  ASSERT_TRUE(store_->gateway().AppendWindows(rows, 1, 1).ok());
  Response at = Get("/api/services/fashion/windows?from=0&to=86400000");
  ASSERT_EQ(at.status, 200) << at.body.substr(0, 300);
  nlohmann::json j = Body(at);
  ASSERT_EQ(j["windows"].size(), 8640u);
  EXPECT_EQ(j["windows"][0]["start_ms"], 0);
  EXPECT_EQ(j["windows"][0]["role"], "live");
  Response past = Get("/api/services/fashion/windows?from=0&to=86400001");
  EXPECT_EQ(past.status, 400);
  EXPECT_NE(Body(past)["error"]["message"].get<std::string>().find("8641 windows, more than 8640"), std::string::npos)
      << past.body;
  EXPECT_EQ(Body(Get("/api/services/fashion/windows?from=0&to=86400001&version=green"))["windows"].size(), 0u);
  EXPECT_EQ(Get("/api/services/fashion/windows?role=canary").status, 400);
  EXPECT_EQ(Get("/api/services/fashion/windows?from=10&to=10").status, 400);
}

TEST_F(ApiRoutesTest, PutAppliesAsTheTokenWithTheReasonAndTheSameDocumentAgainIsUnchanged) {
  std::string next = kFashion;
  next.replace(next.find("\"replicas\": 2"), 13, "\"replicas\": 3");
  Response r = SendBody("PUT", "/api/services/fashion?reason=more", next);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r)["generation"], 2);
  int64_t change = Body(r)["change"].get<int64_t>();
  auto history = store_->services().History("fashion", 0, 1);
  ASSERT_TRUE(history.ok() && !history->empty());
  EXPECT_EQ((*history)[0].id, change);
  EXPECT_EQ((*history)[0].actor, "token:admin");
  EXPECT_EQ((*history)[0].reason, "more");
  Response again = SendBody("PUT", "/api/services/fashion", next);
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(Body(again), (nlohmann::json{{"unchanged", true}, {"generation", 2}}));
  EXPECT_EQ(store_->services().Get("fashion")->versions[0].replicas, 3);
}

TEST_F(ApiRoutesTest, PutWithSpecErrorsIs400WithEveryErrorNamingItsKey) {
  Response r = SendBody("PUT", "/api/services/fashion",
                        R"({"service": "fashion", "versions": {"blue": {"command": ["x"], "replicas": 17,)"
                        R"( "colour": 1}}})");
  ASSERT_EQ(r.status, 400) << r.body;
  nlohmann::json e = Body(r)["error"];
  EXPECT_EQ(e["code"], "invalid_spec");
  ASSERT_EQ(e["errors"].size(), 2u) << r.body;
  EXPECT_NE(e["errors"][0].get<std::string>().find("service.json:1:"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("versions.blue.replicas"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("'colour'"), std::string::npos) << r.body;
  EXPECT_EQ(SendBody("PUT", "/api/services/fashion", "not json").status, 400);
  EXPECT_EQ(store_->services().Get("fashion")->generation, 1);
}

TEST_F(ApiRoutesTest, PutWithANameOtherThanThePathsIs400) {
  Response r = SendBody("PUT", "/api/services/other", kFashion);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Body(r)["error"]["message"], "the document is service 'fashion', not 'other' as in the path");
  EXPECT_EQ(store_->services().Get("other").status().code(), Code::kNotFound);
}

TEST_F(ApiRoutesTest, PatchTrafficSetsTheWeightsAloneAndRecordsATrafficChange) {
  Response r = SendBody("PATCH", "/api/services/fashion/traffic",
                        R"({"traffic": {"blue": 87.5, "green": "12.5"}, "reason": "canary", "expected_generation": 1})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r)["generation"], 2);
  auto s = store_->services().Get("fashion");
  EXPECT_EQ(s->versions[0].weight_bp, 8750);
  EXPECT_EQ(s->versions[1].weight_bp, 1250);
  EXPECT_EQ(s->versions[0].replicas, 2);
  nlohmann::json change = Body(Get("/api/services/fashion/history?limit=1"))["changes"][0];
  EXPECT_EQ(change["id"], Body(r)["change"]);
  EXPECT_EQ(change["kind"], "traffic");
  EXPECT_EQ(change["actor"], "token:admin");
  EXPECT_EQ(change["reason"], "canary");
  EXPECT_EQ(change["after"]["traffic"], (nlohmann::json{{"blue", 8750}, {"green", 1250}}));
  // A mirror, then none.
  ASSERT_EQ(SendBody("PATCH", "/api/services/fashion/traffic",
                     R"({"traffic": {"blue": 100}, "mirror": {"version": "green", "percent": 25}})")
                .status,
            200);
  EXPECT_EQ(Body(Get("/api/services/fashion"))["mirror"], (nlohmann::json{{"version", "green"}, {"percent", "25"}}));
  ASSERT_EQ(SendBody("PATCH", "/api/services/fashion/traffic", R"({"traffic": {"blue": 100}, "mirror": null})").status,
            200);
  EXPECT_TRUE(Body(Get("/api/services/fashion"))["mirror"].is_null());
}

TEST_F(ApiRoutesTest, PatchTrafficWithAStaleGenerationOrAnotherOwnerIs409) {
  Response stale = SendBody("PATCH", "/api/services/fashion/traffic",
                            R"({"traffic": {"blue": 50, "green": 50}, "expected_generation": 7})");
  EXPECT_EQ(stale.status, 409);
  EXPECT_EQ(Code(stale), "conflict");
  EXPECT_EQ(Body(stale)["error"]["message"],
            "service 'fashion' is at generation 1, not the expected 7 (it changed since it was read)");
  ASSERT_TRUE(store_->db().Exec("UPDATE services SET traffic_owner = 'run:12/deploy'").ok());
  Response owned = SendBody("PATCH", "/api/services/fashion/traffic", R"({"traffic": {"blue": 50, "green": 50}})");
  EXPECT_EQ(owned.status, 409);
  EXPECT_EQ(Body(owned)["error"]["message"], "the weights of service 'fashion' are driven by run:12/deploy");
  EXPECT_EQ(store_->services().Get("fashion")->versions[0].weight_bp, 9000);
}

TEST_F(ApiRoutesTest, PatchTrafficRefusesAnUnknownVersionABadSumAndAnUnknownService) {
  Response unknown = SendBody("PATCH", "/api/services/fashion/traffic", R"({"traffic": {"blue": 90, "gren": 10}})");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_NE(unknown.body.find("'gren' is not an active version"), std::string::npos) << unknown.body;
  Response sum = SendBody("PATCH", "/api/services/fashion/traffic", R"({"traffic": {"blue": 90, "green": 10.01}})");
  EXPECT_EQ(sum.status, 400);
  EXPECT_EQ(Body(sum)["error"]["message"], "traffic: weights add up to 100.01, not 100");
  Response decimals = SendBody("PATCH", "/api/services/fashion/traffic",
                               R"({"traffic": {"blue": 89.999, "green": -1}, "colour": 1})");
  EXPECT_EQ(decimals.status, 400);
  EXPECT_EQ(Body(decimals)["error"]["errors"].size(), 3u) << decimals.body;
  EXPECT_NE(decimals.body.find("/traffic/blue"), std::string::npos) << decimals.body;
  EXPECT_NE(decimals.body.find("/colour: unknown key"), std::string::npos) << decimals.body;
  EXPECT_EQ(SendBody("PATCH", "/api/services/fashion/traffic", R"({"reason": "x"})").status, 400);
  EXPECT_EQ(SendBody("PATCH", "/api/services/nope/traffic", R"({"traffic": {"blue": 100}})").status, 404);
  EXPECT_EQ(store_->services().Get("fashion")->generation, 1);
}

TEST_F(ApiRoutesTest, DeleteIs202AndTheServiceIsThenNotFoundButKeepsItsHistory) {
  Response r = SendBody("DELETE", "/api/services/fashion?reason=retired", "");
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(Get("/api/services/fashion").status, 404);
  EXPECT_EQ(Body(Get("/api/services"))["services"].size(), 0u);
  nlohmann::json change = Body(Get("/api/services/fashion/history"))["changes"][0];
  EXPECT_EQ(change["kind"], "delete");
  EXPECT_EQ(change["actor"], "token:admin");
  EXPECT_EQ(change["reason"], "retired");
  EXPECT_EQ(SendBody("DELETE", "/api/services/fashion", "").status, 404);
}

TEST_F(ApiRoutesTest, ServiceChangesNeedAnAdminTokenNoTokenIs401AndReadOrRunIs403) {
  for (auto [method, path, body] : {std::tuple{"PUT", "/api/services/fashion", std::string(kFashion)},
                                    {"PATCH", "/api/services/fashion/traffic", R"({"traffic": {"blue": 100}})"},
                                    {"DELETE", "/api/services/fashion", ""}}) {
    SCOPED_TRACE(std::string(method) + " " + path);
    Request none = Make(method, path, std::nullopt);
    none.body = body;
    EXPECT_EQ(api_->Handle(none).status, 401);
    EXPECT_EQ(SendBody(method, path, body, store::TokenScope::kRead).status, 403);
    Response run = SendBody(method, path, body, store::TokenScope::kRun);
    EXPECT_EQ(run.status, 403);
    EXPECT_EQ(Body(run)["error"]["message"], "this route needs scope admin; the token has run");
  }
  EXPECT_EQ(store_->services().Get("fashion")->generation, 1);
  EXPECT_EQ(Send("GET", "/api/services", std::nullopt).status, 401);
}

// --- rollouts (/api/services/{s}/rollouts, promote, abort; /api/rollouts/{id})

// A canary rollout of fashion's green over blue, started at `at_ms`.
int64_t StartRollout(store::Store& st, int64_t at_ms) {
  store::RolloutRecord r;
  r.service = "fashion";
  r.strategy = "canary";
  r.run_id = 12;
  r.step_id = "deploy";
  r.stable_version = "blue";
  r.candidate_version = "green";
  r.config = R"({"steps": [{"weight": 10}, {"weight": 100}]})";
  auto id = st.rollouts().Create(r, "canary of green", at_ms);
  EXPECT_TRUE(id.ok()) << id.status().message();
  return id.ok() ? *id : 0;
}

void EndRollout(store::Store& st, int64_t id, int64_t at_ms) {
  store::RolloutProgress p;
  p.state = store::RolloutState::kPromoted;
  p.step_index = 1;
  p.candidate_bp = 10'000;
  p.reason = "promoted";
  p.outputs = R"({"promoted": "green"})";
  EXPECT_TRUE(st.rollouts().Advance(id, p, "end", "promoted", "", at_ms).ok());
}

TEST_F(ApiRoutesTest, ServiceRolloutsAreNewestFirstTwentyByDefaultAndLimit200PassesAnd201Is400) {
  std::vector<int64_t> ids;
  for (int i = 0; i < 21; ++i) {
    ids.push_back(StartRollout(*store_, 1000 + i));
    if (i < 20) EndRollout(*store_, ids.back(), 1000 + i);
  }
  nlohmann::json page = Body(Get("/api/services/fashion/rollouts"));
  ASSERT_EQ(page["rollouts"].size(), 20u) << page.dump();
  EXPECT_EQ(page["rollouts"][0]["id"], ids[20]);
  EXPECT_EQ(page["rollouts"][0]["state"], "progressing");
  EXPECT_EQ(page["rollouts"][0]["active"], true);
  EXPECT_EQ(page["rollouts"][0]["config"]["steps"][1]["weight"], 100);
  EXPECT_TRUE(page["rollouts"][0]["outputs"].is_null());
  EXPECT_TRUE(page["rollouts"][0]["ended_ms"].is_null());
  EXPECT_EQ(page["rollouts"][1]["id"], ids[19]);
  EXPECT_EQ(page["rollouts"][1]["state"], "promoted");
  EXPECT_EQ(page["rollouts"][1]["candidate_percent"], "100");
  EXPECT_EQ(page["rollouts"][1]["outputs"]["promoted"], "green");
  EXPECT_EQ(Body(Get("/api/services/fashion/rollouts?limit=200"))["rollouts"].size(), 21u);
  Response over = Get("/api/services/fashion/rollouts?limit=201");
  EXPECT_EQ(over.status, 400);
  EXPECT_EQ(Body(over)["error"]["message"], "limit must be from 1 to 200, not '201'");
  EXPECT_EQ(Get("/api/services/fashion/rollouts?limit=0").status, 400);
  EXPECT_EQ(Get("/api/services/nope/rollouts").status, 404);
}

TEST_F(ApiRoutesTest, AServiceWithoutRolloutsListsNone) {
  Response r = Get("/api/services/fashion/rollouts");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r)["rollouts"].size(), 0u);
}

TEST_F(ApiRoutesTest, ARolloutIsShownWithItsEventsAndAfterGivesOnlyTheLaterOnes) {
  int64_t id = StartRollout(*store_, 1000);
  store::RolloutProgress p;
  p.step_index = 0;
  p.candidate_bp = 1000;
  p.reason = "step 1: green at 10%";
  ASSERT_TRUE(store_->rollouts().Advance(id, p, "shift", "green at 10%", R"({"weights": {"green": 1000}})", 2000).ok());
  ASSERT_TRUE(store_->rollouts().Record(id, "analysis", "passed", R"({"requests": 412, "error_rate": 0.0049})", 3000).ok());
  Response r = Get("/api/rollouts/" + std::to_string(id));
  ASSERT_EQ(r.status, 200) << r.body;
  nlohmann::json j = Body(r);
  EXPECT_EQ(j["service"], "fashion");
  EXPECT_EQ(j["candidate_bp"], 1000);
  EXPECT_EQ(j["candidate_percent"], "10");
  EXPECT_EQ(j["reason"], "step 1: green at 10%");
  ASSERT_EQ(j["events"].size(), 3u) << j.dump();
  EXPECT_EQ(j["events"][0]["kind"], "start");
  EXPECT_EQ(j["events"][1]["kind"], "shift");
  EXPECT_EQ(j["events"][2]["kind"], "analysis");
  EXPECT_EQ(j["events"][2]["data"]["requests"], 412);
  EXPECT_EQ(j["events"][2]["at_ms"], 3000);
  EXPECT_TRUE(j["events"][0]["data"].is_null());
  nlohmann::json later = Body(Get("/api/rollouts/" + std::to_string(id) + "?after=" + j["events"][1]["id"].dump()));
  ASSERT_EQ(later["events"].size(), 1u);
  EXPECT_EQ(later["events"][0]["kind"], "analysis");
  EXPECT_EQ(Body(Get("/api/rollouts/" + std::to_string(id) + "?after=" + j["events"][2]["id"].dump()))["events"].size(), 0u);
  EXPECT_EQ(Get("/api/rollouts/" + std::to_string(id) + "?after=x").status, 400);
  Response missing = Get("/api/rollouts/" + std::to_string(id + 1));
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(Body(missing)["error"]["message"], "no rollout " + std::to_string(id + 1));
  EXPECT_EQ(Get("/api/rollouts/abc").status, 404);
}

TEST_F(ApiRoutesTest, AbortAndPromoteAskTheActiveRolloutAsTheTokenAndAre202) {
  int64_t id = StartRollout(*store_, 1000);
  Response abort = SendBody("POST", "/api/services/fashion/abort", "", store::TokenScope::kRun);
  ASSERT_EQ(abort.status, 202) << abort.body;
  EXPECT_EQ(Body(abort), (nlohmann::json{{"rollout", id}, {"request", "abort"}}));
  auto r = store_->rollouts().Get(id);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->request, "abort");
  EXPECT_EQ(r->request_actor, "token:runner");
  EXPECT_EQ(Body(Get("/api/rollouts/" + std::to_string(id)))["request_actor"], "token:runner");
  Response promote = SendBody("POST", "/api/services/fashion/promote", "", store::TokenScope::kAdmin);
  ASSERT_EQ(promote.status, 202) << promote.body;
  EXPECT_EQ(Body(promote)["request"], "promote");
  EXPECT_EQ(store_->rollouts().Get(id)->request, "promote");
  EXPECT_EQ(store_->rollouts().Get(id)->request_actor, "token:admin");
}

TEST_F(ApiRoutesTest, ARunsAnswerHasEveryDagStepWithItsRecordAndTheItemsAttemptsAndMetricsBeside) {
  const std::string text =
      "name: each\nsteps:\n  list: {run: \"true\"}\n  each: {needs: [list], foreach: [1, 2], run: \"true\"}\n"
      "  last: {needs: [each], run: \"true\"}\n";
  int64_t run = *store_->runs().CreateRun("each", text, (home_ / "each.yaml").string(), home_.string(), "{}", 1, 1000);
  store::RunsStore& runs = store_->runs();
  using engine::StepState;
  engine::StepRecord list{.step_id = "list", .state = StepState::kRunning, .tries = 1, .attempts = 1};
  engine::AttemptRecord a1{.run_id = run, .step_id = "list", .number = 1, .started_ms = 2000, .log_path = "/l/list.1.log"};
  ASSERT_TRUE(runs.BeginAttempt(&a1, list).ok());
  list.state = StepState::kSucceeded;
  list.outputs["n"] = spec::Value::FromJson(2);
  a1.state = StepState::kSucceeded;
  a1.exit_code = 0;
  a1.finished_ms = 2500;
  ASSERT_TRUE(runs.FinishAttempt(&a1, list).ok());
  engine::StepRecord each{.step_id = "each", .state = StepState::kRunning,
                          .items = spec::List{spec::Value::FromJson(1), spec::Value::FromJson(2)}};
  engine::StepRecord item0{.step_id = "each", .item = 0, .state = StepState::kSucceeded, .tries = 1, .attempts = 1,
                           .item_value = spec::Value::FromJson(1)};
  engine::StepRecord item1{.step_id = "each", .item = 1, .state = StepState::kFailed, .tries = 1, .attempts = 1,
                           .item_value = spec::Value::FromJson(2), .reason = "bad \xff byte"};
  ASSERT_TRUE(runs.SaveSteps(run, {&each, &item0, &item1}).ok());
  engine::AttemptRecord a2{.run_id = run, .step_id = "each", .item = 0, .number = 1, .started_ms = 3000, .log_path = "/l/e"};
  ASSERT_TRUE(runs.BeginAttempt(&a2, item0).ok());
  a2.state = StepState::kSucceeded;
  a2.finished_ms = 3100;
  ASSERT_TRUE(runs.SaveMetrics(a2, {{"loss", 0.25, 3}}).ok());
  ASSERT_TRUE(runs.FinishAttempt(&a2, item0).ok());
  ASSERT_TRUE(runs.Flush().ok());

  Response r = Get("/api/runs/" + std::to_string(run));
  ASSERT_EQ(r.status, 200) << r.body;
  nlohmann::json j = Body(r);
  ASSERT_TRUE(j.is_object()) << r.body;
  EXPECT_EQ(j["id"], run);
  EXPECT_EQ(j["pipeline"], "each");
  ASSERT_EQ(j["steps"].size(), 3u) << j["steps"].dump();
  nlohmann::json s0 = j["steps"][0], s1 = j["steps"][1], s2 = j["steps"][2];
  EXPECT_EQ(s0, nlohmann::json::parse(R"({"id": "list", "needs": [], "layer": 0, "foreach": false, "kind": "run",
      "state": "succeeded", "reason": "", "outputs": {"n": 2}, "duration_ms": 500, "attempts": 1})"));
  EXPECT_EQ(s1["id"], "each");
  EXPECT_EQ(s1["needs"], nlohmann::json::array({"list"}));
  EXPECT_EQ(s1["foreach"], true);
  EXPECT_EQ(s1["items"], 2);
  EXPECT_EQ(s1["item_states"], nlohmann::json::parse(R"({"failed": 1, "succeeded": 1})"));
  EXPECT_EQ(s2, nlohmann::json::parse(R"({"id": "last", "needs": ["each"], "layer": 2, "foreach": false, "kind": "run",
      "state": "pending", "duration_ms": null})"));
  ASSERT_EQ(j["items"].size(), 2u);
  EXPECT_EQ(j["items"][0], nlohmann::json::parse(R"({"id": "each", "state": "succeeded", "reason": "", "item": 0,
      "item_value": 1, "outputs": {}, "duration_ms": 100, "attempts": 1})"));
  EXPECT_EQ(j["items"][1]["reason"], "bad \xef\xbf\xbd byte") << "bytes that are not UTF-8 become U+FFFD";
  ASSERT_EQ(j["attempts"].size(), 2u);
  EXPECT_EQ(j["attempts"][1]["step"], "each");
  EXPECT_EQ(j["attempts"][1]["item"], 0);
  EXPECT_EQ(j["attempts"][1]["finished_ms"], 3100);
  EXPECT_EQ(j["attempts"][0]["exit_code"], 0);
  EXPECT_EQ(j["metrics"], nlohmann::json::parse(R"([{"step": "each", "item": 0, "attempt": 1, "name": "loss",
      "value": 0.25, "index": 3}])"));
  EXPECT_EQ(j["driver_log"], false);
}

TEST_F(ApiRoutesTest, AbortWithoutAnActiveRolloutIs404WithTheStoresMessageAndReadIs403) {
  EndRollout(*store_, StartRollout(*store_, 1000), 2000);
  Response none = SendBody("POST", "/api/services/fashion/abort", "", store::TokenScope::kRun);
  EXPECT_EQ(none.status, 404);
  EXPECT_EQ(Body(none)["error"]["message"], "service 'fashion' has no rollout in progress");
  int64_t id = StartRollout(*store_, 3000);
  Response read = SendBody("POST", "/api/services/fashion/abort", "", store::TokenScope::kRead);
  EXPECT_EQ(read.status, 403);
  EXPECT_EQ(Body(read)["error"]["message"], "this route needs scope run; the token has read");
  Request anonymous = Make("POST", "/api/services/fashion/promote", std::nullopt);
  EXPECT_EQ(api_->Handle(anonymous).status, 401);
  EXPECT_EQ(store_->rollouts().Get(id)->request, "");
  EXPECT_EQ(Send("GET", "/api/services/fashion/abort", store::TokenScope::kRun).status, 405);
}

// --- series (/api/services/{s}/series)

TEST_F(ApiRoutesTest, ServiceSeriesGivesEachVersionsWindowsAsRatesAndQuantiles) {
  std::vector<store::WindowRow> rows;
  for (int i = 0; i < 3; ++i) {
    store::WindowRow w;
    w.service = "fashion";
    w.version = i < 2 ? "blue" : "green";
    w.role = "live";
    w.start_ms = 100'000 + int64_t{i % 2} * 10'000;
    w.requests = 200;
    w.errors = 4;
    std::vector<int64_t> latency(serving::kLatencyBuckets, 0);
    latency[6] = 197;  // <= 10 ms
    latency[12] = 3;   // <= 50 ms: the top 1.5%, so p99 is 50
    w.latency = nlohmann::json(latency).dump();
    rows.push_back(w);
  }
  ASSERT_TRUE(store_->gateway().AppendWindows(rows, 1, 1).ok());
  Response r = Get("/api/services/fashion/series?from_ms=100000&to_ms=120000");
  ASSERT_EQ(r.status, 200) << r.body;
  nlohmann::json j = Body(r);
  EXPECT_EQ(j["window_ms"], 10'000);
  ASSERT_EQ(j["series"].size(), 2u) << j.dump();
  EXPECT_EQ(j["series"][0]["version"], "blue");
  EXPECT_EQ(j["series"][0]["role"], "live");
  ASSERT_EQ(j["series"][0]["points"].size(), 2u);
  nlohmann::json p = j["series"][0]["points"][1];
  EXPECT_EQ(p["start_ms"], 110'000);
  EXPECT_EQ(p["requests"], 200);
  EXPECT_DOUBLE_EQ(p["requests_per_s"].get<double>(), 20.0);
  EXPECT_DOUBLE_EQ(p["error_rate"].get<double>(), 0.02);
  EXPECT_DOUBLE_EQ(p["p50_ms"].get<double>(), 10.0);
  EXPECT_DOUBLE_EQ(p["p99_ms"].get<double>(), 50.0);
  EXPECT_EQ(j["series"][1]["version"], "green");
  EXPECT_EQ(j["series"][1]["points"].size(), 1u);
  nlohmann::json narrow = Body(Get("/api/services/fashion/series?from_ms=100000&to_ms=110000"));
  EXPECT_EQ(narrow["series"][0]["points"].size(), 1u) << "to_ms is exclusive";
}

TEST_F(ApiRoutesTest, ServiceSeriesOf24HoursPassesAndOneMillisecondMoreIs400) {
  EXPECT_EQ(Get("/api/services/fashion/series?from_ms=0&to_ms=86400000").status, 200);
  Response over = Get("/api/services/fashion/series?from_ms=0&to_ms=86400001");
  EXPECT_EQ(over.status, 400);
  EXPECT_NE(Body(over)["error"]["message"].get<std::string>().find("more than 24 h"), std::string::npos) << over.body;
  nlohmann::json fallback = Body(Get("/api/services/fashion/series?to_ms=3600000"));
  EXPECT_EQ(fallback["from_ms"], 1'800'000) << "30 minutes by default";
  EXPECT_EQ(fallback["series"].size(), 0u);
  EXPECT_EQ(Get("/api/services/fashion/series?from_ms=10&to_ms=10").status, 400);
  EXPECT_EQ(Get("/api/services/fashion/series?from_ms=x").status, 400);
  EXPECT_EQ(Get("/api/services/nope/series").status, 404);
}

}  // namespace
}  // namespace sluice::server
