#include "engine/plan.h"

#include <algorithm>
#include <cstdlib>

namespace sluice::engine {

Links Links::Of(const spec::Pipeline& p, std::vector<std::string> spec::Step::*list) {
  Links l;
  l.start_.reserve(p.steps.size() + 1);
  for (const spec::Step& s : p.steps) {
    for (const std::string& id : s.*list) l.to_.push_back(p.index.at(id));
    l.start_.push_back(l.to_.size());
  }
  return l;
}

Links Links::Reversed() const {
  size_t n = start_.size() - 1;
  Links r;
  r.start_.assign(n + 1, 0);
  for (size_t j : to_) ++r.start_[j + 1];
  for (size_t i = 0; i < n; ++i) r.start_[i + 1] += r.start_[i];
  r.to_.resize(to_.size());
  std::vector<size_t> next(r.start_.begin(), r.start_.end() - 1);
  for (size_t i = 0; i < n; ++i)
    for (size_t j : (*this)[i]) r.to_[next[j]++] = i;
  return r;
}

Plan MakePlan(const spec::Pipeline& p) {
  Plan plan;
  plan.pipeline = &p;
  size_t n = p.steps.size();
  plan.needs = Links::Of(p, &spec::Step::needs);
  plan.dependants = plan.needs.Reversed();
  plan.item_needs = Links::Of(p, &spec::Step::item_needs);
  plan.item_dependants = plan.item_needs.Reversed();
  plan.layer.assign(n, -1);
  plan.order.reserve(n);
  std::vector<int> waiting(n);
  for (size_t i = 0; i < n; ++i) waiting[i] = static_cast<int>(plan.needs[i].size());
  // Kahn's algorithm, one layer at a time: the steps of `steps:`, then the
  // finally steps in the layers after them (they run after all of them).
  int layer = 0;
  for (bool finally : {false, true}) {
    std::vector<size_t> current;
    for (size_t i = 0; i < n; ++i)
      if (waiting[i] == 0 && p.steps[i].is_finally == finally) current.push_back(i);
    while (!current.empty()) {
      std::sort(current.begin(), current.end());
      std::vector<size_t> next;
      for (size_t i : current) {
        plan.layer[i] = layer;
        plan.order.push_back(i);
        for (size_t d : plan.dependants[i])
          if (--waiting[d] == 0) next.push_back(d);
      }
      current = std::move(next);
      ++layer;
    }
  }
  return plan;
}

namespace {

// Sees params and env only; any other name makes the condition a run-time one.
class StaticContext : public spec::EvalContext {
 public:
  StaticContext(const spec::Pipeline& p, const spec::ParamValues& params) : p_(p), params_(params) {}
  Result<spec::Value> Lookup(const std::vector<std::string>& path) const override {
    if (path[0] == "params") return params_.at(path[1]);
    if (path[0] == "env") {
      for (const auto& [k, t] : p_.env)
        if (k == path[1]) {
          auto v = spec::Render(t, *this);
          if (!v.ok()) return v.status();
          return spec::Value::Str(*v);
        }
      if (const char* e = std::getenv(path[1].c_str())) return spec::Value::Str(e);
      return Status::NotFound("env." + path[1] + " is not set");
    }
    return Status::NotFound("decided at run time");
  }
  bool StatusFunction(std::string_view name) const override { return name == "always" || name == "success"; }

 private:
  const spec::Pipeline& p_;
  const spec::ParamValues& params_;
};

bool IsStatic(const spec::Template& t) {
  bool only_static = true;
  for (const auto& part : t.parts)
    if (part.expr)
      spec::VisitExpr(*part.expr, [&](const spec::Expr& e) {
        if (e.kind == spec::Expr::Kind::kRef && e.path[0] != "params" && e.path[0] != "env") only_static = false;
        if (e.kind == spec::Expr::Kind::kCall && e.op == "failure") only_static = false;
      });
  return only_static;
}

}  // namespace

std::vector<Forecast> ForecastPlan(const Plan& plan, const spec::ParamValues& params) {
  const spec::Pipeline& p = *plan.pipeline;
  std::vector<Forecast> out(p.steps.size());
  StaticContext ctx(p, params);
  for (size_t i : plan.order) {
    const spec::Step& s = p.steps[i];
    Forecast& f = out[i];
    if (!plan.item_needs[i].empty()) f.items = out[plan.item_needs[i][0]].items;  // its call's items
    else if (s.has_foreach && !s.foreach_expr && !s.matrix) f.items = static_cast<int>(s.foreach_items.size());
    if (!s.if_condition) {
      for (size_t n : plan.needs[i])
        if (out[n].kind == Forecast::Kind::kSkipped) {
          f.kind = Forecast::Kind::kSkipped;
          f.why = "needs skipped step '" + p.steps[n].id + "'";
          break;
        }
      if (f.kind == Forecast::Kind::kRuns)
        for (size_t n : plan.needs[i])
          if (out[n].kind == Forecast::Kind::kAtRunTime) {
            f.kind = Forecast::Kind::kAtRunTime;
            f.why = "runs if '" + p.steps[n].id + "' runs";
            break;
          }
      continue;
    }
    if (!IsStatic(*s.if_condition)) {
      f.kind = Forecast::Kind::kAtRunTime;
      f.why = "if: " + s.if_condition->source;
      continue;
    }
    auto v = spec::EvaluateTemplate(*s.if_condition, ctx);
    if (!v.ok()) {
      f.kind = Forecast::Kind::kAtRunTime;
      f.why = v.status().message();
    } else if (!v->Truthy()) {
      f.kind = Forecast::Kind::kSkipped;
      f.why = "if: " + s.if_condition->source + " is false";
    }
  }
  return out;
}

}  // namespace sluice::engine
