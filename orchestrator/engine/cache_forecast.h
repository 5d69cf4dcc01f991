// CacheForecast: what `sluice plan` says about each step with cache on,
// before anything runs, like `dvc status`: whether a run now would take it
// from the cache, and if not, why (the input that changed since the step's
// latest result).
//
// The forecast computes the identity a step would have now (fingerprint.h)
// the way the engine does: params, the pipeline's env and Sluice's own
// environment are known; so are the outputs of a step forecast as cached
// (they are its cached result's). A step that reads outputs of a step that
// runs (or has no cache) depends on values known only at run time: its deps
// and the files its command names are still compared.
//
// Not thread-safe; it only reads. The Plan, the history and the options'
// pointers must outlive the call.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/executor.h"
#include "engine/fingerprint.h"
#include "engine/plan.h"
#include "engine/run_store.h"
#include "engine/types.h"

namespace sluice::engine {

// Where the forecast looks up earlier results (cli/ backs it with the store).
class ResultHistory {
 public:
  virtual ~ResultHistory() = default;
  // The newest succeeded attempt with this fingerprint, as RunStore::FindCached.
  virtual Result<std::optional<CachedResult>> FindCached(const std::string& fingerprint) = 0;
  // The last succeeded or cached attempt of the step (or foreach item) in
  // the newest run of the pipeline that has one, with its identity.
  virtual Result<std::optional<AttemptRecord>> LatestResult(const std::string& step, int item) = 0;
};

struct CacheForecast {
  // kOff: cache off, or the step is forecast as skipped.
  enum class Kind { kOff, kCached, kRuns, kAtRunTime };
  Kind kind = Kind::kOff;
  int64_t run_id = 0;  // kCached: the run whose result it reuses (the newest, for foreach items)
  std::string why;     // kRuns: the changed input ("deps changed: train.py"); kAtRunTime: what is not known yet
  // The identity each item (one for a plain step) would have now, where it
  // is known (not for an item that reads values known only at run time).
  std::vector<Fingerprint> fingerprints;
};

struct CacheForecastOptions {
  std::string spec_dir;                    // absolute: where steps run, what deps are relative to
  int64_t now_ms = 0;                      // wall clock, for max_age
  Executor* executor = nullptr;            // plugin steps' params schema and code identity; may be null
  ArtifactPublisher* artifacts = nullptr;  // checks a cached result's artifacts; null: not checked
  FileSystem* files = nullptr;             // required
};

// One forecast per step of plan.pipeline (by step index). `forecast` is
// ForecastPlan's (skipped steps get kOff). Fails only if the history does.
Result<std::vector<CacheForecast>> ForecastCache(const Plan& plan, const spec::ParamValues& params,
                                                 const std::vector<Forecast>& forecast, ResultHistory& history,
                                                 const CacheForecastOptions& options);

}  // namespace sluice::engine
