// sluice gateway: runs the serving gateway of the store in the foreground
// until SIGINT, SIGTERM or `sluice gateway stop`; sluice gateway stop asks
// the store's gateway to stop and waits for it to go. EnsureGateway starts
// one in the background for `sluice services apply` when none runs.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <thread>

#include "cli/commands.h"
#include "exec/process.h"
#include "serving/gateway.h"
#include "util/strings.h"

extern char** environ;

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
  auto row = store->gateway().Read();
  if (!row.ok()) return Fail("sluice: " + row.status().message(), kExitFailed);
  if (*row && exec::SameProcessAlive(static_cast<int>((*row)->pid), (*row)->start_time)) {
    std::cout << "gateway: pid " << (*row)->pid << ", http://" << (*row)->listen << ":" << (*row)->port << "\n";
    return kExitOk;
  }
  std::error_code ec;
  std::string home = fs::absolute(HomeDir()).lexically_normal().string();
  std::string program = fs::read_symlink("/proc/self/exe", ec).string();
  if (ec) return Fail("sluice: cannot find its own executable: " + ec.message(), kExitFailed);
  std::string log_path = home + "/gateway.log";
  int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) return Fail("sluice: cannot open " + log_path + ": " + std::strerror(errno), kExitFailed);
  exec::SpawnRequest r;
  r.program = program;
  r.argv = {program, "gateway", "--background", "--port", std::to_string(port)};
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "SLUICE_HOME=", 12) != 0) r.env.push_back(*e);
  r.env.push_back("SLUICE_HOME=" + home);
  r.workdir = fs::current_path(ec).string();
  r.output_fd = log;
  auto pid = exec::Spawn(r);
  ::close(log);
  if (!pid.ok()) return Fail("sluice: cannot start the gateway: " + pid.status().message(), kExitFailed);
  // The gateway writes its row once it listens; it is not reaped here (init inherits it).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    auto now = store->gateway().Read();
    if (now.ok() && *now && (*now)->pid == *pid) {
      std::cout << "gateway started: pid " << *pid << ", http://" << (*now)->listen << ":" << (*now)->port << ", log "
                << log_path << "\n";
      return kExitOk;
    }
    if (auto ended = exec::PollChild(*pid)) {
      return Fail("sluice: the gateway exited with status " + std::to_string(ended->code) + " before it listened; see " +
                      log_path,
                  kExitFailed);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Fail("sluice: the gateway (pid " + std::to_string(*pid) + ") did not listen within 10 s; see " + log_path,
              kExitFailed);
}

int WaitForReplicas(const std::string& service, std::chrono::milliseconds limit) {
  auto store = OpenStore();
  if (!store) return kExitFailed;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (true) {
    auto desired = store->services().Get(service);
    if (!desired.ok()) return Fail("sluice: " + desired.status().message(), kExitFailed);
    auto rows = store->services().Replicas(service);
    if (!rows.ok()) return Fail("sluice: " + rows.status().message(), kExitFailed);
    std::vector<std::string> waiting;
    int total = 0;
    for (const store::ServiceVersionState& v : desired->versions) {
      if (v.state != "active") continue;
      for (int slot = 0; slot < v.replicas; ++slot) {
        ++total;
        const store::ReplicaRow* row = nullptr;
        for (const store::ReplicaRow& r : *rows)
          if (r.version == v.name && r.slot == slot) row = &r;
        if (row && row->revision == v.revision && row->state == "ready") continue;
        std::string what = "replica " + std::to_string(slot) + " of " + v.name + ": ";
        if (!row || row->revision != v.revision) {
          what += "not started";
        } else {
          what += row->state;
          if (!row->last_exit.empty()) what += ", last " + row->last_exit;
          what += "; log " + row->log_path;
        }
        waiting.push_back(what);
      }
    }
    if (waiting.empty()) {
      std::cout << "service " << service << ": " << total << " replica" << (total == 1 ? "" : "s") << " ready\n";
      return kExitOk;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      std::cerr << "sluice: service " << service << " is not ready after "
                << std::chrono::duration_cast<std::chrono::seconds>(limit).count() << " s:\n";
      for (const std::string& w : waiting) std::cerr << "  " << w << "\n";
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
