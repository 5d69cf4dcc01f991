// Attempt end: what an attempt comes to once it is over, apart from the
// builder's bookkeeping (slots, timers, retries, events). Two ways to end:
//  - it ran and exited: JudgeExit turns the exit and why the engine stopped
//    it (if it did) into a state and a reason, with the outputs it set;
//    MaskSecrets hides its secrets in them; PublishOutputs publishes its
//    declared outputs and registers the model it names;
//  - it is a cache hit: WhyNotReuse says whether a cache entry may stand in
//    for it, RegisterModels registers the entry's model again.
//
// Nothing here decides a retry, signals a process or emits an event: the
// Engine (engine.h) calls these in its journal's order. Writes go to the
// RunStore and files are read through the Env given; both are borrowed for
// the call. Used on the engine's thread only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/env.h"
#include "engine/executor.h"
#include "engine/run_store.h"
#include "engine/types.h"
#include "spec/pipeline.h"
#include "util/secrets.h"
#include "util/status.h"

namespace sluice::engine {

// Why the engine stopped an attempt, if it did.
struct StopCause {
  // kRunTimeout: the run's own `timeout:` passed while the attempt ran.
  // kService: the engine stopped a service (the steps that need it are
  // final, or it was not ready in time); the engine judges that end itself.
  enum class Kind { kNone, kTimeout, kCancel, kRunTimeout, kService } kind = Kind::kNone;
  bool killed = false;       // it was sent SIGKILL
  bool hard_cancel = false;  // the run is cancelled with SIGKILL at once
  Millis run_timeout{0};     // the run's timeout, for kRunTimeout's reason
};

// What an ended attempt comes to.
struct AttemptVerdict {
  StepState state = StepState::kFailed;  // kSucceeded, kFailed or kCancelled
  std::string reason;                    // empty when it succeeded
  std::optional<Outputs> outputs;        // set only when it succeeded
};

// Judges an attempt of `step` that ended with `exit` (its reason already
// masked). A stop by the engine comes first, then a signal, then the exit
// code; an attempt that exited 0 succeeds with the outputs it reported, or
// for a subprocess step with $SLUICE_OUTPUT at `output_path` read through
// `env`, and fails if those are too large or do not parse.
AttemptVerdict JudgeExit(const spec::Step& step, const AttemptExit& exit, const StopCause& stop,
                         const std::string& output_path, Env& env);

// A duration as a spec writes it (2h, 1h30m, 500ms), not rounded as
// FormatDuration does.
std::string SpecDuration(Millis d);

// "the run's timeout of 2h passed": why the run's timeout stopped a step.
std::string RunTimeoutReason(Millis timeout);

// "SIGSEGV", or "signal N" for a number with no name.
std::string SignalName(int sig);

// Masks the secrets of `mask` in the string values of `outputs` and in the
// $SLUICE_OUTPUT file at `output_path` (rewritten only if it changes; best
// effort). Does nothing if the mask is empty.
void MaskSecrets(const SecretMask& mask, Outputs* outputs, const std::string& output_path, Env& env);

// Where an attempt's declared outputs go.
struct OutputSink {
  RunStore* store = nullptr;
  ArtifactPublisher* artifacts = nullptr;  // null: a file output is an Internal error
  Env* env = nullptr;
  Clock* clock = nullptr;                  // when a model version is registered
  int64_t run_id = 0;
};

// Publishes the declared outputs of `step`'s succeeded attempt `attempt`
// from its folder `files_dir`, in the order they are declared: a value must
// be in *outputs; a file or folder is published and its URI set in *outputs;
// a metrics output's numbers are appended to *metrics as well. Then saves
// the attempt's produced lineage and registers the model the step names.
// The step's own fault (an output missing, not a regular file or folder, a
// metrics file that is not a JSON object, a publish that failed) is set in
// *failure, with nothing saved; a Status that is not ok is the store's.
Status PublishOutputs(const spec::Step& step, const AttemptRecord& attempt, const std::string& files_dir,
                      const OutputSink& sink, Outputs* outputs, std::vector<Metric>* metrics, std::string* failure);

// Registers the artifact of `produced` named by `step`'s register.output as
// a new version of its model (or finds the version it is), recorded as made
// by attempt `attempt_id` (step `step_id` of run `run_id`), and sets
// outputs["registered"] to "name@version". Nothing if the step registers none.
Status RegisterModels(const spec::Step& step, const std::vector<LineageEdge>& produced, int64_t run_id,
                      const std::string& step_id, int64_t attempt_id, RunStore& store, Clock& clock, Outputs* outputs);

// Why cache entry `hit` may not stand in for an attempt of `step` at wall
// time `now_ms`, as the warning the engine shows: it is older than the
// step's cache max_age, or an artifact it produced is missing or changed
// (checked through `artifacts`; without one, every artifact is). Empty if it
// may.
std::string WhyNotReuse(const spec::Step& step, const CachedResult& hit, int64_t now_ms,
                        const ArtifactPublisher* artifacts);

}  // namespace sluice::engine
