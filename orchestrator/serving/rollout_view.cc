// RolloutView (serving/rollout_view.h).
#include "serving/rollout_view.h"

#include "serving/service_spec.h"
#include "util/strings.h"

namespace sluice::serving {

using json = nlohmann::json;

namespace {

// A JSON text column as JSON: null when empty, the text itself when it
// does not parse.
json ParsedOrNull(const std::string& text) {
  if (text.empty()) return nullptr;
  json j = json::parse(text, nullptr, false);
  return j.is_discarded() ? json(text) : j;
}

json TextOrNull(const std::string& text) { return text.empty() ? json(nullptr) : json(text); }

}  // namespace

json RolloutJson(const store::RolloutRecord& r) {
  return {{"id", r.id},
          {"service", r.service},
          {"strategy", r.strategy},
          {"run_id", r.run_id},
          {"step_id", r.step_id},
          {"stable_version", r.stable_version},
          {"candidate_version", r.candidate_version},
          {"state", store::RolloutStateName(r.state)},
          {"active", store::IsActive(r.state)},
          {"step_index", r.step_index},
          {"candidate_bp", r.candidate_bp},
          {"candidate_percent", FormatPercent(r.candidate_bp)},
          {"request", TextOrNull(r.request)},
          {"request_actor", TextOrNull(r.request_actor)},
          {"reason", r.reason},
          {"config", ParsedOrNull(r.config)},
          {"outputs", ParsedOrNull(r.outputs)},
          {"started_ms", r.started_ms},
          {"updated_ms", r.updated_ms},
          {"ended_ms", r.ended_ms ? json(r.ended_ms) : json(nullptr)}};
}

json RolloutEventJson(const store::RolloutEvent& e) {
  return {{"id", e.id},     {"at_ms", e.at_ms},     {"at", IsoTime(e.at_ms)},
          {"kind", e.kind}, {"message", e.message}, {"data", ParsedOrNull(e.data)}};
}

}  // namespace sluice::serving
