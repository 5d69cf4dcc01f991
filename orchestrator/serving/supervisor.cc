#include "serving/supervisor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "exec/process.h"

extern char** environ;

namespace sluice::serving {

namespace {

namespace fs = std::filesystem;

// A log moves to .1 at this size, between starts.
constexpr int64_t kLogRotateBytes = 10 << 20;

std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

std::string DescribeEnd(const exec::ChildEnd& end) {
  if (end.signal != 0) return "killed by signal " + std::to_string(end.signal) + " (" + SignalName(end.signal) + ")";
  return "exited with status " + std::to_string(end.code);
}

// "250 ms", "4 s", "1.5 s".
std::string Ms(int64_t ms) {
  if (ms < 1000) return std::to_string(ms) + " ms";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  char buf[32];
  snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms) / 1000);
  return buf;
}

// A port the kernel says is free now (bound to 127.0.0.1:0, read, closed);
// 0 if none could be had. Someone may take it before the child binds it:
// readiness then fails and the restart picks another.
int PickPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

// The environment of a replica: ours, with `overrides` ("KEY=value") replacing
// or adding their keys.
std::vector<std::string> ChildEnvironment(const std::vector<std::string>& overrides) {
  auto key_of = [](const std::string& kv) { return kv.substr(0, kv.find('=')); };
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    std::string key = key_of(kv);
    bool replaced = std::any_of(overrides.begin(), overrides.end(),
                                [&](const std::string& o) { return key_of(o) == key; });
    if (!replaced) env.push_back(std::move(kv));
  }
  env.insert(env.end(), overrides.begin(), overrides.end());
  return env;
}

// The port a model server wrote (by rename, so whole or absent); 0 if none yet.
int ReadPortFile(const std::string& path) {
  std::ifstream f(path);
  int port = 0;
  if (!(f >> port) || port <= 0 || port > 65535) return 0;
  return port;
}

int64_t ReadyTimeoutMs(const store::ServiceVersionState& v, int64_t fallback) {
  auto j = nlohmann::json::parse(v.options.empty() ? "{}" : v.options, nullptr, false);
  if (j.is_object() && j.contains("ready_timeout_ms") && j["ready_timeout_ms"].is_number_integer() &&
      j["ready_timeout_ms"].get<int64_t>() > 0)
    return j["ready_timeout_ms"].get<int64_t>();
  return fallback;
}

}  // namespace

// ---------------------------------------------------------------- free functions

Result<std::vector<std::string>> ModelServerArgv(const std::string& sluice_executable, const std::string& service,
                                                 const store::ServiceVersionState& v, const std::string& port_file) {
  auto options = nlohmann::json::parse(v.options.empty() ? "{}" : v.options, nullptr, false);
  if (!options.is_object())
    return Status::InvalidSpec("version " + v.name + " of service " + service + ": options are not a JSON object: " +
                               v.options);
  std::vector<std::string> argv = {sluice_executable, "serve-model", v.uri.empty() ? v.model_ref : v.uri,
                                   "--name", service};
  if (v.model_version > 0) {
    argv.push_back("--model-version");
    argv.push_back(std::to_string(v.model_version));
  }
  for (const char* a : {"--listen", "127.0.0.1", "--port", "0", "--port-file"}) argv.push_back(a);
  argv.push_back(port_file);
  struct Flag {
    const char* key;
    const char* flag;
    bool zero_allowed;
  };
  for (const Flag& f : {Flag{"threads", "--threads", false}, Flag{"max_batch", "--max-batch", false},
                        Flag{"max_wait_ms", "--max-wait-ms", true}, Flag{"max_queue", "--max-queue", false}}) {
    if (!options.contains(f.key) || !options[f.key].is_number_integer()) continue;
    int64_t n = options[f.key].get<int64_t>();
    if (n < 0 || (n == 0 && !f.zero_allowed)) continue;
    argv.push_back(f.flag);
    argv.push_back(std::to_string(n));
  }
  return argv;
}

std::vector<std::string> ReplicaMarkers(const std::string& sluice_home, const std::string& service,
                                        const std::string& version, int slot, int revision) {
  return {"SLUICE_HOME=" + sluice_home, "SLUICE_SERVICE=" + service, "SLUICE_SERVICE_VERSION=" + version,
          "SLUICE_REPLICA=" + std::to_string(slot), "SLUICE_REVISION=" + std::to_string(revision)};
}

bool SignalIfSameProcess(int pid, int64_t start_time, int signal) {
  if (pid <= 0 || start_time <= 0 || !exec::SameProcessAlive(pid, start_time)) return false;
  // Our children lead their own process groups (exec::Spawn): the group
  // takes whatever the replica started too.
  return ::kill(-pid, signal) == 0 || ::kill(pid, signal) == 0;
}

int EndLeftoverReplicas(store::ServicesStore& store, const std::vector<store::ServiceState>& services,
                        const std::string& sluice_home) {
  int ended = 0;
  for (const store::ServiceState& s : services) {
    auto rows = store.Replicas(s.name);
    if (!rows.ok()) continue;
    for (const store::ReplicaRow& row : *rows) {
      if (row.pid <= 0 || !exec::SameProcessAlive(row.pid, row.start_time)) continue;
      if (!exec::StartedWithEnvironment(row.pid, ReplicaMarkers(sluice_home, row.service, row.version, row.slot,
                                                                 row.revision)))
        continue;  // a reused pid, or not ours
      if (SignalIfSameProcess(row.pid, row.start_time, SIGKILL)) ++ended;
    }
  }
  return ended;
}

// ---------------------------------------------------------------- Supervisor

// One replica process slot: the Replica shared with the routing tables and
// everything the control thread knows of its process.
struct Supervisor::Managed {
  enum class State { kStarting, kReady, kUnready, kBackoff, kDraining, kStopping };
  std::string service;
  store::ServiceVersionState version;  // what it runs (revision included)
  int slot = 0;
  std::shared_ptr<Replica> replica;
  State state = State::kBackoff;
  bool leaving = false;
  int pid = 0;
  int64_t start_time = 0;
  int port = 0;
  int restarts = 0;
  std::string last_exit;
  std::string log_path, port_file;
  int64_t started_ms = 0, ready_ms = 0;
  int64_t next_probe_ms = 0;
  int probe_failures = 0;
  int64_t restart_at_ms = 0;       // backoff: when to start again
  int64_t next_backoff_ms = 0;     // the delay after the next death
  int64_t ready_timeout_ms = 0;
  std::string kill_cause;          // why we killed it while starting, for the history
  int64_t drain_since_ms = 0, term_at_ms = 0;
  bool kill_sent = false;
  bool launched = false;           // started at least once

  const char* StateName() const {
    switch (state) {
      case State::kStarting: return "starting";
      case State::kReady: return "ready";
      case State::kUnready: return "unready";
      case State::kBackoff: return "backoff";
      case State::kDraining:
      case State::kStopping: return "draining";
    }
    return "?";
  }
};

Supervisor::Supervisor(SupervisorOptions options, store::ServicesStore& store, std::unique_ptr<ReadinessProbe> probe)
    : options_(std::move(options)), store_(store), probe_(std::move(probe)) {
  if (!probe_) probe_ = std::make_unique<HttpReadinessProbe>();
}

Supervisor::~Supervisor() {
  for (auto& m : replicas_) {
    if (m->pid <= 0) continue;
    SignalIfSameProcess(m->pid, m->start_time, SIGKILL);
    exec::WaitChild(m->pid);
  }
}

void Supervisor::Write(Managed& m, int64_t now_ms, const std::string& change_reason) {
  store::ReplicaRow r;
  r.service = m.service;
  r.version = m.version.name;
  r.slot = m.slot;
  r.revision = m.version.revision;
  r.pid = m.pid;
  r.start_time = m.start_time;
  r.port = m.port;
  r.state = m.StateName();
  r.restarts = m.restarts;
  r.last_exit = m.last_exit;
  r.log_path = m.log_path;
  r.started_ms = m.started_ms;
  r.ready_ms = m.ready_ms;
  r.updated_ms = now_ms;
  // The row of a slot is its newest replica's: an old one leaving during a
  // revision change keeps quiet once its successor exists.
  if (m.leaving && SlotTakenByAnother(m)) return;
  Status st = store_.PutReplica(r, change_reason);
  if (!st.ok()) {
    last_error_ = st.message();
    std::cerr << "sluice gateway: " << st.message() << "\n";
  }
}

bool Supervisor::SlotTakenByAnother(const Managed& m) const {
  for (const auto& o : replicas_)
    if (o.get() != &m && o->service == m.service && o->version.name == m.version.name && o->slot == m.slot &&
        !o->leaving)
      return true;
  return false;
}

void Supervisor::Launch(Managed& m, int64_t now_ms) {
  std::string base = options_.sluice_home + "/services/" + m.service + "/" + m.version.name + "." +
                     std::to_string(m.slot);
  m.log_path = base + ".log";
  // Per revision: an old replica restarting beside its successor must not
  // hand it its port.
  m.port_file = base + ".r" + std::to_string(m.version.revision) + ".port";
  m.kill_cause.clear();
  m.probe_failures = 0;
  m.port = 0;
  m.replica->port.store(0);
  m.ready_ms = 0;
  m.started_ms = now_ms;
  if (m.launched) ++m.restarts;
  m.launched = true;
  m.ready_timeout_ms = ReadyTimeoutMs(m.version, options_.default_ready_timeout_ms);

  auto fail = [&](const std::string& why) {
    m.pid = 0;
    m.start_time = 0;
    OnExit(m, why, now_ms);
  };
  std::error_code ec;
  fs::create_directories(fs::path(base).parent_path(), ec);
  if (fs::file_size(m.log_path, ec) >= static_cast<uintmax_t>(kLogRotateBytes) && !ec)
    fs::rename(m.log_path, m.log_path + ".1", ec);
  fs::remove(m.port_file, ec);

  exec::SpawnRequest req;
  std::vector<std::string> overrides = ReplicaMarkers(options_.sluice_home, m.service, m.version.name, m.slot,
                                                      m.version.revision);
  if (m.version.kind == "model") {
    auto argv = ModelServerArgv(options_.sluice_executable, m.service, m.version, m.port_file);
    if (!argv.ok()) return fail(argv.status().message());
    req.argv = std::move(*argv);
    req.program = options_.sluice_executable;
  } else {
    auto command = nlohmann::json::parse(m.version.command, nullptr, false);
    if (!command.is_array() || command.empty() ||
        !std::all_of(command.begin(), command.end(), [](const auto& a) { return a.is_string(); }))
      return fail("command is not a list of strings: " + m.version.command);
    for (const auto& a : command) req.argv.push_back(a.get<std::string>());
    if (!m.version.env.empty()) {
      auto env = nlohmann::json::parse(m.version.env, nullptr, false);
      if (!env.is_object()) return fail("env is not a map: " + m.version.env);
      for (auto it = env.begin(); it != env.end(); ++it) {
        if (!it.value().is_string()) return fail("env " + it.key() + " is not a string");
        overrides.push_back(it.key() + "=" + it.value().get<std::string>());
      }
    }
    m.port = PickPort();
    if (m.port == 0) return fail("no free port on 127.0.0.1");
    overrides.push_back((m.version.port_env.empty() ? std::string("PORT") : m.version.port_env) + "=" +
                        std::to_string(m.port));
    req.workdir = m.version.workdir;
    const char* path = getenv("PATH");
    req.program = exec::ResolveProgram(req.argv[0], path ? path : "", req.workdir);
  }
  // exec::Spawn needs a folder to start in: a model version (and a command
  // version without one) starts in the gateway's.
  if (req.workdir.empty()) req.workdir = fs::current_path(ec).string();
  req.env = ChildEnvironment(overrides);
  int log = ::open(m.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) return fail("open " + m.log_path + ": " + strerror(errno));
  req.output_fd = log;
  auto pid = exec::Spawn(req);
  ::close(log);
  if (!pid.ok()) return fail(pid.status().message());
  m.pid = *pid;
  m.start_time = exec::ProcessStartTime(m.pid);
  m.state = Managed::State::kStarting;
  m.next_probe_ms = now_ms;
  if (m.port > 0) m.replica->port.store(m.port);
  Write(m, now_ms);
}

// The process is gone (or never started: `how` says why). A leaving
// replica is done; any other goes to backoff with a history row.
void Supervisor::OnExit(Managed& m, const std::string& how, int64_t now_ms) {
  m.replica->in_rotation.store(false);
  m.pid = 0;
  m.start_time = 0;
  m.last_exit = how;
  if (m.leaving) return;  // Converge forgets it
  if (m.ready_ms > 0 && now_ms - m.ready_ms >= options_.backoff_reset_after_ms) m.next_backoff_ms = 0;
  int64_t delay = m.next_backoff_ms > 0 ? m.next_backoff_ms : options_.backoff_initial_ms;
  m.next_backoff_ms = std::min(delay * 2, options_.backoff_max_ms);
  delay = std::min(delay, options_.backoff_max_ms);
  m.restart_at_ms = now_ms + delay;
  m.state = Managed::State::kBackoff;
  m.port = 0;
  m.replica->port.store(0);
  std::string who = "replica " + std::to_string(m.slot) + " of " + m.version.name;
  std::string reason = m.kill_cause.empty() ? who + " " + how : who + " " + m.kill_cause + "; " + how;
  Write(m, now_ms, reason + "; restarting in " + Ms(delay));
}

void Supervisor::Leave(Managed& m, int64_t now_ms) {
  if (m.leaving) return;
  m.leaving = true;
  m.replica->in_rotation.store(false);
  m.drain_since_ms = now_ms;
  ++generation_;
  if (m.pid == 0) return;  // in backoff: nothing to stop
  m.state = Managed::State::kDraining;
  Write(m, now_ms);
}

void Supervisor::Forget(size_t index) {
  Managed& m = *replicas_[index];
  if (!SlotTakenByAnother(m)) {
    if (stopping_all_) {
      store::ReplicaRow r;
      r.service = m.service;
      r.version = m.version.name;
      r.slot = m.slot;
      r.revision = m.version.revision;
      r.state = "stopped";
      r.restarts = m.restarts;
      r.last_exit = m.last_exit;
      r.log_path = m.log_path;
      r.started_ms = m.started_ms;
      r.ready_ms = m.ready_ms;
      r.updated_ms = m.term_at_ms > 0 ? m.term_at_ms : m.drain_since_ms;
      if (Status st = store_.PutReplica(r); !st.ok()) last_error_ = st.message();
    } else if (Status st = store_.DeleteReplica(m.service, m.version.name, m.slot); !st.ok()) {
      last_error_ = st.message();
    }
  }
  replicas_.erase(replicas_.begin() + static_cast<std::ptrdiff_t>(index));
}

void Supervisor::Reconcile(const std::vector<store::ServiceState>& desired, int64_t now_ms) {
  if (stopping_all_) return;
  desired_.clear();
  for (const store::ServiceState& s : desired)
    for (const store::ServiceVersionState& v : s.versions)
      if (v.state != "removing" && v.state != "removed") desired_[{s.name, v.name}] = Desired{v, s.name};
  for (auto& [key, d] : desired_) {
    for (int slot = 0; slot < d.version.replicas; ++slot) {
      bool have = std::any_of(replicas_.begin(), replicas_.end(), [&](const auto& m) {
        return !m->leaving && m->service == d.service && m->version.name == d.version.name && m->slot == slot &&
               m->version.revision == d.version.revision;
      });
      if (have) continue;
      auto m = std::make_unique<Managed>();
      m->service = d.service;
      m->version = d.version;
      m->slot = slot;
      m->replica = std::make_shared<Replica>(slot);
      Managed& ref = *m;
      replicas_.push_back(std::move(m));
      ++generation_;
      Launch(ref, now_ms);
    }
  }
  Converge(now_ms);
}

void Supervisor::Tick(int64_t now_ms) {
  // Deaths first: out of rotation at once.
  for (auto& m : replicas_) {
    if (m->pid <= 0) continue;
    if (auto end = exec::PollChild(m->pid)) OnExit(*m, DescribeEnd(*end), now_ms);
  }
  // Model servers say their port through the port file.
  for (auto& m : replicas_) {
    if (m->state != Managed::State::kStarting || m->port > 0 || m->port_file.empty()) continue;
    if (int port = ReadPortFile(m->port_file); port > 0) {
      m->port = port;
      m->replica->port.store(port);
      Write(*m, now_ms);
    }
  }
  // Not ready in time: a crash. The group is killed; the next Tick reaps it.
  for (auto& m : replicas_) {
    if (m->state != Managed::State::kStarting || m->pid <= 0 || !m->kill_cause.empty()) continue;
    if (now_ms - m->started_ms < m->ready_timeout_ms) continue;
    m->kill_cause = "was not ready within " + Ms(m->ready_timeout_ms);
    SignalIfSameProcess(m->pid, m->start_time, SIGKILL);
  }
  // Readiness polls, all due ones in one bounded round.
  std::vector<Managed*> due;
  std::vector<int> ports;
  for (auto& m : replicas_) {
    bool polled = m->state == Managed::State::kStarting || m->state == Managed::State::kReady ||
                  m->state == Managed::State::kUnready;
    if (!polled || m->leaving || m->pid <= 0 || m->port <= 0 || !m->kill_cause.empty() || m->next_probe_ms > now_ms)
      continue;
    due.push_back(m.get());
    ports.push_back(m->port);
  }
  if (!due.empty()) {
    std::vector<bool> ready = probe_->Probe(ports, options_.probe_timeout_ms);
    for (size_t i = 0; i < due.size(); ++i) {
      Managed& m = *due[i];
      bool ok = i < ready.size() && ready[i];
      if (ok) {
        m.probe_failures = 0;
        if (m.state != Managed::State::kReady) {
          if (m.state == Managed::State::kStarting) m.ready_ms = now_ms;
          m.state = Managed::State::kReady;
          m.replica->port.store(m.port);
          m.replica->in_rotation.store(m.replica->ejected_until_ms.load() <= now_ms);
          Write(m, now_ms);
        } else if (!m.replica->in_rotation.load() && m.replica->ejected_until_ms.load() <= now_ms) {
          m.replica->in_rotation.store(true);  // back from an ejection
        }
      } else if (m.state == Managed::State::kReady && ++m.probe_failures >= options_.unready_after) {
        m.state = Managed::State::kUnready;
        m.replica->in_rotation.store(false);
        Write(m, now_ms);
      }
      m.next_probe_ms =
          now_ms + (m.state == Managed::State::kStarting ? options_.starting_poll_ms : options_.health_interval_ms);
    }
  }
  Converge(now_ms);
}

void Supervisor::Converge(int64_t now_ms) {
  // What is no longer desired leaves; an old revision leaves as the new
  // set becomes ready: of a version with N desired replicas of which R are
  // ready (or were, and are now unready), at most N - R old ones stay.
  std::map<std::pair<std::string, std::string>, int> new_ready;
  for (auto& m : replicas_) {
    if (m->leaving) continue;
    auto it = desired_.find({m->service, m->version.name});
    if (stopping_all_ || it == desired_.end()) {
      Leave(*m, now_ms);
      continue;
    }
    const store::ServiceVersionState& d = it->second.version;
    if (m->version.revision == d.revision) {
      if (m->slot >= d.replicas) Leave(*m, now_ms);
      else if (m->state == Managed::State::kReady || m->state == Managed::State::kUnready)
        ++new_ready[it->first];
    }
  }
  for (auto& [key, d] : desired_) {
    std::vector<Managed*> old;
    for (auto& m : replicas_)
      if (!m->leaving && m->service == key.first && m->version.name == key.second &&
          m->version.revision != d.version.revision)
        old.push_back(m.get());
    int keep = std::max(0, d.version.replicas - new_ready[key]);
    // The highest slots leave first.
    std::sort(old.begin(), old.end(), [](const Managed* a, const Managed* b) { return a->slot > b->slot; });
    for (size_t i = 0; static_cast<int>(old.size() - i) > keep; ++i) Leave(*old[i], now_ms);
  }
  // Restarts whose backoff is over.
  for (size_t i = 0; i < replicas_.size(); ++i) {
    Managed& m = *replicas_[i];
    if (!m.leaving && m.state == Managed::State::kBackoff && m.pid == 0 && m.restart_at_ms <= now_ms) Launch(m, now_ms);
  }
  // Leaving: drain, SIGTERM, SIGKILL; forgotten once the process is gone.
  for (size_t i = 0; i < replicas_.size();) {
    Managed& m = *replicas_[i];
    if (!m.leaving) {
      ++i;
      continue;
    }
    if (m.pid == 0) {
      Forget(i);
      continue;
    }
    if (m.state == Managed::State::kDraining || m.state == Managed::State::kStarting ||
        m.state == Managed::State::kReady || m.state == Managed::State::kUnready) {
      if (m.replica->outstanding.load() <= 0 || now_ms - m.drain_since_ms >= options_.drain_timeout_ms) {
        SignalIfSameProcess(m.pid, m.start_time, SIGTERM);
        m.state = Managed::State::kStopping;
        m.term_at_ms = now_ms;
      }
    } else if (m.state == Managed::State::kStopping && !m.kill_sent && now_ms - m.term_at_ms >= options_.grace_ms) {
      SignalIfSameProcess(m.pid, m.start_time, SIGKILL);
      m.kill_sent = true;
    }
    ++i;
  }
}

void Supervisor::StopAll(int64_t now_ms) {
  stopping_all_ = true;
  desired_.clear();
  Converge(now_ms);
}

std::vector<std::shared_ptr<Replica>> Supervisor::Replicas(const std::string& service,
                                                           const std::string& version) const {
  std::vector<const Managed*> list;
  for (const auto& m : replicas_)
    if (!m->leaving && m->service == service && m->version.name == version) list.push_back(m.get());
  std::sort(list.begin(), list.end(), [](const Managed* a, const Managed* b) {
    return a->slot != b->slot ? a->slot < b->slot : a->version.revision < b->version.revision;
  });
  std::vector<std::shared_ptr<Replica>> out;
  for (const Managed* m : list) out.push_back(m->replica);
  return out;
}

bool Supervisor::HasReplicas(const std::string& service, const std::string& version) const {
  return std::any_of(replicas_.begin(), replicas_.end(),
                     [&](const auto& m) { return m->service == service && m->version.name == version; });
}

std::vector<Supervisor::Snapshot> Supervisor::Snapshots() const {
  std::vector<Snapshot> out;
  for (const auto& m : replicas_) {
    Snapshot s;
    s.row.service = m->service;
    s.row.version = m->version.name;
    s.row.slot = m->slot;
    s.row.revision = m->version.revision;
    s.row.pid = m->pid;
    s.row.start_time = m->start_time;
    s.row.port = m->port;
    s.row.state = m->StateName();
    s.row.restarts = m->restarts;
    s.row.last_exit = m->last_exit;
    s.row.log_path = m->log_path;
    s.row.started_ms = m->started_ms;
    s.row.ready_ms = m->ready_ms;
    s.leaving = m->leaving;
    s.restart_at_ms = m->restart_at_ms;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace sluice::serving
