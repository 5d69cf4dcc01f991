#include "serving/gateway_launch.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

#include "exec/process.h"

extern char** environ;

namespace sluice::serving {

namespace fs = std::filesystem;

Result<GatewayLaunch> EnsureGateway(store::GatewayStore& gateway, const std::string& home, int port,
                                    std::chrono::milliseconds listen_timeout) {
  GatewayLaunch out;
  out.log_path = home + "/gateway.log";
  auto row = gateway.Read();
  if (!row.ok()) return row.status();
  if (*row && exec::SameProcessAlive(static_cast<int>((*row)->pid), (*row)->start_time)) {
    out.gateway = **row;
    return out;
  }
  std::error_code ec;
  std::string program = fs::read_symlink("/proc/self/exe", ec).string();
  if (ec) return Status::IoError("cannot find sluice's own executable: " + ec.message());
  int log = ::open(out.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) return Status::IoError("cannot open " + out.log_path + ": " + std::strerror(errno));
  exec::SpawnRequest r;
  r.program = program;
  r.argv = {program, "gateway", "--background", "--port", std::to_string(port)};
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "SLUICE_HOME=", 12) != 0) r.env.push_back(*e);
  r.env.push_back("SLUICE_HOME=" + home);
  r.workdir = home;
  r.output_fd = log;
  auto pid = exec::Spawn(r);
  ::close(log);
  if (!pid.ok()) return Status::IoError("cannot start the gateway: " + pid.status().message());
  const auto deadline = std::chrono::steady_clock::now() + listen_timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto now = gateway.Read();
    if (now.ok() && *now && (*now)->pid == *pid) {
      out.gateway = **now;
      out.started = true;
      return out;
    }
    if (auto ended = exec::PollChild(*pid))
      return Status::IoError("the gateway exited with status " + std::to_string(ended->code) +
                             " before it listened; see " + out.log_path);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Status::IoError("the gateway (pid " + std::to_string(*pid) + ") did not listen within " +
                         std::to_string(listen_timeout.count() / 1000) + " s; see " + out.log_path);
}

Result<std::vector<std::string>> ReplicasNotReady(store::ServicesStore& services, const std::string& service,
                                                  const std::string& version) {
  auto desired = services.Get(service);
  if (!desired.ok()) return desired.status();
  auto rows = services.Replicas(service);
  if (!rows.ok()) return rows.status();
  std::vector<std::string> waiting;
  for (const store::ServiceVersionState& v : desired->versions) {
    if (v.state != "active" || (!version.empty() && v.name != version)) continue;
    for (int slot = 0; slot < v.replicas; ++slot) {
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
  return waiting;
}

}  // namespace sluice::serving
