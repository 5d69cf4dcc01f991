// The words the engine, the store and the CLI share: states of runs and
// steps, and the records the engine writes for every transition.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "spec/value.h"

namespace sluice::engine {

using TimePoint = std::chrono::steady_clock::time_point;

// kQueued: `sluice serve` recorded the run but a max_active_runs cap keeps
// it from starting yet.
enum class RunState { kPending, kRunning, kSucceeded, kFailed, kCancelled, kQueued };

// The data interval of a run a schedule or `sluice backfill` started, in
// Unix milliseconds: from the schedule's previous fire time (`start_ms`) to
// the fire time the run is for (`end_ms`, its scheduled time), as Airflow's
// data_interval_start and data_interval_end.
struct DataInterval {
  int64_t start_ms = 0, end_ms = 0;
  friend bool operator==(const DataInterval&, const DataInterval&) = default;
};
// A step's (or a foreach item's, or an attempt's) state. kCached is reserved
// for the caching issue; kLost marks an attempt whose orchestrator died.
enum class StepState { kPending, kRunning, kSucceeded, kFailed, kSkipped, kCached, kCancelled, kLost };

const char* Name(RunState s);
const char* Name(StepState s);
std::optional<RunState> ParseRunState(const std::string& s);
std::optional<StepState> ParseStepState(const std::string& s);
// Succeeded, failed, skipped, cached or cancelled: nothing more will happen.
bool IsFinal(StepState s);

using Outputs = std::map<std::string, spec::Value>;

// One of the run's outputs (the spec's top-level `outputs:`), as rendered
// once the run's steps were all final.
struct RunOutputValue {
  std::string name;
  std::optional<std::string> value;  // none: absent; `reason` says why
  std::string reason;
  friend bool operator==(const RunOutputValue&, const RunOutputValue&) = default;
};

// The state of one step of a run (item == -1) or of one item of a foreach
// step (item >= 0). A plain step has only its item == -1 record.
struct StepRecord {
  std::string step_id;
  int item = -1;
  StepState state = StepState::kPending;
  int tries = 0;       // attempts counted against the retry limit (reset by `retry`)
  int attempts = 0;    // attempts ever made; the next attempt's number is attempts + 1
  spec::Value item_value;                 // foreach items: the item
  std::optional<spec::List> items;        // foreach steps: the expanded list
  Outputs outputs;
  std::string reason;                     // why it failed, was skipped or cancelled
  // steps.<id>.exit_code: the last attempt's exit code, null when it did not
  // exit by itself (a signal ended it, or it never started); a foreach
  // step's is the list of its items', in item order. Not a column of its
  // own: the store reads it from the step's last attempt.
  spec::Value exit_code;
  // A service's (steps.<id>.port): the loopback port of its current
  // attempt; null before one started. Not stored: a resumed service gets a
  // new port.
  spec::Value port;
};

// One try of a step (or of a foreach item).
struct AttemptRecord {
  int64_t id = 0;
  int64_t run_id = 0;
  std::string step_id;
  int item = -1;
  int number = 0;                          // 1, 2, ... per step item
  StepState state = StepState::kRunning;   // running, then succeeded/failed/cancelled/lost
  std::string reason;                      // "exit code 3", "timed out after 5s", ...
  int exit_code = -1;                      // 0..255, 128+signal, or -1 if it never ran
  int64_t pid = 0;
  std::string job_id;                      // "slurm:1234" for an attempt a cluster ran
  int64_t started_ms = 0, finished_ms = 0; // wall clock, milliseconds since the epoch
  std::string log_path;
  std::string fingerprint;                 // SHA-256 of `identity` (caching)
  std::string identity;                    // JSON: the code, values and inputs the attempt ran with
};

// An artifact as the lineage records it.
struct ArtifactRef {
  std::string hash;    // hex SHA-256 of the content
  std::string kind;    // file, dir, dataset, model, metrics
  int64_t size = 0;
  std::string uri;     // where the published copy is
  // A published file's inode, size, modification and change times when
  // its content was hashed ("ino:size:mtime_ns:ctime_ns"); empty for a
  // folder, or when not known. While the file's stamp is still this, its
  // content is still its hash: writing it, or even changing its mode,
  // moves its change time, which no tool can set back.
  std::string stamp;
};

// An edge between an attempt and an artifact.
struct LineageEdge {
  enum class Role { kConsumed, kProduced, kReused };  // reused: a cached attempt's outputs
  Role role;
  std::string name;    // the output's name, or "<step>.<output>" for an input
  ArtifactRef artifact;
};
const char* Name(LineageEdge::Role r);

// A finished attempt whose results a cache hit reuses.
struct CachedResult {
  int64_t attempt_id = 0;
  int64_t run_id = 0;
  std::string step_id;
  int64_t finished_ms = 0;   // when that attempt ended: the result's age (cache max_age)
  Outputs outputs;
  std::vector<LineageEdge> produced;
};

}  // namespace sluice::engine
