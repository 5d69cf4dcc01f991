#include "runs/approval.h"

#include <chrono>
#include <optional>

#include "engine/executor.h"
#include "exec/builtin.h"
#include "spec/pipeline.h"
#include "util/duration.h"
#include "util/json.h"
#include "util/strings.h"

namespace sluice::runs {

namespace {

using nlohmann::json;

// Now, as records keep it (the engine's clock, milliseconds since the epoch).
int64_t WallMs() { return engine::SystemClock().WallMs(); }

// The declared values of a request, from its value_specs column.
Result<std::vector<spec::ParamSpec>> SpecsOf(const store::ApprovalRow& row) {
  json specs = json::parse(row.value_specs, nullptr, false);
  if (!specs.is_array()) return Status::Internal("store: the values of approval " + row.step_id + " are not a list");
  std::vector<spec::ParamSpec> out;
  for (const json& j : specs) {
    auto ps = spec::ParamSpecFromJson(j.is_object() ? j.value("name", "") : "", j);
    if (!ps.ok()) return ps.status();
    out.push_back(std::move(*ps));
  }
  return out;
}

steps::ApprovalState StateOf(const store::ApprovalRow& row) {
  steps::ApprovalState s;
  s.decided = !row.decision.empty();
  s.approved = row.decision == "approve";
  s.by = row.decided_by;
  s.comment = row.comment;
  s.deadline_ms = row.deadline_ms;
  json values = json::parse(row.decided_values, nullptr, false);
  if (values.is_object())
    for (auto it = values.begin(); it != values.end(); ++it)
      if (auto text = spec::ParamText(it.value())) s.values.emplace_back(it.key(), *text);
  return s;
}

// Records the timeout's decision on `row` (past its deadline) unless
// someone decided first; returns the request as it now stands.
Result<store::ApprovalRow> TimeOut(store::Store& st, const store::ApprovalRow& row, int64_t now_ms) {
  std::string decision = "reject", values = "{}";
  std::string comment = "no decision within the timeout";
  if (row.on_timeout == "approve") {
    auto specs = SpecsOf(row);
    if (!specs.ok()) return specs.status();
    auto defaults = spec::ResolveValues(*specs, {}, "");
    if (defaults.ok()) {
      decision = "approve";
      values = JsonText(spec::ParamsJson(*defaults));
      comment = "approved by the timeout (on_timeout: approve)";
    }
  }
  auto recorded = st.approvals().Decide(row.run_id, row.step_id, decision, "timeout", now_ms, values, comment);
  if (!recorded.ok()) return recorded.status();
  auto now = st.approvals().Get(row.run_id, row.step_id);
  if (!now.ok()) return now.status();
  return **now;
}

Result<std::unique_ptr<store::Store>> StoreOfAttempt(exec::BuiltinAttempt* attempt) {
  auto current = exec::CurrentBuiltinAttempt();
  if (!current) return Status::Internal("sluice/approval runs outside an attempt");
  *attempt = *current;
  return store::Store::Open(attempt->home + "/sluice.db");
}

// The step's request now, timed out if its deadline has passed. A decision
// returned is recorded as taken by `attempt`.
Result<steps::ApprovalState> Current(store::Store& st, store::ApprovalRow row, int attempt) {
  int64_t now = WallMs();
  if (row.decision.empty() && row.deadline_ms && now >= row.deadline_ms) {
    auto decided = TimeOut(st, row, now);
    if (!decided.ok()) return decided.status();
    row = *decided;
  }
  if (!row.decision.empty() && !row.acted_attempt)
    if (Status s = st.approvals().Acted(row.run_id, row.step_id, row.round, attempt); !s.ok()) return s;
  return StateOf(row);
}

}  // namespace

Result<steps::ApprovalState> StoreApprovalDesk::Open(const json& with) {
  store::ApprovalRow request;
  request.message = with.value("message", "");
  request.on_timeout = with.value("on_timeout", "reject");
  if (request.on_timeout != "reject" && request.on_timeout != "approve")
    return Status::InvalidSpec("on_timeout: " + Quote(request.on_timeout) + " is not reject or approve");
  Millis timeout{0};
  if (with.contains("timeout")) {
    std::string text = with["timeout"].is_string() ? with["timeout"].get<std::string>() : with["timeout"].dump();
    auto d = ParseDuration(text);
    if (!d || d->count() <= 0) return Status::InvalidSpec("timeout: " + Quote(text) + " is not a duration (use 30m, 24h)");
    timeout = *d;
  }
  json specs = json::array();
  if (with.contains("values")) {
    if (!with["values"].is_object()) return Status::InvalidSpec("values: expected a mapping of names to params");
    for (auto it = with["values"].begin(); it != with["values"].end(); ++it) {
      auto ps = spec::ParamSpecFromJson(it.key(), it.value());
      if (!ps.ok()) return ps.status().WithContext("values");
      specs.push_back(spec::ParamSpecJson(*ps));
    }
  }
  request.value_specs = JsonText(specs);
  exec::BuiltinAttempt attempt;
  auto st = StoreOfAttempt(&attempt);
  if (!st.ok()) return st.status();
  request.run_id = attempt.run_id;
  request.step_id = attempt.step_id;
  request.requested_ms = WallMs();
  request.deadline_ms = timeout.count() > 0 ? request.requested_ms + timeout.count() : 0;
  // A decision an earlier attempt took (it then ended, and the step was
  // retried) is not this attempt's: it asks again, in a new round. One no
  // attempt took (made while the driver was dead) is honoured.
  auto latest = (*st)->approvals().Get(request.run_id, request.step_id);
  if (!latest.ok()) return latest.status();
  if (*latest) {
    request.round = (*latest)->round;
    if ((*latest)->acted_attempt && (*latest)->acted_attempt < attempt.attempt) ++request.round;
  }
  auto row = (*st)->approvals().Open(request);
  if (!row.ok()) return row.status();
  return Current(**st, *row, attempt.attempt);
}

Result<steps::ApprovalState> StoreApprovalDesk::Look() {
  exec::BuiltinAttempt attempt;
  auto st = StoreOfAttempt(&attempt);
  if (!st.ok()) return st.status();
  auto row = (*st)->approvals().Get(attempt.run_id, attempt.step_id);
  if (!row.ok()) return row.status();
  if (!*row) return Status::Internal("the approval of step " + attempt.step_id + " is gone from the store");
  return Current(**st, **row, attempt.attempt);
}

Result<DecisionOutcome> Decide(store::Store& st, int64_t run_id, const std::string& step_id, const ApprovalDecision& d,
                               int64_t now_ms) {
  using Why = DecisionOutcome::Why;
  auto refuse = [](Why why, std::string message) {
    DecisionOutcome o;
    o.why = why;
    o.message = std::move(message);
    return o;
  };
  std::string what = "run " + std::to_string(run_id) + " step " + Quote(step_id);
  auto run = st.runs().GetRun(run_id);
  if (!run.ok()) {
    if (run.status().code() == Code::kNotFound) return refuse(Why::kNoRun, "no run " + std::to_string(run_id));
    return run.status();
  }
  auto row = st.approvals().Get(run_id, step_id);
  if (!row.ok()) return row.status();
  if (!*row) return refuse(Why::kNotWaiting, what + " is not waiting for approval");
  auto decided = [&](const store::ApprovalRow& r) {
    return refuse(Why::kNotWaiting, what + " is not waiting for approval: " +
                                        (r.decision == "approve" ? "approved" : "rejected") + " by " + r.decided_by);
  };
  if (!(*row)->decision.empty()) return decided(**row);
  engine::RunState state = run->state;
  if (state == engine::RunState::kSucceeded || state == engine::RunState::kFailed ||
      state == engine::RunState::kCancelled)
    return refuse(Why::kNotWaiting, what + " is not waiting for approval: the run " + engine::Name(state));
  if ((*row)->deadline_ms && now_ms >= (*row)->deadline_ms) {
    auto timed_out = TimeOut(st, **row, now_ms);
    if (!timed_out.ok()) return timed_out.status();
    return decided(*timed_out);
  }
  std::string values = "{}";
  if (d.approve) {
    auto specs = SpecsOf(**row);
    if (!specs.ok()) return specs.status();
    auto resolved = spec::ResolveValues(*specs, d.values, d.via);
    if (!resolved.ok()) return refuse(Why::kBadValues, resolved.status().message());
    values = JsonText(spec::ParamsJson(*resolved));
  }
  auto recorded = st.approvals().Decide(run_id, step_id, d.approve ? "approve" : "reject", d.by, now_ms, values, d.comment);
  if (!recorded.ok()) return recorded.status();
  auto now = st.approvals().Get(run_id, step_id);
  if (!now.ok()) return now.status();
  if (!*recorded) return decided(**now);
  DecisionOutcome o;
  o.row = **now;
  return o;
}

json ApprovalJson(const store::ApprovalRow& row) {
  json j = {{"step", row.step_id},
            {"round", row.round},
            {"message", row.message},
            {"values", json::parse(row.value_specs, nullptr, false)},
            {"requested_ms", row.requested_ms},
            {"deadline_ms", row.deadline_ms ? json(row.deadline_ms) : json()},
            {"on_timeout", row.on_timeout},
            {"decision", row.decision.empty() ? json() : json(row.decision)}};
  if (!row.decision.empty()) {
    j["decided_by"] = row.decided_by;
    j["decided_ms"] = row.decided_ms;
    j["decided_values"] = json::parse(row.decided_values, nullptr, false);
    j["comment"] = row.comment;
  }
  return j;
}

}  // namespace sluice::runs
