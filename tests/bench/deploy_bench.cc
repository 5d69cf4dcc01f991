// deploy_bench: the deploy/* step types measured against the targets of
// issue 16 (Performance): how soon after a failed analysis no request
// reaches the canary any more, and how many requests a canary or
// blue-green switch loses under wrk load, beside nginx switching upstreams
// by `nginx -s reload`.
//
// Everything is real: the `sluice` binary runs each pipeline, a foreground
// `sluice gateway` (started here, on a free port) serves service `demo`, its
// versions are command versions of fake_oip_server (--label NAME; a broken
// candidate also --status 500), and the figures come from the store (the
// rollout's events: at_ms, wall clock) and from the answers themselves.
//
// 1. Rollback latency (N runs, each a fresh canary v2a, v2b, ... of a
//    candidate answering 500 against stable v1; analysis {interval: 1s,
//    min_requests: 10, max_error_rate: 0.01, inconclusive: fail}, steps
//    [{weight: 20, pause: 30s}]). Four keep-alive client threads send
//    back-to-back infers and record each one's send time (wall clock, us)
//    and x-sluice-version. Decision = the at_ms of the analysis event the
//    rollback follows; reported: decision -> send time of the last request
//    the canary answered (target <= 100 ms), decision -> the rollback event.
// 2. Requests lost in switches: wrk -t2 -c16 POSTing an infer body for the
//    whole of (a) a good canary [{weight: 10, pause: 2s}, {weight: 50,
//    pause: 2s}, {weight: 100}], scale_down_delay 1s, (b) a blue-green
//    switch (smoke count 3, rollback_window 1s), and (c) nginx proxying to
//    one of two standalone fake_oip_servers, its config rewritten to the
//    other and `nginx -s reload` mid-run, the old server stopped 1 s later
//    (as the gateway stops the old version after its delay). Lost = wrk's
//    "Non-2xx or 3xx responses" plus its socket errors; target 0.
//
//   ninja -C build -j2 deploy_bench && build/tests/deploy_bench [--sluice PATH] [--runs 3]
//
// Takes about 35 s. Every process it starts (the gateway, which stops its
// replicas; wrk; nginx; the standalone servers) is stopped by pid; the
// scratch folder is removed at the end (kept, and named, on a failure).
//
// Last figures (2 shared cores, Release; the gateway polls the store every
// 20 ms, GatewayOptions::poll_interval):
//   rollback: 20% shift -> failing analysis 1004/1005/1007 ms; decision ->
//     last canary request 8.0/4.5/7.1 ms, median 7.1 ms (target <= 100 ms:
//     met); decision -> rollback event 0-1 ms; ~105,000 answers a run, 0
//     failures from stable
//   switch under wrk: sluice canary lost 0 of 128,664; sluice blue-green
//     lost 0 of 44,205; nginx -s reload lost 6 of 133,261 (read errors:
//     the reload closes keep-alive connections; 1 and 4 in earlier runs)
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

#include "../common/free_port.h"
#include "measure.h"
#include "nginx_proxy.h"
#include "store/open.h"

namespace fs = std::filesystem;

namespace {

const char kBody[] = R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1.0]}]})";
const char kService[] = "demo";

int64_t WallUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void StopPid(pid_t pid, int sig = SIGTERM) {
  if (pid <= 0) return;
  ::kill(pid, sig);
  int status;
  ::waitpid(pid, &status, 0);
}

bool WaitFor(const std::function<bool()>& done, int seconds) {
  for (int i = 0; i < seconds * 40; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return false;
}

int GetStatus(int port, const std::string& path) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(1, 0);
  c.set_read_timeout(2, 0);
  auto r = c.Get(path);
  return r ? r->status : 0;
}

// Back-to-back infers to /v2/models/SERVICE/infer over `threads` keep-alive
// connections until Stop() (or 90 s), each answer recorded with its send
// time and the version that gave it.
class Load {
 public:
  struct Answer {
    int64_t sent_us = 0;
    int status = 0;  // 0: no answer
    std::string version;
  };

  Load(int port, int threads) : port_(port) {
    per_thread_.resize(threads);
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this, i] { Send(per_thread_[i]); });
  }
  ~Load() { Stop(); }
  void Stop() {
    stop_ = true;
    for (std::thread& t : threads_)
      if (t.joinable()) t.join();
  }
  // REQUIRES: Stop() was called.
  std::vector<Answer> answers() const {
    std::vector<Answer> all;
    for (const auto& v : per_thread_) all.insert(all.end(), v.begin(), v.end());
    return all;
  }

 private:
  void Send(std::vector<Answer>& out) {
    httplib::Client client("127.0.0.1", port_);
    client.set_keep_alive(true);
    client.set_tcp_nodelay(true);  // headers and body go in two writes: no 40 ms Nagle/delayed-ACK stall
    client.set_read_timeout(10, 0);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
    const std::string path = std::string("/v2/models/") + kService + "/infer";
    while (!stop_ && std::chrono::steady_clock::now() < deadline) {
      Answer a;
      a.sent_us = WallUs();
      auto r = client.Post(path, kBody, "application/json");
      if (r) {
        a.status = r->status;
        a.version = r->get_header_value("x-sluice-version");
      }
      out.push_back(std::move(a));
    }
  }

  int port_;
  std::atomic<bool> stop_{false};
  std::vector<std::vector<Answer>> per_thread_;
  std::vector<std::thread> threads_;
};

// wrk's POST script: counts answers by the fake server's label (its JSON
// body's "label"), printed one "label NAME COUNT" line per thread at the end.
const char kWrkScript[] = R"lua(wrk.method = "POST"
wrk.body = '@BODY@'
wrk.headers["Content-Type"] = "application/json"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) labels = {} end
function response(status, headers, body)
  local l = body:match('"label":"([^"]*)"') or "none"
  labels[l] = (labels[l] or 0) + 1
end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("labels")) do io.write(string.format("label %s %d\n", k, v)) end
  end
end
)lua";

struct WrkLoss {
  long requests = 0, non2xx = 0, connect = 0, read = 0, write = 0, timeout = 0;
  std::map<std::string, long> by_label;
  long lost() const { return non2xx + connect + read + write + timeout; }
  std::string Labels() const {
    std::string s;
    for (const auto& [label, n] : by_label) s += (s.empty() ? "" : ", ") + label + " " + std::to_string(n);
    return s;
  }
};

// wrk -t2 -c16 for up to 60 s, its report to `out`; StopWrk ends it early.
pid_t StartWrk(const fs::path& dir, int port, const fs::path& out) {
  return bench::Spawn({"wrk", "-t2", "-c16", "-d60s", "-s", (dir / "post.lua").string(),
                       "http://127.0.0.1:" + std::to_string(port) + "/v2/models/" + kService + "/infer"},
                      dir, {}, out.string());
}

// SIGINT: wrk stops, prints its report (and the script's labels) and exits.
WrkLoss StopWrk(pid_t wrk, const fs::path& out) {
  StopPid(wrk, SIGINT);
  std::ifstream in(out);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  WrkLoss w;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    long n = 0;
    char label[256];
    if (std::sscanf(line.c_str(), " %ld requests in", &n) == 1) w.requests = n;
    if (std::sscanf(line.c_str(), " Non-2xx or 3xx responses: %ld", &n) == 1) w.non2xx = n;
    std::sscanf(line.c_str(), " Socket errors: connect %ld, read %ld, write %ld, timeout %ld", &w.connect, &w.read,
                &w.write, &w.timeout);
    if (std::sscanf(line.c_str(), "label %255s %ld", label, &n) == 2) w.by_label[label] += n;
  }
  if (w.requests == 0) std::fprintf(stderr, "wrk said:\n%s\n", text.c_str());
  return w;
}

std::string Version(const std::string& name, const std::string& flags = "") {
  return std::string("{name: ") + name + ", command: [" FAKE_OIP_SERVER ", --label, " + name +
         (flags.empty() ? "" : ", " + flags) + "]}";
}

std::string Pipeline(const std::string& uses, const std::string& with_lines) {
  return std::string("name: bench\nsteps:\n  deploy:\n    uses: ") + uses + "\n    with:\n      service: " + kService +
         "\n" + with_lines;
}

struct RollbackRun {
  std::string candidate;
  int code = 0;
  int64_t shift_ms = 0, decision_ms = 0, rollback_ms = 0;
  std::string decision;               // the analysis event's message
  double last_canary_after_ms = 0;    // decision -> send time of the last request the canary answered
  long canary_after_decision = 0;     // requests sent after the decision that the canary answered
  long answers = 0, canary_answers = 0, stable_failures = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::string sluice = (fs::canonical("/proc/self/exe").parent_path().parent_path() / "sluice").string();
  int runs = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--sluice") sluice = v;
    else if (k == "--runs") runs = std::max(1, std::atoi(v.c_str()));
  }
  signal(SIGPIPE, SIG_IGN);
  fs::path dir = fs::temp_directory_path() / ("sluice-deploy-bench-" + std::to_string(getpid()));
  fs::path home = dir / ".sluice";
  fs::create_directories(home);
  fs::create_directories(dir / "tmp");
  std::string script = kWrkScript;
  script.replace(script.find("@BODY@"), 6, kBody);
  std::ofstream(dir / "post.lua") << script;
  const std::vector<std::string> env = {"SLUICE_HOME=" + home.string()};

  pid_t gateway = 0, wrk = 0, proxy = 0, old_server = 0, new_server = 0;
  auto fail = [&](const std::string& why) {
    std::fprintf(stderr, "%s (the scratch folder %s is kept)\n", why.c_str(), dir.c_str());
    StopPid(wrk, SIGINT);
    StopPid(proxy);
    StopPid(old_server);
    StopPid(new_server);
    StopPid(gateway);
    return 1;
  };
  auto open_store = [&]() -> std::unique_ptr<sluice::store::Store> {
    auto s = sluice::store::Store::Open((home / "sluice.db").string());
    if (!s.ok()) return nullptr;
    return std::move(*s);
  };
  auto run_pipeline = [&](const std::string& file, const std::string& text) {
    std::ofstream(dir / file) << text;
    return bench::Spawn({sluice, "run", (dir / file).string()}, dir, env, (dir / (file + ".log")).string());
  };
  auto reap = [](pid_t pid) {
    int status;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  };
  auto newest = [&]() -> std::optional<sluice::store::RolloutRecord> {
    auto s = open_store();
    if (!s) return std::nullopt;
    auto all = s->rollouts().OfService(kService, 1);
    if (!all.ok() || all->empty()) return std::nullopt;
    return all->front();
  };

  // The gateway: ours, in the foreground, so the deploys use it (and we stop it by pid).
  const int gport = sluice::testing::FreePort();
  gateway = bench::Spawn({sluice, "gateway", "--port", std::to_string(gport)}, dir, env,
                         (dir / "gateway.log").string());
  if (!WaitFor([&] {
        if (GetStatus(gport, "/metrics") != 200) return false;
        auto s = open_store();
        if (!s) return false;
        auto row = s->gateway().Read();
        return row.ok() && *row && (*row)->pid == gateway;
      }, 20))
    return fail("the gateway did not start within 20 s; see gateway.log");

  // Stable v1.
  {
    pid_t run = run_pipeline("stable.yaml", Pipeline("deploy/canary", "      version: " + Version("v1") +
                                                                         "\n      steps: [{weight: 100}]\n"));
    if (int code = reap(run); code != 0) return fail("deploying v1 failed (" + std::to_string(code) + "); see stable.yaml.log");
    if (!WaitFor([&] { return GetStatus(gport, std::string("/v2/models/") + kService + "/ready") == 200; }, 20))
      return fail("service demo was not ready");
  }

  // 1. Rollback latency.
  std::vector<RollbackRun> rollbacks;
  for (int i = 0; i < runs; ++i) {
    RollbackRun rr;
    rr.candidate = std::string("v2") + static_cast<char>('a' + i % 26) + (i >= 26 ? std::to_string(i) : "");
    std::vector<Load::Answer> answers;
    {
      Load load(gport, 4);
      pid_t run = run_pipeline(
          "rollback-" + rr.candidate + ".yaml",
          Pipeline("deploy/canary",
                   "      version: " + Version(rr.candidate, "--status, 500") +
                       "\n      steps: [{weight: 20, pause: 30s}]\n"
                       "      analysis: {interval: 1s, min_requests: 10, max_error_rate: 0.01, inconclusive: fail}\n"));
      rr.code = reap(run);
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      load.Stop();
      answers = load.answers();
    }
    if (rr.code == 0) return fail("the canary of " + rr.candidate + " answering 500 was not rolled back");
    auto r = newest();
    if (!r || r->candidate_version != rr.candidate || r->state != sluice::store::RolloutState::kRolledBack)
      return fail("the newest rollout is not " + rr.candidate + " rolled back");
    auto s = open_store();
    if (!s) return fail("cannot open the store");
    auto events = s->rollouts().Events(r->id, 0);
    if (!events.ok()) return fail("cannot read the rollout's events: " + events.status().message());
    for (const auto& e : *events) {
      if (e.kind == "shift" && rr.decision_ms == 0 && e.message.find(" 20%") != std::string::npos) rr.shift_ms = e.at_ms;
      if (e.kind == "analysis" && rr.rollback_ms == 0) {
        rr.decision_ms = e.at_ms;
        rr.decision = e.message;
      }
      if (e.kind == "rollback" && rr.rollback_ms == 0) rr.rollback_ms = e.at_ms;
    }
    if (rr.decision_ms == 0 || rr.rollback_ms == 0) return fail("no analysis or rollback event in rollout " + std::to_string(r->id));
    int64_t last_canary_us = 0;
    for (const auto& a : answers) {
      ++rr.answers;
      if (a.version == rr.candidate) {
        ++rr.canary_answers;
        last_canary_us = std::max(last_canary_us, a.sent_us);
        if (a.sent_us > rr.decision_ms * 1000) ++rr.canary_after_decision;
      } else if (a.status != 200) {
        ++rr.stable_failures;
      }
    }
    if (rr.canary_answers == 0) return fail("the canary " + rr.candidate + " answered no request");
    rr.last_canary_after_ms = (last_canary_us - rr.decision_ms * 1000) / 1000.0;
    rollbacks.push_back(rr);
    std::printf("rollback run %d: %s: %s; decision -> last canary request %.1f ms, -> rollback event %lld ms; "
                "%ld answers, %ld by the canary (%ld sent after the decision), %ld stable failures\n",
                i + 1, rr.candidate.c_str(), rr.decision.c_str(), rr.last_canary_after_ms,
                static_cast<long long>(rr.rollback_ms - rr.decision_ms), rr.answers, rr.canary_answers,
                rr.canary_after_decision, rr.stable_failures);
    std::fflush(stdout);
  }

  // 2a. A good canary under wrk.
  WrkLoss canary, blue_green, nginx;
  {
    wrk = StartWrk(dir, gport, dir / "wrk-canary.out");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    pid_t run = run_pipeline("canary.yaml",
                             Pipeline("deploy/canary", "      version: " + Version("v3") +
                                                           "\n      steps: [{weight: 10, pause: 2s}, {weight: 50, "
                                                           "pause: 2s}, {weight: 100}]\n      scale_down_delay: 1s\n"));
    int code = reap(run);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    canary = StopWrk(wrk, dir / "wrk-canary.out");
    wrk = 0;
    if (code != 0) return fail("the canary of v3 failed; see canary.yaml.log");
  }
  // 2b. Blue-green under wrk.
  {
    wrk = StartWrk(dir, gport, dir / "wrk-blue-green.out");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    pid_t run = run_pipeline(
        "blue-green.yaml",
        Pipeline("deploy/blue-green",
                 "      version: " + Version("v4") +
                     "\n      smoke: {count: 3, request: {inputs: [{name: x, datatype: FP32, shape: [1], data: [1.0]}]}}\n"
                     "      rollback_window: 1s\n"));
    int code = reap(run);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    blue_green = StopWrk(wrk, dir / "wrk-blue-green.out");
    wrk = 0;
    if (code != 0) return fail("the blue-green switch to v4 failed; see blue-green.yaml.log");
  }
  StopPid(gateway);  // it drains and stops its replicas before it exits
  gateway = 0;

  // 2c. nginx switching upstreams by reload, under the same wrk.
  {
    const int old_port = sluice::testing::FreePort(), new_port = sluice::testing::FreePort();
    old_server = bench::Spawn({FAKE_OIP_SERVER, "--port", std::to_string(old_port), "--label", "old"}, dir, {},
                              (dir / "old.log").string());
    new_server = bench::Spawn({FAKE_OIP_SERVER, "--port", std::to_string(new_port), "--label", "new"}, dir, {},
                              (dir / "new.log").string());
    if (!WaitFor([&] {
          return GetStatus(old_port, "/v2/health/ready") == 200 && GetStatus(new_port, "/v2/health/ready") == 200;
        }, 10))
      return fail("the standalone fake_oip_servers did not start");
    const int nport = sluice::testing::FreePort();
    const fs::path conf = dir / "proxy.conf";
    std::ofstream(conf) << bench::ProxyConfig(dir, nport, old_port);
    proxy = bench::Spawn({"nginx", "-p", dir.string(), "-c", conf.string(), "-g", "daemon off;"}, dir, {},
                         (dir / "proxy.log").string());
    if (!WaitFor([&] { return GetStatus(nport, "/v2/health/ready") == 200; }, 10)) return fail("nginx did not answer");
    wrk = StartWrk(dir, nport, dir / "wrk-nginx.out");
    std::this_thread::sleep_for(std::chrono::seconds(2));
    std::ofstream(conf) << bench::ProxyConfig(dir, nport, new_port);
    bench::RunOk({"nginx", "-p", dir.string(), "-c", conf.string(), "-g", "daemon off;", "-s", "reload"}, dir);
    std::this_thread::sleep_for(std::chrono::seconds(1));
    StopPid(old_server);  // the old version out, as after scale_down_delay
    old_server = 0;
    std::this_thread::sleep_for(std::chrono::seconds(2));
    nginx = StopWrk(wrk, dir / "wrk-nginx.out");
    wrk = 0;
    StopPid(proxy);
    proxy = 0;
    StopPid(new_server);
    new_server = 0;
  }

  // The table.
  std::vector<double> to_last, to_rollback, to_decision;
  for (const auto& r : rollbacks) {
    to_last.push_back(r.last_canary_after_ms);
    to_rollback.push_back(static_cast<double>(r.rollback_ms - r.decision_ms));
    to_decision.push_back(static_cast<double>(r.decision_ms - r.shift_ms));
  }
  auto row = [](const char* name, const std::vector<double>& v, const char* tail) {
    std::printf("  %-42s", name);
    for (size_t i = 0; i < v.size(); ++i) std::printf("  run%zu %7.1f ms", i + 1, v[i]);
    std::printf("  median %7.1f ms%s\n", bench::Median(v), tail);
  };
  const double median_last = bench::Median(to_last);
  std::printf("\nrollback: canary answering 500 at 20%% vs stable v1, analysis every 1s, 4 keep-alive clients; the "
              "gateway sees a weight change by polling the store's PRAGMA data_version every 20 ms "
              "(GatewayOptions::poll_interval); a rollback commits stable at 100%% before it records its event, so "
              "decision -> rollback event bounds decision -> weights committed; a negative time: no request sent "
              "after the decision reached the canary\n");
  row("20% shift -> failing analysis (decision)", to_decision, "");
  row("decision -> last canary request", to_last, median_last <= 100 ? "  (target <= 100 ms: met)"
                                                                      : "  (target <= 100 ms: NOT met)");
  row("decision -> rollback event", to_rollback, "");
  std::printf("\nswitch under wrk -t2 -c16 (lost = non-2xx + socket errors; target 0)\n");
  auto loss = [](const char* name, const WrkLoss& w) {
    std::printf("  %-44s lost %ld of %ld (non-2xx %ld, connect %ld, read %ld, write %ld, timeout %ld; answers by "
                "label: %s)\n",
                name, w.lost(), w.requests, w.non2xx, w.connect, w.read, w.write, w.timeout, w.Labels().c_str());
  };
  loss("sluice canary 10/50/100%, v1 out after 1s", canary);
  loss("sluice blue-green, v3 out after 1s", blue_green);
  loss("nginx -s reload old -> new, old out 1s on", nginx);

  const bool ok = median_last <= 100 && canary.lost() == 0 && blue_green.lost() == 0 && canary.requests > 0 &&
                  blue_green.requests > 0;
  fs::remove_all(dir);
  return ok ? 0 : 1;
}
