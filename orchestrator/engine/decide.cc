#include "engine/decide.h"

#include <algorithm>

#include "spec/template.h"

namespace sluice::engine {

using spec::Value;

StepDecision DecideStep(const spec::Step& s, const StepRecord& rec, const StepContext& ctx) {
  auto end_as = [](StepState state, std::string reason) {
    StepDecision d;
    d.end = state;
    d.reason = std::move(reason);
    return d;
  };
  if (s.if_condition && !s.if_checks_status && !ctx.StatusFunction("success"))
    return end_as(StepState::kSkipped, "a needed step did not succeed");
  if (s.if_condition && s.if_reads_item) {
    // Decided for each item when the items are made (ItemIfSkips).
  } else if (s.if_condition) {
    auto v = spec::EvaluateTemplate(*s.if_condition, ctx);
    if (!v.ok()) return end_as(StepState::kFailed, "if: " + v.status().message());
    if (!v->Truthy()) return end_as(StepState::kSkipped, "if: " + s.if_condition->source + " is false");
  } else if (!ctx.StatusFunction("success")) {
    return end_as(StepState::kSkipped, "a needed step did not succeed");
  }
  StepDecision d;
  if (!s.has_foreach) return d;
  if (!s.item_needs.empty() && !rec.items) return d;  // its call's items: the engine takes them from its item needs
  if (rec.items) {
    d.items = *rec.items;  // resumed: keep the list the run expanded
  } else if (s.matrix) {
    auto items = spec::ExpandMatrix(*s.matrix, ctx);
    if (!items.ok()) return end_as(StepState::kFailed, "foreach: " + items.status().message());
    d.items = std::move(*items);
  } else if (!s.foreach_expr) {
    d.items = s.foreach_items;
  } else {
    auto v = spec::EvaluateTemplate(*s.foreach_expr, ctx);
    if (!v.ok()) return end_as(StepState::kFailed, "foreach: " + v.status().message());
    if (!v->is_list())
      return end_as(StepState::kFailed, std::string("foreach: ") + s.foreach_expr->source + " gave a " +
                                            Value::TypeName(v->type()) + ", not a list");
    if (v->as_list().size() > spec::kMaxForeachItems)
      return end_as(StepState::kFailed, std::string("foreach: ") + s.foreach_expr->source + " gave " +
                                            std::to_string(v->as_list().size()) + " items, over the limit of " +
                                            std::to_string(spec::kMaxForeachItems));
    d.items = v->as_list();
  }
  return d;
}

std::optional<StepDecision> DecideItem(const spec::Step& s, const StepContext& ctx) {
  StepDecision d;
  if (!s.item_needs.empty() && !(s.if_condition && s.if_checks_status) && !ctx.StatusFunction("success")) {
    // In a call with foreach, item k goes on only as its needs' item k did.
    d.end = StepState::kSkipped;
    d.reason = "a needed step did not succeed";
    return d;
  }
  if (!s.if_condition || !s.if_reads_item) return std::nullopt;
  auto v = spec::EvaluateTemplate(*s.if_condition, ctx);
  if (!v.ok()) {
    d.end = StepState::kFailed;
    d.reason = "if: " + v.status().message();
  } else if (!v->Truthy()) {
    d.end = StepState::kSkipped;
    d.reason = "if: " + s.if_condition->source + " is false";
  } else {
    return std::nullopt;
  }
  return d;
}

bool RunsDuringCancel(const spec::Step& s, const StepContext& ctx, bool hard_cancel) {
  if (hard_cancel) return false;
  if (s.is_finally) return true;
  if (!s.if_condition || !s.if_checks_status) return false;
  auto v = spec::EvaluateTemplate(*s.if_condition, ctx);
  return v.ok() && v->Truthy();
}

RunState MainRunState(const Plan& plan, const RunGraph& graph, bool cancelled, bool timed_out) {
  if (cancelled) return RunState::kCancelled;
  if (timed_out) return RunState::kFailed;
  for (size_t i = 0; i < graph.step_count(); ++i) {
    const spec::Step& s = plan.pipeline->steps[i];
    if (!s.is_finally && graph.record(i).state == StepState::kFailed && !s.continue_on_error) return RunState::kFailed;
  }
  return RunState::kSucceeded;
}

Value FailedSteps(const Plan& plan, const RunGraph& graph) {
  spec::List ids;
  for (size_t i = 0; i < graph.step_count(); ++i)
    if (!plan.pipeline->steps[i].is_finally && graph.record(i).state == StepState::kFailed)
      ids.push_back(Value::Str(plan.pipeline->steps[i].id));
  return Value::Of(std::move(ids));
}

RunState FinalRunState(const Plan& plan, const RunGraph& graph, bool cancelled, bool timed_out) {
  RunState main = MainRunState(plan, graph, cancelled, timed_out);
  if (main == RunState::kCancelled) return main;
  for (size_t i = 0; i < graph.step_count(); ++i) {
    const spec::Step& s = plan.pipeline->steps[i];
    if (s.is_finally && graph.record(i).state == StepState::kFailed && !s.continue_on_error) return RunState::kFailed;
  }
  return main;
}

namespace {

// retry.on's view: attempt.* from the failed attempt, the rest (params,
// env) as the step sees it.
class AttemptContext : public spec::EvalContext {
 public:
  AttemptContext(const FailedAttempt& a, const StepContext& step) : a_(a), step_(step) {}
  Result<Value> Lookup(const std::vector<std::string>& path) const override {
    if (path[0] != "attempt") return step_.Lookup(path);
    if (path[1] == "exit_code") return a_.exit_code;
    if (path[1] == "signal") return a_.signal ? Value::Int(a_.signal) : Value();
    if (path[1] == "timed_out") return Value::Bool(a_.timed_out);
    return Value::Str(a_.reason);
  }
  bool StatusFunction(std::string_view name) const override { return step_.StatusFunction(name); }

 private:
  const FailedAttempt& a_;
  const StepContext& step_;
};

}  // namespace

bool RetryAllowed(const spec::Step& s, const FailedAttempt& a, const StepContext& ctx, std::string* why) {
  const spec::RetryPolicy& r = s.retry;
  if (!r.on_exit_codes.empty()) {
    // The status as a shell's $? has it: a death by signal N is 128+N.
    std::optional<int64_t> status;
    if (a.signal) status = 128 + a.signal;
    else if (a.exit_code.type() == Value::Type::kInt) status = a.exit_code.as_int();
    if (status && std::find(r.on_exit_codes.begin(), r.on_exit_codes.end(), *status) != r.on_exit_codes.end())
      return true;
    std::string listed;
    for (int c : r.on_exit_codes) listed += (listed.empty() ? "" : ", ") + std::to_string(c);
    *why = "not retried: retry on [" + listed + "] does not match " +
           (status ? "exit status " + std::to_string(*status) : std::string("an attempt that never ran"));
    return false;
  }
  if (!r.on_condition) return true;
  auto v = spec::EvaluateTemplate(*r.on_condition, AttemptContext(a, ctx));
  if (!v.ok()) {
    *why = "not retried: retry on: " + v.status().message();
    return false;
  }
  if (v->Truthy()) return true;
  *why = "not retried: retry on " + r.on_condition->source + " is false";
  return false;
}

std::chrono::milliseconds RetryDelay(const spec::Backoff& b, int tries, std::mt19937_64& rng) {
  double ms = static_cast<double>(b.initial.count());
  for (int i = 1; i < tries && ms < b.max.count(); ++i) ms *= b.factor;
  ms = std::min(ms, static_cast<double>(b.max.count()));
  if (b.jitter) ms *= std::uniform_real_distribution<double>(0.5, 1.0)(rng);
  return std::chrono::milliseconds(static_cast<int64_t>(ms));
}

}  // namespace sluice::engine
