// Executor: how the engine gets a step attempt run somewhere. The engine
// starts attempts, asks for them to stop, and waits for them to end; it
// knows nothing of processes. It also asks how many of its slots an attempt
// takes (Slots(), ninja's CanRunMore): the executor knows what uses this
// machine's CPUs, the engine keeps the count. In exec/: LocalExecutor
// (subprocesses, plugin steps on threads or in plugin hosts), SlurmExecutor
// (batch jobs), and RoutingExecutor, which composes them by Placement and is
// the one the engine gets; tests use a scripted fake.
//
// Threading: every method but Wake() is called from the engine's thread.
// Wake() may be called from any thread and from a signal handler.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/types.h"
#include "util/status.h"

namespace sluice::engine {

// A plugin step's attempt.
struct PluginCall {
  std::string plugin;       // the plugin's name
  std::string step_type;    // its step type's id
  std::string params;       // the resolved `with:`, a JSON object
  std::string output_dir;   // the attempt's folder for files (created by the step if it wants it)
  std::string state_dir;    // kept across the step's attempts in a run (created by the step if it wants it)
  int cpu = 1;              // resources.cpu
  bool isolated = true;     // in a plugin-host process (else on a thread of ours)
  int attempt = 1;
};

// Where an attempt runs and with what: the step's executor, resources and
// Slurm settings (the local executor uses none of it but cpu).
struct Placement {
  std::string executor = "local";   // local or slurm: exec::RoutingExecutor::Route reads it
  int cpu = 1;
  std::string memory;               // 16G; empty: not asked for
  int gpu = 0;
  std::string partition, account, qos, time;
  std::vector<std::string> extra;   // more sbatch arguments
  std::optional<std::chrono::milliseconds> timeout;
};

struct AttemptRequest {
  int64_t attempt_id = 0;
  std::optional<PluginCall> plugin;                        // set for `uses:` steps; then argv is empty
  std::vector<std::string> argv;                           // argv[0] is searched on PATH if it has no '/'
  std::vector<std::string> env;                            // the whole environment, "KEY=value"
  std::string workdir;                                     // absolute
  std::string log_path;                                    // stdout and stderr, appended
  std::string step_label;                                  // "train" or "shard[2]", for fakes and messages
  std::vector<std::string> secrets;                        // values to show as *** in the log
  Placement placement;
};

struct Metric {
  std::string name;
  double value = 0;
  int64_t index = 0;  // the epoch or batch it was measured at; orders values of one name
};

struct AttemptExit {
  int64_t attempt_id = 0;
  int exit_code = 0;   // the child's exit status, or 128 + signal number
  int signal = 0;      // the signal that ended it, 0 if it exited
  // Plugin steps: why it failed (the plugin's message) when exit_code != 0,
  // whether the plugin itself stopped on cancel, what it set and measured.
  std::string reason;
  bool cancelled = false;
  std::optional<Outputs> outputs;  // subprocess steps: none, the engine reads $SLUICE_OUTPUT
  std::vector<Metric> metrics;
};

// A service's readiness check that the executor makes itself (the `run`
// check is an attempt-like request started with Start()).
struct ServiceCheck {
  enum class Kind { kTcp, kHttp } kind = Kind::kTcp;
  int port = 0;            // on 127.0.0.1
  std::string http_path;   // kHttp: GET this, ready on a 2xx or 3xx status
};

struct Started {
  int64_t pid = 0;        // 0 when the executor has no process to show
  std::string job_id;     // a cluster's id for it ("slurm:1234"), if any
};

class Executor {
 public:
  virtual ~Executor() = default;
  // Starts an attempt. A Status error means it never ran ("command not
  // found: foo"); no AttemptExit will follow for it.
  virtual Result<Started> Start(const AttemptRequest& request) = 0;
  // Starts attempts that became ready together; an executor may start them
  // as one (Slurm: a job array). One result per request, in order.
  virtual std::vector<Result<Started>> StartAll(const std::vector<const AttemptRequest*>& requests) {
    std::vector<Result<Started>> out;
    for (const AttemptRequest* r : requests) out.push_back(Start(*r));
    return out;
  }
  // Asks a running attempt to stop: politely (SIGTERM to its whole process
  // group) or not (SIGKILL). Its AttemptExit still arrives through Wait().
  virtual void Stop(int64_t attempt_id, bool hard) = 0;
  // Blocks until an attempt ends, `deadline` passes, or Wake() is called.
  virtual std::optional<AttemptExit> Wait(TimePoint deadline) = 0;
  // Makes a blocked Wait() return early. Async-signal-safe.
  virtual void Wake() = 0;
  // How many of the run's slots (--jobs) an attempt of `request` holds while
  // it runs: the CPUs it takes on this machine. 0 for work that runs
  // elsewhere (a cluster queues it) or only waits (a built-in step type that
  // sleeps on a timer, exec/builtin.h). The engine asks once per step (or
  // foreach item), before it renders the attempt: only request.placement and
  // request.plugin's plugin, step_type and isolated are set then. The engine
  // caps the answer at its slots, so a step asking more than --jobs runs alone.
  virtual int Slots(const AttemptRequest& request) { return request.placement.cpu; }
  // What identifies the code a request would run, beyond its command line:
  // for a plugin step, the plugin's name, version, step type revision and
  // the hash of its library. Null when there is nothing more.
  virtual nlohmann::json CodeIdentity(const AttemptRequest&) { return nullptr; }
  // The JSON Schema of a plugin step's params (null when unknown): the engine
  // checks the rendered `with:` against it and fills in its defaults.
  virtual nlohmann::json ParamsSchema(const AttemptRequest&) { return nullptr; }
  // What would make Start() fail at once, found without starting anything
  // (a program not on PATH, a missing workdir). The engine asks before the
  // attempt is recorded (the request has no attempt_id yet), so an attempt
  // that cannot start is written once, ended, with no commit of its own.
  // Ok: Start() may go on.
  virtual Status CheckStart(const AttemptRequest&) { return Status::Ok(); }
  // Services (specs/pipeline.md "Services"): a TCP port of 127.0.0.1 that no
  // one listens on now, for a service attempt to listen on. An error: this
  // executor runs no services.
  virtual Result<int> ServicePort() { return Status::Internal("this executor runs no services"); }
  // Whether the check passes now. Bounded: it blocks at most about a second.
  virtual bool ServiceReady(const ServiceCheck&) { return false; }
  // Takes over an attempt a previous orchestrator started elsewhere (a
  // cluster job, by attempt.job_id) and left running: its AttemptExit will
  // come through Wait() like any other. An error: it cannot be followed.
  virtual Status Adopt(const AttemptRecord& attempt) {
    return Status::NotFound("attempt " + std::to_string(attempt.id) + " cannot be adopted here");
  }
};

// Time as the engine sees it; tests substitute a fake that Wait() advances.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint Now() = 0;        // monotonic, for deadlines
  virtual int64_t WallMs() = 0;       // milliseconds since the epoch, for records
};

class SystemClock : public Clock {
 public:
  TimePoint Now() override { return std::chrono::steady_clock::now(); }
  int64_t WallMs() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace sluice::engine
