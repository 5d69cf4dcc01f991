#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "exec/process.h"

namespace sluice::exec {

namespace {

// Owns the posix_spawn attribute objects for one call.
struct SpawnSetup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
};

}  // namespace

ChildEnd DecodeWaitStatus(int status) {
  if (WIFSIGNALED(status)) return {128 + WTERMSIG(status), WTERMSIG(status)};
  return {WEXITSTATUS(status), 0};
}

ChildEnd WaitChild(int pid) {
  int status = 0;
  while (true) {
    pid_t r = ::waitpid(pid, &status, 0);
    if (r == pid) return DecodeWaitStatus(status);
    if (r < 0 && errno == EINTR) continue;
    return {-1, 0};
  }
}

std::optional<ChildEnd> PollChild(int pid) {
  int status = 0;
  pid_t r;
  while ((r = ::waitpid(pid, &status, WNOHANG)) < 0 && errno == EINTR) {
  }
  if (r != pid) return std::nullopt;
  return DecodeWaitStatus(status);
}

bool ChildEnded(int pid) {
  siginfo_t info{};
  int r;
  while ((r = ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT)) < 0 && errno == EINTR) {
  }
  return r == 0 && info.si_pid == pid;
}

Status CheckSpawn(const std::string& program, const std::vector<std::string>& argv, const std::string& workdir) {
  if (argv.empty() || argv[0].empty()) return Status::StepFailed("empty command");
  struct stat st;
  if (::stat(workdir.c_str(), &st) != 0) return Status::FromErrno("workdir " + workdir, errno);
  if (!S_ISDIR(st.st_mode)) return Status::StepFailed("workdir " + workdir + ": not a directory");
  if (program.empty()) return Status::StepFailed("command not found: " + argv[0]);
  return Status::Ok();
}

Result<int> Spawn(const SpawnRequest& r) {
  Status startable = CheckSpawn(r.program, r.argv, r.workdir);
  if (!startable.ok()) return startable;

  SpawnSetup s;
  if (r.stdin_fd >= 0) posix_spawn_file_actions_adddup2(&s.actions, r.stdin_fd, 0);
  else posix_spawn_file_actions_addopen(&s.actions, 0, "/dev/null", O_RDONLY, 0);  // never the orchestrator's
  posix_spawn_file_actions_adddup2(&s.actions, r.output_fd, 1);
  posix_spawn_file_actions_adddup2(&s.actions, r.output_fd, 2);
  if (r.channel_fd >= 0) posix_spawn_file_actions_adddup2(&s.actions, r.channel_fd, 3);
  // Nothing else of ours: a descriptor opened without O_CLOEXEC (Asio's
  // listening and connected sockets, for one) would otherwise keep a
  // server's port or a connection alive in the child.
  posix_spawn_file_actions_addclosefrom_np(&s.actions, r.channel_fd >= 0 ? 4 : 3);
  posix_spawn_file_actions_addchdir_np(&s.actions, r.workdir.c_str());

  // Signals we catch or block must reach the step in their default state.
  sigset_t mask, defaults;
  sigemptyset(&mask);
  sigemptyset(&defaults);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&s.attr, &mask);
  posix_spawnattr_setsigdefault(&s.attr, &defaults);
  posix_spawnattr_setpgroup(&s.attr, 0);
  posix_spawnattr_setflags(&s.attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> argv, envp;
  for (const std::string& a : r.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const std::string& e : r.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid;
  int rc = posix_spawn(&pid, r.program.c_str(), &s.actions, &s.attr, argv.data(), envp.data());
  if (rc != 0) {
    if (rc == ENOENT) return Status::StepFailed("command not found: " + r.argv[0]);
    if (rc == EACCES) return Status::StepFailed("permission denied: " + r.argv[0]);
    if (rc == ENOEXEC) return Status::StepFailed("not an executable: " + r.argv[0]);
    return Status::FromErrno("start " + r.argv[0], rc);
  }
  return static_cast<int>(pid);
}

std::string ResolveProgram(const std::string& name, const std::string& path, const std::string& workdir) {
  if (name.find('/') != std::string::npos) return name[0] == '/' ? name : workdir + "/" + name;
  std::stringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
    struct stat st;
    if (::access(candidate.c_str(), X_OK) == 0 && ::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode))
      return candidate;
  }
  return "";
}

int64_t ProcessStartTime(int pid) {
  if (pid <= 0) return 0;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(f, stat)) return 0;
  // The command name (field 2) may hold spaces and parentheses; fields
  // after it start past the last ')'.
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22; ++i) {
    if (!(rest >> field)) return 0;
    if (i == 3 && field == "Z") return 0;  // a zombie is not running
  }
  return std::stoll(field);
}

bool StartedWithEnvironment(int pid, const std::vector<std::string>& markers) {
  if (pid <= 0 || ::getpgid(pid) != pid) return false;
  std::ifstream f("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  std::string env((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (env.empty()) return false;
  for (const std::string& m : markers) {
    std::string entry = m + '\0';
    if (env.compare(0, entry.size(), entry) != 0 && env.find('\0' + entry) == std::string::npos) return false;
  }
  return true;
}

std::vector<int> FindProcessesStartedWith(const std::vector<std::string>& markers) {
  std::vector<int> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    int pid = std::stoi(name);
    if (StartedWithEnvironment(pid, markers)) found.push_back(pid);
  }
  return found;
}

bool SameProcessAlive(int pid, int64_t start_time) {
  return start_time != 0 && ProcessStartTime(pid) == start_time;
}

}  // namespace sluice::exec
