// The builder's decisions that need none of its own state: whether a step
// runs at all (its `if`, its `foreach`, a cancel), how long a failed
// attempt waits before the next, and how the run ends. The Engine (engine.h) asks these and does
// what they say (records the step, expands it, arms a timer).
//
// Pure but for what a StepContext reads (the run's records, the environment)
// and the random generator RetryDelay draws from; used on the engine's
// thread only.
#pragma once

#include <chrono>
#include <optional>
#include <random>
#include <string>

#include "engine/attempt_render.h"
#include "engine/plan.h"
#include "engine/run_graph.h"
#include "engine/types.h"
#include "spec/pipeline.h"

namespace sluice::engine {

// What a step whose dependencies are final comes to.
struct StepDecision {
  // Set when the step ends without running: skipped, or failed because its
  // `if` or `foreach` could not be evaluated. `reason` says why.
  std::optional<StepState> end;
  std::string reason;
  // A foreach step's items (those of `rec` when resumed, else its list or
  // its expression's); empty for a plain step.
  std::optional<spec::List> items;
};

// Decides step `s` (record `rec`) as `ctx` sees the run (not during a
// cancel; see RunsDuringCancel). A custom `if` without a status function
// means success() && it (GitHub Actions' rule) and is not even evaluated
// when a needed step did not succeed.
StepDecision DecideStep(const spec::Step& s, const StepRecord& rec, const StepContext& ctx);

// An item of foreach step `s` whose `if` reads `item` (`ctx` sees the
// item): skipped when the `if` is false, failed when it cannot be
// evaluated; nullopt when it runs (or the step's `if` does not read item).
std::optional<StepDecision> DecideItem(const spec::Step& s, const StepContext& ctx);

// A step whose `if` calls always() or cancelled() and holds during a cancel
// runs then: a cleanup step; so does a finally step (its `if` is decided as
// usual). Nothing runs after a hard cancel.
bool RunsDuringCancel(const spec::Step& s, const StepContext& ctx, bool hard_cancel);

// What the run comes to by the steps of `steps:` alone (run.state in a
// finally step): cancelled if it was, failed if its timeout passed or one of
// them failed without continue_on_error, else succeeded. O(steps).
RunState MainRunState(const Plan& plan, const RunGraph& graph, bool cancelled, bool timed_out);
// run.failed_steps: the ids of the steps of `steps:` that failed
// (continue_on_error ones too), in file order.
spec::Value FailedSteps(const Plan& plan, const RunGraph& graph);

// The state a run ends in once every step of `graph` is final: its
// MainRunState, except that a succeeded or failed run is failed when a
// finally step failed without continue_on_error (a cancelled run stays
// cancelled).
RunState FinalRunState(const Plan& plan, const RunGraph& graph, bool cancelled, bool timed_out = false);

// What `retry.on` sees of a failed attempt.
struct FailedAttempt {
  spec::Value exit_code;   // null when a signal ended it or it never started
  int signal = 0;          // the signal that ended it, 0 if none
  bool timed_out = false;  // the step's timeout stopped it
  std::string reason;      // the attempt's reason
};

// Whether `retry.on` of `s` lets the failure `a` be retried: no `on` lets
// every failure; a list of exit statuses matches the attempt's status as a
// shell's $? has it (128+N for signal N); a condition is evaluated with
// `attempt.*` from `a` and params and env from `ctx`. When not, *why says
// so (with the condition's error, if it could not be evaluated).
bool RetryAllowed(const spec::Step& s, const FailedAttempt& a, const StepContext& ctx, std::string* why);

// The delay before the next attempt after `tries` of them: initial *
// factor^(tries-1), capped at max; with jitter, a uniform fraction from 1/2
// to all of it, drawn from `rng`.
std::chrono::milliseconds RetryDelay(const spec::Backoff& b, int tries, std::mt19937_64& rng);

}  // namespace sluice::engine
