#include "server/launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "exec/process.h"

extern char** environ;

namespace sluice::server {

namespace fs = std::filesystem;

namespace {
int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}
// SetRunState is a journal write: Flush commits it.
Status MarkFailed(store::Store& store, int64_t id) {
  Status st = store.SetRunState(id, engine::RunState::kFailed, NowMs());
  return st.ok() ? store.Flush() : st;
}
}  // namespace

Launcher::Launcher(std::string home, std::string program)
    : home_(std::move(home)), program_(std::move(program)), reaper_([this] { Reap(); }) {}

Launcher::~Launcher() { Stop(std::chrono::seconds(10)); }

std::string Launcher::DriverLog(int64_t run_id) const {
  return home_ + "/logs/" + std::to_string(run_id) + "/driver.log";
}

Result<int64_t> Launcher::Start(store::Store& store, const spec::Pipeline& p, const spec::ParamValues& params,
                                const std::string& trigger) {
  fs::path spec_path = fs::absolute(p.file).lexically_normal();
  int jobs = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  auto id = store.CreateRun(p.name, p.text, spec_path.string(), spec_path.parent_path().string(),
                            spec::ParamsJson(params).dump(), jobs, NowMs(), trigger);
  if (!id.ok()) return id.status();
  Status st = Spawn(*id, {"resume", std::to_string(*id)});
  if (!st.ok()) {
    (void)MarkFailed(store, *id);  // the spawn error is what we report
    return st;
  }
  return *id;
}

Status Launcher::Retry(int64_t run_id) { return Spawn(run_id, {"retry", std::to_string(run_id)}); }

Status Launcher::Spawn(int64_t run_id, const std::vector<std::string>& args) {
  std::lock_guard<std::mutex> lock(mu_);
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
  r.output_fd = fd;
  r.stdin_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  auto pid = exec::Spawn(r);
  ::close(fd);
  if (r.stdin_fd >= 0) ::close(r.stdin_fd);
  if (!pid.ok()) return pid.status();
  children_[*pid] = run_id;
  cv_.notify_all();
  return Status::Ok();
}

void Launcher::Reap() {
  std::unique_ptr<store::Store> store;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait_for(lock, std::chrono::milliseconds(100), [this] { return stopping_ && children_.empty(); });
    if (stopping_ && children_.empty()) return;
    std::vector<int64_t> ended;
    for (auto it = children_.begin(); it != children_.end();) {
      int status = 0;
      if (::waitpid(it->first, &status, WNOHANG) == it->first) {
        ended.push_back(it->second);
        it = children_.erase(it);
      } else {
        ++it;
      }
    }
    if (ended.empty()) continue;
    cv_.notify_all();
    lock.unlock();
    if (!store) {
      auto s = store::Store::Open(home_ + "/sluice.db");
      if (s.ok()) store = std::move(*s);
    }
    for (int64_t id : ended) {
      if (!store) break;
      auto run = store->GetRun(id);
      if (!run.ok()) continue;
      bool unfinished = run->state == engine::RunState::kPending || run->state == engine::RunState::kRunning;
      bool driven = run->owner_pid != 0 && exec::SameProcessAlive(static_cast<int>(run->owner_pid), run->owner_start);
      if (unfinished && !driven) {
        Status st = MarkFailed(*store, id);
        if (!st.ok()) std::fprintf(stderr, "sluice: run %lld: %s\n", static_cast<long long>(id), st.message().c_str());
      }
    }
    lock.lock();
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
