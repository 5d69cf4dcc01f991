#include "engine/cache_forecast.h"

#include <algorithm>
#include <cstdlib>
#include <set>

#include "util/strings.h"

namespace sluice::engine {

namespace {

// What a step's expressions can see before the run. A read of a step whose
// result is not known yet gives an empty string and is noted in unknown():
// the rendered step then shows what does not depend on it.
class ForecastContext : public spec::EvalContext {
 public:
  ForecastContext(const spec::Pipeline& p, const spec::ParamValues& params, const std::vector<std::optional<Outputs>>& known)
      : p_(p), params_(params), known_(known) {}

  std::map<std::string, std::string> pipeline_env;
  std::optional<spec::Value> item;
  mutable std::vector<LineageEdge> inputs;
  mutable std::set<std::string> unknown;  // ids of steps read whose outputs are not known
  mutable bool reads_run = false;         // a finally step reads run.*, known only at run time

  Result<spec::Value> Lookup(const std::vector<std::string>& path) const override {
    const std::string& root = path[0];
    if (root == "params") return params_.at(path[1]);
    if (root == "env") {
      auto it = pipeline_env.find(path[1]);
      if (it != pipeline_env.end()) return spec::Value::Str(it->second);
      if (const char* v = std::getenv(path[1].c_str())) return spec::Value::Str(v);
      return Status::NotFound("env." + path[1] + " is not set");
    }
    if (root == "item") {
      if (!item) return Status::NotFound("'item' is only defined inside a foreach item");
      return *item;
    }
    if (root == "run") {
      if (path[1] != "state" && path[1] != "failed_steps") return spec::Value();  // a run from the command line has no schedule
      reads_run = true;
      return spec::Value::Str("");
    }
    if (root == "service") return Status::NotFound("service.port is known at run time");  // a service is never cached
    size_t j = p_.index.at(path[1]);
    if (!known_[j] || path[2] == "port") {  // a service's port is picked at run time (it is never cached)
      unknown.insert(path[1]);
      return spec::Value::Str("");
    }
    if (path[2] == "state") return spec::Value::Str("succeeded");
    if (path[2] == "exit_code") return spec::Value::Int(0);  // as a cached or succeeded step's
    auto it = known_[j]->find(path[3]);
    if (it == known_[j]->end()) return Status::NotFound("step '" + path[1] + "' has no output '" + path[3] + "'");
    RecordInputs(p_.steps[j], path[3], it->second, &inputs);
    return it->second;
  }
  bool StatusFunction(std::string_view name) const override { return name != "failure"; }

 private:
  const spec::Pipeline& p_;
  const spec::ParamValues& params_;
  const std::vector<std::optional<Outputs>>& known_;
};

struct UnitForecast {
  CacheForecast f;
  Outputs outputs;  // kCached: the cached result's
};

std::string Steps(const std::set<std::string>& ids) {
  std::vector<std::string> quoted;
  for (const std::string& id : ids) quoted.push_back("'" + id + "'");
  return Join(quoted, ", ");
}

Result<UnitForecast> ForecastUnit(const spec::Step& s, int item, ForecastContext& ctx, ResultHistory& history,
                                  const CacheForecastOptions& o) {
  UnitForecast u;
  CacheForecast& f = u.f;
  ctx.inputs.clear();
  ctx.unknown.clear();
  ctx.reads_run = false;
  auto rendered = RenderStep(s, ctx, o.spec_dir, o.executor);
  bool partial = !ctx.unknown.empty() || ctx.reads_run;
  if (!rendered.ok() && !partial) {
    f.kind = CacheForecast::Kind::kRuns;
    f.why = "fails before it starts: " + rendered.status().message();
    return u;
  }
  RenderedStep bare;  // when rendering needs upstream values: deps only
  bare.workdir = o.spec_dir;
  IdentityParts parts;
  parts.step = &s;
  parts.rendered = rendered.ok() ? &*rendered : &bare;
  if (rendered.ok() && rendered->plugin && o.executor) {
    AttemptRequest req;
    req.plugin = rendered->plugin;
    parts.code_identity = o.executor->CodeIdentity(req);
  }
  parts.pipeline_env = &ctx.pipeline_env;
  parts.inputs = ctx.inputs;
  parts.spec_dir = o.spec_dir;
  auto fp = ComputeFingerprint(parts, *o.files);
  if (!fp.ok()) {
    f.kind = CacheForecast::Kind::kRuns;
    f.why = "fails before it starts: " + fp.status().message();
    return u;
  }
  if (!partial) f.fingerprints.push_back(*fp);
  if (partial) {
    auto latest = history.LatestResult(s.id, item);
    if (!latest.ok()) return latest.status();
    std::string change = *latest ? DescribeChange((*latest)->identity, fp->identity, /*deps_only=*/true) : "";
    if (!change.empty()) {
      f.kind = CacheForecast::Kind::kRuns;
      f.why = change;
    } else {
      f.kind = CacheForecast::Kind::kAtRunTime;
      std::string what = ctx.unknown.empty() ? "" : "outputs of " + Steps(ctx.unknown);
      if (ctx.reads_run) what += (what.empty() ? "" : " and ") + std::string("the run's state");
      f.why = "depends on " + what + "; cached if they match";
    }
    return u;
  }
  auto hit = history.FindCached(fp->sha256);
  if (!hit.ok()) return hit.status();
  if (*hit) {
    Millis age(o.now_ms - (*hit)->finished_ms);
    std::string run = "run " + std::to_string((*hit)->run_id);
    f.kind = CacheForecast::Kind::kRuns;
    if (s.cache_max_age && age > *s.cache_max_age) {
      f.why = "the result of " + run + " is " + FormatAge(age) + " old, older than max_age " + FormatAge(*s.cache_max_age);
      return u;
    }
    for (const LineageEdge& p : (*hit)->produced)
      if (o.artifacts && !o.artifacts->Verify(p.artifact)) {
        f.why = "the result of " + run + " is damaged (artifact " + p.artifact.hash + " is missing or changed)";
        return u;
      }
    f.kind = CacheForecast::Kind::kCached;
    f.run_id = (*hit)->run_id;
    u.outputs = (*hit)->outputs;
    return u;
  }
  f.kind = CacheForecast::Kind::kRuns;
  auto latest = history.LatestResult(s.id, item);
  if (!latest.ok()) return latest.status();
  if (!*latest) {
    f.why = "no earlier result";
    return u;
  }
  f.why = DescribeChange((*latest)->identity, fp->identity);
  if (f.why.empty()) f.why = "no earlier result with the same inputs";
  return u;
}

}  // namespace

Result<std::vector<CacheForecast>> ForecastCache(const Plan& plan, const spec::ParamValues& params,
                                                 const std::vector<Forecast>& forecast, ResultHistory& history,
                                                 const CacheForecastOptions& o) {
  const spec::Pipeline& p = *plan.pipeline;
  std::vector<CacheForecast> out(p.steps.size());
  std::vector<std::optional<Outputs>> known(p.steps.size());  // outputs of steps forecast as cached
  ForecastContext ctx(p, params, known);
  std::string env_error;
  for (const auto& [k, t] : p.env) {
    auto v = spec::Render(t, ctx);
    if (!v.ok()) {
      env_error = "env " + k + ": " + v.status().message();
      break;
    }
    ctx.pipeline_env[k] = *v;
  }
  for (size_t i : plan.order) {
    const spec::Step& s = p.steps[i];
    CacheForecast& f = out[i];
    if (!s.cache || forecast[i].kind == Forecast::Kind::kSkipped) continue;
    if (!env_error.empty()) {
      f = {CacheForecast::Kind::kRuns, 0, "fails before it starts: " + env_error};
      continue;
    }
    if (!s.item_needs.empty()) {
      f = {CacheForecast::Kind::kAtRunTime, 0, "it runs once per item of its call, after its needs' item"};
      continue;
    }
    std::vector<std::optional<spec::Value>> items;
    if (!s.has_foreach) {
      items.push_back(std::nullopt);
    } else if (!s.foreach_expr && !s.matrix) {
      for (const spec::Value& v : s.foreach_items) items.push_back(v);
    } else {
      ctx.item.reset();
      ctx.unknown.clear();
      Result<spec::Value> v = spec::Value();
      if (s.matrix) {
        auto combos = spec::ExpandMatrix(*s.matrix, ctx);
        v = combos.ok() ? Result<spec::Value>(spec::Value::Of(std::move(*combos))) : Result<spec::Value>(combos.status());
      } else {
        v = spec::EvaluateTemplate(*s.foreach_expr, ctx);
      }
      if (!v.ok() || !v->is_list() || !ctx.unknown.empty()) {
        f = {CacheForecast::Kind::kAtRunTime, 0, "its items are known at run time"};
        continue;
      }
      for (const spec::Value& x : v->as_list()) items.push_back(x);
    }
    if (items.empty()) continue;  // a foreach over nothing runs nothing
    int cached = 0, runs = 0;
    std::optional<CacheForecast> first_runs, first_later;
    Outputs outputs;
    for (size_t k = 0; k < items.size(); ++k) {
      ctx.item = items[k];
      auto unit = ForecastUnit(s, s.has_foreach ? static_cast<int>(k) : -1, ctx, history, o);
      if (!unit.ok()) return unit.status();
      const CacheForecast& uf = unit->f;
      for (const Fingerprint& x : uf.fingerprints) f.fingerprints.push_back(x);
      if (uf.kind == CacheForecast::Kind::kCached) {
        ++cached;
        f.run_id = std::max(f.run_id, uf.run_id);
        outputs = std::move(unit->outputs);
      } else if (uf.kind == CacheForecast::Kind::kRuns) {
        ++runs;
        if (!first_runs) {
          first_runs = uf;
          if (s.has_foreach) first_runs->why = "item " + std::to_string(k) + ": " + first_runs->why;
        }
      } else if (!first_later) {
        first_later = uf;
      }
    }
    ctx.item.reset();
    int n = static_cast<int>(items.size());
    if (cached == n) {
      f.kind = CacheForecast::Kind::kCached;
      if (!s.has_foreach) known[i] = std::move(outputs);  // a foreach step's outputs are lists made at run time
    } else if (runs > 0) {
      f.kind = first_runs->kind;
      f.why = first_runs->why;
      f.run_id = 0;
      if (s.has_foreach) f.why += " (" + std::to_string(runs) + " of " + std::to_string(n) + " items run)";
    } else {
      f.kind = first_later->kind;
      f.why = first_later->why;
      f.run_id = 0;
    }
  }
  return out;
}

}  // namespace sluice::engine
