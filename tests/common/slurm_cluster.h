// A one-node Slurm cluster for tests and benchmarks: munged, slurmctld and
// slurmd as root (Debian's slurm-wlm and munge) with a minimal slurm.conf
// in a temporary folder, on free loopback ports; SLURM_CONF points the
// Slurm commands at it. Stopped by pid.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

#include "free_port.h"

namespace sluice::testing {

inline std::string Capture(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

inline bool Eventually(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

// A one-node cluster for the test process, stopped by pid at the end.
class SlurmCluster {
 public:
  static std::string Missing() {
    for (const char* f : {"/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged", "/usr/bin/sbatch"})
      if (!std::filesystem::exists(f)) return std::string(f) + " is missing (apt-get install slurm-wlm munge; scripts/install-deps.sh does)";
    if (::geteuid() != 0) return "the test cluster's daemons must run as root";
    return "";
  }

  bool Start() {
    dir_ = std::filesystem::temp_directory_path() / ("sluice-slurm-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    for (const char* d : {"state", "spool", "munge"}) std::filesystem::create_directories(dir_ / d);
    std::filesystem::permissions(dir_ / "munge", std::filesystem::perms::owner_all);
    long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
    long mem_mb = ::sysconf(_SC_PHYS_PAGES) / 1024 * ::sysconf(_SC_PAGE_SIZE) / 1024;
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    std::string d = dir_.string();
    std::ofstream conf(dir_ / "slurm.conf");
    conf << "ClusterName=sluicetest\nSlurmctldHost=" << host << "(127.0.0.1)\nSlurmUser=root\nSlurmdUser=root\n"
         << "AuthType=auth/munge\nCredType=cred/munge\nAuthInfo=socket=" << d << "/munge/munge.socket\n"
         << "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nSchedulerType=sched/builtin\n"
         << "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\nReturnToService=2\n"
         << "SchedulerParameters=batch_sched_delay=0\n"
         << "SlurmctldPort=" << FreePort() << "\nSlurmdPort=" << FreePort() << "\n"
         << "StateSaveLocation=" << d << "/state\nSlurmdSpoolDir=" << d << "/spool\n"
         << "SlurmctldPidFile=" << d << "/slurmctld.pid\nSlurmdPidFile=" << d << "/slurmd.pid\n"
         << "SlurmctldLogFile=" << d << "/slurmctld.log\nSlurmdLogFile=" << d << "/slurmd.log\n"
         << "AccountingStorageType=accounting_storage/none\nJobAcctGatherType=jobacct_gather/none\n"
         << "JobCompType=jobcomp/none\nMpiDefault=none\nKillWait=2\nMinJobAge=3600\n"
         << "NodeName=" << host << " NodeAddr=127.0.0.1 CPUs=" << cpus << " RealMemory=" << mem_mb * 8 / 10
         << " State=UNKNOWN\nPartitionName=debug Nodes=" << host << " Default=YES MaxTime=INFINITE State=UP\n";
    conf.close();
    ::setenv("SLURM_CONF", (dir_ / "slurm.conf").c_str(), 1);
    std::string quiet = " > " + d + "/daemons.log 2>&1";
    if (std::system(("/usr/sbin/munged --force --socket=" + d + "/munge/munge.socket --pid-file=" + d +
                     "/munge/munged.pid --log-file=" + d + "/munge/munged.log --seed-file=" + d + "/munge/seed" + quiet)
                        .c_str()) != 0)
      return false;
    if (std::system(("/usr/sbin/slurmctld" + quiet).c_str()) != 0) return false;
    if (std::system(("/usr/sbin/slurmd" + quiet).c_str()) != 0) return false;
    return Eventually([] { return Capture("sinfo --noheader --format=%t 2>/dev/null").find("idle") == 0; },
                   std::chrono::seconds(30));
  }

  void Stop() {
    for (const char* pidfile : {"slurmd.pid", "slurmctld.pid", "munge/munged.pid"}) {
      std::ifstream f(dir_ / pidfile);
      pid_t pid = 0;
      if (f >> pid && pid > 0) {
        ::kill(pid, SIGTERM);
        Eventually([&] { return ::kill(pid, 0) != 0; }, std::chrono::seconds(10));
      }
    }
    std::filesystem::remove_all(dir_);
  }

  std::string Log() const {
    std::ifstream f(dir_ / "slurmctld.log");
    return std::string(std::istreambuf_iterator<char>(f), {});
  }

 private:
  std::filesystem::path dir_;
};

}  // namespace sluice::testing
