// sluice serve: wires the catalog, launcher, event hub, scheduler and API
// to the HTTP server, then waits for SIGINT or SIGTERM.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

#include "cli/commands.h"
#include "server/api.h"
#include "server/scheduler.h"
#include "util/duration.h"
#include "util/strings.h"

namespace sluice::cli {

namespace fs = std::filesystem;

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
  server::HttpServer http(so, [&api](const server::Request& r) { return api.Handle(r); });
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

  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::printf("%s event=serve-stopping signal=%s\n", IsoTime(now_ms()).c_str(), sig == SIGINT ? "INT" : "TERM");
  std::fflush(stdout);
  http.Stop();
  scheduler.reset();
  launcher.Stop(std::chrono::seconds(10));
  return kExitOk;
}

}  // namespace sluice::cli
