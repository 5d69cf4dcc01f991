// ServeTest: `sluice serve` on a free loopback port over a sandbox with a
// few pipelines (hello, slow, flaky, broken), a token of each scope, and an
// HTTP client; for the API's integration tests (server_test.cc,
// models_api_test.cc).
#pragma once

#include <signal.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "../common/free_port.h"
#include "harness.h"

namespace sluice::testing {

inline const char* kHello = R"(name: hello
description: says hello
params:
  who: {type: string, default: world}
  n: {type: int, default: 2, min: 1, max: 5}
on:
  webhook:
    secret_env: SLUICE_TEST_HOOK_SECRET
    params: {who: "${{ event.ref }}", n: "${{ event.count }}"}
steps:
  greet: {run: ["sh", "-c", "echo hello $0 $1", "${{ params.who }}", "${{ params.n }}"]}
  after: {needs: [greet], run: "echo after"}
)";
inline const char* kSlow = "name: slow\nsteps:\n  wait: {run: \"sleep 60\"}\n";
inline const char* kFlaky = R"(name: flaky
steps:
  check: {run: "test -f fixed || { echo not fixed; exit 3; }"}
  finish: {needs: [check], run: "echo finished; echo 'verdict=<b>fixed</b>' >> $SLUICE_OUTPUT"}
outputs:
  verdict: ${{ steps.finish.outputs.verdict }}
)";
inline const char* kBroken = "name: broken\nsteps:\n  a: {run: \"true\", nedds: [b]}\n";

class ServeTest : public ::testing::Test {
 protected:
  void SetUp() override { Serve({}); }
  void TearDown() override { Stop(); }

  void Serve(const std::vector<std::string>& extra) {
    std::filesystem::create_directories(box_.dir() / "pipelines");
    box_.Write("pipelines/hello.yaml", kHello);
    box_.Write("pipelines/slow.yaml", kSlow);
    box_.Write("pipelines/flaky.yaml", kFlaky);
    box_.Write("pipelines/broken.yaml", kBroken);
    for (const char* scope : {"read", "run", "admin"}) {
      Output o = box_.Sluice({"token", "create", "--scope", scope});
      size_t at = o.out.find("slc_");
      ASSERT_NE(at, std::string::npos) << o.out << o.err;
      tokens_[scope] = o.out.substr(at, 4 + 64);
    }
    ::setenv("SLUICE_TEST_HOOK_SECRET", "It's a Secret to Everybody", 1);
    port_ = FreePort();
    std::vector<std::string> args = {"serve", "--dir", "pipelines", "--port", std::to_string(port_)};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = box_.Start(args, "serve.log");
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    client_->set_read_timeout(10, 0);
    ASSERT_TRUE(WaitFor([&] { return static_cast<bool>(client_->Get("/api/health")); })) << box_.Read("serve.log");
  }

  void Stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    EXPECT_EQ(Sandbox::Reap(pid_), 0) << box_.Read("serve.log");
    pid_ = 0;
  }

  httplib::Headers Auth(const std::string& scope) { return {{"Authorization", "Bearer " + tokens_[scope]}}; }

  httplib::Result Get(const std::string& path, const std::string& scope = "read") { return client_->Get(path.c_str(), Auth(scope)); }
  httplib::Result Post(const std::string& path, const std::string& body, const std::string& scope = "run") {
    return client_->Post(path.c_str(), Auth(scope), body, "application/json");
  }

  nlohmann::json GetJson(const std::string& path) {
    auto r = Get(path);
    EXPECT_TRUE(r) << path;
    if (!r) return nlohmann::json();
    EXPECT_EQ(r->status, 200) << path << ": " << r->body;
    return nlohmann::json::parse(r->body, nullptr, false);
  }

  int64_t StartRun(const std::string& pipeline, const nlohmann::json& params = nlohmann::json::object()) {
    auto r = Post("/api/pipelines/" + pipeline + "/runs", nlohmann::json{{"params", params}}.dump());
    EXPECT_TRUE(r);
    if (!r) return 0;
    EXPECT_EQ(r->status, 201) << r->body;
    return nlohmann::json::parse(r->body).value("id", int64_t{0});
  }

  // Waits for the run to reach `state`.
  bool WaitForRun(int64_t id, const std::string& state, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    return WaitFor([&] {
      auto r = Get("/api/runs/" + std::to_string(id));
      return r && r->status == 200 && nlohmann::json::parse(r->body).value("state", "") == state;
    }, limit);
  }

  Sandbox box_;
  int port_ = 0;
  pid_t pid_ = 0;
  std::map<std::string, std::string> tokens_;
  std::unique_ptr<httplib::Client> client_;
};

}  // namespace sluice::testing
