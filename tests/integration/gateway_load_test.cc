// The serving gateway (serving/gateway.h) under bounded load: a few client
// threads, each with its own keep-alive connection to the gateway on
// loopback, for a fixed count of requests or at most a few seconds. The
// replicas are real processes of fake_oip_server (tests/common), whose
// answers echo their pid, label and slot, so every answer can be counted by
// status, by version and by replica. What each test measures is said at it.
// The bounds are on counts and on coarse times (never a tight timing: the
// machine is shared); speed itself is tests/bench/gateway_bench's.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "gateway_fixture.h"
#include "harness.h"
#include "serving/gateway.h"
#include "store/open.h"

using namespace sluice;
using namespace sluice::testing;
using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

namespace {

// One answer as a client saw it.
struct Answer {
  int status = 0;               // 0: no answer at all (connection error)
  std::string version;          // x-sluice-version
  std::string retry_after;
  int64_t pid = 0;              // of the fake replica that answered a 200
  std::string slot;             // its SLUICE_REPLICA
  std::string error;            // the gateway's {"error": ...} of a non-200
  std::string key;              // the sticky key sent, if any
  SteadyClock::time_point sent, done;
  double ms() const { return std::chrono::duration<double, std::milli>(done - sent).count(); }
};

// N client threads sending POST /v2/models/SERVICE/infer, each over its own
// keep-alive httplib client, until each sent `per_client` requests (0: no
// count) or Stop, and never longer than `limit`.
class Load {
 public:
  struct Options {
    int port = 0;
    std::string service;
    int clients = 8;
    int per_client = 0;
    std::chrono::milliseconds limit{5000};
    // The sticky key of client c's i-th request; empty: none.
    std::function<std::string(int c, int i)> key;
    std::string key_header = "x-user-id";
  };

  explicit Load(Options o) : o_(std::move(o)), answers_(static_cast<size_t>(o_.clients)) {
    const auto deadline = SteadyClock::now() + o_.limit;
    for (int c = 0; c < o_.clients; ++c) threads_.emplace_back([this, c, deadline] { Client(c, deadline); });
  }
  ~Load() { Join(); }

  void Stop() { stop_.store(true); }
  // Waits for every client; every answer, in no particular order.
  std::vector<Answer> Join() {
    for (auto& t : threads_)
      if (t.joinable()) t.join();
    std::vector<Answer> all;
    for (auto& a : answers_) all.insert(all.end(), a.begin(), a.end());
    return all;
  }
  int64_t count() const { return count_.load(); }

 private:
  void Client(int c, SteadyClock::time_point deadline) {
    httplib::Client client("127.0.0.1", o_.port);
    client.set_keep_alive(true);
    client.set_tcp_nodelay(true);  // httplib writes the headers and the body apart: no Nagle wait between them
    client.set_read_timeout(10, 0);
    const std::string path = "/v2/models/" + o_.service + "/infer";
    for (int i = 0; (o_.per_client == 0 || i < o_.per_client) && !stop_.load() && SteadyClock::now() < deadline; ++i) {
      Answer a;
      httplib::Headers headers;
      if (o_.key) {
        a.key = o_.key(c, i);
        if (!a.key.empty()) headers.emplace(o_.key_header, a.key);
      }
      a.sent = SteadyClock::now();
      auto r = client.Post(path, headers, R"({"inputs": []})", "application/json");
      a.done = SteadyClock::now();
      if (r) {
        a.status = r->status;
        a.version = r->get_header_value("x-sluice-version");
        a.retry_after = r->get_header_value("retry-after");
        json body = json::parse(r->body, nullptr, false);
        if (r->status == 200 && body.contains("fake")) {
          a.pid = body["fake"]["pid"].get<int64_t>();
          a.slot = body["fake"]["markers"].value("SLUICE_REPLICA", "");
        } else if (body.is_object() && body.contains("error")) {
          a.error = body["error"].get<std::string>();
        }
      }
      answers_[static_cast<size_t>(c)].push_back(std::move(a));
      count_.fetch_add(1);
    }
  }

  Options o_;
  std::vector<std::vector<Answer>> answers_;  // by client: each thread writes its own
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> count_{0};
};

std::map<int, int> ByStatus(const std::vector<Answer>& answers) {
  std::map<int, int> out;
  for (const auto& a : answers) ++out[a.status];
  return out;
}

std::string Describe(const std::map<int, int>& by_status) {
  std::string s;
  for (const auto& [status, n] : by_status) s += std::to_string(status) + ": " + std::to_string(n) + "  ";
  return s;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t at = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(at, v.size() - 1)];
}

// Pearson's chi-square statistic of observed counts against expected shares.
double ChiSquare(const std::vector<int>& observed, const std::vector<double>& share) {
  double total = 0;
  for (int o : observed) total += o;
  double chi = 0;
  for (size_t i = 0; i < observed.size(); ++i) {
    double expected = total * share[i];
    chi += (observed[i] - expected) * (observed[i] - expected) / expected;
  }
  return chi;
}

// Critical values of the chi-square distribution at p = 0.001.
constexpr double kChiSquare001Df1 = 10.828;
constexpr double kChiSquare001Df2 = 13.816;

class GatewayLoadTest : public GatewayFixture {
 protected:
  // Waits until `count` distinct replica pids of the service answered.
  bool WaitReplicasAnswer(const std::string& service, size_t count) {
    std::set<int64_t> pids;
    return WaitFor([&] {
      auto r = client_->Post("/v2/models/" + service + "/infer", R"({"inputs": []})", "application/json");
      if (r && r->status == 200) pids.insert(json::parse(r->body)["fake"]["pid"].get<int64_t>());
      return pids.size() >= count;
    });
  }

  // The value of sluice_replica_ready for the slot in /metrics: 1, 0, or -1
  // when the slot is not listed (or /metrics did not answer).
  int ReplicaReady(const std::string& service, const std::string& version, int slot) {
    auto m = client_->Get("/metrics");
    if (!m || m->status != 200) return -1;
    std::string series = "sluice_replica_ready{service=\"" + service + "\",version=\"" + version + "\",slot=\"" +
                         std::to_string(slot) + "\"} ";
    size_t at = m->body.find(series);
    if (at == std::string::npos) return -1;
    return m->body[at + series.size()] == '1' ? 1 : 0;
  }

};

}  // namespace

// Two replicas, 8 clients; each replica answers after 10 ms, so requests
// are in flight on both when one is killed with SIGKILL. Measured: the time
// from the kill until /metrics lists the slot out of rotation (bound: the
// health interval, 100 ms here; the gateway learns of the death from the
// reaper, not from a probe), and every answer by status and replica. A 502
// is allowed only for a request that was on the killed replica (its error
// names the slot), so at most one per client: no 5xx came from the healthy
// replica and none from a request sent after the slot left rotation. The
// slot is restarted and answers again under the same load.
TEST_F(GatewayLoadTest, Kill9OfAReplicaUnderLoadLeavesRotationAndNoRequestThatReachedAHealthyReplicaGets5xx) {
  constexpr int kClients = 8;
  Apply("fashion", {FakeVersion("blue", 10000, 2, {"--delay-ms", "10"})}, "a");
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion"));
  ASSERT_TRUE(WaitReplicasAnswer("fashion", 2));

  Load load({.port = gateway_->port(), .service = "fashion", .clients = kClients, .limit = std::chrono::seconds(20)});
  ASSERT_TRUE(WaitFor([&] { return load.count() >= 200; }));
  // The victim: slot 0, by the pid its answers carry.
  int64_t victim = 0;
  {
    for (int i = 0; i < 50 && victim == 0; ++i) {
      auto r = client_->Post("/v2/models/fashion/infer", R"({"inputs": []})", "application/json");
      if (r && r->status == 200) {
        json body = json::parse(r->body);
        if (body["fake"]["markers"]["SLUICE_REPLICA"] == "0") victim = body["fake"]["pid"].get<int64_t>();
      }
    }
  }
  ASSERT_NE(victim, 0);
  const auto killed_at = SteadyClock::now();
  ASSERT_EQ(::kill(static_cast<pid_t>(victim), SIGKILL), 0);
  ASSERT_TRUE(WaitFor([&] { return ReplicaReady("fashion", "blue", 0) != 1; }, std::chrono::seconds(5)));
  const auto out_at = SteadyClock::now();
  const double out_ms = std::chrono::duration<double, std::milli>(out_at - killed_at).count();
  ASSERT_TRUE(WaitFor([&] { return ReplicaReady("fashion", "blue", 0) == 1; }, std::chrono::seconds(10)));
  const auto back_at = SteadyClock::now();
  const int64_t count_at_back = load.count();
  // Load goes on until the restarted slot answered a good share of it.
  EXPECT_TRUE(WaitFor([&] { return load.count() >= count_at_back + 400; }, std::chrono::seconds(10)));
  load.Stop();
  std::vector<Answer> answers = load.Join();

  std::map<int, int> by_status = ByStatus(answers);
  int bad_502 = 0, after_kill = 0, after_out = 0, restarted_answers = 0, healthy_answers = 0;
  int64_t healthy_pid = 0;
  for (const auto& a : answers) {
    if (a.status == 200 && a.slot == "1") healthy_pid = a.pid;
  }
  for (const auto& a : answers) {
    if (a.status == 200) {
      if (a.pid == healthy_pid) ++healthy_answers;
      if (a.slot == "0" && a.pid != victim && a.sent > back_at) ++restarted_answers;
      continue;
    }
    if (a.status == 502 && a.error.find("replica 0 of 'blue'") == 0) {
      if (a.sent > killed_at) ++after_kill;
      if (a.sent > out_at) ++after_out;
      continue;
    }
    ++bad_502;
    ADD_FAILURE() << "status " << a.status << ": " << a.error;
  }
  std::printf("kill -9 of replica 0 (pid %lld) under %d clients: out of rotation after %.0f ms, back after %.0f ms; "
              "answers by status: %s(502s sent after the kill: %d); from the healthy replica: %d; from the "
              "restarted one: %d\n",
              static_cast<long long>(victim), kClients, out_ms,
              std::chrono::duration<double, std::milli>(back_at - killed_at).count(), Describe(by_status).c_str(),
              after_kill, healthy_answers, restarted_answers);
  EXPECT_EQ(bad_502, 0);
  EXPECT_LE(by_status[502], kClients);  // at most the requests in flight on the killed replica
  EXPECT_EQ(after_out, 0);
  EXPECT_LE(out_ms, kHealthIntervalMs);
  EXPECT_GT(restarted_answers, 0);
  EXPECT_GT(healthy_answers, 0);
}

// Two versions under 8 clients for about two seconds while four weight
// splits are applied through the store. Measured: every answer's status;
// all must be 200 (zero lost), and both versions answered.
TEST_F(GatewayLoadTest, WeightsChangedUnderSteadyLoadLoseZeroRequests) {
  Apply("fashion", {FakeVersion("blue", 10000), FakeVersion("green", 0)}, "a");
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion", "blue"));
  ASSERT_TRUE(WaitReady("fashion", "green"));

  Load load({.port = gateway_->port(), .service = "fashion", .clients = 8, .limit = std::chrono::seconds(10)});
  const std::vector<std::pair<int, int>> splits = {{5000, 5000}, {0, 10000}, {9000, 1000}, {2500, 7500}};
  int tag = 0;
  for (auto [blue, green] : splits) {
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    Apply("fashion", {FakeVersion("blue", blue), FakeVersion("green", green)}, "w" + std::to_string(++tag));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  load.Stop();
  std::vector<Answer> answers = load.Join();
  std::map<int, int> by_status = ByStatus(answers);
  std::map<std::string, int> by_version;
  for (const auto& a : answers) ++by_version[a.version];
  std::printf("%zu requests across %zu weight changes: by status %s; blue %d, green %d\n", answers.size(),
              splits.size(), Describe(by_status).c_str(), by_version["blue"], by_version["green"]);
  EXPECT_GT(answers.size(), 100u);
  EXPECT_EQ(by_status[200], static_cast<int>(answers.size())) << Describe(by_status);
  EXPECT_GT(by_version["blue"], 0);
  EXPECT_GT(by_version["green"], 0);
}

// 600 keys, each sent 3 times by 6 clients, against weights 50/30/20.
// Measured: the versions each key reached (exactly one each), and how many
// keys each version got, tested against the weights by Pearson's chi-square
// with df = 2 at p = 0.001 (critical value 13.816). The assignment is a
// hash of salt and key, so the statistic is the same on every run.
TEST_F(GatewayLoadTest, StickyKeysAreStableAndTheirSplitPassesChiSquare) {
  Apply("fashion", {FakeVersion("blue", 5000), FakeVersion("green", 3000), FakeVersion("red", 2000)}, "a",
        [](store::ServiceState& s) { s.sticky_header = "x-user-id"; });
  StartGateway();
  for (const char* v : {"blue", "green", "red"}) ASSERT_TRUE(WaitReady("fashion", v)) << v;

  constexpr int kClients = 6, kKeys = 600, kRepeats = 3;
  // Client c sends the keys c, c + 6, ... kRepeats times over.
  Load load({.port = gateway_->port(),
             .service = "fashion",
             .clients = kClients,
             .per_client = kKeys / kClients * kRepeats,
             .limit = std::chrono::seconds(30),
             .key = [](int c, int i) { return "user-" + std::to_string(c + kClients * (i % (kKeys / kClients))); }});
  std::vector<Answer> answers = load.Join();
  ASSERT_EQ(answers.size(), static_cast<size_t>(kKeys * kRepeats));
  std::map<std::string, std::set<std::string>> versions_of;
  for (const auto& a : answers) {
    ASSERT_EQ(a.status, 200) << a.error;
    versions_of[a.key].insert(a.version);
  }
  ASSERT_EQ(versions_of.size(), static_cast<size_t>(kKeys));
  std::map<std::string, int> keys_of;
  for (const auto& [key, versions] : versions_of) {
    EXPECT_EQ(versions.size(), 1u) << key;
    ++keys_of[*versions.begin()];
  }
  double chi = ChiSquare({keys_of["blue"], keys_of["green"], keys_of["red"]}, {0.5, 0.3, 0.2});
  std::printf("%d keys x %d: blue %d, green %d, red %d (expected 300, 180, 120); chi-square %.2f, df 2, "
              "critical %.3f at p=0.001\n",
              kKeys, kRepeats, keys_of["blue"], keys_of["green"], keys_of["red"], chi, kChiSquare001Df2);
  EXPECT_LT(chi, kChiSquare001Df2);
}

// The same load (4 clients for 1 s) on two services whose live version is
// the same fake: `plain`, and `mirrored`, which copies every request to a
// version that answers after 200 ms (its copies, at most 32 in flight, keep
// it full all along). Measured: the callers' p99 on each, interleaved
// plain, mirrored, plain, mirrored. The bound:
// mirrored p99 at most 2x max(plain p99, 25 ms); a caller that waited for
// the mirror would see at least 200 ms. Copies are checked to have reached
// the mirror (its 200s in /metrics), so the mirror was really in the path.
TEST_F(GatewayLoadTest, WithAMirrorSleeping200msTheCallersP99DoesNotMove) {
  Apply("plain", {FakeVersion("blue", 10000)}, "a");
  Apply("mirrored", {FakeVersion("blue", 10000), FakeVersion("shadow", 0, 1, {"--delay-ms", "200"})}, "a",
        [](store::ServiceState& s) {
          s.mirror_version = "shadow";
          s.mirror_bp = 10000;
        });
  StartGateway();
  ASSERT_TRUE(WaitReady("plain"));
  ASSERT_TRUE(WaitReady("mirrored", "blue"));
  ASSERT_TRUE(WaitReady("mirrored", "shadow"));

  std::vector<double> plain_ms, mirrored_ms;
  for (int round = 0; round < 2; ++round) {
    for (const char* service : {"plain", "mirrored"}) {
      Load load({.port = gateway_->port(), .service = service, .clients = 4, .limit = std::chrono::seconds(1)});
      for (const auto& a : load.Join()) {
        ASSERT_EQ(a.status, 200) << service << ": " << a.error;
        ASSERT_EQ(a.version, "blue");
        (std::string(service) == "plain" ? plain_ms : mirrored_ms).push_back(a.ms());
      }
    }
  }
  const double plain_p99 = Percentile(plain_ms, 0.99), mirrored_p99 = Percentile(mirrored_ms, 0.99);
  // A caller who waited for the mirror would wait at least 200 ms; 100 ms
  // leaves room for a busy machine.
  const double bound = std::max(2 * plain_p99, 100.0);
  const std::string copies = R"(sluice_requests_total{service="mirrored",version="shadow",role="mirror",code="200"} )";
  std::string metrics;
  EXPECT_TRUE(WaitFor([&] {
    metrics = client_->Get("/metrics")->body;
    return metrics.find(copies) != std::string::npos;
  })) << metrics;
  std::printf("p50 / p99: plain %.2f / %.2f ms (%zu requests), mirrored %.2f / %.2f ms (%zu requests; bound %.1f ms)\n",
              Percentile(plain_ms, 0.5), plain_p99, plain_ms.size(), Percentile(mirrored_ms, 0.5), mirrored_p99,
              mirrored_ms.size(), bound);
  EXPECT_LE(mirrored_p99, bound);
}

// Weights 70/30, then the gateway is stopped and started again on the same
// store. Measured before and after: 400 requests, how many each version
// answered (chi-square, df = 1, p = 0.001: critical value 10.828), and the
// replicas that answered (both versions, new processes after the restart).
TEST_F(GatewayLoadTest, AGatewayRestartRestoresTheWeightsAndTheReplicas) {
  Apply("fashion", {FakeVersion("blue", 7000), FakeVersion("green", 3000)}, "a");
  auto round = [&](std::set<int64_t>* pids) {
    Load load({.port = gateway_->port(), .service = "fashion", .clients = 4, .per_client = 100,
               .limit = std::chrono::seconds(20)});
    std::map<std::string, int> by_version;
    for (const auto& a : load.Join()) {
      EXPECT_EQ(a.status, 200) << a.error;
      ++by_version[a.version];
      pids->insert(a.pid);
    }
    return by_version;
  };
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion", "blue"));
  ASSERT_TRUE(WaitReady("fashion", "green"));
  std::set<int64_t> before_pids, after_pids;
  auto before = round(&before_pids);
  gateway_->Stop();
  for (int64_t pid : before_pids) EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(static_cast<pid_t>(pid)); }));
  gateway_.reset();
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion", "blue"));
  ASSERT_TRUE(WaitReady("fashion", "green"));
  auto after = round(&after_pids);
  double chi_before = ChiSquare({before["blue"], before["green"]}, {0.7, 0.3});
  double chi_after = ChiSquare({after["blue"], after["green"]}, {0.7, 0.3});
  std::printf("before the restart blue %d green %d (chi-square %.2f); after blue %d green %d (chi-square %.2f); "
              "critical %.3f (df 1, p=0.001)\n",
              before["blue"], before["green"], chi_before, after["blue"], after["green"], chi_after,
              kChiSquare001Df1);
  EXPECT_LT(chi_before, kChiSquare001Df1);
  EXPECT_LT(chi_after, kChiSquare001Df1);
  EXPECT_EQ(after_pids.size(), 2u);  // one replica of each version
  for (int64_t pid : after_pids) EXPECT_EQ(before_pids.count(pid), 0u) << pid;
}

// One replica, max_inflight 2, answering after 3 s. Two requests are
// admitted (the second at 1 outstanding, one below the limit); with 2
// outstanding (exactly the limit, read from /metrics) a third is answered
// 503 with Retry-After, measured to come back before the replica could
// have answered anything (under half its delay). Then the two finish with
// 200 and a fourth is admitted again.
TEST_F(GatewayLoadTest, AFullReplicaAnswers503WithRetryAfterAtOnce) {
  constexpr int kDelayMs = 3000;
  std::vector<std::string> argv = {FAKE_OIP_SERVER, "--label", "blue", "--delay-ms", std::to_string(kDelayMs)};
  const std::string spec = json{{"service", "fashion"},
                                {"versions", {{"blue", {{"command", argv}}}}},
                                {"max_inflight", 2}}
                               .dump();
  Apply("fashion", {FakeVersion("blue", 10000, 1, {"--delay-ms", std::to_string(kDelayMs)})}, "a", nullptr, spec);
  StartGateway();
  ASSERT_TRUE(WaitReady("fashion"));

  Load held({.port = gateway_->port(), .service = "fashion", .clients = 2, .per_client = 1,
             .limit = std::chrono::seconds(20)});
  const std::string outstanding = R"(sluice_replica_outstanding{service="fashion",version="blue",slot="0"} 2)";
  ASSERT_TRUE(WaitFor([&] {
    auto m = client_->Get("/metrics");
    return m && m->body.find(outstanding) != std::string::npos;
  }, std::chrono::seconds(5)));
  const auto sent = SteadyClock::now();
  auto full = client_->Post("/v2/models/fashion/infer", R"({"inputs": []})", "application/json");
  const double full_ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - sent).count();
  ASSERT_TRUE(full);
  EXPECT_EQ(full->status, 503);
  EXPECT_EQ(full->get_header_value("retry-after"), "1");
  EXPECT_EQ(json::parse(full->body)["error"], "every replica of 'blue' is busy");
  EXPECT_LT(full_ms, kDelayMs / 2.0);
  for (const auto& a : held.Join()) EXPECT_EQ(a.status, 200) << a.error;
  auto again = client_->Post("/v2/models/fashion/infer", R"({"inputs": []})", "application/json");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
  std::printf("with 2 of 2 outstanding, the 503 came back in %.1f ms (the replica answers after %d ms)\n", full_ms,
              kDelayMs);
}
