// seed_rollout: puts a canary rollout in a store the way a deploy/canary
// step writes it, for the tests that show one (the browser test's service
// page; `sluice services show`). It takes the service's traffic as the
// rollout's owner (ServicesStore::SetTrafficOwner), shifts the candidate's
// weight with SetTraffic and records each shift and analysis in
// RolloutsStore (Create, Advance, Record), then appends the gateway's
// flushed statistics windows of the last `minutes` for both versions
// (GatewayStore::AppendWindows): the stable one fast and clean, the
// candidate slower with a few errors. The rollout is left progressing at
// the second step (the candidate at 50%), so a person can still promote or
// abort it. Prints the rollout's id.
//
// usage: seed_rollout DB SERVICE STABLE CANDIDATE [MINUTES]
//   DB: the store's sluice.db; SERVICE with versions STABLE and CANDIDATE
//   already applied (sluice services apply --no-gateway).
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/open.h"

namespace {

using sluice::Status;
namespace store = sluice::store;

int Fail(const std::string& what, const Status& st) {
  std::fprintf(stderr, "seed_rollout: %s: %s\n", what.c_str(), st.message().c_str());
  return 1;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A window of `requests` requests, `errors` of them 500s, their latencies in
// v1 bucket `bucket` (serving/stats.h kLatencyBoundsMs) and the next one.
store::WindowRow MakeWindow(const std::string& service, const std::string& version, int64_t start_ms, int requests,
                            int errors, int bucket) {
  store::WindowRow w;
  w.service = service;
  w.version = version;
  w.role = "live";
  w.start_ms = start_ms;
  w.requests = requests;
  w.errors = errors;
  w.codes = nlohmann::json{{"200", requests - errors}, {"500", errors}}.dump();
  std::vector<int64_t> latency(30, 0);
  latency[bucket] = requests - requests / 50;
  latency[bucket + 1] = requests / 50;
  w.latency = nlohmann::json(latency).dump();
  return w;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5 || argc > 6) {
    std::fprintf(stderr, "usage: seed_rollout DB SERVICE STABLE CANDIDATE [MINUTES]\n");
    return 2;
  }
  const std::string db = argv[1], service = argv[2], stable = argv[3], candidate = argv[4];
  const int minutes = argc == 6 ? std::stoi(argv[5]) : 30;
  auto opened = store::Store::Open(db);
  if (!opened.ok()) return Fail("open " + db, opened.status());
  store::Store& st = **opened;
  int64_t now = NowMs();

  store::RolloutRecord r;
  r.service = service;
  r.strategy = "canary";
  r.run_id = 7;
  r.step_id = "deploy";
  r.stable_version = stable;
  r.candidate_version = candidate;
  r.config = R"({"steps": [{"weight": 10, "pause": "30s"}, {"weight": 50, "pause": "1m"}, {"weight": 100}],)"
             R"( "analysis": {"interval": "10s", "min_requests": 200, "max_error_rate": 0.01, "max_p99_ms": 50}})";
  auto id = st.rollouts().Create(r, "canary of " + candidate + " over " + stable, now);
  if (!id.ok()) return Fail("create the rollout", id.status());
  if (Status s = st.services().SetTrafficOwner(service, r.Owner(), "", r.Owner(), "rollout " + std::to_string(*id),
                                               now);
      !s.ok())
    return Fail("take the traffic", s);

  auto shift = [&](int step, int bp, int64_t at) -> Status {
    store::TrafficChange change;
    change.weights_bp = {{stable, 10'000 - bp}, {candidate, bp}};
    change.owner = r.Owner();
    std::string message = "step " + std::to_string(step + 1) + ": " + candidate + " at " +
                          std::to_string(bp / 100) + "%";
    auto set = st.services().SetTraffic(service, change, r.Owner(), message, at);
    if (!set.ok()) return set.status();
    store::RolloutProgress p;
    p.step_index = step;
    p.candidate_bp = bp;
    p.reason = message;
    return st.rollouts().Advance(*id, p, "shift", message,
                                 nlohmann::json{{"weights", {{stable, 10'000 - bp}, {candidate, bp}}}}.dump(), at);
  };
  if (Status s = shift(0, 1000, now + 1); !s.ok()) return Fail("shift to 10%", s);
  nlohmann::json analysis = {{"result", "passed"},     {"requests", 412}, {"errors", 2},
                             {"error_rate", 0.0049},   {"p99_ms", 40},    {"max_error_rate", 0.01},
                             {"max_p99_ms", 50},       {"min_requests", 200}};
  if (Status s = st.rollouts().Record(*id, "analysis",
                                      "passed: error rate 0.0049 <= 0.01, p99 40 ms <= 50 ms over 412 requests",
                                      analysis.dump(), now + 2);
      !s.ok())
    return Fail("record an analysis", s);
  if (Status s = shift(1, 5000, now + 3); !s.ok()) return Fail("shift to 50%", s);

  std::vector<store::WindowRow> windows;
  int64_t last = (now - 1000) / 10'000 * 10'000;
  for (int64_t start = last - int64_t{minutes} * 60'000; start < last; start += 10'000) {
    int k = static_cast<int>((start / 10'000) % 7);
    windows.push_back(MakeWindow(service, stable, start, 400 + 20 * k, k == 3 ? 1 : 0, 8));  // p50 20 ms, p99 25 ms
    windows.push_back(MakeWindow(service, candidate, start, 100 + 10 * k, k % 3, 11));      // p50 40 ms, p99 50 ms
  }
  if (Status s = st.gateway().AppendWindows(windows, 0, now); !s.ok()) return Fail("append windows", s);
  std::printf("%lld\n", static_cast<long long>(*id));
  return 0;
}
