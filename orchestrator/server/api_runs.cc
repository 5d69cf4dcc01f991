// The API's routes for pipelines, runs, their attempts, logs and events
// (server/api.h).
#include "server/api.h"
#include "server/api_helpers.h"


#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "engine/plan.h"
#include "runs/approval.h"
#include "runs/concurrency.h"
#include "runs/verbs.h"
#include "spec/expr.h"
#include "store/open.h"
#include "store/run_json.h"
#include "util/hash.h"
#include "util/json.h"
#include "util/strings.h"

namespace sluice::server {

namespace fs = std::filesystem;
using engine::RunState;
using json = nlohmann::json;

using internal::Json;
using internal::NowMs;
using internal::ParseId;
using internal::ResolveInside;

namespace {

json ParamsOf(const spec::Pipeline& p) {
  json out = json::array();
  for (const spec::ParamSpec& ps : p.params) out.push_back(spec::ParamSpecJson(ps));
  return out;
}

// Each step's DAG fields in plan order, as JSON text without braces: id,
// needs, layer, foreach, kind, and finally: true for a finally step. Text, because a run's answer repeats them for
// every step (10,000 in a big pipeline) and they depend on the spec alone.
std::vector<std::pair<size_t, std::string>> DagFields(const spec::Pipeline& p, const engine::Plan& plan) {
  std::vector<std::pair<size_t, std::string>> out;
  out.reserve(plan.order.size());
  for (size_t i : plan.order) {
    const spec::Step& s = p.steps[i];
    std::string f = "\"id\":" + JsonUserString(s.id) + ",\"needs\":[";
    for (size_t k = 0; k < s.needs.size(); ++k) {
      if (k) f += ',';
      f += JsonUserString(s.needs[k]);
    }
    f += "],\"layer\":" + std::to_string(plan.layer[i]) + ",\"foreach\":" + (s.has_foreach ? "true" : "false");
    f += ",\"kind\":" + JsonUserString(s.uses.empty() ? "run" : s.uses);
    if (s.is_finally) f += ",\"finally\":true";  // an exit handler: drawn in the layers after the others
    out.emplace_back(i, std::move(f));
  }
  return out;
}

json DagOf(const spec::Pipeline& p, const spec::ParamValues* params) {
  engine::Plan plan = engine::MakePlan(p);
  std::vector<engine::Forecast> forecast;
  if (params) forecast = engine::ForecastPlan(plan, *params);
  json steps = json::array();
  for (auto& [i, fields] : DagFields(p, plan)) {
    json j = json::parse("{" + fields + "}");
    if (!forecast.empty()) {
      auto k = forecast[i].kind;
      j["forecast"] = k == engine::Forecast::Kind::kRuns ? "runs" : k == engine::Forecast::Kind::kSkipped ? "skipped" : "at-run-time";
      if (forecast[i].items >= 0) j["items"] = forecast[i].items;
    }
    steps.push_back(j);
  }
  return steps;
}

// Left running or pending by a driver that is gone (kill -9): `sluice resume` finishes it.
using runs::Interrupted;

std::string RunJsonText(const store::RunRow& r) { return store::RunJsonText(r, Interrupted(r), NowMs()); }

json RunJson(const store::RunRow& r) { return store::RunJson(r, Interrupted(r), NowMs()); }

// How deeply `j` nests (0 for a scalar, 1 for [1]), counted without
// recursion; stops counting past kMaxJsonDepth.
// A JSON param value as the text `-p name=value` would give.
std::string OverrideText(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

}  // namespace

// --- pipelines --------------------------------------------------------------

namespace {

json SchedulesOf(const spec::Pipeline& p, int count) {
  json out = json::array();
  int64_t now = NowMs() / 1000;
  for (const spec::Schedule& s : p.schedules) {
    json next = json::array();
    for (int64_t t = now; static_cast<int>(next.size()) < count;) {
      auto n = s.cron.Next(t, s.zone);
      if (!n) break;
      next.push_back(IsoTime(*n * 1000));
      t = *n;
    }
    out.push_back({{"cron", s.cron.text()}, {"timezone", s.timezone}, {"catchup", spec::CatchupJson(s.catchup)},
                   {"overlap", spec::OverlapName(s.overlap)}, {"next", next}});
  }
  return out;
}

}  // namespace

Response Api::ListPipelines() {
  json out = json::array();
  for (const auto& e : catalog_->List()) {
    json j = {{"name", e->name}, {"file", fs::path(e->file).filename().string()}, {"valid", e->pipeline != nullptr}};
    if (e->pipeline) {
      j["description"] = e->pipeline->description;
      j["steps"] = e->pipeline->steps.size();
      j["schedules"] = SchedulesOf(*e->pipeline, 1);
      j["webhook"] = e->pipeline->webhook.has_value();
      store::RunFilter f;
      f.pipeline = e->name;
      f.limit = 5;
      json runs = json::array();
      if (auto rows = Runs().ListRuns(f); rows.ok())
        for (auto& row : *rows) runs.push_back(RunJson(row));
      j["runs"] = runs;
    } else {
      j["errors"] = Split(e->error, '\n');
    }
    out.push_back(j);
  }
  return Json(200, {{"pipelines", out}});
}

Response Api::GetPipeline(const std::string& name) {
  auto e = catalog_->Find(name);
  if (!e) return ErrorResponse(404, "not_found", "no pipeline " + Quote(name) + " in " + catalog_->dir());
  json j = {{"name", e->name}, {"file", fs::path(e->file).filename().string()}, {"valid", e->pipeline != nullptr}};
  if (!e->pipeline) {
    j["errors"] = Split(e->error, '\n');
    return Json(200, j);
  }
  const spec::Pipeline& p = *e->pipeline;
  auto defaults = spec::ResolveParams(p, {});
  j["description"] = p.description;
  j["params"] = ParamsOf(p);
  j["dag"] = DagOf(p, defaults.ok() ? &*defaults : nullptr);
  j["schedules"] = SchedulesOf(p, 5);
  if (p.webhook) {
    json params = json::object();
    for (const auto& [k, t] : p.webhook->params) params[k] = t.source;
    j["webhook"] = {{"path", "/hooks/" + p.name}, {"secret_env", p.webhook->secret_env}, {"params", params}};
  } else {
    j["webhook"] = nullptr;
  }
  return Json(200, j);
}

Response Api::ValidateSpec(const Request& r) {
  // The caller names the file: no template file is read on its word.
  auto p = spec::ParsePipeline(r.Query("file").value_or("pipeline.yaml"), r.body, /*read_template_files=*/false);
  if (!p.ok()) return ErrorResponse(400, "invalid_spec", p.status().message());
  auto defaults = spec::ResolveParams(*p, {});
  return Json(200, {{"valid", true}, {"name", p->name}, {"dag", DagOf(*p, defaults.ok() ? &*defaults : nullptr)}});
}

// --- runs -------------------------------------------------------------------

Response Api::ListRuns(const Request& r) {
  store::RunFilter f;
  f.pipeline = r.Query("pipeline").value_or("");
  if (auto st = r.Query("state")) {
    auto parsed = engine::ParseRunState(*st);
    if (!parsed)
      return ErrorResponse(400, "bad_request", "state must be queued, pending, running, succeeded, failed or cancelled");
    f.state = parsed;
  }
  if (auto before = r.Query("before"); before && !ParseId(*before, &f.before_id))
    return ErrorResponse(400, "bad_request", "before must be a run id");
  if (auto trigger = r.Query("trigger")) {
    static const std::vector<std::string> kTriggers = {"cli", "api", "schedule", "webhook", "backfill"};
    if (std::find(kTriggers.begin(), kTriggers.end(), *trigger) == kTriggers.end())
      return ErrorResponse(400, "bad_request", "trigger must be cli, api, schedule, webhook or backfill");
    f.trigger = *trigger;
  }
  if (auto since = r.Query("since_ms"); since && !ParseId(*since, &f.since_ms))
    return ErrorResponse(400, "bad_request", "since_ms must be a time in milliseconds since 1970, from 1");
  if (auto limit = r.Query("limit")) {
    int64_t n = 0;
    if (!ParseId(*limit, &n) || n > 1000) return ErrorResponse(400, "bad_request", "limit must be from 1 to 1000");
    f.limit = static_cast<int>(n);
  }
  auto rows = Runs().ListRuns(f);
  if (!rows.ok()) return ErrorResponse(500, "internal", rows.status().message());
  Response res;
  res.headers.emplace_back("Cache-Control", "no-store");
  res.body.reserve(rows->size() * 400 + 64);
  res.body = "{\"runs\":[";
  const int64_t now = NowMs();
  for (size_t i = 0; i < rows->size(); ++i) {
    if (i) res.body += ',';
    store::AppendRunJson(&res.body, (*rows)[i], Interrupted((*rows)[i]), now);
  }
  bool more = static_cast<int>(rows->size()) == f.limit && !rows->empty();
  res.body += "],\"next_before\":" + (more ? std::to_string(rows->back().id) : std::string("null")) + "}";
  return res;
}

Response Api::StartRun(const Request& r, const std::string& name) {
  auto e = catalog_->Find(name);
  if (!e) return ErrorResponse(404, "not_found", "no pipeline " + Quote(name) + " in " + catalog_->dir());
  if (!e->pipeline) return ErrorResponse(400, "invalid_spec", e->error);
  json body = r.body.empty() ? json::object() : json::parse(r.body, nullptr, false);
  if (!body.is_object()) return ErrorResponse(400, "bad_request", "the body must be a JSON object: {\"params\": {...}}");
  std::vector<std::pair<std::string, std::string>> overrides;
  if (body.contains("params")) {
    if (!body["params"].is_object()) return ErrorResponse(400, "bad_request", "params must be an object");
    for (auto& [k, v] : body["params"].items()) {
      if (v.is_object() || v.is_array() || v.is_null())
        return ErrorResponse(400, "invalid_params", "param " + Quote(k) + " must be a string, number or boolean");
      overrides.emplace_back(k, OverrideText(v));
    }
  }
  auto params = spec::ResolveParams(*e->pipeline, overrides, "in the request");
  if (!params.ok()) return ErrorResponse(400, "invalid_params", params.status().message());
  // What `sluice run` refuses before it records a run: a concurrency group
  // the params render badly, a pool that does not exist or is too small.
  if (auto group = spec::RenderConcurrencyGroup(*e->pipeline, *params); !group.ok())
    return ErrorResponse(400, "invalid_params", group.status().message());
  if (Status pools = runs::CheckPools(ThreadStore().concurrency(), *e->pipeline); !pools.ok())
    return ErrorResponse(pools.code() == Code::kInvalidSpec ? 400 : 500,
                         pools.code() == Code::kInvalidSpec ? "invalid_spec" : "internal", pools.message());
  auto id = launcher_->Start(Runs(), *e->pipeline, *params, "api");
  if (!id.ok()) return ErrorResponse(500, "internal", id.status().message());
  auto row = Runs().GetRun(*id);
  if (!row.ok()) return ErrorResponse(500, "internal", row.status().message());
  Response res = Json(201, RunJson(*row));
  res.headers.emplace_back("Location", "/api/runs/" + std::to_string(*id));
  return res;
}

// The decision on a step waiting for approval (runs/approval.h): 200 with
// the request as decided; 400 for a bad body or value (the step keeps
// waiting); 404 for no run; 409 if the step is not waiting.
Response Api::DecideApproval(const Request& r, int64_t id, const std::string& step) {
  json body = json::parse(r.body, nullptr, false);
  const char* shape = "the body must be a JSON object: {\"decision\": \"approve\" | \"reject\", \"values\": {...}, "
                      "\"comment\": \"...\"}";
  if (!body.is_object() || !body.contains("decision") || !body["decision"].is_string()) return ErrorResponse(400, "bad_request", shape);
  std::string decision = body["decision"].get<std::string>();
  if (decision != "approve" && decision != "reject")
    return ErrorResponse(400, "bad_request", "decision must be approve or reject, not " + Quote(decision));
  runs::ApprovalDecision d{.approve = decision == "approve", .by = Actor(), .via = "in values"};
  if (body.contains("comment")) {
    if (!body["comment"].is_string()) return ErrorResponse(400, "bad_request", "comment must be a string");
    d.comment = body["comment"].get<std::string>();
  }
  if (body.contains("values") && !body["values"].is_null()) {
    if (!body["values"].is_object()) return ErrorResponse(400, "bad_request", "values must be an object");
    for (auto& [k, v] : body["values"].items()) {
      if (v.is_object() || v.is_array() || v.is_null())
        return ErrorResponse(400, "invalid_values", "value " + Quote(k) + " must be a string, number or boolean");
      d.values.emplace_back(k, OverrideText(v));
    }
  }
  auto outcome = runs::Decide(ThreadStore(), id, step, d, NowMs());
  if (!outcome.ok()) return ErrorResponse(500, "internal", outcome.status().message());
  using Why = runs::DecisionOutcome::Why;
  switch (outcome->why) {
    case Why::kRecorded: return Json(200, runs::ApprovalJson(outcome->row));
    case Why::kNoRun: return ErrorResponse(404, "not_found", outcome->message);
    case Why::kBadValues: return ErrorResponse(400, "invalid_values", outcome->message);
    case Why::kNotWaiting: break;
  }
  return ErrorResponse(409, "conflict", outcome->message);
}

// A run's spec, parsed once, and its DAG's fields (DagFields).
struct Api::StoredSpec {
  spec::Pipeline pipeline;
  std::vector<std::pair<size_t, std::string>> dag;
};

std::shared_ptr<const Api::StoredSpec> Api::StoredPipeline(const store::RunRow& row) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = specs_.find(row.spec_hash);
    if (it != specs_.end()) return it->second;
  }
  auto text = Runs().SpecText(row.spec_hash);
  if (!text.ok()) return nullptr;
  auto p = spec::ParsePipeline(row.spec_path, *text);
  if (!p.ok()) return nullptr;
  auto stored = std::make_shared<StoredSpec>();
  stored->pipeline = std::move(*p);
  stored->dag = DagFields(stored->pipeline, engine::MakePlan(stored->pipeline));
  std::lock_guard<std::mutex> lock(mu_);
  specs_[row.spec_hash] = stored;
  return stored;
}

// Written as text: with 10,000 steps and as many attempts, building it as
// nlohmann values took most of a second (their maps and allocations); the
// DAG's part comes from the spec's cache.
Response Api::GetRun(int64_t id) {
  auto row = Runs().GetRun(id);
  if (!row.ok()) return ErrorResponse(404, "not_found", "no run " + std::to_string(id));
  auto spec = StoredPipeline(*row);
  auto records = Runs().LoadSteps(id);
  auto attempts = Runs().ListAttempts(id);
  auto metrics = Runs().ListMetrics(id);
  auto outputs = Runs().RunOutputs(id);
  if (!records.ok() || !attempts.ok() || !metrics.ok() || !outputs.ok()) return ErrorResponse(500, "internal", "cannot read run " + std::to_string(id));
  std::unordered_map<std::string, const engine::StepRecord*> main_records;
  std::map<std::string, std::map<std::string, int>> item_counts;
  for (const auto& rec : *records) {
    if (rec.item < 0) main_records[rec.step_id] = &rec;
    else item_counts[rec.step_id][engine::Name(rec.state)]++;
  }
  store::UnitDurations durations(*attempts, NowMs());
  Response res;
  res.headers.emplace_back("Cache-Control", "no-store");
  std::string& o = res.body;
  o.reserve(512 + (spec ? spec->dag.size() * 200 : 0) + records->size() * 100 + attempts->size() * 300 + metrics->size() * 100);
  o = RunJsonText(*row);
  o.pop_back();  // its closing brace: the run's fields go on
  o += ",\"outputs\":";
  store::AppendRunOutputsJson(&o, *outputs);
  o += ",\"steps\":[";
  bool first = true;
  for (const auto& [index, fields] : spec ? spec->dag : std::vector<std::pair<size_t, std::string>>{}) {
    const std::string& sid = spec->pipeline.steps[index].id;
    o += first ? "{" : ",{";
    first = false;
    o += fields;
    o += ',';
    if (auto it = main_records.find(sid); it != main_records.end()) {
      const engine::StepRecord& rec = *it->second;
      store::AppendStepRecordFields(&o, rec, durations.Of(sid, -1));
      o += ",\"attempts\":" + std::to_string(rec.attempts);
      if (rec.items) o += ",\"items\":" + std::to_string(rec.items->size());
    } else {
      o += "\"state\":\"pending\",\"duration_ms\":" + store::DurationText(durations.Of(sid, -1));
    }
    if (auto it = item_counts.find(sid); it != item_counts.end()) {
      o += ",\"item_states\":{";
      bool first_state = true;
      for (const auto& [state, n] : it->second) {
        if (!first_state) o += ',';
        first_state = false;
        o += '"';
        o += state;
        o += "\":";
        o += std::to_string(n);
      }
      o += '}';
    }
    o += '}';
  }
  o += "],\"items\":[";
  first = true;
  for (const auto& rec : *records)
    if (rec.item >= 0) {
      o += first ? "{\"id\":" : ",{\"id\":";
      first = false;
      o += JsonUserString(rec.step_id);
      o += ',';
      store::AppendStepRecordFields(&o, rec, durations.Of(rec.step_id, rec.item));
      o += ",\"attempts\":" + std::to_string(rec.attempts) + "}";
    }
  o += "],\"attempts\":[";
  for (size_t i = 0; i < attempts->size(); ++i) {
    if (i) o += ',';
    store::AppendAttemptJson(&o, (*attempts)[i]);
  }
  o += "],\"metrics\":[";
  for (size_t i = 0; i < metrics->size(); ++i) {
    if (i) o += ',';
    store::AppendMetricJson(&o, (*metrics)[i]);
  }
  // The steps waiting for approval (and those decided), for the run page's buttons.
  auto approvals = ThreadStore().approvals().OfRun(id);
  if (!approvals.ok()) return ErrorResponse(500, "internal", approvals.status().message());
  json approvals_json = json::array();
  for (const store::ApprovalRow& a : *approvals) approvals_json.push_back(runs::ApprovalJson(a));
  o += "],\"approvals\":" + JsonText(approvals_json);
  o += ",\"driver_log\":";
  o += fs::exists(launcher_->DriverLog(id)) ? "true}" : "false}";
  return res;
}

Response Api::CancelRun(int64_t id) {
  auto row = Runs().GetRun(id);
  if (!row.ok()) return ErrorResponse(404, "not_found", "no run " + std::to_string(id));
  // A queued run is cancelled now; a started one gets the request its driver polls.
  auto cancel = runs::RunVerbs(Runs(), options_.home).Cancel(*row);
  if (!cancel.ok()) return ErrorResponse(500, "internal", cancel.status().message());
  if (cancel->was_queued) {
    launcher_->Forget(Runs(), id);
    return Json(202, {{"id", id}, {"cancel_requested", true}, {"state", "cancelled"}});
  }
  if (cancel->refused)
    return ErrorResponse(409, "conflict", "run " + std::to_string(id) + " already " + engine::Name(cancel->refused.state));
  return Json(202, {{"id", id}, {"cancel_requested", true}});
}

Response Api::RetryRun(int64_t id) {
  auto row = Runs().GetRun(id);
  if (!row.ok()) return ErrorResponse(404, "not_found", "no run " + std::to_string(id));
  // The API's retry names no steps: the failed and cancelled ones run again.
  using Why = runs::Refusal::Why;
  switch (runs::CanRetry(*row, /*names_steps=*/false).why) {
    case Why::kNone: break;
    case Why::kUnfinished:
    case Why::kDriven: return ErrorResponse(409, "conflict", "run " + std::to_string(id) + " has not finished");
    case Why::kQueued:
    case Why::kQueuedForRetry:
      return ErrorResponse(409, "conflict", "run " + std::to_string(id) + " is queued and has not started");
    case Why::kNothingToRetry:
    default:
      return ErrorResponse(409, "conflict", "run " + std::to_string(id) + " succeeded; there are no failed steps to retry");
  }
  auto stored = StoredPipeline(*row);
  const spec::Pipeline* p = stored ? &stored->pipeline : nullptr;
  // A failed run may have nothing to run again (its driver died before any
  // step started): refused here as `sluice retry` would refuse it, not
  // accepted and then failed by the child.
  if (p) {
    auto steps = Runs().LoadSteps(id);
    if (!steps.ok()) return ErrorResponse(500, "internal", steps.status().message());
    if (runs::PlanRetry(*p, *steps, "", {}).refused.why == Why::kNothingToRetry)
      return ErrorResponse(409, "conflict", "run " + std::to_string(id) + " has no failed or cancelled steps to retry");
  }
  auto queued = launcher_->Retry(Runs(), *row, p ? p->max_active_runs : 0);
  if (!queued.ok()) return ErrorResponse(500, "internal", queued.status().message());
  return Json(202, {{"id", id}, {"retrying", true}, {"queued", *queued}});
}

Response Api::ListAttempts(int64_t id) {
  auto row = Runs().GetRun(id);
  if (!row.ok()) return ErrorResponse(404, "not_found", "no run " + std::to_string(id));
  auto attempts = Runs().ListAttempts(id);
  if (!attempts.ok()) return ErrorResponse(500, "internal", attempts.status().message());
  Response res;
  res.headers.emplace_back("Cache-Control", "no-store");
  res.body.reserve(32 + attempts->size() * 300);
  res.body = "{\"attempts\":[";
  for (size_t i = 0; i < attempts->size(); ++i) {
    if (i) res.body += ',';
    store::AppendAttemptJson(&res.body, (*attempts)[i]);
  }
  res.body += "]}";
  return res;
}

namespace {

// Bytes [offset, offset + limit) of a file, as text/plain, with its size.
Response FileRange(const fs::path& path, const Request& r, size_t max_chunk, const std::string& state) {
  int64_t offset = 0, limit = static_cast<int64_t>(max_chunk);
  if (auto o = r.Query("offset")) {
    if (*o != "0" && !ParseId(*o, &offset)) return ErrorResponse(400, "bad_request", "offset must be a number of bytes");
  }
  if (auto l = r.Query("limit")) {
    if (!ParseId(*l, &limit)) return ErrorResponse(400, "bad_request", "limit must be a positive number of bytes");
    limit = std::min<int64_t>(limit, static_cast<int64_t>(max_chunk));
  }
  std::error_code ec;
  int64_t size = static_cast<int64_t>(fs::file_size(path, ec));
  if (ec) size = 0;
  std::string text;
  if (offset < size) {
    std::ifstream in(path, std::ios::binary);
    in.seekg(offset);
    text.resize(static_cast<size_t>(std::min(limit, size - offset)));
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(in.gcount()));
  }
  Response res;
  res.content_type = "text/plain; charset=utf-8";
  res.body = std::move(text);
  res.headers.emplace_back("Cache-Control", "no-store");
  res.headers.emplace_back("X-Log-Size", std::to_string(size));
  res.headers.emplace_back("X-Log-Offset", std::to_string(std::min(offset, size)));
  if (!state.empty()) res.headers.emplace_back("X-Attempt-State", state);
  return res;
}

}  // namespace

Response Api::DriverLog(const Request& r, int64_t id) {
  if (!Runs().GetRun(id).ok()) return ErrorResponse(404, "not_found", "no run " + std::to_string(id));
  fs::path log = launcher_->DriverLog(id);
  auto real = ResolveInside(log, options_.home + "/logs");
  if (!real) return ErrorResponse(404, "not_found", "run " + std::to_string(id) + " was not started by this server");
  return FileRange(*real, r, options_.max_log_chunk, "");
}

Response Api::StepLog(const Request& r, int64_t id, const std::string& step) {
  if (!Runs().GetRun(id).ok()) return ErrorResponse(404, "not_found", "no run " + std::to_string(id));
  int64_t item = -1, number = 0;
  if (auto i = r.Query("item"); i && *i != "-1" && !(*i == "0" ? (item = 0, true) : ParseId(*i, &item)))
    return ErrorResponse(400, "bad_request", "item must be a foreach item index");
  if (auto a = r.Query("attempt"); a && !ParseId(*a, &number))
    return ErrorResponse(400, "bad_request", "attempt must be an attempt number (1, 2, ...)");
  auto attempts = Runs().StepAttempts(id, step, static_cast<int>(item));
  if (!attempts.ok()) return ErrorResponse(500, "internal", attempts.status().message());
  const engine::AttemptRecord* found = nullptr;
  for (const auto& a : *attempts)
    if (number == 0 || a.number == number) found = &a;
  if (!found)
    return ErrorResponse(404, "not_found", "run " + std::to_string(id) + " has no attempt of " + Quote(step) +
                                               (item >= 0 ? "[" + std::to_string(item) + "]" : std::string()));
  fs::path logs = options_.home + "/logs";
  auto real = ResolveInside(found->log_path, logs);
  bool follow = r.Query("follow").value_or("") == "1" || r.Query("follow").value_or("") == "true";
  if (!real && !follow) {
    // An attempt that ended without writing a byte has no log file: its log is empty.
    if (found->state != engine::StepState::kRunning)
      return FileRange(fs::path(), r, options_.max_log_chunk, engine::Name(found->state));
    return ErrorResponse(404, "not_found", "the attempt has no log yet");
  }
  if (follow) {
    int64_t offset = 0;
    if (auto o = r.Query("offset"); o && *o != "0" && !ParseId(*o, &offset))
      return ErrorResponse(400, "bad_request", "offset must be a number of bytes");
    if (!Inside(fs::path(found->log_path).lexically_normal(), fs::path(logs).lexically_normal()))
      return ErrorResponse(404, "not_found", "the attempt's log is not in the store");
    Response res;
    std::string path = found->log_path, step_id = found->step_id;
    int it = found->item, n = found->number;
    EventHub* hub = events_;
    res.on_stream = [=](std::shared_ptr<EventStream> stream) { hub->FollowLog(stream, path, offset, id, step_id, it, n); };
    return res;
  }
  return FileRange(*real, r, options_.max_log_chunk, engine::Name(found->state));
}

Response Api::Events(const Request& r) {
  int64_t run = 0;
  if (auto q = r.Query("run"); q && !ParseId(*q, &run)) return ErrorResponse(400, "bad_request", "run must be a run id");
  Response res;
  EventHub* hub = events_;
  res.on_stream = [hub, run](std::shared_ptr<EventStream> stream) { hub->Subscribe(stream, run); };
  return res;
}

}  // namespace sluice::server
