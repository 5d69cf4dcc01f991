#include "engine/attempt_render.h"

#include <algorithm>

#include "engine/decide.h"

#include "spec/template.h"
#include "util/strings.h"

namespace sluice::engine {

using spec::Value;

namespace {

// `run.scheduled_time` (`name` scheduled_time or interval_end) or
// `run.interval_start` of a run with `interval`, as ISO 8601 UTC text
// ("2026-11-25T03:00:00Z"); null for a run no schedule or backfill started.
Value RunTime(const std::string& name, const std::optional<DataInterval>* interval) {
  if (!interval || !*interval) return Value();  // not a scheduled run
  int64_t ms = name == "interval_start" ? (*interval)->start_ms : (*interval)->end_ms;
  std::string iso = IsoTime(ms);  // 2026-11-25T03:00:00.000Z; fire times are whole minutes
  if (iso.size() > 5 && iso.compare(iso.size() - 5, 5, ".000Z") == 0) iso.replace(iso.size() - 5, 5, "Z");
  return Value::Str(iso);
}

}  // namespace

Result<Value> StepContext::Lookup(const std::vector<std::string>& path) const {
  const std::string& root = path[0];
  const spec::Pipeline& p = *run_.plan->pipeline;
  if (root == "params") return run_.params->at(path[1]);
  if (root == "env") {
    if (spec::IsSecretName(p, path[1]))
      return Status::InvalidSpec("env." + path[1] + " is a secret; list it under secrets: and read $" + path[1] +
                                 " in the step");
    auto it = run_.pipeline_env->find(path[1]);
    if (it != run_.pipeline_env->end()) return Value::Str(it->second);
    if (std::optional<std::string> v = run_.env->GetVar(path[1])) {
      if (!IsUtf8(*v)) return Status::InvalidSpec("env." + path[1] + " is not UTF-8 text");
      return Value::Str(*v);
    }
    return Status::NotFound("env." + path[1] + " is not set");
  }
  if (root == "item") {
    if (!unit_) return Status::NotFound("'item' is only defined inside a foreach item");
    return unit_->item_value;
  }
  if (root == "run") {
    if (path[1] == "state" || path[1] == "failed_steps") {  // a finally step's: the run as the steps of `steps:` left it
      bool timed_out = run_.timed_out && *run_.timed_out;
      if (path[1] == "state") return Value::Str(Name(MainRunState(*run_.plan, *run_.graph, *run_.cancelling, timed_out)));
      return FailedSteps(*run_.plan, *run_.graph);
    }
    return RunTime(path[1], run_.interval);
  }
  if (root == "service") {  // service.port, in the service's own step
    if (!unit_ || unit_->port.is_null()) return Status::NotFound("service.port: the service has no port yet");
    return unit_->port;
  }
  // steps.<id>.state | steps.<id>.exit_code | steps.<id>.port | steps.<id>.outputs.<key>
  size_t j = p.index.at(path[1]);
  // In a call with foreach, a step of the same call is read at this item.
  const bool same_item = unit_ && !p.steps[node_].chain.empty() && p.steps[j].chain == p.steps[node_].chain;
  const StepRecord& r = same_item ? run_.graph->ItemRecord(j, unit_->item) : run_.graph->record(j);
  if (path[2] == "port") {
    if (r.port.is_null()) return Status::NotFound("step '" + path[1] + "' has no port (it never started)");
    return r.port;
  }
  // A step served from the cache succeeded, as far as conditions go.
  if (path[2] == "state") return Value::Str(Name(r.state == StepState::kCached ? StepState::kSucceeded : r.state));
  if (path[2] == "exit_code") return r.exit_code;
  auto it = r.outputs.find(path[3]);
  if (it == r.outputs.end() && r.items && r.items->empty() && r.state == StepState::kSucceeded)
    return Value::Of(spec::List{});  // a foreach over no items: every output is the empty list
  if (it == r.outputs.end()) {
    std::string why = r.state == StepState::kSucceeded ? "" : std::string(" (it ") + Name(r.state) + ")";
    return Status::NotFound("step '" + path[1] + "' has no output '" + path[3] + "'" + why);
  }
  if (inputs_) RecordInputs(p.steps[j], path[3], it->second, inputs_);
  return it->second;
}

bool StepContext::StatusFunction(std::string_view name) const {
  if (name == "always") return true;
  if (name == "cancelled") return *run_.cancelling;
  const Plan& plan = *run_.plan;
  if (name == "success") {
    // Every need succeeded, or was skipped by its own condition (a branch
    // not taken), or failed with continue_on_error; and nothing upstream
    // failed (a step skipped because of a failure passes the skip on). A
    // finally step runs after a cancel too: only its own needs count.
    if (*run_.cancelling && !plan.pipeline->steps[node_].is_finally) return false;
    const auto& item_needs = plan.item_needs[node_];
    for (size_t n : plan.needs[node_]) {
      StepState need = run_.graph->record(n).state;
      if (std::find(item_needs.begin(), item_needs.end(), n) != item_needs.end() && run_.graph->expanded_items(n)) {
        if (!unit_) continue;  // the step as a whole: its items are decided one by one
        need = run_.graph->ItemRecord(n, unit_->item).state;
      }
      // A service that is still running let its dependants in: it is ready.
      bool ok = need == StepState::kSucceeded || need == StepState::kCached || need == StepState::kSkipped ||
                (need == StepState::kFailed && plan.pipeline->steps[n].continue_on_error) ||
                (need == StepState::kRunning && plan.pipeline->steps[n].service);
      if (!ok) return false;
    }
    return !UpstreamFailed();
  }
  return UpstreamFailed();  // failure()
}

Result<std::string> StepContext::HashFiles(const std::vector<std::string>& patterns) const {
  if (!run_.files || !run_.spec_dir) return spec::EvalContext::HashFiles(patterns);
  return HashGlobs(*run_.files, *run_.spec_dir, patterns, run_.plan->pipeline->steps[node_].id);
}

bool StepContext::UpstreamFailed() const {
  if (unit_ && !run_.plan->item_needs[node_].empty()) return run_.graph->ItemUpstreamFailed(node_, unit_->item);
  return run_.graph->upstream_failed(node_);
}

AttemptPaths PathsOf(const std::string& log_dir, const std::string& step_id, int item, int attempt) {
  // Appended piece by piece: GCC 12 warns (-Wrestrict, falsely) on "." + std::to_string() here.
  std::string stem = log_dir;
  stem.append("/").append(step_id);
  if (item >= 0) stem.append(".").append(std::to_string(item));
  std::string base = stem;
  base.append(".").append(std::to_string(attempt));
  return {base + ".log", base + ".out", base + ".files", stem + ".state"};
}

AttemptPaths PathsOfLog(const std::string& log_path) {
  std::string base = log_path.substr(0, log_path.size() - std::string(".log").size());
  std::string stem = base.substr(0, base.rfind('.'));
  return {log_path, base + ".out", base + ".files", stem + ".state"};
}

Placement PlacementOf(const spec::Step& s) {
  Placement p;
  p.executor = s.executor;
  p.cpu = s.cpu;
  p.memory = s.memory;
  p.gpu = s.gpu;
  if (s.slurm) {
    p.partition = s.slurm->partition;
    p.account = s.slurm->account;
    p.qos = s.slurm->qos;
    p.time = s.slurm->time;
    p.extra = s.slurm->extra;
  }
  p.timeout = s.timeout;
  return p;
}

Status AttemptRenderer::SetEnvironment(const std::vector<std::string>& sluice_env, const spec::EvalContext& ctx) {
  std::map<std::string, std::string> base;
  // A step gets sluice's environment without its secrets (specs/pipeline.md).
  for (const std::string& kv : sluice_env) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos) continue;
    std::string name = kv.substr(0, eq);
    sluice_env_[name] = kv.substr(eq + 1);
    if (!spec::IsSecretName(pipeline_, name)) base[name] = kv.substr(eq + 1);
  }
  for (const auto& [k, t] : pipeline_.env) {
    auto v = spec::Render(t, ctx);
    if (!v.ok()) return v.status().WithContext("env " + k);
    pipeline_env_[k] = *v;
    base[k] = *v;
  }
  for (const auto& [k, v] : base) base_env_.emplace_back(k, k + "=" + v);
  return Status::Ok();
}

AttemptRequest AttemptRenderer::Request(const spec::Step& s, const StepRecord& unit, int attempt,
                                        const RenderedStep& rendered, AttemptPaths* paths) const {
  *paths = PathsOf(log_dir_, s.id, unit.item, attempt);
  AttemptRequest req;
  req.argv = rendered.argv;
  req.plugin = rendered.plugin;
  req.workdir = rendered.workdir;
  req.log_path = paths->log;
  req.placement = PlacementOf(s);
  if (req.plugin) {
    req.plugin->output_dir = paths->files_dir;
    req.plugin->state_dir = paths->state_dir;
    req.plugin->cpu = s.cpu;
    req.plugin->attempt = attempt;
  }
  req.step_label = unit.item < 0 ? s.id : s.id + "[" + std::to_string(unit.item) + "]";
  return req;
}

Status AttemptRenderer::SetEnv(const spec::Step& s, const StepRecord& unit, int attempt, const RenderedStep& rendered,
                               const AttemptPaths& paths, bool outputs_dir, AttemptRequest* req) const {
  std::map<std::string, std::string> env = rendered.env;  // on top of base_env_
  if (outputs_dir) env["SLUICE_OUTPUTS_DIR"] = paths.files_dir;
  // Secrets the step asks for, from sluice's environment; their values are
  // masked in its log, outputs and reason, and kept out of its identity.
  std::vector<std::string> secret_values;
  for (const std::string& name : s.secrets) {
    auto found = sluice_env_.find(name);
    if (found == sluice_env_.end()) return Status::InvalidSpec("secret " + name + " is not set in sluice's environment");
    env[name] = found->second;
    secret_values.push_back(found->second);
  }
  env["SLUICE_RUN_ID"] = std::to_string(run_id_);
  env["SLUICE_STEP"] = s.id;
  env["SLUICE_ATTEMPT"] = std::to_string(attempt);
  env["SLUICE_OUTPUT"] = paths.output;
  env["SLUICE_STATE_DIR"] = paths.state_dir;
  if (unit.item >= 0) {
    env["SLUICE_ITEM"] = unit.item_value.Render();
    env["SLUICE_ITEM_INDEX"] = std::to_string(unit.item);
  }
  for (const auto& [k, v] : rendered.shell_values) env[k] = v;
  req->env.clear();
  req->env.reserve(base_env_.size() + env.size());
  for (const auto& [k, entry] : base_env_)
    if (!env.count(k)) req->env.push_back(entry);
  for (auto& [k, v] : env) req->env.push_back(k + "=" + v);
  req->secrets = std::move(secret_values);
  return Status::Ok();
}

std::optional<std::string> AttemptRenderer::PathEntry(const RenderedStep& rendered) const {
  if (auto p = rendered.env.find("PATH"); p != rendered.env.end()) return "PATH=" + p->second;
  for (const auto& [k, entry] : base_env_)
    if (k == "PATH") return entry;
  return std::nullopt;
}

}  // namespace sluice::engine
