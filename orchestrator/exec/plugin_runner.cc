#include "exec/plugin_runner.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "exec/builtin.h"
#include "exec/process.h"
#include "util/json.h"

namespace sluice::exec {

namespace {

std::string Str(sluice_str s) { return s.data ? std::string(s.data, s.size) : std::string(); }
sluice_str View(const std::string& s) { return sluice_str{s.data(), s.size()}; }

void WriteAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the other side is gone; its death is noticed elsewhere
    off += static_cast<size_t>(n);
  }
}

// The environment a warm host is started with: a step's, without the
// variables that name one attempt (a plugin gets those through its call).
std::vector<std::string> HostEnvironment(const std::vector<std::string>& env) {
  std::vector<std::string> out;
  for (const std::string& e : env)
    if (e.rfind("SLUICE_", 0) != 0 || e.rfind("SLUICE_HOME=", 0) == 0) out.push_back(e);
  return out;
}

}  // namespace

void PluginReport::Write(const std::string& text) {
  if (text.empty()) return;
  log.Write(text);
}

void PluginReport::Log(const std::string& line) {
  std::string text = mask.Mask(line);
  Write(text.empty() || text.back() != '\n' ? text + "\n" : text);
}

void PluginReport::Output(std::string_view bytes) { Write(mask.Feed(bytes)); }

void PluginReport::Close() {
  Write(mask.Flush());
  log.Close();
}

engine::AttemptExit PluginReport::Exit(int64_t attempt_id) const {
  engine::AttemptExit e;
  e.attempt_id = attempt_id;
  e.metrics = metrics;
  if (status == SLUICE_STATUS_OK) {
    e.outputs = outputs;
  } else if (status == SLUICE_STATUS_CANCELLED) {
    e.exit_code = 1;
    e.cancelled = true;
  } else {
    e.exit_code = 1;
    e.reason = failure.empty() ? "the plugin failed without a message" : failure;
  }
  return e;
}

// ---------------------------------------------------------------- in process

struct InProcessRunner::Job {
  int64_t id = 0;
  const StepTypeInfo* type = nullptr;
  engine::PluginCall call;
  std::string workdir;
  std::optional<BuiltinAttempt> attempt;  // for a built-in step type
  PluginReport report;               // the worker's until the job is finished
  std::atomic<bool> cancel{false};
  std::atomic<bool> abandoned{false};
  std::mutex progress_mu;
  ProgressSink* progress = nullptr;  // GUARDED_BY(progress_mu); null once let go

  // The job's thread may outlive the sink (an abandoned plugin, a runner
  // destroyed with it running): from here on it reports to nobody.
  void LetGo() {
    std::lock_guard<std::mutex> lock(progress_mu);
    progress = nullptr;
  }
};

namespace {

template <typename J>
J* JobOf(void* host) { return static_cast<J*>(host); }

}  // namespace

InProcessRunner::Pool::Pool() : event_fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

InProcessRunner::Pool::~Pool() { ::close(event_fd); }

void InProcessRunner::Pool::Finished(std::shared_ptr<Job> job) {
  finished.push_back(std::move(job));
  uint64_t one = 1;
  ssize_t n = ::write(event_fd, &one, sizeof one);
  (void)n;
}

InProcessRunner::InProcessRunner(ProgressSink* progress) : pool_(std::make_shared<Pool>()), progress_(progress) {}

InProcessRunner::~InProcessRunner() {
  {
    std::lock_guard<std::mutex> lock(pool_->mu);
    pool_->stopping = true;
    for (auto& [id, job] : running_) job->cancel = true;
  }
  for (auto& [id, job] : running_) job->LetGo();
  pool_->cv.notify_all();
  // Workers stuck in an abandoned plugin cannot be joined; let them go.
  // Each holds the pool.
  for (std::thread& t : workers_) t.detach();
}

void InProcessRunner::Start(int64_t attempt_id, const StepTypeInfo* type, const engine::AttemptRequest& r) {
  auto job = std::make_shared<Job>();
  job->id = attempt_id;
  job->type = type;
  job->call = *r.plugin;
  job->workdir = r.workdir;
  if (type->builtin) job->attempt = BuiltinAttemptFromEnv(r.env);
  job->report.log = AttemptLog(r.log_path);
  job->report.mask = SecretMask(r.secrets);
  job->progress = progress_;
  running_[attempt_id] = job;
  if (type->nonblocking) {  // here and now: no worker to wake, no wait to be woken from
    Run(job.get());
    std::lock_guard<std::mutex> lock(pool_->mu);
    pool_->Finished(std::move(job));
    return;
  }
  bool grow;
  {
    std::lock_guard<std::mutex> lock(pool_->mu);
    pool_->queue.push_back(job);
    grow = pool_->idle == 0;
    if (!grow) --pool_->idle;
  }
  if (grow) workers_.emplace_back(Work, pool_);
  else pool_->cv.notify_one();
}

void InProcessRunner::Work(std::shared_ptr<Pool> pool) {
  std::unique_lock<std::mutex> lock(pool->mu);
  while (true) {
    pool->cv.wait(lock, [&] { return pool->stopping || !pool->queue.empty(); });
    if (pool->stopping) return;
    std::shared_ptr<Job> job = pool->queue.front();
    pool->queue.pop_front();
    lock.unlock();
    Run(job.get());
    lock.lock();
    ++pool->idle;
    pool->Finished(std::move(job));
  }
}

void InProcessRunner::Run(Job* j) {
  sluice_host host{};
  host.struct_size = sizeof(sluice_host);
  host.abi_major = SLUICE_PLUGIN_ABI_MAJOR;
  host.host = j;
  host.log = [](void* h, sluice_str line) { JobOf<Job>(h)->report.Log(Str(line)); };
  host.progress = [](void* h, double fraction, sluice_str message) {
    Job* job = JobOf<Job>(h);
    std::lock_guard<std::mutex> lock(job->progress_mu);
    if (job->progress && *job->progress) (*job->progress)(job->id, fraction, Str(message));
  };
  host.metric = [](void* h, sluice_str name, double value, int64_t index) {
    JobOf<Job>(h)->report.metrics.push_back({Str(name), value, index});
  };
  host.output = [](void* h, sluice_str key, sluice_str value) {
    JobOf<Job>(h)->report.outputs[Str(key)] = spec::Value::Str(Str(value));
  };
  host.fail = [](void* h, sluice_str message) { JobOf<Job>(h)->report.failure = Str(message); };
  host.cancelled = [](void* h) -> int32_t { return JobOf<Job>(h)->cancel.load() ? 1 : 0; };
  sluice_step_call call{};
  call.struct_size = sizeof(sluice_step_call);
  call.step_type = View(j->call.step_type);
  call.params = View(j->call.params);
  call.output_dir = View(j->call.output_dir);
  call.workdir = View(j->workdir);
  call.attempt = j->call.attempt;
  call.state_dir = View(j->call.state_dir);
  call.cpu = j->call.cpu;
  {
    BuiltinAttemptScope scope(j->attempt);
    j->report.status = j->type->run(&host, &call);
  }
  j->report.Close();
}

void InProcessRunner::Cancel(int64_t attempt_id) {
  auto it = running_.find(attempt_id);
  if (it != running_.end()) it->second->cancel = true;
}

std::optional<engine::AttemptExit> InProcessRunner::Abandon(int64_t attempt_id) {
  auto it = running_.find(attempt_id);
  if (it == running_.end()) return std::nullopt;
  it->second->cancel = true;
  it->second->abandoned = true;
  it->second->LetGo();
  running_.erase(it);
  engine::AttemptExit e;
  e.attempt_id = attempt_id;
  e.signal = SIGKILL;
  e.exit_code = 128 + SIGKILL;
  e.reason = "it ignored cancel past the grace period; its thread was abandoned";
  return e;
}

std::optional<engine::AttemptExit> InProcessRunner::TakeFinished() {
  uint64_t count;
  ssize_t n = ::read(pool_->event_fd, &count, sizeof count);
  (void)n;
  std::lock_guard<std::mutex> lock(pool_->mu);
  while (!pool_->finished.empty()) {
    std::shared_ptr<Job> job = std::move(pool_->finished.front());
    pool_->finished.pop_front();
    if (job->abandoned) continue;  // already reported
    running_.erase(job->id);
    if (!pool_->finished.empty()) {  // more to take: stay readable
      uint64_t one = 1;
      n = ::write(pool_->event_fd, &one, sizeof one);
    }
    return job->report.Exit(job->id);
  }
  return std::nullopt;
}

// ---------------------------------------------------------------- isolated

struct PluginHosts::Host {
  int pid = -1;
  int pidfd = -1;
  int socket = -1;
  int output = -1;
  std::string key;          // workdir + environment it was started with
  int64_t attempt = 0;      // the attempt it serves, 0 when idle
  std::string inbuf;
  PluginReport report;
  bool dead = false;
};

PluginHosts::PluginHosts(int null_fd, ProgressSink* progress) : null_fd_(null_fd), progress_(progress) {}

PluginHosts::~PluginHosts() {
  for (auto& h : hosts_) {
    if (h->socket >= 0) ::close(h->socket);  // an idle host leaves when its socket closes
    if (!h->dead) {
      ::kill(h->pid, SIGKILL);
      WaitChild(h->pid);
    }
    for (int fd : {h->pidfd, h->output}) if (fd >= 0) ::close(fd);
    h->report.Close();
  }
}

bool PluginHosts::Has(int64_t attempt_id) const {
  for (const auto& h : hosts_)
    if (h->attempt == attempt_id) return true;
  return false;
}

Result<int64_t> PluginHosts::Start(int64_t attempt_id, const PluginInfo& plugin, const engine::AttemptRequest& r) {
  std::vector<std::string> env = HostEnvironment(r.env);
  std::string key = r.workdir;
  for (const std::string& e : env) key += '\0' + e;
  Host* host = nullptr;
  for (auto& h : hosts_)
    if (!h->dead && h->attempt == 0 && h->key == key) {
      host = h.get();
      break;
    }
  if (!host) {
    int sv[2], out[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
      return Status::FromErrno("socketpair for a plugin host", errno);
    if (::pipe2(out, O_CLOEXEC) != 0) {
      ::close(sv[0]);
      ::close(sv[1]);
      return Status::FromErrno("pipe for a plugin host", errno);
    }
    char self[4096];
    ssize_t len = ::readlink("/proc/self/exe", self, sizeof self - 1);
    std::string program = len > 0 ? std::string(self, static_cast<size_t>(len)) : "/proc/self/exe";
    SpawnRequest spawn{program, {"sluice", "plugin-host"}, env, r.workdir, null_fd_, out[1], sv[1]};
    auto pid = Spawn(spawn);
    ::close(sv[1]);
    ::close(out[1]);
    if (!pid.ok()) {
      ::close(sv[0]);
      ::close(out[0]);
      return pid.status().WithContext("start a plugin host");
    }
    auto h = std::make_unique<Host>();
    h->pid = *pid;
    h->pidfd = static_cast<int>(::syscall(SYS_pidfd_open, *pid, 0));
    if (h->pidfd >= 0) ::fcntl(h->pidfd, F_SETFD, FD_CLOEXEC);
    h->socket = sv[0];
    h->output = out[0];
    ::fcntl(h->output, F_SETFL, O_NONBLOCK);
    h->key = std::move(key);
    host = h.get();
    hosts_.push_back(std::move(h));
  }
  host->attempt = attempt_id;
  host->report = PluginReport{};
  host->report.log = AttemptLog(r.log_path);
  host->report.mask = SecretMask(r.secrets);
  nlohmann::json msg = {{"run",
                         {{"attempt_id", attempt_id},
                          {"library", plugin.path},
                          {"plugin", plugin.name},
                          {"step_type", r.plugin->step_type},
                          {"params", r.plugin->params},
                          {"output_dir", r.plugin->output_dir},
                          {"workdir", r.workdir},
                          {"attempt", r.plugin->attempt},
                          {"state_dir", r.plugin->state_dir},
                          {"cpu", r.plugin->cpu}}}};
  if (plugin.builtin()) {
    // What names the attempt, which a warm host's environment leaves out (HostEnvironment).
    std::vector<std::string> names;
    for (const std::string& e : r.env)
      if (e.rfind("SLUICE_", 0) == 0) names.push_back(e);
    msg["run"]["attempt_env"] = names;
  }
  WriteAll(host->socket, JsonText(msg) + "\n");
  return static_cast<int64_t>(host->pid);
}

void PluginHosts::Cancel(int64_t attempt_id) {
  for (auto& h : hosts_)
    if (h->attempt == attempt_id && !h->dead) WriteAll(h->socket, nlohmann::json{{"cancel", attempt_id}}.dump() + "\n");
}

void PluginHosts::Kill(int64_t attempt_id) {
  for (auto& h : hosts_)
    if (h->attempt == attempt_id && !h->dead) ::kill(h->pid, SIGKILL);
}

void PluginHosts::AddPollFds(std::vector<pollfd>* fds, std::vector<size_t>* hosts) const {
  for (size_t i = 0; i < hosts_.size(); ++i) {
    const Host& h = *hosts_[i];
    if (h.dead) continue;
    fds->push_back({h.socket, POLLIN, 0});
    fds->push_back({h.pidfd, POLLIN, 0});
    fds->push_back({h.output, static_cast<short>(h.output >= 0 ? POLLIN : 0), 0});
    hosts->push_back(i);
  }
}

std::optional<engine::AttemptExit> PluginHosts::Handle(Host& h, const std::string& line) {
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (!j.is_object() || h.attempt == 0) return std::nullopt;
  if (j.contains("log")) h.report.Log(j["log"].get<std::string>());
  else if (j.contains("metric"))
    h.report.metrics.push_back({j["metric"].get<std::string>(), j.value("value", 0.0), j.value("index", int64_t{0})});
  else if (j.contains("output"))
    h.report.outputs[j["output"].get<std::string>()] = spec::Value::Str(j.value("value", std::string()));
  else if (j.contains("fail"))
    h.report.failure = j["fail"].get<std::string>();
  else if (j.contains("progress")) {
    if (progress_ && *progress_) (*progress_)(h.attempt, j.value("progress", 0.0), j.value("message", std::string()));
  }
  else if (j.contains("done")) {
    h.report.status = j["done"].get<int32_t>();
    h.report.Close();
    int64_t id = h.attempt;
    h.attempt = 0;
    return h.report.Exit(id);
  }
  return std::nullopt;
}

std::optional<engine::AttemptExit> PluginHosts::Died(Host& h) {
  ChildEnd end = WaitChild(h.pid);
  h.dead = true;
  for (int* fd : {&h.pidfd, &h.socket, &h.output})
    if (*fd >= 0) {
      ::close(*fd);
      *fd = -1;
    }
  h.report.Close();
  if (h.attempt == 0) return std::nullopt;
  engine::AttemptExit e;
  e.attempt_id = h.attempt;
  h.attempt = 0;
  e.signal = end.signal;
  e.exit_code = end.code;
  if (!end.signal) {
    e.exit_code = end.code == 0 ? 1 : end.code;
    e.reason = "the plugin host exited with code " + std::to_string(end.code) + " during the step";
  }
  e.metrics = h.report.metrics;
  return e;
}

std::optional<engine::AttemptExit> PluginHosts::OnReady(size_t index, short socket_events, short exit_events,
                                                         short output_events) {
  Host& h = *hosts_[index];
  if (output_events && h.output >= 0) {
    char buf[65536];
    ssize_t n;
    while ((n = ::read(h.output, buf, sizeof buf)) > 0)
      if (h.attempt) h.report.Output(std::string_view(buf, static_cast<size_t>(n)));
    if (n == 0) {
      ::close(h.output);
      h.output = -1;
    }
  }
  if (socket_events) {
    char buf[65536];
    ssize_t n = ::recv(h.socket, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) h.inbuf.append(buf, static_cast<size_t>(n));
    size_t nl;
    while ((nl = h.inbuf.find('\n')) != std::string::npos) {
      std::string line = h.inbuf.substr(0, nl);
      h.inbuf.erase(0, nl + 1);
      if (auto e = Handle(h, line)) return e;
    }
    if (n == 0 && !exit_events) {
      // The host closed its socket: it is exiting; its pidfd says when.
      pollfd p{h.pidfd, POLLIN, 0};
      ::poll(&p, 1, 1000);
      return Died(h);
    }
  }
  if (exit_events) return Died(h);
  return std::nullopt;
}

void PluginHosts::Prune() {
  std::erase_if(hosts_, [](const std::unique_ptr<Host>& h) { return h->dead && h->attempt == 0; });
}

// ---------------------------------------------------------------- the host process

namespace {

struct HostState {
  int socket = -1;
  std::mutex write_mu;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<nlohmann::json> runs;   // GUARDED_BY(mu)
  bool closed = false;               // GUARDED_BY(mu)
  int64_t cancelled = 0;             // GUARDED_BY(mu): the last attempt asked to cancel
  std::atomic<int64_t> current{0};
  std::atomic<bool> cancel{false};

  void Send(const nlohmann::json& j) {
    std::string line = JsonText(j) + "\n";
    std::lock_guard<std::mutex> lock(write_mu);
    WriteAll(socket, line);
  }
};

HostState* g_host = nullptr;

void ReadRequests(HostState* s) {
  std::string buf;
  char chunk[65536];
  while (true) {
    ssize_t n = ::read(s->socket, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buf.append(chunk, static_cast<size_t>(n));
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      auto j = nlohmann::json::parse(buf.substr(0, nl), nullptr, false);
      buf.erase(0, nl + 1);
      if (!j.is_object()) continue;
      if (j.contains("cancel")) {
        // A cancel may come before the main thread has taken its run.
        std::lock_guard<std::mutex> lock(s->mu);
        s->cancelled = j["cancel"].get<int64_t>();
        if (s->cancelled == s->current.load()) s->cancel = true;
      } else if (j.contains("run")) {
        std::lock_guard<std::mutex> lock(s->mu);
        s->runs.push_back(j["run"]);
        s->cv.notify_one();
      }
    }
  }
  // The orchestrator is gone (it closes the socket only by dying or when the
  // host is idle). A step running here must not outlive it: resume would
  // start a second copy beside it. The host leads its own process group, so
  // this takes whatever the plugin started too. Under `mu`, a run is either
  // taken before this (and `current` names it) or never.
  std::lock_guard<std::mutex> lock(s->mu);
  if (s->current.load() != 0) ::kill(0, SIGKILL);
  s->closed = true;
  s->cv.notify_one();
}

}  // namespace

int PluginHostMain(int socket_fd) {
  HostState state;
  state.socket = socket_fd;
  g_host = &state;
  std::thread reader(ReadRequests, &state);
  reader.detach();
  std::map<std::string, std::shared_ptr<PluginInfo>> loaded;
  sluice_host host{};
  host.struct_size = sizeof(sluice_host);
  host.abi_major = SLUICE_PLUGIN_ABI_MAJOR;
  host.host = &state;
  host.log = [](void* h, sluice_str line) { static_cast<HostState*>(h)->Send({{"log", Str(line)}}); };
  host.progress = [](void* h, double fraction, sluice_str message) {
    static_cast<HostState*>(h)->Send({{"progress", fraction}, {"message", Str(message)}});
  };
  host.metric = [](void* h, sluice_str name, double value, int64_t index) {
    static_cast<HostState*>(h)->Send({{"metric", Str(name)}, {"value", value}, {"index", index}});
  };
  host.output = [](void* h, sluice_str key, sluice_str value) {
    static_cast<HostState*>(h)->Send({{"output", Str(key)}, {"value", Str(value)}});
  };
  host.fail = [](void* h, sluice_str message) { static_cast<HostState*>(h)->Send({{"fail", Str(message)}}); };
  host.cancelled = [](void* h) -> int32_t { return static_cast<HostState*>(h)->cancel.load() ? 1 : 0; };
  // The attempt is over: past "done" the orchestrator may close the socket,
  // which must not look like its death during a step.
  auto done = [&state](sluice_status status) {
    state.current = 0;
    state.Send({{"done", status}});
  };
  while (true) {
    nlohmann::json run;
    {
      std::unique_lock<std::mutex> lock(state.mu);
      state.cv.wait(lock, [&] { return state.closed || !state.runs.empty(); });
      if (state.closed) return 0;  // the orchestrator is gone: run nothing more
      run = std::move(state.runs.front());
      state.runs.pop_front();
      state.current = run.value("attempt_id", int64_t{0});
      state.cancel = state.cancelled == state.current.load();
    }
    std::string library = run.value("library", std::string());
    auto it = loaded.find(library);
    if (it == loaded.end()) {
      auto p = library == kBuiltinPath ? LoadBuiltinPlugin(run.value("plugin", std::string())) : LoadPlugin(library);
      if (!p.ok()) {
        state.Send({{"fail", p.status().message()}});
        done(SLUICE_STATUS_FAILED);
        continue;
      }
      it = loaded.emplace(library, std::move(*p)).first;
    }
    std::string type_id = run.value("step_type", std::string());
    const StepTypeInfo* type = it->second->Find(type_id);
    if (!type) {
      state.Send({{"fail", "plugin " + it->second->name + " has no step type '" + type_id + "'"}});
      done(SLUICE_STATUS_FAILED);
      continue;
    }
    std::string params = run.value("params", std::string("{}"));
    std::string output_dir = run.value("output_dir", std::string());
    std::string workdir = run.value("workdir", std::string());
    sluice_step_call call{};
    call.struct_size = sizeof(sluice_step_call);
    call.step_type = View(type_id);
    call.params = View(params);
    call.output_dir = View(output_dir);
    call.workdir = View(workdir);
    call.attempt = run.value("attempt", 1);
    std::string state_dir = run.value("state_dir", std::string());
    call.state_dir = View(state_dir);
    call.cpu = run.value("cpu", 1);
    sluice_status status;
    {
      BuiltinAttemptScope scope(
          BuiltinAttemptFromEnv(run.value("attempt_env", std::vector<std::string>{})));
      status = type->run(&host, &call);
    }
    std::fflush(stdout);
    std::fflush(stderr);
    done(status);
  }
}

}  // namespace sluice::exec
