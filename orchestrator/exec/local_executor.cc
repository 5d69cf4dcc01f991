#include "exec/local_executor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "exec/plugin_descriptor.h"
#include "exec/process.h"
#include "util/hash.h"

#include <nlohmann/json.hpp>

namespace sluice::exec {

namespace {
constexpr auto kDrainLimit = std::chrono::milliseconds(200);  // after the group is killed
}

LocalExecutor::LocalExecutor(const PluginCatalog* plugins)
    : wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      null_fd_(::open("/dev/null", O_RDONLY | O_CLOEXEC)),
      plugins_(plugins),
      in_process_(&progress_),
      hosts_(null_fd_, &progress_) {}

LocalExecutor::~LocalExecutor() {
  for (auto& [id, c] : children_) {
    ::kill(-c.pid, SIGKILL);
    WaitChild(c.pid);
    for (int fd : {c.pidfd, c.output})
      if (fd >= 0) ::close(fd);
  }
  if (wake_fd_ >= 0) ::close(wake_fd_);
  if (null_fd_ >= 0) ::close(null_fd_);
}

std::pair<const PluginInfo*, const StepTypeInfo*> LocalExecutor::TypeOf(const engine::AttemptRequest& r) const {
  const PluginInfo* plugin = r.plugin && plugins_ ? plugins_->Find(r.plugin->plugin) : nullptr;
  return {plugin, plugin ? plugin->Find(r.plugin->step_type) : nullptr};
}

namespace {

std::string PathOf(const engine::AttemptRequest& r) {
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  for (const std::string& e : r.env)
    if (e.compare(0, 5, "PATH=") == 0) path = e.substr(5);
  return path;
}

}  // namespace

Result<engine::Started> LocalExecutor::Start(const engine::AttemptRequest& r) {
  if (r.plugin) {
    auto [plugin, type] = TypeOf(r);
    if (!type) return Status::StepFailed("no plugin step type " + r.plugin->plugin + "/" + r.plugin->step_type);
    if (!r.plugin->isolated) {
      if (plugin->described()) {  // read from its descriptor: load the library now, once
        auto it = libraries_.find(plugin->path);
        if (it == libraries_.end()) {
          auto opened = OpenDescribedLibrary(*plugin);
          if (!opened.ok()) return opened.status();
          it = libraries_.emplace(plugin->path, std::move(*opened)).first;
        }
        type = it->second->Find(type->id);  // there: the library's step types are the descriptor's
      }
      in_process_.Start(r.attempt_id, type, r);
      return engine::Started{0};
    }
    auto pid = hosts_.Start(r.attempt_id, *plugin, r);
    if (!pid.ok()) return pid.status();
    return engine::Started{*pid};
  }
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return Status::FromErrno("pipe for the output of " + r.step_label, errno);
  auto pid = Spawn({Resolve(r, PathOf(r)), r.argv, r.env, r.workdir, null_fd_, pipe_fds[1]});
  ::close(pipe_fds[1]);
  if (!pid.ok()) {
    ::close(pipe_fds[0]);
    return pid.status();
  }
  ::fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
  Child c;
  c.pid = *pid;
  c.pidfd = static_cast<int>(::syscall(SYS_pidfd_open, *pid, 0));
  if (c.pidfd >= 0) ::fcntl(c.pidfd, F_SETFD, FD_CLOEXEC);
  c.output = pipe_fds[0];
  c.log = AttemptLog(r.log_path);
  c.mask = SecretMask(r.secrets);
  children_[r.attempt_id] = std::move(c);
  return engine::Started{*pid};
}

std::string LocalExecutor::Resolve(const engine::AttemptRequest& r, const std::string& path) {
  if (r.argv.empty()) return "";
  if (r.argv[0].find('/') != std::string::npos) return ResolveProgram(r.argv[0], path, r.workdir);
  std::string key = path + '\0' + r.argv[0];
  auto it = programs_.find(key);
  if (it != programs_.end()) return it->second;
  std::string found = ResolveProgram(r.argv[0], path, r.workdir);
  if (!found.empty()) programs_[key] = found;
  return found;
}

Status LocalExecutor::CheckStart(const engine::AttemptRequest& r) {
  if (r.plugin) return Status::Ok();
  std::string path = PathOf(r);
  std::string key = path;
  key.append(1, '\0').append(r.workdir).append(1, '\0').append(r.argv.empty() ? "" : r.argv[0]);
  auto known = unstartable_.find(key);
  if (known != unstartable_.end()) return known->second;
  Status startable = CheckSpawn(Resolve(r, path), r.argv, r.workdir);
  if (!startable.ok()) unstartable_.emplace(std::move(key), startable);
  return startable;
}

int LocalExecutor::Slots(const engine::AttemptRequest& r) {
  const StepTypeInfo* type = TypeOf(r).second;
  if (type && !type->takes_slot) return 0;  // it only waits: no CPU of ours
  return r.placement.cpu;
}

nlohmann::json LocalExecutor::ParamsSchema(const engine::AttemptRequest& r) {
  if (!r.plugin || !plugins_) return nullptr;
  const StepTypeInfo* type = TypeOf(r).second;
  return type ? type->params_schema : nlohmann::json();
}

nlohmann::json LocalExecutor::CodeIdentity(const engine::AttemptRequest& r) {
  auto [plugin, type] = TypeOf(r);
  if (!type) return nullptr;
  auto known = code_identities_.find(type);
  if (known != code_identities_.end()) return known->second;
  nlohmann::json j;
  if (plugin->builtin()) {  // its code is the binary's: its version stands for it
    j = {{"name", plugin->name}, {"step_type", type->id}, {"revision", type->revision},
         {"builtin", "sluice " SLUICE_VERSION}};
  } else {
    auto it = library_hashes_.find(plugin->path);
    if (it == library_hashes_.end() && plugin->described())  // the catalog hashed it to check the descriptor
      it = library_hashes_.emplace(plugin->path, plugin->library_sha256).first;
    if (it == library_hashes_.end()) {
      auto h = Sha256File(plugin->path);
      it = library_hashes_.emplace(plugin->path, h.ok() ? *h : "unreadable").first;
    }
    j = {{"name", plugin->name},       {"version", plugin->version}, {"step_type", type->id},
         {"revision", type->revision}, {"library_sha256", it->second}};
  }
  return code_identities_.emplace(type, std::move(j)).first->second;
}

void LocalExecutor::Stop(int64_t attempt_id, bool hard) {
  if (in_process_.Has(attempt_id)) {
    if (!hard) in_process_.Cancel(attempt_id);
    else if (auto e = in_process_.Abandon(attempt_id)) ended_.push_back(std::move(*e));
    return;
  }
  if (hosts_.Has(attempt_id)) {
    if (hard) hosts_.Kill(attempt_id);
    else hosts_.Cancel(attempt_id);
    return;
  }
  auto it = children_.find(attempt_id);
  if (it == children_.end()) return;
  // The whole group: a shell's children get the signal too.
  ::kill(-it->second.pid, hard ? SIGKILL : SIGTERM);
}

void LocalExecutor::Wake() {
  uint64_t one = 1;
  ssize_t n = ::write(wake_fd_, &one, sizeof one);
  (void)n;
}

bool LocalExecutor::Drain(Child& c) {
  char buf[65536];
  while (c.output >= 0) {
    ssize_t n = ::read(c.output, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;
    if (n <= 0) {
      ::close(c.output);
      c.output = -1;
      c.log.Write(c.mask.Flush());
      return false;
    }
    std::string_view chunk(buf, static_cast<size_t>(n));
    if (c.mask.empty()) c.log.Write(chunk);
    else c.log.Write(c.mask.Feed(chunk));
  }
  return false;
}

std::optional<engine::AttemptExit> LocalExecutor::Reap(int64_t attempt_id) {
  Child& c = children_.at(attempt_id);
  // Has it ended? Not reaped yet: the zombie keeps the pid and so the
  // process group id from being reused while we kill the group's stragglers.
  if (!ChildEnded(c.pid)) return std::nullopt;
  ::kill(-c.pid, SIGKILL);
  // The rest of the output: writers are dying, so EOF comes soon, unless a
  // process left the group (setsid) and holds the pipe; then stop waiting.
  auto until = std::chrono::steady_clock::now() + kDrainLimit;
  while (Drain(c)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now()).count();
    if (left <= 0) break;
    pollfd p{c.output, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(left));
  }
  ChildEnd end = WaitChild(c.pid);
  for (int fd : {c.pidfd, c.output})
    if (fd >= 0) ::close(fd);
  c.log.Close();
  children_.erase(attempt_id);
  engine::AttemptExit e;
  e.attempt_id = attempt_id;
  e.signal = end.signal;
  e.exit_code = end.code;
  return e;
}

std::optional<engine::AttemptExit> LocalExecutor::Wait(engine::TimePoint deadline) {
  std::optional<engine::AttemptExit> e = WaitForEnd(deadline);
  if (e) unstartable_.clear();  // what it did may have made what was missing
  return e;
}

std::optional<engine::AttemptExit> LocalExecutor::WaitForEnd(engine::TimePoint deadline) {
  std::vector<pollfd> fds;
  enum class What { kWake, kExit, kOutput, kInProcess, kHost };
  std::vector<std::pair<What, int64_t>> what;
  std::vector<size_t> hosts;
  while (true) {
    if (!ended_.empty()) {
      engine::AttemptExit e = std::move(ended_.front());
      ended_.pop_front();
      return e;
    }
    fds.clear();
    what.clear();
    hosts.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    what.push_back({What::kWake, 0});
    fds.push_back({in_process_.ready_fd(), POLLIN, 0});
    what.push_back({What::kInProcess, 0});
    size_t first_host = fds.size();
    hosts_.AddPollFds(&fds, &hosts);
    for (size_t i = 0; i < hosts.size(); ++i)
      for (int k = 0; k < 3; ++k) what.push_back({What::kHost, static_cast<int64_t>(i)});
    bool any_without_pidfd = false;
    for (auto& [id, c] : children_) {
      if (c.pidfd >= 0) {
        fds.push_back({c.pidfd, POLLIN, 0});
        what.push_back({What::kExit, id});
      } else {
        any_without_pidfd = true;
      }
      if (c.output >= 0) {
        fds.push_back({c.output, POLLIN, 0});
        what.push_back({What::kOutput, id});
      }
    }
    if (any_without_pidfd)
      for (auto& [id, c] : children_)
        if (c.pidfd < 0)
          if (auto e = Reap(id)) return e;
    auto now = std::chrono::steady_clock::now();
    int timeout_ms = 0;
    if (deadline > now) {
      auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
      timeout_ms = static_cast<int>(std::min<int64_t>(ms, 60000));
    }
    if (any_without_pidfd) timeout_ms = std::min(timeout_ms, 10);
    int n = ::poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0) return std::nullopt;  // EINTR: let the engine look at its flags
    if (n > 0) {
      std::optional<engine::AttemptExit> ended;
      for (size_t k = 0; k < hosts.size(); ++k) {
        size_t at = first_host + 3 * k;
        if (!(fds[at].revents | fds[at + 1].revents | fds[at + 2].revents)) continue;
        auto e = hosts_.OnReady(hosts[k], fds[at].revents, fds[at + 1].revents, fds[at + 2].revents);
        if (!e) continue;
        if (ended) ended_.push_back(std::move(*e));
        else ended = std::move(e);
      }
      hosts_.Prune();
      if (ended) return ended;
      if (fds[1].revents)
        if (auto e = in_process_.TakeFinished()) return e;
      for (size_t i = 0; i < fds.size(); ++i)
        if (fds[i].revents && what[i].first == What::kOutput) Drain(children_.at(what[i].second));
      for (size_t i = 0; i < fds.size(); ++i) {
        if (!fds[i].revents) continue;
        if (what[i].first == What::kWake) {
          uint64_t v;
          ssize_t r = ::read(wake_fd_, &v, sizeof v);
          (void)r;
          return std::nullopt;
        }
        if (what[i].first == What::kExit)
          if (auto e = Reap(what[i].second)) return e;
      }
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
  }
}

}  // namespace sluice::exec
