// validate, plan, run, resume, retry, cancel.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <variant>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/openlineage.h"
#include "cli/progress.h"
#include "engine/cache_forecast.h"
#include "engine/engine.h"
#include "engine/plan.h"
#include "exec/local_executor.h"
#include "exec/process.h"
#include "exec/plugin_catalog.h"
#include "exec/routing_executor.h"
#include "exec/slurm_executor.h"
#include "spec/pipeline.h"
#include "spec/schema_check.h"
#include "spec/yaml_tree.h"
#include "store/artifacts.h"
#include "util/hash.h"
#include "util/json.h"
#include "util/strings.h"

extern char** environ;

namespace sluice::cli {

namespace fs = std::filesystem;
using engine::RunState;
using engine::StepRecord;
using engine::StepState;

std::string HomeDir() {
  const char* home = std::getenv("SLUICE_HOME");
  return home && *home ? home : ".sluice";
}

std::unique_ptr<store::Store> OpenStore() {
  std::error_code ec;
  fs::create_directories(HomeDir(), ec);
  if (ec) {
    std::cerr << "sluice: create " << HomeDir() << ": " << ec.message() << "\n";
    return nullptr;
  }
  auto s = store::Store::Open(HomeDir() + "/sluice.db");
  if (!s.ok()) {
    std::cerr << "sluice: " << s.status().message() << "\n";
    return nullptr;
  }
  return std::move(s.value());
}

bool ParseRunId(const std::string& text, int64_t* id) {
  if (text == "latest") {
    auto store = OpenStore();
    if (!store) return false;
    auto runs = store->runs().ListRuns(1);
    if (!runs.ok() || runs->empty()) {
      std::cerr << "sluice: there are no runs in " << HomeDir() << " yet\n";
      return false;
    }
    *id = runs->front().id;
    return true;
  }
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v <= 0) {
    std::cerr << "sluice: " << Quote(text) << " is not a run id (runs are numbered 1, 2, ...; `latest` is the newest; see sluice runs)\n";
    return false;
  }
  *id = v;
  return true;
}

namespace {

int Fail(const std::string& message, int code) {
  std::cerr << message << "\n";
  return code;
}

std::string ParamsText(const spec::ParamValues& v) {
  std::vector<std::string> parts;
  for (const auto& [k, val] : v) parts.push_back(k + "=" + val.Render());
  return Join(parts, " ");
}

// Loads the plugins a pipeline's steps use, and checks each `uses:` and
// `with:` against them. A pipeline without plugin steps loads nothing.
Result<exec::PluginCatalog> PluginsFor(const spec::Pipeline& p) {
  std::set<std::string> names;
  for (const spec::Step& s : p.steps)
    if (!s.uses.empty()) names.insert(spec::SplitUses(s.uses).first);
  if (names.empty()) return exec::PluginCatalog{};
  std::string dir = fs::absolute(p.file).parent_path().string();
  std::vector<std::string> folders = exec::PluginCatalog::SearchPath(dir);
  exec::PluginCatalog catalog = exec::PluginCatalog::LoadFor(folders, names);
  std::vector<std::string> errors;
  bool explain = false;
  for (const spec::Step& s : p.steps) {
    if (s.uses.empty()) continue;
    auto [plugin_name, type_id] = spec::SplitUses(s.uses);
    const exec::PluginInfo* plugin = catalog.Find(plugin_name);
    if (!plugin) {
      std::vector<std::string> names;
      for (const auto& x : catalog.plugins()) names.push_back(x->name);
      errors.push_back(spec::At(p.file, s.uses_pos,
                                "step '" + s.id + "' uses unknown plugin " + Quote(plugin_name) + DidYouMean(plugin_name, names)));
      explain = true;
      continue;
    }
    const exec::StepTypeInfo* type = plugin->Find(type_id);
    if (!type) {
      std::vector<std::string> ids;
      for (const auto& t : plugin->step_types) ids.push_back(t.id);
      errors.push_back(spec::At(p.file, s.uses_pos, "plugin '" + plugin_name + "' has no step type " + Quote(type_id) +
                                                        DidYouMean(type_id, ids) + " (it has " + Join(ids, ", ") + ")"));
      continue;
    }
    spec::CheckParamsAgainstSchema(p.file, s.id, s.uses, s.with ? &*s.with : nullptr, s.uses_pos, type->params_schema,
                                   &errors);
    if (type->outputs) {
      std::vector<std::string> known = spec::DeclaredOutputs(s);
      for (const auto& [name, kind] : *type->outputs)
        if (std::find(known.begin(), known.end(), name) == known.end()) known.push_back(name);
      spec::CheckOutputRefs(p.file, p.output_refs, s.id, known, &errors);
    }
  }
  if (explain) {
    errors.push_back("sluice: plugins are looked for in " + Join(folders, ", "));
    for (const std::string& r : catalog.refused()) errors.push_back("sluice: refused " + r);
  }
  if (!errors.empty()) return Status::InvalidSpec(Join(errors, "\n"));
  return catalog;
}

// The pipeline and params a stored run was started with.
struct StoredRun {
  store::RunRow row;
  spec::Pipeline pipeline;
  spec::ParamValues params;
};

Result<StoredRun> LoadStoredRun(store::RunsStore& runs, int64_t id) {
  auto row = runs.GetRun(id);
  if (!row.ok()) return row.status();
  auto text = runs.SpecText(row->spec_hash);
  if (!text.ok()) return text.status();
  auto p = spec::ParsePipeline(row->spec_path, *text);
  if (!p.ok()) return p.status();
  auto j = nlohmann::json::parse(row->params_json, nullptr, false);
  spec::ParamValues params;
  for (const spec::ParamSpec& ps : p->params)
    if (j.is_object() && j.contains(ps.name)) params[ps.name] = spec::Value::FromJson(j[ps.name]);
  return StoredRun{std::move(*row), std::move(*p), std::move(params)};
}

bool OwnerAlive(const store::RunRow& r) {
  return r.owner_pid != 0 && r.owner_pid != ::getpid() && exec::SameProcessAlive(static_cast<int>(r.owner_pid), r.owner_start);
}

// The variables every attempt's process starts with that name it: how a
// leftover process is told from a stranger with a reused pid.
std::vector<std::string> AttemptMarkers(const engine::AttemptRecord& a) {
  std::vector<std::string> m = {"SLUICE_HOME=" + fs::absolute(HomeDir()).lexically_normal().string(),
                                "SLUICE_RUN_ID=" + std::to_string(a.run_id), "SLUICE_STEP=" + a.step_id,
                                "SLUICE_ATTEMPT=" + std::to_string(a.number)};
  if (a.item >= 0) m.push_back("SLUICE_ITEM_INDEX=" + std::to_string(a.item));
  return m;
}

// Kills what is left of attempts whose orchestrator died. An attempt's
// process leads its own group. With a recorded pid, the group is signalled
// when that pid names no process (a group id stays reserved while a member
// lives, so only the step's leftovers can hold it) or names a group leader
// with the attempt's markers; a reused pid is left alone. Without one (the
// orchestrator died before writing it), the leader is found by its markers.
void KillLeftovers(const std::vector<engine::AttemptRecord>& lost) {
  for (const auto& a : lost) {
    std::vector<std::string> markers = AttemptMarkers(a);
    std::vector<int> leaders;
    int pid = static_cast<int>(a.pid);
    if (pid <= 0) leaders = exec::FindProcessesStartedWith(markers);
    else if (exec::ProcessStartTime(pid) == 0 || exec::StartedWithEnvironment(pid, markers)) leaders = {pid};
    for (int leader : leaders) ::kill(-leader, SIGKILL);
  }
}

std::atomic<engine::Engine*> g_engine{nullptr};
std::atomic<int> g_interrupts{0};

void OnInterrupt(int) {
  int n = ++g_interrupts;
  if (engine::Engine* e = g_engine.load()) e->RequestCancel(n >= 2);
}

// Runs (or goes on with) a stored run in this process until it ends.
int Drive(store::Store& store, const StoredRun& run, std::vector<StepRecord> records, std::chrono::milliseconds grace,
          bool use_cache = true, std::vector<engine::AttemptRecord> adopt = {}) {
  auto plugins = PluginsFor(run.pipeline);
  if (!plugins.ok()) return Fail(plugins.status().message(), kExitUsage);
  Status st = store.runs().SetOwner(run.row.id, ::getpid(), exec::ProcessStartTime(::getpid()));
  if (!st.ok()) return Fail("sluice: " + st.message(), kExitFailed);
  engine::Plan plan = engine::MakePlan(run.pipeline);
  engine::EngineOptions options;
  options.jobs = run.row.jobs;
  options.grace = grace;
  options.seed = static_cast<uint64_t>(run.row.id) * 0x9e3779b97f4a7c15ull ^ static_cast<uint64_t>(::getpid());
  options.workdir = run.row.workdir;
  options.log_dir = fs::absolute(HomeDir()).lexically_normal().string() + "/logs/" + std::to_string(run.row.id);
  store::ArtifactStore artifacts(fs::absolute(HomeDir()).lexically_normal().string() + "/artifacts");
  options.artifacts = &artifacts;
  options.use_cache = use_cache;
  options.adopt = std::move(adopt);
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "SLUICE_HOME=", 12) != 0) options.base_env.emplace_back(*e);
  options.base_env.push_back("SLUICE_HOME=" + fs::absolute(HomeDir()).lexically_normal().string());

  exec::LocalExecutor local(&*plugins);
  // A Slurm executor when a step asks for one; the router sends each attempt
  // where its placement says and waits in local's Wait(), which a Slurm
  // job's end wakes.
  std::unique_ptr<exec::SlurmExecutor> slurm;
  if (std::any_of(run.pipeline.steps.begin(), run.pipeline.steps.end(), [](const spec::Step& s) {
        return exec::RoutingExecutor::Route(s.executor) == exec::RoutingExecutor::Where::kSlurm;
      })) {
    std::error_code ec;
    slurm = std::make_unique<exec::SlurmExecutor>(
        fs::read_symlink("/proc/self/exe", ec).string(),
        exec::PluginCatalog::SearchPath(fs::absolute(run.pipeline.file).parent_path().string()),
        [&local] { local.Wake(); });
  }
  exec::RoutingExecutor executor(&local, slurm.get());
  engine::SystemClock clock;
  bool terminal = ::isatty(STDOUT_FILENO);
  Progress progress(run.row.id, static_cast<int>(run.pipeline.steps.size()), stdout, terminal);
  local.SetProgressSink([&progress](int64_t attempt, double fraction, const std::string& message) {
    progress.StepProgress(attempt, fraction, message);
  });
  // OpenLineage events, to $SLUICE_OPENLINEAGE_FILE and/or $SLUICE_OPENLINEAGE_URL.
  engine::Observer* observer = &progress;
  std::unique_ptr<OpenLineageEvents> lineage_events;
  const char* lineage_file = std::getenv("SLUICE_OPENLINEAGE_FILE");
  const char* lineage_url = std::getenv("SLUICE_OPENLINEAGE_URL");
  if ((lineage_file && *lineage_file) || (lineage_url && *lineage_url)) {
    std::unique_ptr<OpenLineageHttp> http;
    if (lineage_url && *lineage_url) {
      OpenLineageHttp::Options o;
      o.url = lineage_url;
      if (const char* key = std::getenv("SLUICE_OPENLINEAGE_API_KEY")) o.api_key = key;
      http = std::make_unique<OpenLineageHttp>(o);
      if (!http->error().empty()) return Fail("sluice: SLUICE_OPENLINEAGE_URL: " + http->error(), kExitUsage);
    }
    const char* ns = std::getenv("SLUICE_OPENLINEAGE_NAMESPACE");
    std::string path = lineage_file ? lineage_file : "";
    lineage_events = std::make_unique<OpenLineageEvents>(path, std::move(http), ns && *ns ? ns : "sluice",
                                                         run.pipeline.name,
                                                         fs::absolute(HomeDir()).lexically_normal().string(), &store.lineage(),
                                                         &progress);
    if (!lineage_events->ok()) return Fail("sluice: cannot open " + path + " for OpenLineage events", kExitFailed);
    observer = lineage_events.get();
  }
  engine::Engine eng(plan, run.params, run.row.id, &store.runs(), &executor, &clock, observer, options, std::move(records));

  struct sigaction sa {}, old_int{}, old_term{};
  sa.sa_handler = OnInterrupt;
  sigemptyset(&sa.sa_mask);
  g_interrupts = 0;
  g_engine = &eng;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  if (!terminal)
    std::printf("%s run=%lld event=run-started pipeline=%s steps=%zu jobs=%d\n", IsoTime(clock.WallMs()).c_str(),
                static_cast<long long>(run.row.id), run.pipeline.name.c_str(), run.pipeline.steps.size(), run.row.jobs);
  auto t0 = std::chrono::steady_clock::now();
  auto result = eng.Run();
  progress.Finish();
  g_engine = nullptr;
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  if (!result.ok()) return Fail("sluice: run " + std::to_string(run.row.id) + ": " + result.status().message(), kExitFailed);
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  auto counts = eng.counts();
  std::printf("run %lld %s in %s: %s, %d failed (sluice show %lld)\n", static_cast<long long>(run.row.id),
              engine::Name(*result), FormatDuration(elapsed).c_str(), Plural(counts.total, "step").c_str(), counts.failed,
              static_cast<long long>(run.row.id));
  std::fflush(stdout);
  switch (*result) {
    case RunState::kSucceeded: return kExitOk;
    case RunState::kCancelled: return kExitCancelled;
    default: return kExitFailed;
  }
}

bool ParseGrace(const std::string& text, std::chrono::milliseconds* out) {
  auto d = ParseDuration(text);
  if (!d) {
    std::cerr << "sluice: bad duration " << Quote(text) << " for --grace (use a number and a unit: 500ms, 10s, 5m)\n";
    return false;
  }
  *out = *d;
  return true;
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
    return kExitOk;
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
    return kExitOk;
  }
  int layers = plan.order.empty() ? 0 : plan.layer[plan.order.back()] + 1;
  std::printf("pipeline %s: %s in %s", p->name.c_str(), Plural(static_cast<int64_t>(p->steps.size()), "step").c_str(),
              Plural(layers, "layer").c_str());
  if (!params->empty()) std::printf(" (params: %s)", ParamsText(*params).c_str());
  std::printf("\n");
  int layer = -1;
  for (size_t i : plan.order) {
    const spec::Step& s = p->steps[i];
    if (plan.layer[i] != layer) {
      layer = plan.layer[i];
      std::printf("layer %d\n", layer);
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
    std::printf("  %-20s %s", s.id.c_str(), what.c_str());
    if (!s.needs.empty()) std::printf("  needs %s", Join(s.needs, ", ").c_str());
    std::printf("\n");
  }
  return kExitOk;
}

int Run(const std::string& file, const Overrides& overrides, int jobs, const std::string& grace_text, bool no_cache) {
  std::chrono::milliseconds grace;
  if (!ParseGrace(grace_text, &grace)) return kExitUsage;
  auto p = spec::LoadPipeline(file);
  if (!p.ok()) return Fail((p.status().code() == Code::kIoError ? "sluice: " : "") + p.status().message(), kExitUsage);
  auto params = spec::ResolveParams(*p, overrides);
  if (!params.ok()) return Fail(params.status().message(), kExitUsage);
  if (auto plugins = PluginsFor(*p); !plugins.ok()) return Fail(plugins.status().message(), kExitUsage);
  auto store = OpenStore();
  if (!store) return kExitFailed;
  fs::path spec_path = fs::absolute(file).lexically_normal();
  engine::SystemClock clock;
  auto id = store->runs().CreateRun(p->name, p->text, spec_path.string(), spec_path.parent_path().string(),
                             spec::ParamsJson(*params).dump(), jobs, clock.WallMs());
  if (!id.ok()) return Fail("sluice: " + id.status().message(), kExitFailed);
  auto row = store->runs().GetRun(*id);
  if (!row.ok()) return Fail("sluice: " + row.status().message(), kExitFailed);
  StoredRun run{std::move(*row), std::move(*p), std::move(*params)};
  return Drive(*store, run, {}, grace, !no_cache);
}

namespace {

// What `resume` and `retry` start from: the store and the stored run.
struct Reopened {
  int64_t id = 0;
  std::string name;  // "run 7", for messages (never "run latest")
  std::chrono::milliseconds grace{0};
  std::unique_ptr<store::Store> store;
  std::optional<StoredRun> run;
};

// One line on stderr when the run's spec file is no longer the spec stored
// with the run, which is what `doing` (resuming, retrying) goes on with.
void WarnIfSpecChanged(const Reopened& r, const std::string& doing, const std::string& hint) {
  const std::string& path = r.run->row.spec_path;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::cerr << "sluice: " << path << " is gone; " << doing << " with the spec stored with the run\n";
    return;
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (Sha256Hex(text.str()) != r.run->row.spec_hash)
    std::cerr << "sluice: " << path << " changed since " << r.name << " started; " << doing
              << " with the spec stored with the run" << hint << "\n";
}

// Each step's definition as written (its YAML without positions; map keys
// sorted), by id; under "" the keys every step inherits (env, defaults,
// secrets). `sluice retry --reload` runs the steps whose definition changed.
std::string Canonical(const spec::YamlNode& n) {
  switch (n.kind) {
    case spec::YamlNode::Kind::kNull: return "~";
    case spec::YamlNode::Kind::kScalar: return (n.quoted ? "q" : "p") + JsonString(n.scalar);
    case spec::YamlNode::Kind::kSequence: {
      std::string out = "[";
      for (const spec::YamlNode& i : n.items) out += Canonical(i) + ",";
      return out + "]";
    }
    case spec::YamlNode::Kind::kMap: {
      std::vector<std::string> entries;
      for (const spec::YamlEntry& e : n.entries) entries.push_back(Canonical(e.first) + ":" + Canonical(e.second));
      std::sort(entries.begin(), entries.end());
      return "{" + Join(entries, ",") + "}";
    }
  }
  return "";
}

std::map<std::string, std::string> StepDefinitions(const std::string& text) {
  std::map<std::string, std::string> out;
  auto tree = spec::ParseYaml(text);
  const spec::YamlNode* root = std::get_if<spec::YamlNode>(&tree);
  if (!root || !root->IsMap()) return out;
  for (const spec::YamlEntry& e : root->entries) {
    const std::string& key = e.first.scalar;
    if (key == "steps" && e.second.IsMap())
      for (const spec::YamlEntry& step : e.second.entries) out[step.first.scalar] = Canonical(step.second);
    else if (key == "env" || key == "defaults" || key == "secrets")
      out[""] += key + "=" + Canonical(e.second) + ";";
  }
  return out;
}

// 0 when `out` is ready, else the exit code (the error is printed).
int Reopen(const std::string& run_text, const std::string& grace_text, Reopened* out) {
  if (!ParseRunId(run_text, &out->id) || !ParseGrace(grace_text, &out->grace)) return kExitUsage;
  out->name = "run " + std::to_string(out->id);
  out->store = OpenStore();
  if (!out->store) return kExitFailed;
  auto run = LoadStoredRun(out->store->runs(), out->id);
  if (!run.ok()) return Fail("sluice: " + run.status().message(), kExitFailed);
  out->run = std::move(*run);
  return 0;
}

// Takes a run `sluice serve` queued out of its queue to drive it here, and
// reads its row again; true if this call took it.
Result<bool> ClaimQueued(store::RunsStore& runs, int64_t id, store::RunRow* row) {
  auto claimed = runs.StartQueued(id);
  if (!claimed.ok()) return claimed.status();
  auto fresh = runs.GetRun(id);
  if (!fresh.ok()) return fresh.status();
  *row = *fresh;
  return *claimed;
}

}  // namespace

int Resume(const std::string& run_text, const std::string& grace_text, bool no_cache) {
  Reopened r;
  if (int code = Reopen(run_text, grace_text, &r)) return code;
  int64_t id = r.id;
  const std::string& name = r.name;
  std::string number = std::to_string(id);
  auto& store = r.store;
  auto& run = r.run;
  RunState state = run->row.state;
  if (state == RunState::kQueued) {
    if (run->row.queued_retry)
      return Fail("sluice: " + name + " is queued by sluice serve for a retry; sluice retry " + number + " runs it now",
                  kExitFailed);
    // Queued by `sluice serve` behind a max_active_runs cap: asked for by
    // hand, it starts now, and the server's queue skips it.
    auto claimed = ClaimQueued(store->runs(), id, &run->row);
    if (!claimed.ok()) return Fail("sluice: " + claimed.status().message(), kExitFailed);
    state = run->row.state;
    if (*claimed) std::printf("%s was queued by sluice serve; starting it now\n", name.c_str());
  }
  if (state == RunState::kSucceeded || state == RunState::kFailed || state == RunState::kCancelled)
    return Fail("sluice: " + name + " already " + engine::Name(state) + "; nothing to resume (sluice retry " + number +
                    " runs failed steps again)",
                kExitFailed);
  if (OwnerAlive(run->row))
    return Fail("sluice: " + name + " is still being run by pid " + std::to_string(run->row.owner_pid), kExitFailed);
  WarnIfSpecChanged(r, "resuming", "");
  engine::SystemClock clock;
  auto lost = store->runs().TakeOverRun(id, clock.WallMs());
  if (!lost.ok()) return Fail("sluice: " + lost.status().message(), kExitFailed);
  KillLeftovers(*lost);
  auto records = store->runs().LoadSteps(id);
  if (!records.ok()) return Fail("sluice: " + records.status().message(), kExitFailed);
  // Cluster jobs left running are followed, not submitted again.
  auto attempts = store->runs().ListAttempts(id);
  if (!attempts.ok()) return Fail("sluice: " + attempts.status().message(), kExitFailed);
  std::vector<engine::AttemptRecord> adopt;
  for (const auto& a : *attempts)
    if (a.state == StepState::kRunning && !a.job_id.empty()) adopt.push_back(a);
  return Drive(*store, *run, std::move(*records), r.grace, !no_cache, std::move(adopt));
}

namespace {

// `retry --reload`: the spec file as it is now, checked like `sluice run`
// checks it, with the run's params carried over (new params take their
// defaults). 0 when `reloaded` is ready, else the exit code.
int ReloadSpec(const Reopened& r, spec::Pipeline* reloaded, spec::ParamValues* params) {
  const store::RunRow& row = r.run->row;
  auto p = spec::LoadPipeline(row.spec_path);
  if (!p.ok()) return Fail((p.status().code() == Code::kIoError ? "sluice: " : "") + p.status().message(), kExitUsage);
  if (p->name != row.pipeline)
    return Fail("sluice: " + row.spec_path + " now names pipeline " + Quote(p->name) + ", not " + Quote(row.pipeline) +
                    "; start a new run with sluice run",
                kExitUsage);
  if (auto plugins = PluginsFor(*p); !plugins.ok()) return Fail(plugins.status().message(), kExitUsage);
  auto stored = nlohmann::json::parse(row.params_json, nullptr, false);
  Overrides overrides;
  for (const spec::ParamSpec& ps : p->params)
    if (stored.is_object() && stored.contains(ps.name))
      overrides.emplace_back(ps.name, spec::Value::FromJson(stored[ps.name]).Render());
  auto resolved = spec::ResolveParams(*p, overrides, "by " + r.name);
  if (!resolved.ok()) return Fail(resolved.status().message(), kExitUsage);
  *reloaded = std::move(*p);
  *params = std::move(*resolved);
  return 0;
}

}  // namespace

int Retry(const std::string& run_text, const std::string& from, const std::string& grace_text, bool no_cache,
          bool reload) {
  Reopened r;
  if (int code = Reopen(run_text, grace_text, &r)) return code;
  int64_t id = r.id;
  const std::string& name = r.name;
  std::string number = std::to_string(id);
  auto& store = r.store;
  auto& run = r.run;
  RunState state = run->row.state;
  if (state == RunState::kQueued && run->row.queued_retry) {
    // A retry `sluice serve` queued behind a cap: run it now instead.
    auto claimed = ClaimQueued(store->runs(), id, &run->row);
    if (!claimed.ok()) return Fail("sluice: " + claimed.status().message(), kExitFailed);
    state = run->row.state;
  }
  if (state == RunState::kQueued)
    return Fail("sluice: " + name + " is queued by sluice serve and has not started; sluice resume " + number +
                    " starts it now",
                kExitFailed);
  if (state == RunState::kRunning || state == RunState::kPending)
    return Fail("sluice: " + name + " has not finished" +
                    (OwnerAlive(run->row) ? " (pid " + std::to_string(run->row.owner_pid) + " runs it)"
                                          : "; sluice resume " + number + " finishes it"),
                kExitFailed);
  // The spec: the one stored with the run, or with --reload the file as it
  // is now, whose changed steps run again too.
  std::optional<store::RunSpecUpdate> update;
  std::vector<std::string> changed;
  if (reload) {
    spec::Pipeline current;
    spec::ParamValues params;
    if (int code = ReloadSpec(r, &current, &params)) return code;
    auto before = StepDefinitions(run->pipeline.text), now = StepDefinitions(current.text);
    bool all = before[""] != now[""];
    for (const spec::Step& s : current.steps)
      if (all || !before.count(s.id) || before[s.id] != now[s.id]) changed.push_back(s.id);
    update = store::RunSpecUpdate{current.text, spec::ParamsJson(params).dump()};
    run->pipeline = std::move(current);
    run->params = std::move(params);
  } else {
    WarnIfSpecChanged(r, "retrying", " (--reload uses the file as it is now)");
  }
  auto records = store->runs().LoadSteps(id);
  if (!records.ok()) return Fail("sluice: " + records.status().message(), kExitFailed);
  const spec::Pipeline& p = run->pipeline;
  engine::Plan plan = engine::MakePlan(p);
  // Roots run again with everything downstream of them: the named step, or
  // the failed and cancelled ones; with --reload, changed steps too.
  std::set<size_t> roots, whole;
  if (!from.empty()) {
    const spec::Step* s = p.FindStep(from);
    if (!s) {
      std::vector<std::string> ids;
      for (const spec::Step& x : p.steps) ids.push_back(x.id);
      return Fail("sluice: " + name + " has no step " + Quote(from) + DidYouMean(from, ids), kExitUsage);
    }
    roots.insert(p.index.at(from));
    whole.insert(p.index.at(from));
  } else {
    for (const StepRecord& rec : *records)
      if (rec.item < 0 && (rec.state == StepState::kFailed || rec.state == StepState::kCancelled) &&
          p.index.count(rec.step_id))
        roots.insert(p.index.at(rec.step_id));
  }
  for (const std::string& c : changed) {
    roots.insert(p.index.at(c));
    whole.insert(p.index.at(c));
  }
  if (roots.empty())
    return Fail("sluice: " + name + " has no failed or cancelled steps" + (reload ? " and no changed ones" : "") +
                    "; name one with --from STEP",
                kExitFailed);
  // Everything downstream of a root runs again from scratch.
  std::set<size_t> downstream;
  std::vector<size_t> stack(roots.begin(), roots.end());
  while (!stack.empty()) {
    size_t i = stack.back();
    stack.pop_back();
    for (size_t d : plan.dependants[i])
      if (downstream.insert(d).second) stack.push_back(d);
  }
  std::vector<std::string> rerun, failed_items;
  for (size_t i : downstream) rerun.push_back(p.steps[i].id);
  for (size_t i : roots)
    if (!downstream.count(i)) (whole.count(i) ? rerun : failed_items).push_back(p.steps[i].id);
  Status st = store->runs().ResetSteps(id, rerun, failed_items, update ? &*update : nullptr);
  if (!st.ok()) return Fail("sluice: " + st.message(), kExitFailed);
  engine::SystemClock clock;
  auto lost = store->runs().TakeOverRun(id, clock.WallMs());
  if (!lost.ok()) return Fail("sluice: " + lost.status().message(), kExitFailed);
  records = store->runs().LoadSteps(id);
  if (!records.ok()) return Fail("sluice: " + records.status().message(), kExitFailed);
  std::string again = Plural(static_cast<int64_t>(rerun.size() + failed_items.size()), "step") + " again";
  if (reload)
    std::printf("retrying %s with the current %s: %s%s\n", name.c_str(),
                fs::path(run->row.spec_path).filename().c_str(), again.c_str(),
                changed.empty() ? " (no step changed)" : (" (changed: " + Join(changed, ", ") + ")").c_str());
  else
    std::printf("retrying %s: %s\n", name.c_str(), again.c_str());
  // --from: the named step and what follows run fresh, not from the cache.
  return Drive(*store, *run, std::move(*records), r.grace, !no_cache && from.empty());
}

int Plugins(const std::string& dir, const std::string& format) {
  std::vector<std::string> folders = exec::PluginCatalog::SearchPath(fs::absolute(dir).lexically_normal().string());
  exec::PluginCatalog catalog = exec::PluginCatalog::Load(folders);
  if (format == "json") {
    nlohmann::json j = {{"search_path", folders}, {"refused", catalog.refused()}, {"plugins", nlohmann::json::array()}};
    for (const auto& p : catalog.plugins()) {
      nlohmann::json types = nlohmann::json::array();
      for (const auto& t : p->step_types) {
        types.push_back({{"id", t.id}, {"revision", t.revision}, {"description", t.description}, {"params", t.params_schema}});
        if (t.outputs) {
          nlohmann::json outputs = nlohmann::json::object();
          for (const auto& [name, kind] : *t.outputs) outputs[name] = kind;
          types.back()["outputs"] = outputs;
        }
      }
      j["plugins"].push_back({{"name", p->name}, {"version", p->version}, {"path", p->path}, {"step_types", types}});
    }
    std::cout << JsonText(j, 2) << "\n";
    return kExitOk;
  }
  std::printf("search path: %s\n", Join(folders, ":").c_str());
  for (const auto& p : catalog.plugins()) {
    std::printf("\n%s %s  (%s)\n", p->name.c_str(), p->version.c_str(), p->path.c_str());
    for (const auto& t : p->step_types) {
      std::printf("  %s/%s  rev %u  %s\n", p->name.c_str(), t.id.c_str(), t.revision, t.description.c_str());
      const auto& props = t.params_schema.value("properties", nlohmann::json::object());
      auto required = t.params_schema.value("required", nlohmann::json::array());
      for (auto it = props.begin(); it != props.end(); ++it) {
        bool req = std::find(required.begin(), required.end(), it.key()) != required.end();
        std::string type = it->contains("type") ? ((*it)["type"].is_string() ? (*it)["type"].get<std::string>() : (*it)["type"].dump())
                           : it->contains("enum") ? "one of " + (*it)["enum"].dump()
                                                  : "any";
        std::string line = "    " + it.key() + ": " + type + (req ? ", required" : "");
        if (it->contains("default")) line += ", default " + (*it)["default"].dump();
        if (it->contains("description")) line += "  " + (*it)["description"].get<std::string>();
        std::printf("%s\n", line.c_str());
      }
      if (t.outputs) {
        std::vector<std::string> outputs;
        for (const auto& [name, kind] : *t.outputs) outputs.push_back(name + " (" + kind + ")");
        std::printf("    outputs: %s\n", outputs.empty() ? "none" : Join(outputs, ", ").c_str());
      }
    }
  }
  for (const std::string& r : catalog.refused()) std::printf("\nrefused: %s\n", r.c_str());
  if (catalog.plugins().empty() && catalog.refused().empty()) std::printf("\nno plugins found\n");
  return kExitOk;
}

int InstallPlugin(const std::string& library, const std::string& dir) {
  std::error_code ec;
  if (!fs::is_regular_file(library, ec)) return Fail("sluice: " + Quote(library) + " is not a file", kExitUsage);
  fs::path source = fs::absolute(library).lexically_normal();
  auto info = exec::LoadPlugin(source.string());
  if (!info.ok()) return Fail("sluice: not installed: " + info.status().message(), kExitUsage);
  fs::path folder = fs::absolute(dir).lexically_normal() / "plugins";
  fs::path target = folder / source.filename();
  // Another library in the folder that holds a plugin of the same name would
  // make both refused: name it.
  for (const fs::directory_entry& e : fs::directory_iterator(folder, ec)) {
    if (e.path().extension() != ".so" || e.path().filename() == target.filename()) continue;
    auto other = exec::LoadPlugin(e.path().string());
    if (other.ok() && (*other)->name == (*info)->name)
      return Fail("sluice: not installed: " + e.path().string() + " already holds plugin " + Quote((*info)->name) +
                      " (version " + (*other)->version + "); remove it first",
                  kExitUsage);
  }
  fs::create_directories(folder, ec);
  if (ec) return Fail("sluice: create " + folder.string() + ": " + ec.message(), kExitFailed);
  if (fs::exists(target, ec) && fs::equivalent(source, target, ec))
    return Fail("sluice: " + source.string() + " is already the installed file", kExitUsage);
  // Copy, then rename over: a process that loaded the old file keeps it.
  fs::path partial = target;
  partial += ".partial";
  fs::copy_file(source, partial, fs::copy_options::overwrite_existing, ec);
  if (!ec) fs::rename(partial, target, ec);
  if (ec) {
    fs::remove(partial);
    return Fail("sluice: copy to " + target.string() + ": " + ec.message(), kExitFailed);
  }
  std::printf("installed %s %s (%s) as %s\n", (*info)->name.c_str(), (*info)->version.c_str(),
              Plural(static_cast<int64_t>((*info)->step_types.size()), "step type").c_str(), target.c_str());
  return kExitOk;
}

int Cancel(const std::string& run_text) {
  int64_t id;
  if (!ParseRunId(run_text, &id)) return kExitUsage;
  const std::string name = "run " + std::to_string(id);
  auto store = OpenStore();
  if (!store) return kExitFailed;
  auto row = store->runs().GetRun(id);
  if (!row.ok()) return Fail("sluice: " + row.status().message(), kExitFailed);
  RunState state = row->state;
  engine::SystemClock clock;
  if (state == RunState::kQueued) {
    // Not started: cancelled where it waits (the server's queue skips it).
    auto cancelled = store->runs().CancelQueued(id, clock.WallMs());
    if (!cancelled.ok()) return Fail("sluice: " + cancelled.status().message(), kExitFailed);
    if (*cancelled) {
      std::printf("%s cancelled (it was queued)\n", name.c_str());
      return kExitOk;
    }
    row = store->runs().GetRun(id);  // it started meanwhile
    if (!row.ok()) return Fail("sluice: " + row.status().message(), kExitFailed);
    state = row->state;
  }
  if (state != RunState::kRunning && state != RunState::kPending)
    return Fail("sluice: " + name + " already " + engine::Name(state), kExitFailed);
  Status st = store->runs().RequestCancel(id);
  if (!st.ok()) return Fail("sluice: " + st.message(), kExitFailed);
  if (OwnerAlive(*row)) {
    // The owner notices within its cancel poll; wait for it to finish.
    std::printf("cancel requested; sluice (pid %lld) is stopping %s\n", static_cast<long long>(row->owner_pid),
                name.c_str());
    std::fflush(stdout);
    while (true) {
      auto now = store->runs().GetRun(id);
      if (!now.ok()) return Fail("sluice: " + now.status().message(), kExitFailed);
      if (now->state != RunState::kRunning && now->state != RunState::kPending) {
        std::printf("%s %s\n", name.c_str(), engine::Name(now->state));
        return kExitOk;
      }
      if (!OwnerAlive(*now)) break;  // it died meanwhile: cancel it here
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  // Nobody drives the run: cancel it in the store and kill leftovers.
  auto lost = store->runs().TakeOverRun(id, clock.WallMs());
  if (!lost.ok()) return Fail("sluice: " + lost.status().message(), kExitFailed);
  KillLeftovers(*lost);
  auto records = store->runs().LoadSteps(id);
  if (!records.ok()) return Fail("sluice: " + records.status().message(), kExitFailed);
  std::vector<const StepRecord*> changed;
  for (StepRecord& r : *records)
    if (!engine::IsFinal(r.state)) {
      r.state = StepState::kCancelled;
      r.reason = "run cancelled";
      changed.push_back(&r);
    }
  st = store->runs().SaveSteps(id, changed);
  if (st.ok()) st = store->runs().SetRunState(id, RunState::kCancelled, clock.WallMs());
  if (st.ok()) st = store->runs().Flush();
  if (!st.ok()) return Fail("sluice: " + st.message(), kExitFailed);
  std::printf("%s cancelled\n", name.c_str());
  return kExitOk;
}

}  // namespace sluice::cli
