// server_bench: `sluice serve` beside nginx, measured with wrk in one run.
//   1. GET /api/runs?limit=50 on a store of 10,000 runs (sluice builds the
//      JSON from SQLite per request; nginx serves the same bytes from a file);
//   2. a static UI file (app.js), from both;
//   3. 200 open Server-Sent Events clients: the time from a change in the
//      store until every client has the event;
//   4. the same with a run of 10,000 steps in progress, driven by a real
//      `sluice run` writing the same store: the time from a step record's
//      commit until all 200 clients have its event, and GET /api/runs/{id}
//      of that run (one at a time, and wrk's) beside nginx serving the same
//      bytes from a file.
// Targets (issue 6): static file >= 0.8x nginx's requests/s; API p99 under
// 10 ms at 64 connections; all 200 SSE clients within 100 ms. With the big
// run: all 200 SSE clients within 100 ms; its GET under 50 ms.
//
//   server_bench [--sluice PATH] [--seconds 10] [--connections 64] [--clients 200]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "../common/free_port.h"
#include "measure.h"
#include "store/open.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

void Stop(pid_t pid) {
  ::kill(pid, SIGTERM);
  int status;
  ::waitpid(pid, &status, 0);
}

// One GET; the body (or "" on failure).
std::string Fetch(int port, const std::string& path, const std::string& token) {
  int fd = sluice::testing::ConnectLoopback(port);
  if (fd < 0) return "";
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!token.empty()) req += "Authorization: Bearer " + token + "\r\n";
  req += "\r\n";
  (void)!::write(fd, req.data(), req.size());
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  size_t body = out.find("\r\n\r\n");
  if (out.rfind("HTTP/1.1 200", 0) != 0 || body == std::string::npos) return "";
  return out.substr(body + 4);
}

struct WrkResult {
  double rps = 0, p50_ms = 0, p99_ms = 0;
  long errors = 0;
};

double Ms(const std::string& value, const std::string& unit) {
  double v = std::atof(value.c_str());
  if (unit == "us") return v / 1000;
  if (unit == "s") return v * 1000;
  return v;
}

WrkResult Wrk(int port, const std::string& path, const std::string& token, int connections, int seconds) {
  std::string cmd = "wrk -t2 -c" + std::to_string(connections) + " -d" + std::to_string(seconds) + "s --latency ";
  if (!token.empty()) cmd += "-H 'Authorization: Bearer " + token + "' ";
  cmd += "'http://127.0.0.1:" + std::to_string(port) + path + "' 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  // The number after `label` in wrk's report, in ms for latencies.
  auto after = [&out](const std::string& label, bool latency) -> double {
    size_t at = out.find(label);
    if (at == std::string::npos) return 0;
    const char* p = out.c_str() + at + label.size();
    char* end = nullptr;
    double v = std::strtod(p, &end);
    if (latency) v = Ms(std::to_string(v), std::string(end, end + (end[0] == 'm' || end[0] == 'u' ? 2 : 1)));
    return v;
  };
  WrkResult r;
  r.rps = after("Requests/sec:", false);
  r.p50_ms = after(" 50%", true);
  r.p99_ms = after(" 99%", true);
  r.errors = static_cast<long>(after("Non-2xx or 3xx responses:", false) + after("Socket errors: connect", false));
  if (size_t t = out.find("timeout "); t != std::string::npos && out.find("Socket errors") != std::string::npos)
    r.errors += std::atol(out.c_str() + t + 8);
  if (r.rps == 0) std::fprintf(stderr, "wrk said:\n%s\n", out.c_str());
  return r;
}

bool WaitHealthy(int port) {
  for (int i = 0; i < 200; ++i) {
    int fd = sluice::testing::ConnectLoopback(port);
    if (fd >= 0) {
      ::close(fd);
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return false;
}

// Open /api/events streams, read by polling; the bench's own thread.
class SseClients {
 public:
  SseClients(int port, const std::string& token, int clients) : seen_(static_cast<size_t>(clients)) {
    std::string req = "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + token + "\r\n\r\n";
    for (int i = 0; i < clients; ++i) {
      int fd = sluice::testing::ConnectLoopback(port);
      if (fd < 0 || ::write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
        std::fprintf(stderr, "SSE client %d could not connect\n", i);
        std::exit(1);
      }
      fds_.push_back(fd);
    }
  }
  ~SseClients() {
    for (int fd : fds_) ::close(fd);
  }
  // Reads until every client has `needle` (false after 10 s).
  bool WaitAll(const std::string& needle) {
    auto deadline = Clock::now() + std::chrono::seconds(10);
    while (!Pump(needle, nullptr, Clock::now()))
      if (Clock::now() > deadline) return false;
    return true;
  }
  // Forgets what was read, then calls change(), which returns the text its
  // event has, and returns the ms until the last client had that text (1e9
  // if one did not within 5 s).
  template <typename F>
  double Latency(F change) {
    for (auto& s : seen_) s.clear();
    auto t0 = Clock::now();
    std::string needle = change();
    std::vector<double> arrived(fds_.size(), -1);
    auto limit = Clock::now() + std::chrono::seconds(5);
    while (!Pump(needle, &arrived, t0) && Clock::now() < limit) {}
    if (std::find(arrived.begin(), arrived.end(), -1.0) != arrived.end()) return 1e9;
    return *std::max_element(arrived.begin(), arrived.end());
  }

 private:
  // Reads whatever is there; true when every client's text has `needle`.
  bool Pump(const std::string& needle, std::vector<double>* arrived, Clock::time_point since) {
    std::vector<pollfd> p;
    for (int fd : fds_) p.push_back({fd, POLLIN, 0});
    ::poll(p.data(), p.size(), 5);
    static char buf[1 << 16];
    bool all = true;
    for (size_t i = 0; i < fds_.size(); ++i) {
      if (p[i].revents & POLLIN) {
        ssize_t n = ::read(fds_[i], buf, sizeof buf);
        if (n > 0) {
          // Keep only the tail once nothing is waited for there: the big run's events pile up.
          if (seen_[i].size() > (1 << 20)) seen_[i].erase(0, seen_[i].size() - needle.size());
          seen_[i].append(buf, static_cast<size_t>(n));
        }
      }
      bool has = seen_[i].find(needle) != std::string::npos;
      if (has && arrived && (*arrived)[i] < 0)
        (*arrived)[i] = std::chrono::duration<double, std::milli>(Clock::now() - since).count();
      all = all && has;
    }
    return all;
  }

  std::vector<int> fds_;
  std::vector<std::string> seen_;
};

// 100 layers of 100 steps; step k of layer L needs steps k and k+1 (mod
// 100) of layer L-1; each sleeps 50 ms, so that the run lasts.
void WriteBigPipeline(const fs::path& file) {
  std::ofstream f(file);
  f << "name: big\nsteps:\n";
  for (int k = 0; k < 10000; ++k) {
    int layer = k / 100, i = k % 100;
    f << "  s" << k << ": {";
    if (layer > 0) f << "needs: [s" << (layer - 1) * 100 + i << ", s" << (layer - 1) * 100 + (i + 1) % 100 << "], ";
    f << "run: [sleep, \"0.05\"]}\n";
  }
}

// Times `n` GETs one after another: the median and the slowest, in ms.
std::pair<double, double> TimeGets(int port, const std::string& path, const std::string& token, int n) {
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    if (Fetch(port, path, token).empty()) return {1e9, 1e9};
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms.back()};
}

}  // namespace

int main(int argc, char** argv) {
  std::string sluice = (fs::canonical("/proc/self/exe").parent_path().parent_path() / "sluice").string();
  int seconds = 10, connections = 64, clients = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--sluice") sluice = fs::absolute(v).string();  // the driver starts in another folder
    else if (k == "--seconds") seconds = std::atoi(v.c_str());
    else if (k == "--connections") connections = std::atoi(v.c_str());
    else if (k == "--clients") clients = std::atoi(v.c_str());
  }
  signal(SIGPIPE, SIG_IGN);
  fs::path dir = fs::temp_directory_path() / ("sluice-server-bench-" + std::to_string(getpid()));
  fs::path home = dir / "home", pipelines = dir / "pipelines", www = dir / "www";
  fs::create_directories(home);
  fs::create_directories(pipelines);
  fs::create_directories(www / "api");
  {
    std::ofstream(pipelines / "bench.yaml") << "name: bench\nparams:\n  n: {type: int, default: 1}\nsteps:\n  a: {run: \"true\"}\n";
  }

  // A store of 10,000 finished runs.
  auto store = sluice::store::Store::Open((home / "sluice.db").string());
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().message().c_str());
    return 1;
  }
  auto t0 = Clock::now();
  for (int i = 0; i < 10000; ++i) {
    auto id = (*store)->runs().CreateRun("bench", "name: bench\n", (pipelines / "bench.yaml").string(), pipelines.string(),
                                  "{\"n\": " + std::to_string(i) + "}", 2, 1700000000000 + i * 1000);
    if (!id.ok() || !(*store)->runs().SetRunState(*id, sluice::engine::RunState::kSucceeded, 1700000000500 + i * 1000).ok() ||
        !(*store)->runs().Flush().ok()) {
      std::fprintf(stderr, "cannot fill the store\n");
      return 1;
    }
  }
  std::printf("store of 10,000 runs made in %.1f s\n", std::chrono::duration<double>(Clock::now() - t0).count());
  auto token = (*store)->access().CreateToken("bench", sluice::store::TokenScope::kRead, 0);
  if (!token.ok()) return 1;

  int sport = sluice::testing::FreePort();
  pid_t server = bench::Spawn({sluice, "serve", "--dir", pipelines.string(), "--port", std::to_string(sport),
                               "--max-connections", "4096"},
                              "", {"SLUICE_HOME=" + home.string()}, (dir / "serve.log").string());
  if (!WaitHealthy(sport)) {
    std::fprintf(stderr, "sluice serve did not start; see %s\n", (dir / "serve.log").c_str());
    return 1;
  }
  // nginx serves the same bytes.
  std::string runs_json = Fetch(sport, "/api/runs?limit=50", *token);
  std::string app_js = Fetch(sport, "/app.js", "");
  if (runs_json.empty() || app_js.empty()) {
    std::fprintf(stderr, "sluice serve did not answer\n");
    Stop(server);
    return 1;
  }
  std::ofstream(www / "runs.json") << runs_json;
  std::ofstream(www / "app.js") << app_js;
  int nport = sluice::testing::FreePort();
  {
    std::ofstream conf(dir / "nginx.conf");
    conf << "worker_processes auto;\npid " << (dir / "nginx.pid").string() << ";\nerror_log " << (dir / "nginx.err").string()
         << ";\nevents { worker_connections 4096; }\nhttp {\n  access_log off;\n  include /etc/nginx/mime.types;\n"
         << "  client_body_temp_path " << dir.string() << "/tmp;\n  proxy_temp_path " << dir.string() << "/tmp;\n"
         << "  fastcgi_temp_path " << dir.string() << "/tmp;\n  uwsgi_temp_path " << dir.string() << "/tmp;\n"
         << "  scgi_temp_path " << dir.string() << "/tmp;\n"
         << "  server {\n    listen 127.0.0.1:" << nport << ";\n    root " << www.string() << ";\n"
         << "    location = /api/runs { default_type application/json; try_files /runs.json =404; }\n"
         << "    location ~ ^/api/runs/[0-9]+$ { default_type application/json; try_files /run.json =404; }\n  }\n}\n";
  }
  fs::create_directories(dir / "tmp");
  pid_t nginx = bench::Spawn({"nginx", "-p", dir.string(), "-c", (dir / "nginx.conf").string(), "-g", "daemon off;"}, "",
                             {}, (dir / "nginx.log").string());
  if (!WaitHealthy(nport) || Fetch(nport, "/api/runs?limit=50", "") != runs_json) {
    std::fprintf(stderr, "nginx did not serve the same JSON; see %s\n", (dir / "nginx.err").c_str());
    Stop(server);
    Stop(nginx);
    return 1;
  }
  std::printf("runs JSON %zu bytes, app.js %zu bytes; wrk -t2 -c%d -d%ds on 127.0.0.1\n\n", runs_json.size(),
              app_js.size(), connections, seconds);

  WrkResult api_s = Wrk(sport, "/api/runs?limit=50", *token, connections, seconds);
  WrkResult api_n = Wrk(nport, "/api/runs?limit=50", "", connections, seconds);
  WrkResult static_s = Wrk(sport, "/app.js", "", connections, seconds);
  WrkResult static_n = Wrk(nport, "/app.js", "", connections, seconds);
  Stop(nginx);

  std::printf("%-34s %12s %12s %9s %9s %7s\n", "", "requests/s", "p50 ms", "p99 ms", "errors", "ratio");
  auto row = [](const char* name, const WrkResult& r, double ratio) {
    std::printf("%-34s %12.0f %12.2f %9.2f %9ld %7s\n", name, r.rps, r.p50_ms, r.p99_ms, r.errors,
                ratio > 0 ? (std::to_string(ratio).substr(0, 4) + "x").c_str() : "");
  };
  row("GET /api/runs?limit=50  sluice", api_s, api_s.rps / std::max(1.0, api_n.rps));
  row("GET /api/runs?limit=50  nginx", api_n, 0);
  row("GET /app.js             sluice", static_s, static_s.rps / std::max(1.0, static_n.rps));
  row("GET /app.js             nginx", static_n, 0);
  std::printf("\ntargets: static >= 0.80x nginx (%s); API p99 < 10 ms at %d connections (%s)\n",
              static_s.rps >= 0.8 * static_n.rps ? "met" : "NOT met", connections, api_s.p99_ms < 10 ? "met" : "NOT met");

  // 3. SSE fan-out.
  std::vector<double> worst;
  int rounds = 20;
  {
    SseClients sse(sport, *token, clients);
    sse.WaitAll("event: hello");
    for (int round = 0; round < rounds; ++round) {
      worst.push_back(sse.Latency([&] {
        auto id = (*store)->runs().CreateRun("bench", "name: bench\n", (pipelines / "bench.yaml").string(),
                                             pipelines.string(), "{}", 2, 1800000000000 + round);
        if (!id.ok()) std::exit(1);
        return "\"run\":" + std::to_string(*id) + ",\"state\":\"pending\"";
      }));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  Stop(server);
  std::sort(worst.begin(), worst.end());
  std::printf("\nSSE: %d clients, %d store changes; time until the last client had the event: median %.1f ms, worst %.1f ms "
              "(target 100 ms: %s)\n",
              clients, rounds, worst[worst.size() / 2], worst.back(), worst.back() < 100 ? "met" : "NOT met");

  // 4. A run of 10,000 steps in progress, driven by `sluice run` on the same store.
  WriteBigPipeline(pipelines / "big.yaml");
  pid_t driver = bench::Spawn({sluice, "run", (pipelines / "big.yaml").string(), "--jobs", "8"}, pipelines,
                              {"SLUICE_HOME=" + home.string()}, (dir / "driver.log").string());
  int64_t big = 0;
  for (auto deadline = Clock::now() + std::chrono::seconds(60); Clock::now() < deadline;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    sluice::store::RunFilter f;
    f.pipeline = "big";
    f.limit = 1;
    auto rows = (*store)->runs().ListRuns(f);
    if (!rows.ok() || rows->empty()) continue;
    big = rows->front().id;
    auto attempts = (*store)->runs().ListAttempts(big);
    if (attempts.ok() && attempts->size() >= 2000) break;
  }
  auto attempts_then = (*store)->runs().ListAttempts(big);
  if (!big || !attempts_then.ok() || attempts_then->size() < 2000) {
    std::fprintf(stderr, "the big run did not get going; see %s\n", (dir / "driver.log").c_str());
    Stop(driver);
    return 1;
  }
  server = bench::Spawn({sluice, "serve", "--dir", pipelines.string(), "--port", std::to_string(sport),
                         "--max-connections", "4096"},
                        "", {"SLUICE_HOME=" + home.string()}, (dir / "serve2.log").string());
  if (!WaitHealthy(sport)) {
    std::fprintf(stderr, "sluice serve did not start again; see %s\n", (dir / "serve2.log").c_str());
    Stop(driver);
    return 1;
  }
  std::printf("\nrun %lld: 10,000 steps, 100 layers of 100, `sluice run --jobs 8` writing; %zu attempts so far\n",
              static_cast<long long>(big), attempts_then->size());
  // The probe: a step record the bench writes, as a driver would, into a run of its own.
  auto probe = (*store)->runs().CreateRun("bench", "name: bench\n", (pipelines / "bench.yaml").string(), pipelines.string(),
                                         "{}", 1, 1900000000000);
  if (!probe.ok() || !(*store)->runs().SetRunState(*probe, sluice::engine::RunState::kRunning, 1900000000000).ok() ||
      !(*store)->runs().Flush().ok())
    return 1;
  std::vector<double> big_worst;
  {
    SseClients sse(sport, *token, clients);
    sse.WaitAll("event: hello");
    for (int round = 1; round <= rounds; ++round) {
      big_worst.push_back(sse.Latency([&] {
        sluice::engine::StepRecord r{.step_id = "probe", .state = sluice::engine::StepState::kRunning, .tries = round,
                                     .attempts = round};
        if (!(*store)->runs().SaveSteps(*probe, {&r}).ok() || !(*store)->runs().Flush().ok()) std::exit(1);
        return "{\"attempts\":" + std::to_string(round) + ",\"item\":-1,\"run\":" + std::to_string(*probe) + ",";
      }));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  std::sort(big_worst.begin(), big_worst.end());
  std::printf("SSE: %d clients, %d step records written beside the run; time until the last client had the event: "
              "median %.1f ms, worst %.1f ms (target 100 ms: %s)\n",
              clients, rounds, big_worst[big_worst.size() / 2], big_worst.back(), big_worst.back() < 100 ? "met" : "NOT met");

  std::string run_path = "/api/runs/" + std::to_string(big);
  std::string run_json = Fetch(sport, run_path, *token);
  std::ofstream(www / "run.json") << run_json;
  nginx = bench::Spawn({"nginx", "-p", dir.string(), "-c", (dir / "nginx.conf").string(), "-g", "daemon off;"}, "", {},
                       (dir / "nginx.log").string());
  if (!WaitHealthy(nport) || Fetch(nport, run_path, "") != run_json) {
    std::fprintf(stderr, "nginx did not serve the run's JSON; see %s\n", (dir / "nginx.err").c_str());
    Stop(server);
    Stop(nginx);
    Stop(driver);
    return 1;
  }
  auto one_s = TimeGets(sport, run_path, *token, 20);
  auto one_n = TimeGets(nport, run_path, "", 20);
  int big_seconds = std::max(2, seconds / 2);
  WrkResult run_s = Wrk(sport, run_path, *token, 4, big_seconds);
  WrkResult run_n = Wrk(nport, run_path, "", 4, big_seconds);
  auto attempts_now = (*store)->runs().ListAttempts(big);
  Stop(nginx);
  Stop(server);
  Stop(driver);
  std::printf("GET %s: %zu bytes (%zu attempts by the end)\n", run_path.c_str(), run_json.size(),
              attempts_now.ok() ? attempts_now->size() : 0);
  std::printf("%-34s %12s %12s %9s %9s %7s\n", "", "one: median", "slowest", "wrk -c4 p50", "p99", "req/s");
  std::printf("%-34s %12.1f %12.1f %9.1f %9.1f %7.0f\n", "GET /api/runs/{id}  sluice", one_s.first, one_s.second,
              run_s.p50_ms, run_s.p99_ms, run_s.rps);
  std::printf("%-34s %12.1f %12.1f %9.1f %9.1f %7.0f\n", "GET /api/runs/{id}  nginx (file)", one_n.first, one_n.second,
              run_n.p50_ms, run_n.p99_ms, run_n.rps);
  std::printf("target: GET under 50 ms one at a time (%s)\n", one_s.second < 50 ? "met" : "NOT met");
  fs::remove_all(dir);
  return 0;
}
