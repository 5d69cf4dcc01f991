// gateway_bench: the serving gateway (`sluice gateway`) beside nginx
// proxying to the same model server, measured with wrk in one run (issue 15,
// Performance).
//
// The "model" is nginx itself answering every request with one fixed OIP v2
// JSON reply (worker_processes 1): a server about as fast as a model server
// can be, so what is measured is the proxy. The gateway runs it as the
// command version of service `plain` (through /bin/sh, which writes its
// config for $PORT and execs nginx), and the bench reads that replica's port
// from the store; nginx's proxy (worker_processes 2, like the gateway's 2
// I/O threads; upstream keepalive 64, HTTP/1.1, Connection "") and the
// direct rows go to that same process. Service `mirrored` has the same live
// version and a second such model as a 100% mirror.
//
// wrk POSTs a small infer body (a Lua script) to /v2/models/SERVICE/infer on
// 127.0.0.1: -t2 -c64 for requests/s, p50 and p99 through each path; then
// -t1 -c1 for the latency each path adds over calling the model directly.
// Targets: the gateway at least 1.0x nginx-proxy's requests/s and p50; at
// most 50 us added at p50 over direct at concurrency 1; a mirror costs the
// caller nothing measurable. Nothing here tunes either proxy.
//
//   gateway_bench [--sluice PATH] [--seconds 5] [--c1-seconds 3] [--connections 64]
//
// Every process it starts (the gateway, which stops its replicas, and the
// proxy) is stopped by pid; the scratch folder is removed at the end.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "../common/free_port.h"
#include "measure.h"
#include "nginx_proxy.h"
#include "store/open.h"

namespace fs = std::filesystem;

namespace {

const char kReply[] =
    R"({"model_name":"model","model_version":"1","outputs":[{"name":"y","datatype":"FP32","shape":[1,1],"data":[0.5]}]})";
const char kBody[] = R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]})";

void StopPid(pid_t pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGTERM);
  int status;
  ::waitpid(pid, &status, 0);
}

// Sends one request on a fresh connection (Connection: close); the whole
// answer (status line, headers and body), or "".
std::string Exchange(int port, const std::string& method, const std::string& path, const std::string& body) {
  int fd = sluice::testing::ConnectLoopback(port);
  if (fd < 0) return "";
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (method == "POST")
    req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  (void)!::write(fd, req.data(), req.size());
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

// The status of an answer (0 if it is none).
int StatusOf(const std::string& answer) {
  if (answer.size() < 12 || answer.rfind("HTTP/1.1 ", 0) != 0) return 0;
  return std::atoi(answer.c_str() + 9);
}

int Post(int port, const std::string& path, const std::string& body) {
  return StatusOf(Exchange(port, "POST", path, body));
}

// One POST; the answer's x-sluice-version, or "" (no answer, no header).
std::string PostVersion(int port, const std::string& path, const std::string& body) {
  const std::string out = Exchange(port, "POST", path, body);
  const std::string key = "\r\nx-sluice-version: ";
  size_t at = out.find(key);
  if (at == std::string::npos) return "";
  at += key.size();
  return out.substr(at, out.find("\r\n", at) - at);
}

std::string GetText(int port, const std::string& path) { return Exchange(port, "GET", path, ""); }

int Get(int port, const std::string& path) { return StatusOf(GetText(port, path)); }

// The value of a series in Prometheus text (0 if absent).
long Series(const std::string& text, const std::string& series) {
  size_t at = text.find("\n" + series + " ");
  return at == std::string::npos ? 0 : std::atol(text.c_str() + at + series.size() + 2);
}

bool WaitFor(const std::function<bool()>& done, int seconds) {
  for (int i = 0; i < seconds * 40; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return false;
}

struct WrkResult {
  double rps = 0, p50_ms = 0, p99_ms = 0;
  long errors = 0;
};

WrkResult Wrk(int port, const std::string& path, const fs::path& script, int threads, int connections, int seconds) {
  std::string cmd = "wrk -t" + std::to_string(threads) + " -c" + std::to_string(connections) + " -d" +
                    std::to_string(seconds) + "s --latency -s " + script.string() + " 'http://127.0.0.1:" +
                    std::to_string(port) + path + "' 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  // The number after `label` in wrk's report; latencies in ms.
  auto after = [&out](const std::string& label, bool latency) -> double {
    size_t at = out.find(label);
    if (at == std::string::npos) return 0;
    const char* s = out.c_str() + at + label.size();
    char* end = nullptr;
    double v = std::strtod(s, &end);
    if (!latency) return v;
    if (end[0] == 'u') return v / 1000;
    if (end[0] == 'm') return v;
    if (end[0] == 's') return v * 1000;
    return v;
  };
  WrkResult r;
  r.rps = after("Requests/sec:", false);
  r.p50_ms = after(" 50%", true);
  r.p99_ms = after(" 99%", true);
  r.errors = static_cast<long>(after("Non-2xx or 3xx responses:", false));
  if (size_t s = out.find("Socket errors:"); s != std::string::npos) {
    long connect = 0, read = 0, write = 0, timeout = 0;
    std::sscanf(out.c_str() + s, "Socket errors: connect %ld, read %ld, write %ld, timeout %ld", &connect, &read,
                &write, &timeout);
    r.errors += connect + read + write + timeout;
  }
  if (r.rps == 0) std::fprintf(stderr, "wrk said:\n%s\n", out.c_str());
  return r;
}

// The nginx that plays the model: answers everything with kReply.
std::string ModelConfig(const fs::path& dir) {
  std::string d = dir.string();
  return "worker_processes 1;\npid " + d + "/model-@PORT@.pid;\nerror_log " + d + "/model-@PORT@.err;\n" +
         "events { worker_connections 4096; }\nhttp {\n  access_log off;\n  client_body_temp_path " + d +
         "/tmp;\n  proxy_temp_path " + d + "/tmp;\n  fastcgi_temp_path " + d + "/tmp;\n  uwsgi_temp_path " + d +
         "/tmp;\n  scgi_temp_path " + d + "/tmp;\n  keepalive_requests 1000000;\n" +
         "  server {\n    listen 127.0.0.1:@PORT@;\n    default_type application/json;\n" +
         "    location / { return 200 '" + kReply + "'; }\n  }\n}\n";
}

// A command version that runs the model nginx on $PORT.
std::string ModelVersion(const std::string& name, const fs::path& dir) {
  std::string d = dir.string();
  return "  " + name + ":\n    command: [/bin/sh, -c, \"sed s/@PORT@/$PORT/g " + d + "/model.conf.in > " + d +
         "/model-$PORT.conf && exec nginx -p " + d + " -c " + d + "/model-$PORT.conf -g 'daemon off;'\"]\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::string sluice = (fs::canonical("/proc/self/exe").parent_path().parent_path() / "sluice").string();
  int seconds = 5, c1_seconds = 3, connections = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--sluice") sluice = v;
    else if (k == "--seconds") seconds = std::atoi(v.c_str());
    else if (k == "--c1-seconds") c1_seconds = std::atoi(v.c_str());
    else if (k == "--connections") connections = std::atoi(v.c_str());
  }
  signal(SIGPIPE, SIG_IGN);
  fs::path dir = fs::temp_directory_path() / ("sluice-gateway-bench-" + std::to_string(getpid()));
  fs::path home = dir / ".sluice";
  fs::create_directories(home);
  fs::create_directories(dir / "tmp");
  std::ofstream(dir / "model.conf.in") << ModelConfig(dir);
  std::ofstream(dir / "post.lua") << "wrk.method = \"POST\"\nwrk.body = '" << kBody
                                  << "'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n";
  std::ofstream(dir / "plain.yaml") << "service: plain\nversions:\n" << ModelVersion("model", dir);
  std::ofstream(dir / "mirrored.yaml") << "service: mirrored\nversions:\n"
                                       << ModelVersion("model", dir) << ModelVersion("shadow", dir)
                                       << "traffic: {model: 100}\nmirror: {version: shadow, percent: 100}\n";
  const std::vector<std::string> env = {"SLUICE_HOME=" + home.string()};
  std::ofstream(dir / "switch.yaml") << "service: switch\nversions:\n"
                                     << ModelVersion("a", dir) << ModelVersion("b", dir)
                                     << "traffic: {a: 100, b: 0}\n";
  for (const char* file : {"plain.yaml", "mirrored.yaml", "switch.yaml"})
    bench::RunOk({sluice, "services", "apply", (dir / file).string(), "--no-gateway"}, dir, env);

  const int gport = sluice::testing::FreePort();
  pid_t gateway = bench::Spawn({sluice, "gateway", "--port", std::to_string(gport)}, dir, env,
                               (dir / "gateway.log").string());
  pid_t proxy = 0;
  auto fail = [&](const std::string& why) {
    std::fprintf(stderr, "%s (the scratch folder %s is kept)\n", why.c_str(), dir.c_str());
    StopPid(proxy);
    StopPid(gateway);
    return 1;
  };
  if (!WaitFor([&] {
        return Get(gport, "/v2/models/plain/ready") == 200 && Get(gport, "/v2/models/mirrored/ready") == 200 &&
               Get(gport, "/v2/models/mirrored/versions/shadow/ready") == 200 &&
               Get(gport, "/v2/models/switch/versions/a/ready") == 200 &&
               Get(gport, "/v2/models/switch/versions/b/ready") == 200;
      }, 30))
    return fail("the gateway's replicas were not ready within 30 s; see gateway.log");

  // The port of the plain service's replica: the model every row calls.
  int mport = 0;
  {
    auto store = sluice::store::Store::Open((home / "sluice.db").string());
    if (!store.ok()) return fail(store.status().message());
    auto rows = (*store)->services().Replicas("plain");
    if (!rows.ok()) return fail(rows.status().message());
    for (const auto& r : *rows)
      if (r.state == "ready") mport = r.port;
  }
  if (mport == 0) return fail("no ready replica of plain in the store");

  const int nport = sluice::testing::FreePort();
  std::ofstream(dir / "proxy.conf") << bench::ProxyConfig(dir, nport, mport);
  proxy = bench::Spawn({"nginx", "-p", dir.string(), "-c", (dir / "proxy.conf").string(), "-g", "daemon off;"}, "",
                       {}, (dir / "proxy.log").string());
  const std::string path = "/v2/models/plain/infer";
  if (!WaitFor([&] { return Post(nport, path, kBody) == 200; }, 10)) return fail("the nginx proxy did not answer");
  if (Post(mport, path, kBody) != 200 || Post(gport, path, kBody) != 200 ||
      Post(gport, "/v2/models/mirrored/infer", kBody) != 200)
    return fail("a path did not answer 200");

  std::printf("model: nginx (1 worker) answering a fixed %zu-byte JSON on 127.0.0.1:%d; proxies: nginx %s (2 workers, "
              "upstream keepalive 64) and sluice gateway (2 I/O threads); POST of %zu bytes\n\n",
              sizeof kReply - 1, mport, "1.22", sizeof kBody - 1);
  const fs::path script = dir / "post.lua";
  struct Row {
    std::string name;
    WrkResult r;
  };
  std::vector<Row> wide, narrow;
  const std::string mirrored = "/v2/models/mirrored/infer";
  wide.push_back({"model direct", Wrk(mport, path, script, 2, connections, seconds)});
  wide.push_back({"nginx proxy", Wrk(nport, path, script, 2, connections, seconds)});
  wide.push_back({"sluice gateway", Wrk(gport, path, script, 2, connections, seconds)});
  wide.push_back({"sluice gateway, 100% mirror", Wrk(gport, mirrored, script, 2, connections, seconds)});
  narrow.push_back({"model direct", Wrk(mport, path, script, 1, 1, c1_seconds)});
  narrow.push_back({"nginx proxy", Wrk(nport, path, script, 1, 1, c1_seconds)});
  narrow.push_back({"sluice gateway", Wrk(gport, path, script, 1, 1, c1_seconds)});
  narrow.push_back({"sluice gateway, 100% mirror", Wrk(gport, mirrored, script, 1, 1, c1_seconds)});

  // How long a committed weight change takes to reach the data plane: the
  // weights of `switch` flip between a and b (all traffic to one) through
  // the store, and requests are sent back to back until the other answers.
  std::vector<double> propagation_ms;
  {
    auto store = sluice::store::Store::Open((home / "sluice.db").string());
    if (!store.ok()) return fail(store.status().message());
    const std::string switch_path = "/v2/models/switch/infer";
    for (int i = 0; i < 20; ++i) {
      const std::string to = i % 2 == 0 ? "b" : "a";
      sluice::store::TrafficChange change;
      change.weights_bp = {{to, 10000}};
      auto set = (*store)->services().SetTraffic("switch", change, "user:bench", "propagation", 0);
      if (!set.ok()) return fail(set.status().message());
      const auto t0 = std::chrono::steady_clock::now();
      while (PostVersion(gport, switch_path, kBody) != to) {
        if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(5)) return fail("a weight change took over 5 s");
      }
      propagation_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(propagation_ms.begin(), propagation_ms.end());
  }

  const std::string metrics = GetText(gport, "/metrics");
  const long copies = Series(metrics, R"(sluice_requests_total{service="mirrored",version="shadow",role="mirror",code="200"})");
  const long dropped = Series(metrics, R"(sluice_mirror_dropped_total{service="mirrored",version="shadow"})");
  StopPid(proxy);
  StopPid(gateway);  // it drains and stops its replicas before it exits

  auto print = [](const char* title, const std::vector<Row>& rows) {
    std::printf("%s\n%-30s %12s %10s %10s %11s %8s\n", title, "", "requests/s", "p50 ms", "p99 ms", "p50 added", "errors");
    for (const Row& row : rows) {
      double added = (row.r.p50_ms - rows[0].r.p50_ms) * 1000;
      std::printf("%-30s %12.0f %10.3f %10.3f %8.0f us %8ld\n", row.name.c_str(), row.r.rps, row.r.p50_ms,
                  row.r.p99_ms, row.name == rows[0].name ? 0.0 : added, row.r.errors);
    }
    std::printf("\n");
  };
  print(("wrk -t2 -c" + std::to_string(connections) + " -d" + std::to_string(seconds) + "s").c_str(), wide);
  print(("wrk -t1 -c1 -d" + std::to_string(c1_seconds) + "s").c_str(), narrow);
  const WrkResult& g = wide[2].r;
  const WrkResult& n = wide[1].r;
  const double added_c1 = (narrow[2].r.p50_ms - narrow[0].r.p50_ms) * 1000;
  std::printf("targets: gateway >= 1.0x nginx proxy's requests/s: %.2fx (%s); p50 <= nginx proxy's: %.3f vs %.3f ms "
              "(%s); at most 50 us added at p50 at c=1: %.0f us (%s); mirror: p50 at c=1 %+.0f us, p99 at c=%d "
              "%+.3f ms\n",
              g.rps / std::max(1.0, n.rps), g.rps >= n.rps ? "met" : "NOT met", g.p50_ms, n.p50_ms,
              g.p50_ms <= n.p50_ms ? "met" : "NOT met", added_c1, added_c1 <= 50 ? "met" : "NOT met",
              (narrow[3].r.p50_ms - narrow[2].r.p50_ms) * 1000, connections, wide[3].r.p99_ms - wide[2].r.p99_ms);
  std::printf("a weight change committed to the store reaches the data plane in: median %.1f ms, max %.1f ms over %zu "
              "changes (target 50 ms: %s)\n",
              propagation_ms[propagation_ms.size() / 2], propagation_ms.back(), propagation_ms.size(),
              propagation_ms.back() <= 50 ? "met" : "NOT met");
  std::printf("mirror copies over both mirror rows: %ld answered 200 by the shadow, %ld dropped (the mirror full)\n",
              copies, dropped);
  long errors = 0;
  for (const auto* rows : {&wide, &narrow})
    for (const Row& row : *rows) errors += row.r.errors;
  fs::remove_all(dir);
  return errors == 0 ? 0 : 1;
}
