// Plan: the DAG of a loaded pipeline in the shape the engine and `sluice
// plan` use it: steps by index, their needs and dependants, a topological
// order by layer, and what can be decided before running.
//
// A Plan points into the Pipeline it was made from (a non-owning handle);
// the Pipeline must outlive it.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "spec/pipeline.h"

namespace sluice::engine {

// Each step's neighbours (needs or dependants), by step index, in one array:
// a plan of 100,000 steps makes four of these instead of 400,000 vectors.
class Links {
 public:
  // Step i's neighbours, in the order they were given.
  std::span<const size_t> operator[](size_t i) const { return {to_.data() + start_[i], start_[i + 1] - start_[i]}; }

  // Each step's entries of `list` (a list of step ids), as indexes.
  static Links Of(const spec::Pipeline& p, std::vector<std::string> spec::Step::*list);
  // The same edges the other way: j's neighbours are the i that have j, in
  // the order of i.
  Links Reversed() const;

 private:
  std::vector<size_t> start_ = {0};  // step i's neighbours are to_[start_[i], start_[i + 1])
  std::vector<size_t> to_;
};

struct Plan {
  const spec::Pipeline* pipeline = nullptr;
  Links needs;       // by step index
  Links dependants;  // by step index
  // Needs inside the same call with foreach (Step::item_needs), a part of
  // `needs`: item k waits for their item k alone. And the other way.
  Links item_needs;
  Links item_dependants;
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
