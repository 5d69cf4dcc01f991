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
  if (!s.if_condition || !s.if_reads_item) return std::nullopt;
  StepDecision d;
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
  if (hard_cancel || !s.if_condition || !s.if_checks_status) return false;
  auto v = spec::EvaluateTemplate(*s.if_condition, ctx);
  return v.ok() && v->Truthy();
}

RunState FinalRunState(const Plan& plan, const RunGraph& graph, bool cancelled) {
  if (cancelled) return RunState::kCancelled;
  RunState final = RunState::kSucceeded;
  for (size_t i = 0; i < graph.step_count(); ++i)
    if (graph.record(i).state == StepState::kFailed && !plan.pipeline->steps[i].continue_on_error)
      final = RunState::kFailed;
  return final;
}

std::chrono::milliseconds RetryDelay(const spec::Backoff& b, int tries, std::mt19937_64& rng) {
  double ms = static_cast<double>(b.initial.count());
  for (int i = 1; i < tries && ms < b.max.count(); ++i) ms *= b.factor;
  ms = std::min(ms, static_cast<double>(b.max.count()));
  if (b.jitter) ms *= std::uniform_real_distribution<double>(0.5, 1.0)(rng);
  return std::chrono::milliseconds(static_cast<int64_t>(ms));
}

}  // namespace sluice::engine
