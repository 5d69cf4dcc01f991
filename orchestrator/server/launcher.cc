#include "server/launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "exec/process.h"
#include "runs/verbs.h"
#include "store/open.h"

extern char** environ;

namespace sluice::server {

namespace fs = std::filesystem;

Launcher::Launcher(std::string home, std::string program, int max_active_runs)
    : home_(std::move(home)),
      program_(std::move(program)),
      max_active_runs_(std::max(1, max_active_runs)),
      reaper_([this] { Reap(); }) {}

Launcher::~Launcher() { Stop(std::chrono::seconds(10)); }

std::string Launcher::DriverLog(int64_t run_id) const {
  return home_ + "/logs/" + std::to_string(run_id) + "/driver.log";
}

bool Launcher::HasRoomLocked(const std::string& pipeline, int cap) const {
  if (static_cast<int>(children_.size()) >= max_active_runs_) return false;
  if (cap <= 0) return true;
  int active = 0;
  for (const auto& [pid, child] : children_)
    if (child.pipeline == pipeline) ++active;
  return active < cap;
}

Status Launcher::Restore(store::RunsStore& runs) {
  auto queued = runs.QueuedRuns();
  if (!queued.ok()) return queued.status();
  std::lock_guard<std::mutex> lock(mu_);
  for (const store::RunRow& row : *queued) {
    int cap = 0;
    if (auto text = runs.SpecText(row.spec_hash); text.ok())
      if (auto p = spec::ParsePipeline(row.spec_path, *text); p.ok()) cap = p->max_active_runs;
    queue_.push_back({row.id, row.pipeline, cap, row.queued_retry});
  }
  if (!DispatchLocked(runs)) dispatch_again_ = true;
  return Status::Ok();
}

Result<int64_t> Launcher::Start(store::RunsStore& runs, const spec::Pipeline& p, const spec::ParamValues& params,
                                const std::string& trigger, const std::optional<engine::DataInterval>& interval) {
  int jobs = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // The decision and the spawn happen under one lock, so two requests cannot
  // both take the last slot. Queued runs of this pipeline go first.
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return Status::Internal("the server is stopping");
  bool ahead = std::any_of(queue_.begin(), queue_.end(), [&](const Queued& q) { return q.pipeline == p.name; });
  bool now = !ahead && HasRoomLocked(p.name, p.max_active_runs);
  runs::RunVerbs verbs(runs, home_);
  auto id = verbs.Create(p, params, jobs, trigger, !now, interval);
  if (!id.ok()) return id.status();
  if (!now) {
    queue_.push_back({*id, p.name, p.max_active_runs, false});
    return *id;
  }
  Status st = SpawnLocked(*id, p.name, {"resume", std::to_string(*id)});
  if (!st.ok()) {
    (void)verbs.FailAbandoned(*id);  // the spawn error is what we report
    return st;
  }
  return *id;
}

Result<bool> Launcher::Retry(store::RunsStore& runs, const store::RunRow& run, int pipeline_cap) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return Status::Internal("the server is stopping");
  bool ahead = std::any_of(queue_.begin(), queue_.end(), [&](const Queued& q) { return q.pipeline == run.pipeline; });
  if (!ahead && HasRoomLocked(run.pipeline, pipeline_cap)) {
    Status st = SpawnLocked(run.id, run.pipeline, {"retry", std::to_string(run.id)});
    if (!st.ok()) return st;
    return false;
  }
  auto queued = runs.QueueRetry(run.id);
  if (!queued.ok()) return queued.status();
  if (!*queued) return Status::Internal("run " + std::to_string(run.id) + " is no longer failed or cancelled");
  queue_.push_back({run.id, run.pipeline, pipeline_cap, true});
  return true;
}

void Launcher::Forget(store::RunsStore& runs, int64_t run_id) {
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(queue_, [&](const Queued& q) { return q.run_id == run_id; });
  // Until now it held back the runs of its pipeline queued behind it.
  if (!DispatchLocked(runs)) dispatch_again_ = true;
}

bool Launcher::DispatchLocked(store::RunsStore& runs) {
  for (auto it = queue_.begin(); it != queue_.end() && !stopping_;) {
    if (static_cast<int>(children_.size()) >= max_active_runs_) break;
    if (!HasRoomLocked(it->pipeline, it->cap)) {
      ++it;  // its pipeline is full; later runs of other pipelines may start
      continue;
    }
    auto claimed = runs.StartQueued(it->run_id);
    if (!claimed.ok()) {
      std::fprintf(stderr, "sluice: run %lld: %s\n", static_cast<long long>(it->run_id), claimed.status().message().c_str());
      return false;
    }
    Queued q = *it;
    it = queue_.erase(it);
    if (!*claimed) continue;  // cancelled, or started by `sluice resume`, meanwhile
    Status st = SpawnLocked(q.run_id, q.pipeline, {q.retry ? "retry" : "resume", std::to_string(q.run_id)});
    if (!st.ok()) {
      std::fprintf(stderr, "sluice: run %lld: %s\n", static_cast<long long>(q.run_id), st.message().c_str());
      if (!q.retry) (void)runs::RunVerbs(runs, home_).FailAbandoned(q.run_id);  // a retry went back to its state
    }
  }
  return true;
}

Status Launcher::SpawnLocked(int64_t run_id, const std::string& pipeline, const std::vector<std::string>& args) {
  if (stopping_) return Status::Internal("the server is stopping");
  std::string log = DriverLog(run_id);
  std::error_code ec;
  fs::create_directories(fs::path(log).parent_path(), ec);
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IoError("open " + log + ": " + std::strerror(errno));
  exec::SpawnRequest r;
  r.program = program_;
  r.argv = {program_};
  r.argv.insert(r.argv.end(), args.begin(), args.end());
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "SLUICE_HOME=", 12) != 0) r.env.emplace_back(*e);
  r.env.push_back("SLUICE_HOME=" + home_);
  r.workdir = home_;
  r.output_fd = fd;  // stdin: /dev/null, as for every child
  auto pid = exec::Spawn(r);
  ::close(fd);
  if (!pid.ok()) return pid.status();
  children_[*pid] = {run_id, pipeline};
  cv_.notify_all();
  return Status::Ok();
}

void Launcher::Reap() {
  std::unique_ptr<store::Store> store;
  auto open_store = [&] {
    if (store) return true;
    auto s = store::Store::Open(home_ + "/sluice.db");
    if (s.ok()) store = std::move(*s);
    return static_cast<bool>(store);
  };
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait_for(lock, std::chrono::milliseconds(100), [this] { return stopping_ && children_.empty(); });
    if (stopping_ && children_.empty()) return;
    std::vector<int64_t> ended;
    for (auto it = children_.begin(); it != children_.end();) {
      if (exec::PollChild(it->first)) {
        ended.push_back(it->second.run_id);
        it = children_.erase(it);
      } else {
        ++it;
      }
    }
    if (ended.empty() && !dispatch_again_) continue;
    cv_.notify_all();
    lock.unlock();
    open_store();
    for (int64_t id : ended) {
      if (!store) break;
      // Its driver exited: a run it left pending or running is failed.
      auto failed = runs::RunVerbs(store->runs(), home_).FailAbandoned(id);
      if (!failed.ok() && failed.status().code() != Code::kNotFound)
        std::fprintf(stderr, "sluice: run %lld: %s\n", static_cast<long long>(id), failed.status().message().c_str());
    }
    lock.lock();
    // A slot is free: the oldest queued runs that fit start now.
    dispatch_again_ = !store || !DispatchLocked(store->runs());
  }
}

void Launcher::Stop(std::chrono::milliseconds grace) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_ && !reaper_.joinable()) return;
    stopping_ = true;
    for (auto& [pid, run] : children_) ::kill(pid, SIGTERM);
    if (!cv_.wait_for(lock, grace, [this] { return children_.empty(); }))
      for (auto& [pid, run] : children_) ::kill(-pid, SIGKILL), ::kill(pid, SIGKILL);
  }
  if (reaper_.joinable()) reaper_.join();
}

}  // namespace sluice::server
