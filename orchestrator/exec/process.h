// Processes on POSIX: spawning a step's command in its own process group,
// and telling whether a recorded pid still names the same process.
#pragma once

#include <string>
#include <vector>

#include "util/status.h"

namespace sluice::exec {

struct SpawnRequest {
  std::vector<std::string> argv;   // argv[0] searched on PATH when it has no '/'
  std::vector<std::string> env;    // "KEY=value"
  std::string workdir;
  std::string log_path;            // stdout and stderr, opened for append
};

// Starts the command with posix_spawn (vfork-like, no copy of our memory):
// stdin from /dev/null, stdout and stderr appended to the log, its own
// process group (so the terminal's Ctrl-C does not reach it and a timeout
// can signal the whole tree), default signal dispositions and mask.
// Returns the pid, or an error naming the cause: "command not found: foo",
// "workdir /x: No such file or directory".
Result<int> Spawn(const SpawnRequest& r);

// The process's start time in clock ticks after boot (field 22 of
// /proc/PID/stat), or 0 if there is no such process. A pid with the same
// start time is the same process; a different one is a reused pid.
int64_t ProcessStartTime(int pid);

// True if `pid` runs and started at `start_time`.
bool SameProcessAlive(int pid, int64_t start_time);

}  // namespace sluice::exec
