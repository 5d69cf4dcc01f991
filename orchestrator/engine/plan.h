// Plan: the DAG of a loaded pipeline in the shape the engine and `sluice
// plan` use it: steps by index, their needs and dependants, a topological
// order by layer, and what can be decided before running.
//
// A Plan points into the Pipeline it was made from (a non-owning handle);
// the Pipeline must outlive it.
#pragma once

#include <string>
#include <vector>

#include "spec/pipeline.h"

namespace sluice::engine {

struct Plan {
  const spec::Pipeline* pipeline = nullptr;
  std::vector<std::vector<size_t>> needs;       // by step index
  std::vector<std::vector<size_t>> dependants;  // by step index
  // Needs inside the same call with foreach (Step::item_needs), a part of
  // `needs`: item k waits for their item k alone. And the other way.
  std::vector<std::vector<size_t>> item_needs;
  std::vector<std::vector<size_t>> item_dependants;
  std::vector<int> layer;                       // 0 for steps with no needs; 1 + max of needs' layers;
                                                // finally steps come after every layer of `steps:`
  std::vector<size_t> order;                    // by layer, then file order
};

// REQUIRES: `p` loaded without errors (so it has no cycle and no unknown needs).
Plan MakePlan(const spec::Pipeline& p);

// What `sluice plan` can tell about a step before the run.
struct Forecast {
  enum class Kind { kRuns, kSkipped, kAtRunTime };
  Kind kind = Kind::kRuns;
  std::string why;     // for skips and run-time decisions
  int items = -1;      // foreach with a literal list: its length; -1 otherwise
};

// Evaluates each `if` that reads only params and env (Sluice's own
// environment and the pipeline's), and follows skips to dependants whose
// condition is the default success().
std::vector<Forecast> ForecastPlan(const Plan& plan, const spec::ParamValues& params);

}  // namespace sluice::engine
