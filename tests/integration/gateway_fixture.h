// The fixture of the gateway's in-process tests (gateway_test.cc,
// gateway_load_test.cc): a real store in a scratch folder, services applied
// through ServicesStore as `sluice services apply` does after resolving
// them, replicas that are fake_oip_server processes (tests/common), and a
// gateway with short supervision timings reached over keep-alive HTTP.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness.h"
#include "serving/gateway.h"
#include "store/open.h"

namespace sluice::testing {

// A command version running fake_oip_server --label NAME plus `extra`.
inline store::ServiceVersionState FakeVersion(const std::string& name, int weight_bp, int replicas = 1,
                                              std::vector<std::string> extra = {}) {
  store::ServiceVersionState v;
  v.name = name;
  v.kind = "command";
  std::vector<std::string> argv = {FAKE_OIP_SERVER, "--label", name};
  argv.insert(argv.end(), extra.begin(), extra.end());
  v.command = nlohmann::json(argv).dump();
  v.env = "{}";
  v.port_env = "PORT";
  v.workdir = "/";
  v.replicas = replicas;
  v.weight_bp = weight_bp;
  return v;
}

class GatewayFixture : public ::testing::Test {
 protected:
  static constexpr int64_t kHealthIntervalMs = 100;

  void SetUp() override {
    std::filesystem::create_directories(box_.home());
    store_path_ = (box_.home() / "sluice.db").string();
    auto s = store::Store::Open(store_path_);
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = std::move(*s);
  }
  void TearDown() override {
    if (gateway_) gateway_->Stop();
  }

  // `more` changes the options before the start.
  void StartGateway(std::function<void(serving::GatewayOptions&)> more = nullptr) {
    serving::GatewayOptions o;
    o.store_path = store_path_;
    o.port = 0;
    o.supervisor.sluice_home = box_.home().string();
    o.supervisor.starting_poll_ms = 20;
    o.supervisor.health_interval_ms = kHealthIntervalMs;
    o.supervisor.backoff_initial_ms = 50;
    o.supervisor.drain_timeout_ms = 2000;
    o.supervisor.grace_ms = 1000;
    if (more) more(o);
    auto g = serving::Gateway::Start(o);
    ASSERT_TRUE(g.ok()) << g.status().message();
    gateway_ = std::move(*g);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", gateway_->port());
    client_->set_read_timeout(10, 0);
    client_->set_tcp_nodelay(true);
  }

  // `spec`: the applied document (canonical JSON; the gateway reads
  // timeout_ms, max_inflight, cache and stats from it). Empty: one that only
  // names the service and `tag`. `more` changes the state before the apply.
  void Apply(const std::string& name, std::vector<store::ServiceVersionState> versions, const std::string& tag,
             std::function<void(store::ServiceState&)> more = nullptr, const std::string& spec = "") {
    store::ServiceState s;
    s.name = name;
    s.spec = spec.empty() ? nlohmann::json{{"service", name}, {"tag", tag}}.dump() : spec;
    s.spec_hash = name + "-" + tag;
    s.versions = std::move(versions);
    if (more) more(s);
    auto applied = store_->services().Apply(s, "user:test", "test " + tag, 1);
    ASSERT_TRUE(applied.ok()) << applied.status().message();
  }

  // Waits until the service (or one version of it) answers ready.
  bool WaitReady(const std::string& service, const std::string& version = "") {
    return WaitFor([&] {
      std::string path = "/v2/models/" + service + (version.empty() ? "" : "/versions/" + version) + "/ready";
      auto r = client_->Get(path);
      return r && r->status == 200;
    });
  }

  httplib::Result Infer(const std::string& service, const std::string& body = R"({"inputs": []})",
                        const httplib::Headers& headers = {}) {
    return client_->Post("/v2/models/" + service + "/infer", headers, body, "application/json");
  }

  Sandbox box_;
  std::string store_path_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<serving::Gateway> gateway_;
  std::unique_ptr<httplib::Client> client_;
};

}  // namespace sluice::testing
