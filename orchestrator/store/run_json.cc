#include "store/run_json.h"

#include <algorithm>
#include <charconv>

#include "util/json.h"
#include "util/strings.h"

namespace sluice::store {

using json = nlohmann::json;

namespace {

// Appended piece by piece, with no temporary strings: the run lists are the
// API's busiest answers.
void AppendTime(std::string* out, int64_t ms) {
  if (!ms) {
    *out += "null";
    return;
  }
  *out += '"';
  *out += IsoTime(ms);
  *out += '"';
}

void AppendInt(std::string* out, int64_t v) {
  char buf[24];
  auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;
  out->append(buf, end);
}

void AppendBool(std::string* out, bool v) { *out += v ? "true" : "false"; }

}  // namespace

void AppendRunJson(std::string* out, const RunRow& r, bool interrupted, int64_t now_ms) {
  std::string& o = *out;
  int64_t end = r.finished_ms ? r.finished_ms : now_ms;
  o += "{\"id\":";
  AppendInt(out, r.id);
  o += ",\"pipeline\":";
  AppendJsonString(out, r.pipeline);
  o += ",\"state\":\"";
  o += engine::Name(r.state);
  o += "\",\"trigger\":";
  AppendJsonString(out, r.trigger);
  o += ",\"params\":";
  o += !r.params_json.empty() && r.params_json[0] == '{' ? std::string_view(r.params_json) : std::string_view("{}");
  o += ",\"created\":";
  AppendTime(out, r.created_ms);
  o += ",\"started\":";
  AppendTime(out, r.started_ms);
  o += ",\"finished\":";
  AppendTime(out, r.finished_ms);
  o += ",\"created_ms\":";
  AppendInt(out, r.created_ms);
  o += ",\"started_ms\":";
  AppendInt(out, r.started_ms);
  o += ",\"finished_ms\":";
  AppendInt(out, r.finished_ms);
  o += ",\"scheduled\":";
  AppendTime(out, r.interval ? r.interval->end_ms : 0);
  o += ",\"interval_start\":";
  AppendTime(out, r.interval ? r.interval->start_ms : 0);
  o += ",\"concurrency_group\":";
  if (r.group.empty()) o += "null";
  else AppendJsonString(out, r.group);
  o += ",\"holds_group\":";
  AppendBool(out, r.group_admitted);
  o += ",\"duration_ms\":";
  if (r.started_ms) AppendInt(out, end - r.started_ms);
  else o += "null";
  o += ",\"interrupted\":";
  AppendBool(out, interrupted);
  o += ",\"cancel_requested\":";
  AppendBool(out, r.cancel_requested);
  o += '}';
}

std::string RunJsonText(const RunRow& r, bool interrupted, int64_t now_ms) {
  std::string out;
  out.reserve(400 + r.params_json.size());
  AppendRunJson(&out, r, interrupted, now_ms);
  return out;
}

json RunJson(const RunRow& r, bool interrupted, int64_t now_ms) {
  return json::parse(RunJsonText(r, interrupted, now_ms));
}

void AppendRunOutputsJson(std::string* out, const std::vector<engine::RunOutputValue>& outputs) {
  std::string& o = *out;
  o += '[';
  for (size_t i = 0; i < outputs.size(); ++i) {
    const engine::RunOutputValue& v = outputs[i];
    o += i ? ",{\"name\":" : "{\"name\":";
    o += JsonUserString(v.name);
    o += ",\"value\":";
    o += v.value ? JsonUserString(*v.value) : std::string("null");
    o += ",\"reason\":";
    o += JsonUserString(v.reason);
    o += '}';
  }
  o += ']';
}

json RunOutputsJson(const std::vector<engine::RunOutputValue>& outputs) {
  std::string text;
  AppendRunOutputsJson(&text, outputs);
  return json::parse(text);
}

void AppendAttemptJson(std::string* out, const engine::AttemptRecord& a) {
  std::string& o = *out;
  o += "{\"id\":";
  AppendInt(out, a.id);
  o += ",\"step\":";
  o += JsonUserString(a.step_id);
  o += ",\"item\":";
  AppendInt(out, a.item);
  o += ",\"number\":";
  AppendInt(out, a.number);
  o += ",\"state\":\"";
  o += engine::Name(a.state);
  o += "\",\"reason\":";
  o += JsonUserString(a.reason);
  o += ",\"exit_code\":";
  AppendInt(out, a.exit_code);
  o += ",\"pid\":";
  AppendInt(out, a.pid);
  o += ",\"job_id\":";
  o += JsonUserString(a.job_id);
  o += ",\"started\":";
  AppendTime(out, a.started_ms);
  o += ",\"finished\":";
  AppendTime(out, a.finished_ms);
  o += ",\"started_ms\":";
  AppendInt(out, a.started_ms);
  o += ",\"finished_ms\":";
  AppendInt(out, a.finished_ms);
  o += ",\"log\":";
  o += JsonUserString(a.log_path);
  o += '}';
}

json AttemptJson(const engine::AttemptRecord& a) {
  std::string text;
  AppendAttemptJson(&text, a);
  return json::parse(text);
}

void AppendMetricJson(std::string* out, const MetricRow& m) {
  std::string& o = *out;
  o += "{\"step\":";
  o += JsonUserString(m.step_id);
  o += ",\"item\":";
  o += std::to_string(m.item);
  o += ",\"attempt\":";
  o += std::to_string(m.attempt);
  o += ",\"name\":";
  o += JsonUserString(m.name);
  o += ",\"value\":";
  o += json(m.value).dump();  // nlohmann's shortest round-trip number; null for NaN and infinities
  o += ",\"index\":";
  o += std::to_string(m.index);
  o += '}';
}

json MetricJson(const MetricRow& m) {
  std::string text;
  AppendMetricJson(&text, m);
  return json::parse(text);
}

void AppendStepRecordFields(std::string* out, const engine::StepRecord& s, std::optional<int64_t> duration_ms) {
  std::string& o = *out;
  o += "\"state\":\"";
  o += engine::Name(s.state);
  o += "\",\"reason\":";
  o += JsonUserString(s.reason);
  if (s.item >= 0) {
    o += ",\"item\":";
    o += std::to_string(s.item);
    o += ",\"item_value\":";
    o += JsonText(s.item_value.ToJson());
  }
  o += ",\"outputs\":{";
  bool first = true;
  for (const auto& [k, v] : s.outputs) {
    if (!first) o += ',';
    first = false;
    o += JsonUserString(k);
    o += ':';
    o += JsonText(v.ToJson());
  }
  o += "},\"duration_ms\":";
  o += DurationText(duration_ms);
}

json StepRecordJson(const engine::StepRecord& s, std::optional<int64_t> duration_ms) {
  std::string text = "{\"id\":" + JsonUserString(s.step_id) + ",";
  AppendStepRecordFields(&text, s, duration_ms);
  text += '}';
  return json::parse(text);
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
