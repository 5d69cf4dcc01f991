// server_bench: `sluice serve` beside nginx, measured with wrk in one run.
//   1. GET /api/runs?limit=50 on a store of 10,000 runs (sluice builds the
//      JSON from SQLite per request; nginx serves the same bytes from a file);
//   2. a static UI file (app.js), from both;
//   3. 200 open Server-Sent Events clients: the time from a change in the
//      store until every client has the event.
// Targets (issue 6): static file >= 0.8x nginx's requests/s; API p99 under
// 10 ms at 64 connections; all 200 SSE clients within 100 ms.
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

}  // namespace

int main(int argc, char** argv) {
  std::string sluice = (fs::canonical("/proc/self/exe").parent_path().parent_path() / "sluice").string();
  int seconds = 10, connections = 64, clients = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--sluice") sluice = v;
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
         << "    location = /api/runs { default_type application/json; try_files /runs.json =404; }\n  }\n}\n";
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
  std::vector<int> fds;
  std::vector<std::string> seen(static_cast<size_t>(clients));
  std::string req = "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + *token + "\r\n\r\n";
  for (int i = 0; i < clients; ++i) {
    int fd = sluice::testing::ConnectLoopback(sport);
    if (fd < 0 || ::write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
      std::fprintf(stderr, "SSE client %d could not connect\n", i);
      return 1;
    }
    fds.push_back(fd);
  }
  // Reads whatever is there; true when every client's text has `needle`.
  auto pump = [&](const std::string& needle, std::vector<double>* arrived, Clock::time_point since) {
    std::vector<pollfd> p;
    for (int fd : fds) p.push_back({fd, POLLIN, 0});
    ::poll(p.data(), p.size(), 5);
    char buf[8192];
    bool all = true;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (p[i].revents & POLLIN) {
        ssize_t n = ::read(fds[i], buf, sizeof buf);
        if (n > 0) seen[i].append(buf, static_cast<size_t>(n));
      }
      bool has = seen[i].find(needle) != std::string::npos;
      if (has && arrived && (*arrived)[i] < 0) (*arrived)[i] = std::chrono::duration<double, std::milli>(Clock::now() - since).count();
      all = all && has;
    }
    return all;
  };
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!pump("event: hello", nullptr, Clock::now()) && Clock::now() < deadline) {}
  std::vector<double> worst;
  int rounds = 20;
  for (int round = 0; round < rounds; ++round) {
    for (auto& s : seen) s.clear();
    auto change = Clock::now();
    auto id = (*store)->runs().CreateRun("bench", "name: bench\n", (pipelines / "bench.yaml").string(), pipelines.string(), "{}", 2,
                                  1800000000000 + round);
    if (!id.ok()) return 1;
    std::string needle = "\"run\":" + std::to_string(*id) + ",\"state\":\"pending\"";
    std::vector<double> arrived(fds.size(), -1);
    auto limit = Clock::now() + std::chrono::seconds(5);
    while (!pump(needle, &arrived, change) && Clock::now() < limit) {}
    double max = *std::max_element(arrived.begin(), arrived.end());
    if (std::find(arrived.begin(), arrived.end(), -1.0) != arrived.end()) max = 1e9;
    worst.push_back(max);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (int fd : fds) ::close(fd);
  Stop(server);
  std::sort(worst.begin(), worst.end());
  std::printf("\nSSE: %d clients, %d store changes; time until the last client had the event: median %.1f ms, worst %.1f ms "
              "(target 100 ms: %s)\n",
              clients, rounds, worst[worst.size() / 2], worst.back(), worst.back() < 100 ? "met" : "NOT met");
  fs::remove_all(dir);
  return 0;
}
