// Attempt rendering: from a step's spec to the request for one attempt of
// it, apart from running it. Two pieces:
//  - StepContext: what the `${{ }}` expressions of a step (or of one
//    foreach item) see: params, env, item, steps.<id>.state, .exit_code and
//    .outputs, run.state and run.failed_steps (finally steps),
//    run.scheduled_time and run.interval_start/_end, and the status
//    functions success(), failure(), always(), cancelled().
//  - AttemptRenderer: the files of an attempt (log, $SLUICE_OUTPUT, outputs
//    folder, state folder), its placement, and its environment: sluice's own
//    without the pipeline's secrets, the pipeline's env, the step's env, the
//    SLUICE_* variables and the secrets the step asks for.
// The command itself is rendered by RenderStep (fingerprint.h), which also
// gives `sluice plan` the identity a step would have.
//
// Nothing here touches the store, the executor or a file: the Engine
// (engine.h) calls these and does the I/O. Both are used on the engine's
// thread only. StepContext borrows everything in its RunScope, which must
// outlive it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/env.h"
#include "engine/executor.h"
#include "engine/fingerprint.h"
#include "engine/plan.h"
#include "engine/run_graph.h"
#include "engine/types.h"
#include "spec/expr.h"
#include "util/status.h"

namespace sluice::engine {

// The run as expressions see it. Borrowed; `cancelling` is read at each call.
struct RunScope {
  const Plan* plan = nullptr;
  const spec::ParamValues* params = nullptr;
  const RunGraph* graph = nullptr;                               // the steps' records
  const std::map<std::string, std::string>* pipeline_env = nullptr;  // rendered so far
  const bool* cancelling = nullptr;
  Env* env = nullptr;                                            // env.NAME not in the pipeline's env
  FileSystem* files = nullptr;                                   // hashFiles(); null: not available
  const std::string* spec_dir = nullptr;                         // absolute: hashFiles() globs are relative to it
  const bool* timed_out = nullptr;                               // the run's timeout passed (null: never)
  const std::optional<DataInterval>* interval = nullptr;         // run.scheduled_time, run.interval_*
};

// What expressions of one step (or foreach item) can see.
class StepContext : public spec::EvalContext {
 public:
  // `unit`: the record of the unit whose attempt is rendered (null when
  // deciding a step: then `item` is not defined). `inputs`, if given,
  // collects every artifact the expressions read.
  StepContext(const RunScope& run, size_t node, const StepRecord* unit, std::vector<LineageEdge>* inputs = nullptr)
      : run_(run), node_(node), unit_(unit), inputs_(inputs) {}

  Result<spec::Value> Lookup(const std::vector<std::string>& path) const override;
  bool StatusFunction(std::string_view name) const override;
  Result<std::string> HashFiles(const std::vector<std::string>& patterns) const override;

 private:
  // Some step this one depends on, directly or not, failed.
  bool UpstreamFailed() const;

  const RunScope& run_;
  size_t node_;
  const StepRecord* unit_;
  std::vector<LineageEdge>* inputs_;
};

// The files of one attempt, in one folder per run (creating files and
// folders is what costs most per step on some disks):
// <log_dir>/<step>[.<item>].<attempt>.log and .out ($SLUICE_OUTPUT, which
// the step creates if it sets outputs), .files (declared outputs), and
// <step>[.<item>].state, kept across attempts (checkpoints).
struct AttemptPaths {
  std::string log, output, files_dir, state_dir;
};
AttemptPaths PathsOf(const std::string& log_dir, const std::string& step_id, int item, int attempt);
// The same from a recorded attempt's log path (an adopted attempt).
AttemptPaths PathsOfLog(const std::string& log_path);

// Where an attempt runs and with what, from the step's spec.
Placement PlacementOf(const spec::Step& s);

class AttemptRenderer {
 public:
  AttemptRenderer(const spec::Pipeline& pipeline, int64_t run_id, std::string log_dir)
      : pipeline_(pipeline), run_id_(run_id), log_dir_(std::move(log_dir)) {}

  // Takes sluice's environment ("NAME=value" entries; a step gets it without
  // the pipeline's secrets, specs/pipeline.md) and renders the pipeline's
  // env with `ctx`, whose env.NAME may read the entries rendered before it
  // (pipeline_env()). Call once, before any attempt. An error names the
  // entry: "env NAME: ...".
  Status SetEnvironment(const std::vector<std::string>& sluice_env, const spec::EvalContext& ctx);
  // The pipeline's env, rendered.
  const std::map<std::string, std::string>& pipeline_env() const { return pipeline_env_; }

  // The request for attempt `attempt` (1, 2, ...) of `unit` (a step's
  // record, or a foreach item's) from its rendered step: command or plugin
  // call, workdir, log, placement, label. Its env is not set yet.
  AttemptRequest Request(const spec::Step& s, const StepRecord& unit, int attempt, const RenderedStep& rendered,
                         AttemptPaths* paths) const;
  // Sets the request's whole environment: sluice's (secrets left out), the
  // pipeline's and step's env, $SLUICE_OUTPUTS_DIR (if `outputs_dir`), the
  // SLUICE_* variables, the step's secrets and a shell line's ${{ }} values,
  // later ones winning; the secrets' values also go to req->secrets. Error
  // (InvalidSpec): a secret the step asks for is not in sluice's environment.
  Status SetEnv(const spec::Step& s, const StepRecord& unit, int attempt, const RenderedStep& rendered,
                const AttemptPaths& paths, bool outputs_dir, AttemptRequest* req) const;
  // The PATH entry ("PATH=...") SetEnv gives an attempt of `rendered`, if
  // any: all that finding its command needs.
  std::optional<std::string> PathEntry(const RenderedStep& rendered) const;

 private:
  const spec::Pipeline& pipeline_;
  int64_t run_id_;
  std::string log_dir_;
  std::map<std::string, std::string> pipeline_env_;              // the pipeline's env, rendered
  std::vector<std::pair<std::string, std::string>> base_env_;    // name, "NAME=value": every step's start
  std::map<std::string, std::string> sluice_env_;                // sluice's environment, secrets included
};

}  // namespace sluice::engine
