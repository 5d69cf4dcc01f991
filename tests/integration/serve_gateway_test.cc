// `sluice serve` with the serving gateway inside it (specs/services.md, "sluice
// serve"): real `sluice serve`, `sluice gateway` and `sluice services apply`
// processes over a scratch store, replicas that are fake_oip_server
// processes, and real HTTP on free loopback ports. Every process a test
// starts is stopped by pid.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "../common/free_port.h"
#include "harness.h"
#include "store/open.h"

using namespace sluice;
using namespace sluice::testing;
using json = nlohmann::json;

namespace {

class ServeGatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(box_.dir() / "pipelines");
    std::filesystem::create_directories(box_.home());
    box_.Write("service.yaml", std::string("service: echo\nversions:\n  blue: {command: [") + FAKE_OIP_SERVER +
                                   ", --label, blue]}\n");
  }
  void TearDown() override {
    StopServe();
    for (pid_t pid : others_)
      if (ProcessAlive(pid)) ::kill(pid, SIGKILL);
  }

  // Starts `sluice serve` on a free port and waits for its API.
  void StartServe() {
    serve_port_ = FreePort();
    serve_pid_ = box_.Start({"serve", "--dir", "pipelines", "--port", std::to_string(serve_port_)}, "serve.log");
    serve_ = std::make_unique<httplib::Client>("127.0.0.1", serve_port_);
    serve_->set_read_timeout(10, 0);
    ASSERT_TRUE(WaitFor([&] { return static_cast<bool>(serve_->Get("/api/health")); })) << box_.Read("serve.log");
  }
  // SIGTERM, and its exit status.
  int StopServe() {
    if (serve_pid_ <= 0) return -1;
    ::kill(serve_pid_, SIGTERM);
    int code = Sandbox::Reap(serve_pid_);
    serve_pid_ = 0;
    return code;
  }

  std::unique_ptr<store::Store> OpenStore() {
    auto s = store::Store::Open((box_.home() / "sluice.db").string());
    EXPECT_TRUE(s.ok()) << s.status().message();
    return s.ok() ? std::move(*s) : nullptr;
  }
  // The gateway row once it names `pid` (nullopt if it never does).
  std::optional<store::GatewayRecord> RowOf(store::Store& store, int64_t pid) {
    std::optional<store::GatewayRecord> seen;
    WaitFor([&] {
      auto row = store.gateway().Read();
      if (row.ok() && *row && (**row).pid == pid) seen = **row;
      return seen.has_value();
    });
    return seen;
  }
  bool WaitReady(httplib::Client& client) {
    return WaitFor([&] {
      auto r = client.Get("/v2/models/echo/ready");
      return r && r->status == 200;
    });
  }

  Sandbox box_;
  int serve_port_ = 0;
  pid_t serve_pid_ = 0;
  std::unique_ptr<httplib::Client> serve_;
  std::vector<pid_t> others_;  // gateways and replicas to kill if a test fails half-way
};

TEST_F(ServeGatewayTest, ServeAnswersTheV2RoutesOfAnAppliedServiceAndStillTheApi) {
  StartServe();
  auto store = OpenStore();
  ASSERT_TRUE(store);
  auto row = RowOf(*store, serve_pid_);
  ASSERT_TRUE(row) << box_.Read("serve.log");
  EXPECT_EQ(row->mode, "serve");
  EXPECT_EQ(row->port, serve_port_);

  Output applied = box_.Sluice({"services", "apply", "service.yaml"});
  ASSERT_EQ(applied.code, 0) << applied.err;
  EXPECT_NE(applied.out.find("gateway: pid " + std::to_string(serve_pid_) + ", http://127.0.0.1:" +
                             std::to_string(serve_port_)),
            std::string::npos)
      << applied.out;
  ASSERT_TRUE(WaitReady(*serve_)) << box_.Read("serve.log");
  auto r = serve_->Post("/v2/models/echo/infer", R"({"inputs": []})", "application/json");  // no API token
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("x-sluice-version"), "blue");
  others_.push_back(json::parse(r->body)["fake"]["pid"].get<int>());
  auto missing = serve_->Post("/v2/models/nothing/infer", "{}", "application/json");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(json::parse(missing->body)["error"], "no service named 'nothing' (services: echo)");
  auto metrics = serve_->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("sluice_replica_ready{service=\"echo\""), std::string::npos) << metrics->body;

  auto health = serve_->Get("/api/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(StopServe(), 0) << box_.Read("serve.log");
}

TEST_F(ServeGatewayTest, ABackgroundGatewayIsStoppedAndServeTakesItsServices) {
  const int gateway_port = FreePort();
  ASSERT_EQ(box_.Sluice({"services", "apply", "service.yaml", "--port", std::to_string(gateway_port)}).code, 0);
  auto store = OpenStore();
  ASSERT_TRUE(store);
  auto background = store->gateway().Read();
  ASSERT_TRUE(background.ok() && background->has_value());
  const pid_t background_pid = static_cast<pid_t>((**background).pid);
  others_.push_back(background_pid);
  ASSERT_EQ((**background).mode, "background");
  httplib::Client old_client("127.0.0.1", gateway_port);
  ASSERT_TRUE(WaitReady(old_client));
  auto old = old_client.Post("/v2/models/echo/infer", R"({"inputs": []})", "application/json");
  ASSERT_TRUE(old && old->status == 200);
  const pid_t old_replica = json::parse(old->body)["fake"]["pid"].get<int>();
  others_.push_back(old_replica);

  StartServe();
  auto row = RowOf(*store, serve_pid_);
  ASSERT_TRUE(row) << box_.Read("serve.log");
  EXPECT_EQ(row->mode, "serve");
  EXPECT_FALSE(ProcessAlive(background_pid));
  EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(old_replica); }, std::chrono::seconds(5)));
  EXPECT_NE(box_.Read("serve.log").find("event=gateway-replacing pid=" + std::to_string(background_pid)),
            std::string::npos);

  ASSERT_TRUE(WaitReady(*serve_)) << box_.Read("serve.log");
  auto r = serve_->Post("/v2/models/echo/infer", R"({"inputs": []})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  const pid_t new_replica = json::parse(r->body)["fake"]["pid"].get<int>();
  others_.push_back(new_replica);
  EXPECT_NE(new_replica, old_replica);
  EXPECT_EQ(StopServe(), 0) << box_.Read("serve.log");
}

TEST_F(ServeGatewayTest, WithAForegroundGatewayServeAnswers503NamingItAndTheApiWorks) {
  const int gateway_port = FreePort();
  const pid_t gateway_pid = box_.Start({"gateway", "--port", std::to_string(gateway_port)}, "gateway.log");
  others_.push_back(gateway_pid);
  auto store = OpenStore();
  ASSERT_TRUE(store);
  ASSERT_TRUE(RowOf(*store, gateway_pid)) << box_.Read("gateway.log");

  StartServe();
  const std::string expected = "the gateway of this store runs elsewhere: pid " + std::to_string(gateway_pid) +
                               " on 127.0.0.1:" + std::to_string(gateway_port);
  std::string last;
  ASSERT_TRUE(WaitFor([&] {  // "the gateway is starting" until serve has looked
    auto r = serve_->Post("/v2/models/echo/infer", "{}", "application/json");
    last = r ? std::to_string(r->status) + " " + r->body : "no answer";
    return r && r->status == 503 && json::parse(r->body).value("error", "") == expected;
  })) << last;
  auto health = serve_->Get("/api/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_NE(box_.Read("serve.log").find("event=gateway-elsewhere pid=" + std::to_string(gateway_pid)),
            std::string::npos)
      << box_.Read("serve.log");
  auto row = store->gateway().Read();
  ASSERT_TRUE(row.ok() && row->has_value());
  EXPECT_EQ((**row).pid, gateway_pid);  // serve left it the role

  EXPECT_EQ(StopServe(), 0) << box_.Read("serve.log");
  EXPECT_TRUE(ProcessAlive(gateway_pid));
  ::kill(gateway_pid, SIGTERM);
  EXPECT_EQ(Sandbox::Reap(gateway_pid), 0) << box_.Read("gateway.log");
}

TEST_F(ServeGatewayTest, StoppingServeStopsItsReplicasAndReleasesTheRole) {
  StartServe();
  ASSERT_EQ(box_.Sluice({"services", "apply", "service.yaml"}).code, 0);
  ASSERT_TRUE(WaitReady(*serve_)) << box_.Read("serve.log");
  auto store = OpenStore();
  ASSERT_TRUE(store);
  auto replicas = store->services().Replicas("echo");
  ASSERT_TRUE(replicas.ok());
  ASSERT_EQ(replicas->size(), 1u);
  const pid_t replica = static_cast<pid_t>((*replicas)[0].pid);
  others_.push_back(replica);
  ASSERT_TRUE(ProcessAlive(replica));

  Output refused = box_.Sluice({"gateway", "stop"});  // serve's gateway stops with serve
  EXPECT_EQ(refused.code, 1);
  EXPECT_NE(refused.err.find("the gateway runs inside sluice serve (pid " + std::to_string(serve_pid_)),
            std::string::npos)
      << refused.err;

  EXPECT_EQ(StopServe(), 0) << box_.Read("serve.log");
  EXPECT_FALSE(ProcessAlive(replica));
  auto row = store->gateway().Read();
  ASSERT_TRUE(row.ok());
  EXPECT_FALSE(row->has_value());
}

}  // namespace
