// What the deploy/* end-to-end tests share (deploy_test.cc,
// experiment_test.cc): a bounded load generator on loopback that counts
// every answer by the version that gave it, the candidate versions
// (fake_oip_server processes with a --label), and a fixture over one
// Sandbox with a service `demo` and its store.
// Used by the test's main thread; Load's own threads call its Options.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>

#include "harness.h"
#include "store/open.h"

namespace sluice::testing {

inline constexpr const char kFakeBody[] =
    R"({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]})";

// What a Load sends and does with each answer.
struct LoadOptions {
  std::string body = kFakeBody;    // the infer request
  // Headers of the n-th request (from 0, counted over all connections).
  std::function<httplib::Headers(int n)> headers;
  // Called with each 200 answer on the connection that got it (to post
  // feedback on it, or look at its body).
  std::function<void(httplib::Client&, const httplib::Response&)> on_answer;
};

// Requests to /v2/models/SERVICE/infer on four keep-alive connections, each
// sending one after another with a 1 ms rest (at most 4,000/s on this
// machine; `max_requests` in all), each answer counted by x-sluice-version.
class Load {
 public:
  using Options = LoadOptions;
  Load(int port, std::string service, int max_requests = 200'000, Options options = {})
      : port_(port), service_(std::move(service)), max_(max_requests), options_(std::move(options)) {
    for (int i = 0; i < 4; ++i) threads_.emplace_back([this] { Send(); });
  }
  ~Load() { Stop(); }
  void Stop() {
    stop_ = true;
    for (std::thread& t : threads_)
      if (t.joinable()) t.join();
  }
  int total() const { return total_; }
  int failures() const { return failures_; }
  std::map<std::string, int> ok_by_version() {
    std::lock_guard<std::mutex> lock(mu_);
    return ok_;
  }
  std::map<std::string, int> failed_by_version() {
    std::lock_guard<std::mutex> lock(mu_);
    return failed_;
  }
  std::string first_failure() {
    std::lock_guard<std::mutex> lock(mu_);
    return first_failure_;
  }

 private:
  void Send() {
    httplib::Client client("127.0.0.1", port_);
    client.set_keep_alive(true);
    // Without it each POST waits on Nagle's algorithm and the peer's
    // delayed ACK (40 ms).
    client.set_tcp_nodelay(true);
    client.set_read_timeout(10, 0);
    const std::string& body = options_.body;
    while (!stop_ && total_ < max_) {
      const int n = sent_++;
      httplib::Headers headers = options_.headers ? options_.headers(n) : httplib::Headers{};
      auto r = client.Post("/v2/models/" + service_ + "/infer", headers, body, "application/json");
      ++total_;
      if (r && r->status == 200 && options_.on_answer) options_.on_answer(client, *r);
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (r && r->status == 200) {
          ++ok_[r->get_header_value("x-sluice-version")];
        } else {
          ++failures_;
          std::string version = r ? r->get_header_value("x-sluice-version") : "";
          ++failed_[version];
          if (first_failure_.empty())
            first_failure_ = r ? std::to_string(r->status) + " from '" + version + "': " + r->body
                               : httplib::to_string(r.error());
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  int port_;
  std::string service_;
  int max_;
  Options options_;
  std::atomic<bool> stop_{false};
  std::atomic<int> sent_{0}, total_{0}, failures_{0};
  std::mutex mu_;
  std::map<std::string, int> ok_, failed_;
  std::string first_failure_;
  std::vector<std::thread> threads_;
};

inline std::string Version(const std::string& name, const std::string& flags = "") {
  return "{name: " + name + ", command: [" FAKE_OIP_SERVER ", --label, " + name + (flags.empty() ? "" : ", " + flags) +
         "]}";
}

class DeployFixture : public ::testing::Test {
 protected:
  void TearDown() override { box_.Sluice({"gateway", "stop"}); }

  std::unique_ptr<sluice::store::Store> Store() {
    auto s = sluice::store::Store::Open((box_.home() / "sluice.db").string());
    EXPECT_TRUE(s.ok()) << s.status().message();
    return s.ok() ? std::move(*s) : nullptr;
  }
  int GatewayPort() {
    auto row = Store()->gateway().Read();
    return row.ok() && *row ? (*row)->port : 0;
  }
  // The live weight of each active version, in percent.
  std::map<std::string, int> Weights() {
    std::map<std::string, int> out;
    auto s = Store()->services().Get("demo");
    if (s.ok())
      for (const auto& v : s->versions)
        if (v.state == "active") out[v.name] = v.weight_bp / 100;
    return out;
  }
  std::vector<sluice::store::RolloutEvent> Events(int64_t rollout) {
    auto e = Store()->rollouts().Events(rollout, 0);
    return e.ok() ? *e : std::vector<sluice::store::RolloutEvent>{};
  }
  sluice::store::RolloutRecord Newest() {
    auto all = Store()->rollouts().OfService("demo", 1);
    EXPECT_TRUE(all.ok() && !all->empty());
    return all.ok() && !all->empty() ? all->front() : sluice::store::RolloutRecord{};
  }
  // Deploys v1 (fake_oip_server with `flags` too) as a new service (and starts the gateway).
  void DeployStable(const std::string& flags = "") {
    box_.Write("stable.yaml", "name: stable\nsteps:\n  deploy:\n    uses: deploy/canary\n    with:\n      service: demo\n"
                              "      version: " + Version("v1", flags) + "\n      steps: [{weight: 100}]\n");
    Output o = box_.Sluice({"run", "stable.yaml"});
    ASSERT_EQ(o.code, 0) << o.out << o.err;
    ASSERT_EQ(Weights(), (std::map<std::string, int>{{"v1", 100}}));
    ASSERT_GT(GatewayPort(), 0);
  }
  // A pipeline with one step `deploy` using `uses` with these `with:` lines.
  void WritePipeline(const std::string& uses, const std::string& with_lines) {
    box_.Write("p.yaml", "name: rollout\nsteps:\n  deploy:\n    uses: " + uses + "\n    with:\n      service: demo\n" +
                             with_lines);
  }
  bool WaitForRollout(const std::function<bool(const sluice::store::RolloutRecord&)>& done,
                      std::chrono::milliseconds limit = std::chrono::seconds(30)) {
    return WaitFor(
        [&] {
          auto s = Store();
          auto r = s->rollouts().ActiveOfService("demo");
          return r.ok() && *r && done(**r);
        },
        limit);
  }

  Sandbox box_;
};

}  // namespace sluice::testing
