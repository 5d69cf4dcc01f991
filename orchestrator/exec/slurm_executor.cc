#include "exec/slurm_executor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "exec/local_executor.h"
#include "exec/plugin_catalog.h"
#include "exec/process.h"
#include "util/duration.h"
#include "util/json.h"
#include "util/strings.h"

extern char** environ;

namespace sluice::exec {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

struct CommandOutput {
  int code = -1;
  std::string text;  // stdout and stderr
};

// Runs a Slurm command (found on PATH) and collects what it prints.
CommandOutput RunCommand(const std::vector<std::string>& argv) {
  CommandOutput out;
  const char* path_env = std::getenv("PATH");
  std::string program = ResolveProgram(argv[0], path_env ? path_env : "/usr/bin:/bin", "/");
  if (program.empty()) {
    out.text = argv[0] + ": command not found (Debian's slurm-client package installs the Slurm commands)";
    return out;
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    out.text = std::string("pipe: ") + std::strerror(errno);
    return out;
  }
  SpawnRequest r;
  r.program = program;
  r.argv = argv;
  for (char** e = environ; *e; ++e) r.env.emplace_back(*e);
  r.workdir = "/";
  r.output_fd = fds[1];
  auto pid = Spawn(r);
  ::close(fds[1]);
  if (!pid.ok()) {
    ::close(fds[0]);
    out.text = pid.status().message();
    return out;
  }
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) out.text.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  out.code = WaitChild(*pid).code;
  while (!out.text.empty() && (out.text.back() == '\n' || out.text.back() == ' ')) out.text.pop_back();
  return out;
}

std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// --time: Slurm's own text, or a duration rounded up to whole minutes.
std::string SlurmTime(const engine::Placement& p) {
  if (!p.time.empty()) {
    if (p.time.find_first_not_of("0123456789:-") == std::string::npos) return p.time;
    if (auto d = ParseDuration(p.time)) return std::to_string(std::max<int64_t>(1, (d->count() + 59999) / 60000));
  }
  if (p.timeout) return std::to_string(std::max<int64_t>(1, (p.timeout->count() + 59999) / 60000));
  return "";
}

const std::set<std::string>& ActiveStates() {
  static const std::set<std::string> s = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED",
                                          "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT"};
  return s;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::optional<json> ReadResult(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  json j = json::parse(in, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  return j;
}

}  // namespace

SlurmExecutor::SlurmExecutor(std::string program, std::vector<std::string> plugin_folders,
                             std::function<void()> on_end, std::chrono::milliseconds poll)
    : program_(std::move(program)),
      plugin_folders_(std::move(plugin_folders)),
      poll_(poll),
      on_end_(std::move(on_end)),
      wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      monitor_([this] { Monitor(); }) {}

SlurmExecutor::~SlurmExecutor() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  monitor_.join();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void SlurmExecutor::Wake() {
  uint64_t one = 1;
  ssize_t n = ::write(wake_fd_, &one, sizeof one);
  (void)n;
}

namespace {

std::string Base(const std::string& log_path) { return log_path.substr(0, log_path.size() - std::string(".log").size()); }

// Writes the attempt's request file (and clears an old result); its path.
Result<std::string> WriteRequest(const engine::AttemptRequest& r, bool with_log,
                                 const std::vector<std::string>& plugin_folders) {
  std::string base = Base(r.log_path);
  std::error_code ec;
  fs::create_directories(fs::path(r.log_path).parent_path(), ec);
  fs::remove(base + ".result", ec);
  json req = {{"argv", r.argv}, {"env", r.env}, {"workdir", r.workdir}, {"result", base + ".result"}};
  if (with_log) req["log"] = r.log_path;  // an array task opens its own log
  if (r.plugin) {  // run on the node by a plugin host, as isolation: process does here
    const auto& c = *r.plugin;
    req["plugin"] = {{"plugin", c.plugin},         {"step_type", c.step_type}, {"params", c.params},
                     {"output_dir", c.output_dir}, {"state_dir", c.state_dir}, {"cpu", c.cpu},
                     {"attempt", c.attempt},       {"log_path", r.log_path},   {"label", r.step_label}};
    req["plugin_folders"] = plugin_folders;
  }
  // 0600: it holds the step's environment.
  std::string path = base + ".request.json", text = JsonText(req);
  ::unlink(path.c_str());
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Status::FromErrno("write " + path, errno);
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  int close_rc = ::close(fd);
  if (off < text.size() || close_rc != 0) return Status::IoError("write " + path);
  return path;
}

// sbatch's arguments for a placement, before the script.
std::vector<std::string> SbatchArgs(const engine::AttemptRequest& r, const std::string& name) {
  const auto& p = r.placement;
  std::vector<std::string> argv = {"sbatch", "--parsable", "--job-name=sluice." + name, "--chdir=" + r.workdir,
                                   "--cpus-per-task=" + std::to_string(p.cpu)};
  if (!p.memory.empty()) argv.push_back("--mem=" + p.memory);
  if (p.gpu > 0) argv.push_back("--gres=gpu:" + std::to_string(p.gpu));
  if (!p.partition.empty()) argv.push_back("--partition=" + p.partition);
  if (!p.account.empty()) argv.push_back("--account=" + p.account);
  if (!p.qos.empty()) argv.push_back("--qos=" + p.qos);
  if (std::string t = SlurmTime(p); !t.empty()) argv.push_back("--time=" + t);
  argv.insert(argv.end(), p.extra.begin(), p.extra.end());
  return argv;
}

// Runs sbatch; the job id, or sbatch's message.
Result<std::string> Submit(const std::vector<std::string>& argv) {
  CommandOutput out = RunCommand(argv);
  std::string id = out.text.substr(0, out.text.find(';'));
  if (out.code != 0 || id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
    return Status::StepFailed("sbatch: " + (out.text.empty() ? "exit code " + std::to_string(out.code) : out.text));
  return id;
}

Status WriteScript(const std::string& path, const std::string& what, const std::string& program, const std::string& args) {
  std::ofstream f(path);
  f << "#!/bin/sh\n# " << what << ": written by sluice; the commands and their values are in the request files\n"
    << "exec " << ShellQuote(program) << " exec-step " << args << "\n";
  if (!f) return Status::IoError("write " + path);
  return Status::Ok();
}

// The step of a foreach item's label: "shard[3]" -> "shard".
std::string StepOfLabel(const std::string& label) { return label.substr(0, label.find('[')); }

bool SamePlacement(const engine::Placement& a, const engine::Placement& b) {
  return a.executor == b.executor && a.cpu == b.cpu && a.memory == b.memory && a.gpu == b.gpu &&
         a.partition == b.partition && a.account == b.account && a.qos == b.qos && a.time == b.time &&
         a.extra == b.extra && a.timeout == b.timeout;
}

}  // namespace

Result<engine::Started> SlurmExecutor::Start(const engine::AttemptRequest& r) {
  auto request = WriteRequest(r, false, plugin_folders_);
  if (!request.ok()) return request.status();
  std::string base = Base(r.log_path);
  Status st = WriteScript(base + ".sbatch", r.step_label, program_, ShellQuote(*request));
  if (!st.ok()) return st;
  std::vector<std::string> argv = SbatchArgs(r, r.step_label);
  argv.insert(argv.end(), {"--output=" + r.log_path, "--open-mode=append", base + ".sbatch"});
  auto id = Submit(argv);
  if (!id.ok()) return id.status();
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_[r.attempt_id] = Job{*id, base + ".result", false};
  }
  cv_.notify_all();
  engine::Started s;
  s.job_id = "slurm:" + *id;
  return s;
}

std::vector<Result<engine::Started>> SlurmExecutor::StartAll(const std::vector<const engine::AttemptRequest*>& requests) {
  std::vector<Result<engine::Started>> out(requests.size(), Result<engine::Started>(engine::Started{}));
  std::vector<bool> done(requests.size(), false);
  for (size_t i = 0; i < requests.size(); ++i) {
    if (done[i]) continue;
    const engine::AttemptRequest& first = *requests[i];
    // Items of one foreach step with the same placement that start together: one job array.
    std::vector<size_t> group = {i};
    bool item = first.step_label.find('[') != std::string::npos;
    if (!first.plugin && item)
      for (size_t j = i + 1; j < requests.size(); ++j)
        if (!done[j] && StepOfLabel(requests[j]->step_label) == StepOfLabel(first.step_label) &&
            SamePlacement(requests[j]->placement, first.placement) && requests[j]->workdir == first.workdir &&
            !requests[j]->plugin)
          group.push_back(j);
    if (group.size() == 1) {
      out[i] = Start(first);
      done[i] = true;
      continue;
    }
    std::string list_path = Base(first.log_path) + ".array";
    std::string list;
    Status st;
    for (size_t k : group) {
      auto request = WriteRequest(*requests[k], true, plugin_folders_);
      if (!request.ok()) {
        st = request.status();
        break;
      }
      list += *request + "\n";
    }
    if (st.ok()) {
      std::ofstream f(list_path);
      f << list;
      if (!f) st = Status::IoError("write " + list_path);
    }
    if (st.ok()) st = WriteScript(list_path + ".sbatch", StepOfLabel(first.step_label) + " (array)", program_,
                                  "--array " + ShellQuote(list_path));
    Result<std::string> id = st.ok() ? Result<std::string>(std::string()) : Result<std::string>(st);
    if (st.ok()) {
      std::vector<std::string> argv = SbatchArgs(first, StepOfLabel(first.step_label));
      argv.insert(argv.end(), {"--array=0-" + std::to_string(group.size() - 1), "--output=/dev/null", list_path + ".sbatch"});
      id = Submit(argv);
    }
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t t = 0; t < group.size(); ++t) {
      size_t k = group[t];
      done[k] = true;
      if (!id.ok()) {
        out[k] = id.status();
        continue;
      }
      std::string task = *id + "_" + std::to_string(t);
      jobs_[requests[k]->attempt_id] = Job{task, Base(requests[k]->log_path) + ".result", false};
      engine::Started s;
      s.job_id = "slurm:" + task;
      out[k] = s;
    }
  }
  cv_.notify_all();
  return out;
}

Status SlurmExecutor::Adopt(const engine::AttemptRecord& a) {
  if (a.job_id.rfind("slurm:", 0) != 0)
    return Status::NotFound("attempt " + std::to_string(a.id) + " was no Slurm job (job id '" + a.job_id + "')");
  std::string base = a.log_path.substr(0, a.log_path.size() - std::string(".log").size());
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_[a.id] = Job{a.job_id.substr(6), base + ".result", false};
  }
  cv_.notify_all();
  return Status::Ok();
}

void SlurmExecutor::Stop(int64_t attempt_id, bool hard) {
  std::string id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = jobs_.find(attempt_id);
    if (it == jobs_.end()) return;  // ended already
    it->second.stopping = true;
    id = it->second.id;
  }
  if (hard) RunCommand({"scancel", "--signal=KILL", "--full", id});
  else RunCommand({"scancel", id});
}

std::optional<engine::AttemptExit> SlurmExecutor::Wait(engine::TimePoint deadline) {
  auto pop = [this]() -> std::optional<engine::AttemptExit> {
    std::lock_guard<std::mutex> lock(mu_);
    if (ended_.empty()) return std::nullopt;
    engine::AttemptExit e = std::move(ended_.front());
    ended_.pop_front();
    return e;
  };
  if (auto e = pop()) return e;
  auto now = std::chrono::steady_clock::now();
  int timeout_ms = 0;
  if (deadline > now)
    timeout_ms = static_cast<int>(
        std::min<int64_t>(std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count(), 60000));
  pollfd p{wake_fd_, POLLIN, 0};
  if (timeout_ms > 0) ::poll(&p, 1, timeout_ms);
  uint64_t v;
  ssize_t n = ::read(wake_fd_, &v, sizeof v);  // non-blocking: clears the count if set
  (void)n;
  return pop();  // empty: woken by Wake(), or the deadline passed
}

namespace {

// Whether a job's result shows its step stopped by a signal: the exec-step
// was told to stop, or the step died of one, or its shell said so (128+N).
// A step's shell may see Slurm's SIGTERM before the exec-step does, and
// exit 143 with nothing marked: then only Slurm's state says why.
bool KilledBySignal(const json& result) {
  return result.value("terminated", false) || result.value("signal", 0) != 0 || result.value("exit_code", 0) >= 128;
}

}  // namespace

engine::AttemptExit SlurmExecutor::Finish(int64_t attempt_id, const Job& job, const std::string& state) {
  engine::AttemptExit e;
  e.attempt_id = attempt_id;
  auto result = ReadResult(job.result_path);
  // Killed by a signal: by us, or by Slurm (then its state says why).
  bool killed = result && KilledBySignal(*result);
  if (result && (!killed || job.stopping || state.empty() || state == "COMPLETED" || state == "FAILED")) {
    e.exit_code = result->value("exit_code", 1);
    e.signal = result->value("signal", 0);
    e.reason = result->value("reason", std::string());
    e.cancelled = result->value("cancelled", false);
    if (result->contains("outputs") && (*result)["outputs"].is_object()) {  // plugin steps
      engine::Outputs outputs;
      for (auto& [k, v] : (*result)["outputs"].items()) outputs[k] = spec::Value::FromJson(v);
      e.outputs = std::move(outputs);
    }
    if (result->contains("metrics"))
      for (const auto& m : (*result)["metrics"])
        e.metrics.push_back({m.value("name", std::string()), m.value("value", 0.0),
                             m.value("index", m.value("step", int64_t{0}))});  // "step": a job an older sluice ran
    return e;
  }
  if (job.stopping) {  // our scancel: the engine words the reason
    e.exit_code = 128 + SIGTERM;
    e.signal = SIGTERM;
    return e;
  }
  e.exit_code = 1;
  if (state == "CANCELLED") e.reason = "Slurm: CANCELLED (scancel from outside sluice) of job " + job.id;
  else if (state == "TIMEOUT") e.reason = "Slurm: TIMEOUT (job " + job.id + " reached its time limit)";
  else if (!state.empty()) e.reason = "Slurm: " + state + " (job " + job.id + ")";
  else e.reason = "Slurm forgot job " + job.id + " before sluice saw it end, and it left no result";
  return e;
}

void SlurmExecutor::Monitor() {
  std::unique_lock<std::mutex> lock(mu_);
  int tick = 0;
  const auto step = std::chrono::milliseconds(20);  // result files: cheap to look for
  while (!quit_) {
    cv_.wait_for(lock, step);
    if (quit_) break;
    if (jobs_.empty()) continue;
    // Ended jobs that wrote a clean result are reported at once; one that
    // looks killed waits for Slurm's state, which says by what.
    std::vector<int64_t> done;
    for (auto& [attempt, job] : jobs_) {
      auto result = ReadResult(job.result_path);
      if (result && !KilledBySignal(*result)) done.push_back(attempt);
    }
    bool ask = ++tick * step >= poll_;
    std::map<int64_t, std::string> states;
    if (ask && done.size() < jobs_.size()) {
      tick = 0;
      std::map<std::string, int64_t> by_job;
      std::string ids;
      for (auto& [attempt, job] : jobs_) {
        by_job[job.id] = attempt;
        ids += (ids.empty() ? "" : ",") + job.id;
      }
      lock.unlock();
      CommandOutput out =
          RunCommand({"squeue", "--noheader", "--array", "--states=all", "--format=%i|%T", "--jobs=" + ids});
      if (out.code != 0) {  // a job Slurm already forgot makes squeue refuse the list: ask one by one
        out.text.clear();
        for (auto& [job, attempt] : by_job) {
          CommandOutput one =
              RunCommand({"squeue", "--noheader", "--array", "--states=all", "--format=%i|%T", "--jobs=" + job});
          if (one.code == 0) out.text += one.text + "\n";
          else states[attempt] = "";  // gone
        }
      }
      lock.lock();
      std::istringstream lines(out.text);
      for (std::string line; std::getline(lines, line);) {
        size_t bar = line.find('|');
        if (bar == std::string::npos) continue;
        std::string id = Trim(line.substr(0, bar)), state = Trim(line.substr(bar + 1));
        auto it = by_job.find(id);
        if (it != by_job.end() && !ActiveStates().count(state)) states[it->second] = state;
      }
    }
    for (int64_t a : done) states.emplace(a, "");
    bool any = false;
    for (auto& [attempt, state] : states) {
      auto it = jobs_.find(attempt);
      if (it == jobs_.end()) continue;
      ended_.push_back(Finish(attempt, it->second, state));
      jobs_.erase(it);
      any = true;
    }
    if (any) {
      Wake();
      if (on_end_) on_end_();
    }
  }
}

// --- sluice exec-step ----------------------------------------------------

namespace {
volatile sig_atomic_t g_child = 0;
volatile sig_atomic_t g_terminated = 0;
void ForwardTerm(int) {
  g_terminated = 1;
  if (g_child > 0) ::kill(-g_child, SIGTERM);
}
}  // namespace

namespace {
LocalExecutor* g_plugin_executor = nullptr;

// The result file, whole or not at all: the executor may read it any moment.
void WriteResult(const std::string& path, const json& result) {
  std::string tmp = path + ".tmp";
  std::ofstream(tmp) << result.dump();
  std::rename(tmp.c_str(), path.c_str());
}

void StopPlugin(int) {
  g_terminated = 1;
  if (g_plugin_executor) g_plugin_executor->Wake();
}

// A plugin step on the node: a plugin host, as `isolation: process` runs it
// locally; its outputs and metrics go into the result file.
int RunPluginStep(const json& req) {
  std::string result_path = req.value("result", std::string());
  const json& c = req["plugin"];
  std::string name = c.value("plugin", std::string());
  PluginCatalog catalog = PluginCatalog::LoadFor(req.value("plugin_folders", std::vector<std::string>{}), {name});
  LocalExecutor local(&catalog);
  engine::AttemptRequest a;
  a.attempt_id = 1;
  engine::PluginCall call;
  call.plugin = name;
  call.step_type = c.value("step_type", std::string());
  call.params = c.value("params", std::string("{}"));
  call.output_dir = c.value("output_dir", std::string());
  call.state_dir = c.value("state_dir", std::string());
  call.cpu = c.value("cpu", 1);
  call.attempt = c.value("attempt", 1);
  call.isolated = true;
  a.plugin = call;
  a.env = req.value("env", std::vector<std::string>{});
  a.workdir = req.value("workdir", std::string("."));
  a.log_path = c.value("log_path", std::string());
  a.step_label = c.value("label", name);
  auto started = local.Start(a);
  if (!started.ok()) {
    std::fprintf(stderr, "sluice: %s\n", started.status().message().c_str());
    WriteResult(result_path, {{"exit_code", 1}, {"signal", 0}, {"reason", started.status().message()}});
    return 1;
  }
  g_plugin_executor = &local;
  struct sigaction sa {};
  sa.sa_handler = StopPlugin;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  bool stopping = false;
  std::optional<engine::AttemptExit> e;
  while (!e) {
    if (g_terminated && !stopping) {
      local.Stop(1, false);
      stopping = true;
    }
    e = local.Wait(std::chrono::steady_clock::now() + std::chrono::seconds(1));
  }
  g_plugin_executor = nullptr;
  json outputs = json::object();
  if (e->outputs)
    for (const auto& [k, v] : *e->outputs) outputs[k] = v.ToJson();
  json metrics = json::array();
  for (const auto& m : e->metrics) metrics.push_back({{"name", m.name}, {"value", m.value}, {"index", m.index}});
  WriteResult(result_path, {{"exit_code", e->exit_code}, {"signal", e->signal}, {"reason", e->reason},
                            {"cancelled", e->cancelled}, {"outputs", outputs}, {"metrics", metrics},
                            {"terminated", g_terminated != 0}});
  return e->exit_code;
}
}  // namespace

int ExecStepMain(const std::string& path, bool array) {
  std::string request_path = path;
  if (array) {  // a job array's task: its request is line $SLURM_ARRAY_TASK_ID of the list
    const char* task = std::getenv("SLURM_ARRAY_TASK_ID");
    std::ifstream list(path);
    std::string line;
    for (long i = task ? std::atol(task) : -1; i >= 0 && std::getline(list, line); --i) request_path = line;
    if (!task || request_path == path) {
      std::fprintf(stderr, "sluice exec-step: no request for array task %s in %s\n", task ? task : "(none)", path.c_str());
      return 2;
    }
  }
  std::ifstream in(request_path);
  json req = in ? json::parse(in, nullptr, false) : json();
  if (req.is_object() && req.contains("plugin")) return RunPluginStep(req);
  if (!req.is_object() || !req.contains("argv") || !req["argv"].is_array() || req["argv"].empty()) {
    std::fprintf(stderr, "sluice exec-step: cannot read the request %s\n", request_path.c_str());
    return 2;
  }
  SpawnRequest r;
  r.argv = req["argv"].get<std::vector<std::string>>();
  r.env = req.value("env", std::vector<std::string>{});
  for (char** e = environ; *e; ++e)  // what Slurm tells the job: SLURM_JOB_ID, SLURM_CPUS_PER_TASK, ...
    if (std::strncmp(*e, "SLURM_", 6) == 0) r.env.emplace_back(*e);
  r.workdir = req.value("workdir", std::string("."));
  std::string path_env = "/usr/local/bin:/usr/bin:/bin";
  for (const std::string& e : r.env)
    if (e.rfind("PATH=", 0) == 0) path_env = e.substr(5);
  r.program = ResolveProgram(r.argv[0], path_env, r.workdir);
  std::string result_path = req.value("result", std::string());
  auto write_result = [&](int code, int sig) {
    WriteResult(result_path, {{"exit_code", code}, {"signal", sig}, {"terminated", g_terminated != 0}});
  };
  if (r.program.empty()) {
    std::fprintf(stderr, "sluice: command not found: %s\n", r.argv[0].c_str());
    write_result(127, 0);
    return 127;
  }
  struct sigaction sa {};
  sa.sa_handler = ForwardTerm;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  r.output_fd = STDOUT_FILENO;  // the job's output file: the attempt's log
  if (req.contains("log")) {    // an array task writes to its own attempt's log
    int fd = ::open(req["log"].get<std::string>().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) r.output_fd = fd;
  }
  auto pid = Spawn(r);
  if (!pid.ok()) {
    std::fprintf(stderr, "sluice: %s\n", pid.status().message().c_str());
    write_result(127, 0);
    return 127;
  }
  g_child = *pid;
  if (g_terminated) ::kill(-*pid, SIGTERM);
  ChildEnd end = WaitChild(*pid);
  write_result(end.code, end.signal);
  return end.code;
}

}  // namespace sluice::exec
