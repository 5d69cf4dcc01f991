// Running a command for a benchmark: wall time, peak RSS and exit code.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

extern char** environ;

namespace bench {

struct Measure {
  double seconds = 0;
  // User and system CPU of the process and of the children it waited for
  // (a build's commands, a run's steps): the work done, which a busy
  // machine stretches less than the wall time.
  double cpu_seconds = 0;
  long max_rss_kb = 0;
  int code = 0;
};

// Starts argv (argv[0] searched on PATH) in `dir` (here if empty), with
// extra "K=V" entries on top of our environment; stdout and stderr go to
// `output`. Exits the benchmark if it cannot start.
inline pid_t Spawn(const std::vector<std::string>& args, const std::filesystem::path& dir,
                   const std::vector<std::string>& extra_env = {}, const std::string& output = "/dev/null") {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  env.insert(env.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> envp, argv;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> a = args;
  for (auto& s : a) argv.push_back(s.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, output.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  if (!dir.empty()) posix_spawn_file_actions_addchdir_np(&fa, dir.c_str());
  pid_t pid;
  if (posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), envp.data()) != 0) {
    std::fprintf(stderr, "cannot start %s\n", argv[0]);
    std::exit(1);
  }
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

// Runs it to the end (as Spawn, output to /dev/null).
inline Measure Run(const std::vector<std::string>& args, const std::filesystem::path& dir,
                   const std::vector<std::string>& extra_env = {}) {
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = Spawn(args, dir, extra_env);
  int status;
  rusage ru;
  wait4(pid, &status, 0, &ru);
  Measure m;
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  m.max_rss_kb = ru.ru_maxrss;
  m.cpu_seconds = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  m.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return m;
}

// Run(), exiting the benchmark if the command failed.
inline Measure RunOk(const std::vector<std::string>& args, const std::filesystem::path& dir,
                     const std::vector<std::string>& extra_env = {}) {
  Measure m = Run(args, dir, extra_env);
  if (m.code != 0) {
    std::fprintf(stderr, "%s %s exited with %d\n", args[0].c_str(), args.size() > 1 ? args[1].c_str() : "", m.code);
    std::exit(1);
  }
  return m;
}

// The middle of `v` (the mean of the two middle values for an even count); 0 for none.
inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace bench
