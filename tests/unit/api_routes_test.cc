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
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "server/api.h"
#include "server/catalog.h"
#include "server/events.h"
#include "server/launcher.h"
#include "spec/yaml_tree.h"
#include "runs/verbs.h"
#include "store/open.h"

namespace sluice::server {
namespace {

namespace fs = std::filesystem;

struct Operation {
  std::string method;  // GET, POST, ...
  std::string path;    // as the spec writes it: /api/runs/{id}
  std::string scope;   // none, read, run or signature
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
        {"{step}", "a"},     {"{hash}", std::string(64, '0')}};
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
    EXPECT_TRUE(o.scope == "none" || o.scope == "read" || o.scope == "run" || o.scope == "signature")
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
      store::TokenScope needed = o.scope == "read" ? store::TokenScope::kRead : store::TokenScope::kRun;
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

}  // namespace
}  // namespace sluice::server
