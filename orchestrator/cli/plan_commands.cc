// validate and plan: a spec checked, and what a run of it would do.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/plugins.h"
#include "engine/cache_forecast.h"
#include "engine/plan.h"
#include "exec/local_executor.h"
#include "spec/pipeline.h"
#include "store/artifacts.h"
#include "util/json.h"
#include "util/strings.h"

namespace sluice::cli {

namespace fs = std::filesystem;

namespace {

std::string ParamsText(const spec::ParamValues& v) {
  std::vector<std::string> parts;
  for (const auto& [k, val] : v) parts.push_back(k + "=" + val.Render());
  return Join(parts, " ");
}

// Ends the process once what was written is out, without freeing the spec
// and the plan: the process is about to end anyway, and a spec of 100,000
// steps takes about 30 ms to free, a tenth of its plan (ninja's main exits
// the same way).
[[noreturn]] void ExitWithoutFreeing(int code) {
  std::cout.flush();
  std::fflush(stdout);
  std::exit(code);
}

}  // namespace

int Validate(const std::vector<std::string>& files) {
  int code = kExitOk;
  for (const std::string& f : files) {
    auto p = spec::LoadPipeline(f);
    if (!p.ok()) {
      std::cerr << (p.status().code() == Code::kIoError ? "sluice: " : "") << p.status().message() << "\n";
      code = kExitUsage;
      continue;
    }
    auto plugins = PluginsFor(*p);
    if (!plugins.ok()) {
      std::cerr << plugins.status().message() << "\n";
      code = kExitUsage;
      continue;
    }
    std::printf("%s: ok (pipeline %s, %s)\n", f.c_str(), p->name.c_str(),
                Plural(static_cast<int64_t>(p->steps.size()), "step").c_str());
  }
  return code;
}

namespace {

// The store's earlier results for `sluice plan`; none when there is no store.
class StoreHistory : public engine::ResultHistory {
 public:
  StoreHistory(store::RunsStore* store, std::string pipeline) : store_(store), pipeline_(std::move(pipeline)) {}
  Result<std::optional<engine::CachedResult>> FindCached(const std::string& fingerprint) override {
    if (!store_) return std::optional<engine::CachedResult>();
    return store_->FindCached(fingerprint);
  }
  Result<std::optional<engine::AttemptRecord>> LatestResult(const std::string& step, int item) override {
    if (!store_) return std::optional<engine::AttemptRecord>();
    return store_->LatestResult(pipeline_, step, item);
  }

 private:
  store::RunsStore* store_;
  std::string pipeline_;
};

// What a run now would do with each step's cache (kOff for steps without).
// Reads the store if there is one; never creates it.
Result<std::vector<engine::CacheForecast>> ForecastCache(const spec::Pipeline& p, const engine::Plan& plan,
                                                         const spec::ParamValues& params,
                                                         const std::vector<engine::Forecast>& forecast,
                                                         const exec::PluginCatalog& plugins) {
  bool any = std::any_of(p.steps.begin(), p.steps.end(), [](const spec::Step& s) { return s.cache; });
  if (!any) return std::vector<engine::CacheForecast>(p.steps.size());
  std::unique_ptr<store::Store> store;
  std::error_code ec;
  std::string home = fs::absolute(HomeDir()).lexically_normal().string();
  if (fs::exists(home + "/sluice.db", ec)) {
    auto s = store::Store::Open(home + "/sluice.db");
    if (!s.ok()) return s.status();
    store = std::move(s.value());
  }
  StoreHistory history(store ? &store->runs() : nullptr, p.name);
  store::ArtifactStore artifacts(home + "/artifacts");
  exec::LocalExecutor executor(&plugins);
  engine::RealFileSystem files;
  engine::SystemClock clock;
  engine::CacheForecastOptions o;
  o.spec_dir = fs::absolute(p.file).lexically_normal().parent_path().string();
  o.now_ms = clock.WallMs();
  o.executor = &executor;
  o.artifacts = &artifacts;
  o.files = &files;
  return engine::ForecastCache(plan, params, forecast, history, o);
}

const char* CacheKindName(engine::CacheForecast::Kind k) {
  switch (k) {
    case engine::CacheForecast::Kind::kCached: return "cached";
    case engine::CacheForecast::Kind::kRuns: return "runs";
    case engine::CacheForecast::Kind::kAtRunTime: return "at-run-time";
    default: return "off";
  }
}

// "cached (run 3)", "runs: deps changed: train.py", or what the decision
// waits for ("depends on outputs of 'prepare'; cached if they match").
std::string CacheText(const engine::CacheForecast& c) {
  switch (c.kind) {
    case engine::CacheForecast::Kind::kCached: return "cached (run " + std::to_string(c.run_id) + ")";
    case engine::CacheForecast::Kind::kRuns: return "runs: " + c.why;
    case engine::CacheForecast::Kind::kAtRunTime: return c.why;
    default: return "";
  }
}

}  // namespace

int Plan(const std::string& file, const Overrides& overrides, const std::string& format) {
  auto p = spec::LoadPipeline(file);
  if (!p.ok()) return Fail((p.status().code() == Code::kIoError ? "sluice: " : "") + p.status().message(), kExitUsage);
  auto params = spec::ResolveParams(*p, overrides);
  if (!params.ok()) return Fail(params.status().message(), kExitUsage);
  auto plugins = PluginsFor(*p);
  if (!plugins.ok()) return Fail(plugins.status().message(), kExitUsage);
  engine::Plan plan = engine::MakePlan(*p);
  auto forecast = engine::ForecastPlan(plan, *params);
  auto cache = ForecastCache(*p, plan, *params, forecast, *plugins);
  if (!cache.ok()) return Fail("sluice: " + cache.status().message(), kExitFailed);
  auto kind_name = [](engine::Forecast::Kind k) {
    return k == engine::Forecast::Kind::kRuns ? "runs" : k == engine::Forecast::Kind::kSkipped ? "skipped" : "at-run-time";
  };
  if (format == "json") {
    nlohmann::json j;
    j["pipeline"] = p->name;
    j["params"] = spec::ParamsJson(*params);
    j["steps"] = nlohmann::json::array();
    for (size_t i : plan.order) {
      const spec::Step& s = p->steps[i];
      nlohmann::json step = {{"id", s.id}, {"layer", plan.layer[i]}, {"needs", s.needs},
                             {"forecast", kind_name(forecast[i].kind)}};
      if (!forecast[i].why.empty()) step["why"] = forecast[i].why;
      if (forecast[i].items >= 0) step["items"] = forecast[i].items;
      if (s.has_foreach && forecast[i].items < 0) step["items"] = nullptr;
      const engine::CacheForecast& c = (*cache)[i];
      if (c.kind != engine::CacheForecast::Kind::kOff) {
        step["cache"] = {{"decision", CacheKindName(c.kind)}};
        if (c.kind == engine::CacheForecast::Kind::kCached) step["cache"]["run"] = c.run_id;
        else step["cache"]["why"] = c.why;
      }
      j["steps"].push_back(step);
    }
    std::cout << JsonText(j, 2) << "\n";
    ExitWithoutFreeing(kExitOk);
  }
  if (format == "dot") {
    std::cout << "digraph \"" << p->name << "\" {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n";
    for (size_t i : plan.order) {
      const spec::Step& s = p->steps[i];
      std::string label = s.id;
      if (forecast[i].items >= 0) label += " (" + Plural(forecast[i].items, "item") + ")";
      else if (s.has_foreach) label += " (foreach)";
      if ((*cache)[i].kind == engine::CacheForecast::Kind::kCached) label += " (cached)";
      std::cout << "  \"" << s.id << "\" [label=\"" << label << "\"";
      if (forecast[i].kind == engine::Forecast::Kind::kSkipped) std::cout << ", style=\"rounded,dashed\", color=grey";
      else if (forecast[i].kind == engine::Forecast::Kind::kAtRunTime) std::cout << ", style=\"rounded,dotted\"";
      std::cout << "];\n";
    }
    for (size_t i : plan.order)
      for (size_t n : plan.needs[i]) std::cout << "  \"" << p->steps[n].id << "\" -> \"" << p->steps[i].id << "\";\n";
    std::cout << "}\n";
    ExitWithoutFreeing(kExitOk);
  }
  // Built as one string and written once: a spec may have 100,000 steps.
  int layers = plan.order.empty() ? 0 : plan.layer[plan.order.back()] + 1;
  std::string out = "pipeline " + p->name + ": " + Plural(static_cast<int64_t>(p->steps.size()), "step") + " in " +
                    Plural(layers, "layer");
  if (!params->empty()) out += " (params: " + ParamsText(*params) + ")";
  out += "\n";
  int layer = -1;
  for (size_t i : plan.order) {
    const spec::Step& s = p->steps[i];
    if (plan.layer[i] != layer) {
      layer = plan.layer[i];
      out += "layer " + std::to_string(layer) + "\n";
    }
    // A step with cache on says what its cache does: "cached (run 3)" or
    // "runs: deps changed: train.py" instead of "runs".
    const engine::CacheForecast& c = (*cache)[i];
    bool cached_kind = c.kind != engine::CacheForecast::Kind::kOff;
    std::string what = cached_kind && forecast[i].kind == engine::Forecast::Kind::kRuns ? CacheText(c)
                                                                                         : kind_name(forecast[i].kind);
    if (forecast[i].items >= 0) what += ", " + Plural(forecast[i].items, "item");
    else if (s.has_foreach) what += ", items at run time";
    if (!forecast[i].why.empty()) what += " (" + forecast[i].why + ")";
    if (cached_kind && forecast[i].kind == engine::Forecast::Kind::kAtRunTime) what += "; if it runs: " + CacheText(c);
    out += "  ";
    out += s.id;
    if (s.id.size() < 20) out.append(20 - s.id.size(), ' ');
    out += ' ';
    out += what;
    for (size_t k = 0; k < s.needs.size(); ++k) {
      out += k == 0 ? "  needs " : ", ";
      out += s.needs[k];
    }
    out += '\n';
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  ExitWithoutFreeing(kExitOk);
}

}  // namespace sluice::cli
