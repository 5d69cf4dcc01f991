// sluice gateway: runs the serving gateway of the store in the foreground
// until SIGINT, SIGTERM or `sluice gateway stop`; sluice gateway stop asks
// the store's gateway to stop and waits for it to go. EnsureGateway starts
// one in the background for `sluice services apply` when none runs.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <thread>

#include "cli/commands.h"
#include "exec/process.h"
#include "serving/gateway.h"
#include "serving/gateway_launch.h"
#include "util/strings.h"

namespace sluice::cli {

namespace fs = std::filesystem;

int RunGateway(const GatewayCliOptions& o) {
  auto store = OpenStore();  // creates and migrates it before the gateway's threads open it
  if (!store) return kExitFailed;
  std::error_code ec;
  std::string home = fs::absolute(HomeDir()).lexically_normal().string();
  std::string program = fs::read_symlink("/proc/self/exe", ec).string();
  if (ec) return Fail("sluice: cannot find its own executable: " + ec.message(), kExitFailed);

  // Signals are taken by a sigwait thread; every thread started from here on inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  if (o.background) signal(SIGHUP, SIG_IGN);

  serving::GatewayOptions go;
  go.store_path = home + "/sluice.db";
  go.listen = o.listen;
  go.port = o.port;
  go.threads = o.threads;
  go.mode = o.background ? "background" : "foreground";
  if (o.background) go.log_path = home + "/gateway.log";
  go.supervisor.sluice_executable = program;
  go.supervisor.sluice_home = home;
  auto gateway = serving::Gateway::Start(go);
  if (!gateway.ok()) return Fail("sluice: " + gateway.status().message(), kExitFailed);
  serving::Gateway* g = gateway->get();
  std::thread signals([g, stop_signals] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    g->StopSoon();
  });
  signals.detach();  // blocked in sigwait until the process ends; it touches nothing after StopSoon
  g->WaitForStopRequest();
  g->Stop();
  return kExitOk;
}

int EnsureGateway(int port) {
  auto store = OpenStore();
  if (!store) return kExitFailed;
  std::string home = fs::absolute(HomeDir()).lexically_normal().string();
  auto launch = serving::EnsureGateway(store->gateway(), home, port);
  if (!launch.ok()) return Fail("sluice: " + launch.status().message(), kExitFailed);
  const store::GatewayRecord& g = launch->gateway;
  if (launch->started)
    std::cout << "gateway started: pid " << g.pid << ", http://" << g.listen << ":" << g.port << ", log "
              << launch->log_path << "\n";
  else
    std::cout << "gateway: pid " << g.pid << ", http://" << g.listen << ":" << g.port << "\n";
  return kExitOk;
}

int WaitForReplicas(const std::string& service, std::chrono::milliseconds limit) {
  auto store = OpenStore();
  if (!store) return kExitFailed;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (true) {
    auto waiting = serving::ReplicasNotReady(store->services(), service, "");
    if (!waiting.ok()) return Fail("sluice: " + waiting.status().message(), kExitFailed);
    if (waiting->empty()) {
      int total = 0;
      if (auto desired = store->services().Get(service); desired.ok())
        for (const store::ServiceVersionState& v : desired->versions)
          if (v.state == "active") total += v.replicas;
      std::cout << "service " << service << ": " << total << " replica" << (total == 1 ? "" : "s") << " ready\n";
      return kExitOk;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      std::cerr << "sluice: service " << service << " is not ready after "
                << std::chrono::duration_cast<std::chrono::seconds>(limit).count() << " s:\n";
      for (const std::string& w : *waiting) std::cerr << "  " << w << "\n";
      return kExitFailed;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

int StopGateway() {
  auto store = OpenStore();
  if (!store) return kExitFailed;
  auto row = store->gateway().Read();
  if (!row.ok()) return Fail("sluice: " + row.status().message(), kExitFailed);
  if (!*row || !exec::SameProcessAlive(static_cast<int>((*row)->pid), (*row)->start_time)) {
    if (*row) (void)store->gateway().Release((*row)->pid);  // a dead gateway's row
    std::cout << "no gateway runs for this store\n";
    return kExitOk;
  }
  const store::GatewayRecord g = **row;
  if (g.mode == "serve")
    return Fail("sluice: the gateway runs inside sluice serve (pid " + std::to_string(g.pid) + " on " + g.listen + ":" +
                    std::to_string(g.port) + "); stop sluice serve to stop it",
                kExitFailed);
  if (!StopGatewayProcess(*store, g))
    return Fail("sluice: the gateway (pid " + std::to_string(g.pid) + ") has not stopped after 45 s", kExitFailed);
  std::cout << "gateway stopped: pid " << g.pid << " on " << g.listen << ":" << g.port << "\n";
  return kExitOk;
}

bool StopGatewayProcess(store::Store& store, const store::GatewayRecord& g) {
  if (Status st = store.gateway().RequestStop(); !st.ok())
    std::cerr << "sluice: asking the gateway (pid " << g.pid << ") to stop: " << st.message() << "; sending SIGTERM\n";
  if (exec::SameProcessAlive(static_cast<int>(g.pid), g.start_time)) ::kill(static_cast<pid_t>(g.pid), SIGTERM);
  // Replicas drain (30 s at most) and get a 10 s grace: wait a little longer than both.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(45);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!exec::SameProcessAlive(static_cast<int>(g.pid), g.start_time)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace sluice::cli
