#include "store/run_json.h"

#include <algorithm>

#include "util/strings.h"

namespace sluice::store {

using json = nlohmann::json;

namespace {

json Time(int64_t ms) { return ms ? json(IsoTime(ms)) : json(); }

// Built by appending: `"\"" + IsoTime(ms)` draws a false -Wrestrict from GCC 12.
std::string TimeText(int64_t ms) {
  if (!ms) return "null";
  std::string out = "\"";
  out += IsoTime(ms);
  out += '"';
  return out;
}

}  // namespace

std::string RunJsonText(const RunRow& r, bool interrupted, int64_t now_ms) {
  int64_t end = r.finished_ms ? r.finished_ms : now_ms;
  std::string out;
  out.reserve(400 + r.params_json.size());
  out += "{\"id\":" + std::to_string(r.id);
  out += ",\"pipeline\":" + JsonString(r.pipeline);
  out += ",\"state\":\"" + std::string(engine::Name(r.state)) + "\"";
  out += ",\"trigger\":" + JsonString(r.trigger);
  out += ",\"params\":" + (!r.params_json.empty() && r.params_json[0] == '{' ? r.params_json : std::string("{}"));
  out += ",\"created\":" + TimeText(r.created_ms);
  out += ",\"started\":" + TimeText(r.started_ms);
  out += ",\"finished\":" + TimeText(r.finished_ms);
  out += ",\"created_ms\":" + std::to_string(r.created_ms);
  out += ",\"started_ms\":" + std::to_string(r.started_ms);
  out += ",\"finished_ms\":" + std::to_string(r.finished_ms);
  out += ",\"duration_ms\":" + (r.started_ms ? std::to_string(end - r.started_ms) : std::string("null"));
  out += ",\"interrupted\":" + std::string(interrupted ? "true" : "false");
  out += ",\"cancel_requested\":" + std::string(r.cancel_requested ? "true" : "false") + "}";
  return out;
}

json RunJson(const RunRow& r, bool interrupted, int64_t now_ms) {
  return json::parse(RunJsonText(r, interrupted, now_ms));
}

json AttemptJson(const engine::AttemptRecord& a) {
  return {{"id", a.id},
          {"step", a.step_id},
          {"item", a.item},
          {"number", a.number},
          {"state", engine::Name(a.state)},
          {"reason", a.reason},
          {"exit_code", a.exit_code},
          {"pid", a.pid},
          {"job_id", a.job_id},
          {"started", Time(a.started_ms)},
          {"finished", Time(a.finished_ms)},
          {"started_ms", a.started_ms},
          {"finished_ms", a.finished_ms},
          {"log", a.log_path}};
}

json MetricJson(const MetricRow& m) {
  return {{"step", m.step_id}, {"item", m.item},   {"attempt", m.attempt},
          {"name", m.name},    {"value", m.value}, {"index", m.index}};
}

json StepRecordJson(const engine::StepRecord& s, std::optional<int64_t> duration_ms) {
  json j = {{"id", s.step_id}, {"state", engine::Name(s.state)}, {"reason", s.reason}};
  if (s.item >= 0) {
    j["item"] = s.item;
    j["item_value"] = s.item_value.ToJson();
  }
  json outputs = json::object();
  for (const auto& [k, v] : s.outputs) outputs[k] = v.ToJson();
  j["outputs"] = std::move(outputs);
  j["duration_ms"] = DurationJson(duration_ms);
  return j;
}

UnitDurations::UnitDurations(const std::vector<engine::AttemptRecord>& attempts, int64_t now_ms) : now_ms_(now_ms) {
  for (const engine::AttemptRecord& a : attempts)  // oldest first: the last one wins
    last_[{a.step_id, a.item}] = {a.started_ms, a.finished_ms};
}

std::optional<int64_t> UnitDurations::Of(const std::string& step, int item) const {
  int64_t start = INT64_MAX, end = 0;
  // For item -1 every unit of the step: its own attempts, or its items'.
  for (auto it = last_.lower_bound({step, item}); it != last_.end() && it->first.first == step; ++it) {
    if (item >= 0 && it->first.second != item) break;
    start = std::min(start, it->second.started_ms);
    end = std::max(end, it->second.finished_ms ? it->second.finished_ms : now_ms_);
  }
  if (start == INT64_MAX) return std::nullopt;
  return end - start;
}

}  // namespace sluice::store
