// sluice serve: wires the catalog, launcher, event hub, scheduler and API
// to the HTTP server, claims the store's serving gateway role (mode serve)
// and serves the gateway's /v2 routes and /metrics on the same port, then
// waits for SIGINT or SIGTERM.
//
// The gateway (specs/services-design.md section 3, as built): a background
// gateway (started by `services apply`) is asked to stop, as `sluice gateway
// stop` does, and its replicas start again under serve's gateway; a
// foreground one (or another serve) keeps the role and serve's /v2 routes
// answer 503 naming it. The API is answered inline on the I/O thread as
// before; only /v2/... and /metrics take the deferred path.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "exec/process.h"
#include "server/api.h"
#include "server/scheduler.h"
#include "serving/gateway.h"
#include "util/duration.h"
#include "util/strings.h"

namespace sluice::cli {

namespace fs = std::filesystem;

namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void Event(const std::string& line) {
  std::printf("%s %s\n", IsoTime(NowMs()).c_str(), line.c_str());
  std::fflush(stdout);
}

// What serve's /v2 routes and /metrics reach: its own gateway once it runs,
// else a 503 saying why. `message` and `gateway` are written before `state`
// is stored (release) and read after it is loaded (acquire).
struct GatewaySlot {
  enum State { kStarting, kRunning, kUnavailable, kStopping };
  std::atomic<int> state{kStarting};
  std::string message;  // kUnavailable: why
  std::unique_ptr<serving::Gateway> gateway;

  void Handle(server::Request request, server::Responder responder) {
    int s = state.load(std::memory_order_acquire);
    if (s == kRunning) return gateway->Handle(std::move(request), std::move(responder));
    server::Response r;
    r.status = 503;
    const char* why = s == kStarting ? "the gateway is starting" : "the gateway is stopping";
    r.body = nlohmann::json{{"error", s == kUnavailable ? message : why}}.dump();
    if (s == kStarting) r.headers.emplace_back("retry-after", "1");
    responder.Send(std::move(r));
  }
};

bool IsGatewayRoute(const server::Request& r) {
  return !r.segments.empty() && (r.segments[0] == "v2" || (r.segments[0] == "metrics" && r.segments.size() == 1));
}

// Claims the gateway role for serve: replaces a background gateway, leaves
// a foreground one (or another serve) be. Sets `slot`'s state.
void ClaimGateway(store::Store& store, serving::GatewayOptions go, GatewaySlot& slot) {
  auto unavailable = [&](const std::string& message) {
    slot.message = message;
    slot.state.store(GatewaySlot::kUnavailable, std::memory_order_release);
  };
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto row = store.gateway().Read();
    if (!row.ok()) return unavailable("the gateway role could not be read: " + row.status().message());
    if (*row && exec::SameProcessAlive(static_cast<int>((*row)->pid), (*row)->start_time)) {
      const store::GatewayRecord g = **row;
      const std::string where = "pid " + std::to_string(g.pid) + " on " + g.listen + ":" + std::to_string(g.port);
      if (g.mode != "background") {
        Event("event=gateway-elsewhere pid=" + std::to_string(g.pid) + " url=http://" + g.listen + ":" +
              std::to_string(g.port) + " mode=" + g.mode);
        return unavailable("the gateway of this store runs elsewhere: " + where);
      }
      Event("event=gateway-replacing pid=" + std::to_string(g.pid) + " mode=background");
      if (!StopGatewayProcess(store, g)) {
        Event("event=gateway-elsewhere pid=" + std::to_string(g.pid) + " reason=\"it did not stop within 45 s\"");
        return unavailable("the gateway of this store runs elsewhere: " + where + " (it did not stop when asked)");
      }
      continue;  // read again: claim it now
    }
    auto started = serving::Gateway::Start(go);
    if (started.ok()) {
      slot.gateway = std::move(*started);
      slot.state.store(GatewaySlot::kRunning, std::memory_order_release);
      return;
    }
    if (started.status().code() != Code::kIncompatible) {
      Event("event=gateway-failed reason=" + Quote(started.status().message()));
      return unavailable("the gateway could not start: " + started.status().message());
    }
    // Another process claimed it between the read and the claim: look again.
  }
  unavailable("the gateway role of this store is contended; restart sluice serve");
}

}  // namespace

int Serve(const ServeOptions& o) {
  std::error_code ec;
  if (!fs::is_directory(o.dir, ec)) {
    std::cerr << "sluice: --dir " << Quote(o.dir) << " is not a folder\n";
    return kExitUsage;
  }
  auto timeout = ParseDuration(o.read_timeout);
  if (!timeout || timeout->count() <= 0) {
    std::cerr << "sluice: bad duration " << Quote(o.read_timeout) << " for --read-timeout (use 500ms, 10s, 1m)\n";
    return kExitUsage;
  }
  auto store = OpenStore();  // creates and migrates it before anything else opens it
  if (!store) return kExitFailed;
  std::string home = fs::absolute(HomeDir()).lexically_normal().string();
  std::string program = fs::read_symlink("/proc/self/exe", ec).string();
  if (ec) {
    std::cerr << "sluice: cannot find its own executable: " << ec.message() << "\n";
    return kExitFailed;
  }

  // Signals are taken by sigwait below; every thread started from here on inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  server::Catalog catalog(o.dir);
  server::Launcher launcher(home, program, o.max_active_runs);
  // Runs queued before a restart start again, oldest first, as the caps allow.
  if (Status restored = launcher.Restore(store->runs()); !restored.ok())
    std::cerr << "sluice: the queued runs: " << restored.message() << "\n";
  server::EventHub events(home + "/sluice.db");
  server::Api api({home}, &catalog, &launcher, &events);
  server::ServerOptions so;
  so.listen = o.listen;
  so.port = o.port;
  so.threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(2u, std::thread::hardware_concurrency()));
  so.max_body = o.max_body;
  so.max_connections = o.max_connections;
  so.read_timeout = *timeout;
  GatewaySlot slot;
  server::HttpServer http(
      so, [&api](const server::Request& r) { return api.Handle(r); },
      [&slot](server::Request r, server::Responder responder) { slot.Handle(std::move(r), std::move(responder)); },
      IsGatewayRoute);
  Status st = http.Start();
  if (!st.ok()) {
    std::cerr << "sluice: " << st.message() << "\n";
    return kExitFailed;
  }
  auto scheduler = std::make_unique<server::Scheduler>(&catalog, &launcher, home + "/sluice.db");
  auto now_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  };
  std::printf("%s event=serve-started url=http://%s:%d/ pipelines=%s store=%s pid=%d\n", IsoTime(now_ms()).c_str(),
              o.listen.c_str(), http.port(), catalog.dir().c_str(), home.c_str(), static_cast<int>(::getpid()));
  std::fflush(stdout);

  serving::GatewayOptions go;
  go.store_path = home + "/sluice.db";
  go.listen = o.listen;
  go.port = http.port();
  go.mode = "serve";
  go.own_listener = false;
  go.upstream = http.MakeUpstreamClient();
  go.supervisor.sluice_executable = program;
  go.supervisor.sluice_home = home;
  ClaimGateway(*store, go, slot);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::printf("%s event=serve-stopping signal=%s\n", IsoTime(now_ms()).c_str(), sig == SIGINT ? "INT" : "TERM");
  std::fflush(stdout);
  if (slot.gateway) {
    // New /v2 requests are refused; the gateway drains its own and stops its replicas.
    slot.state.store(GatewaySlot::kStopping, std::memory_order_release);
    slot.gateway->Stop();
  }
  http.Stop();
  slot.gateway.reset();  // after the server: no I/O thread reaches it any more
  scheduler.reset();
  launcher.Stop(std::chrono::seconds(10));
  return kExitOk;
}

}  // namespace sluice::cli
