// Processes on POSIX: spawning a child in its own process group with stdin
// from /dev/null, reaping it and decoding how it ended, and telling whether a
// recorded pid still names the same process. Thread-safe: no state of its own.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "util/status.h"

namespace sluice::exec {

struct SpawnRequest {
  std::string program;             // the file to run (see ResolveProgram)
  std::vector<std::string> argv;
  std::vector<std::string> env;    // "KEY=value"
  std::string workdir;
  int stdin_fd = -1;               // becomes the child's stdin; -1: /dev/null
  int output_fd = -1;              // becomes the child's stdout and stderr
  int channel_fd = -1;             // if set, becomes the child's fd 3 (a plugin host's socket)
};

// Starts the command with posix_spawn (vfork-like: no copy of our memory,
// and nothing slow happens between the fork and the exec): its own process
// group (so the terminal's Ctrl-C does not reach it and a timeout can signal
// the whole tree), default signal dispositions and an empty signal mask,
// and no descriptor of ours beyond 0, 1, 2 (and 3, the channel, if given).
// Returns the pid, or an error naming the cause: "command not found: foo",
// "workdir /x: No such file or directory".
Result<int> Spawn(const SpawnRequest& r);

// The causes Spawn() finds before it starts anything (an empty command, a
// workdir that is missing or not a folder, an empty `program`: not found),
// with its words; Ok if none holds.
Status CheckSpawn(const std::string& program, const std::vector<std::string>& argv, const std::string& workdir);

// How a child ended, from a waitpid() status: its exit code, or for a
// signal the signal and 128 + it, as a shell reports it.
struct ChildEnd {
  int code = 0;
  int signal = 0;  // 0: it exited
};
ChildEnd DecodeWaitStatus(int status);

// The reaper: every child of ours (steps, plugin hosts, Slurm commands,
// `sluice exec-step`'s command, `sluice serve`'s run drivers) is reaped by
// one of these three, nowhere else by waitpid. Whoever spawned a child reaps
// it, once; none of them touches another's children.
//
// Blocks until the child `pid` ends, reaps it and says how it ended. A signal
// that interrupts the wait does not end it (EINTR is retried). For a pid that
// is not an unreaped child of ours: code -1, signal 0.
ChildEnd WaitChild(int pid);
// Reaps the child `pid` if it has ended; nullopt while it runs, and for a pid
// that is not an unreaped child of ours. Never blocks.
std::optional<ChildEnd> PollChild(int pid);
// True if the child `pid` has ended, without reaping it: the zombie keeps the
// pid, and so its process group id, from being reused (LocalExecutor kills
// the group's stragglers before WaitChild). Never blocks.
bool ChildEnded(int pid);

// The file `name` names for a step: searched on `path` (the step's PATH) if
// it has no '/', else relative to `workdir`. An empty string if not found.
std::string ResolveProgram(const std::string& name, const std::string& path, const std::string& workdir);

// The process's start time in clock ticks after boot (field 22 of
// /proc/PID/stat), or 0 if there is no such process. A pid with the same
// start time is the same process; a different one is a reused pid.
int64_t ProcessStartTime(int pid);

// True if `pid` runs and started at `start_time`.
bool SameProcessAlive(int pid, int64_t start_time);

// True if `pid` is alive, leads its own process group and was started with
// every one of `markers` ("KEY=value") in its environment: how `sluice
// resume` recognises a step process of its own among reused pids.
bool StartedWithEnvironment(int pid, const std::vector<std::string>& markers);

// Every process for which StartedWithEnvironment(pid, markers) holds.
std::vector<int> FindProcessesStartedWith(const std::vector<std::string>& markers);

}  // namespace sluice::exec
