// Manual approvals (the sluice/approval step type, specs/pipeline.md
// "Manual approval"), decided once for the CLI (`sluice approve`, `sluice
// reject`) and the API (POST /api/runs/{id}/steps/{step}/approval): whether
// a decision applies, its values checked against what the step declared
// (spec::ResolveValues, as params are), and the one that is recorded. Also
// the store's side of the waiting step (steps/approval.h).
//
// Threads: Decide works on the Store its caller holds (one per thread);
// StoreApprovalDesk opens the store on each call, from the attempt's thread.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "steps/approval.h"
#include "store/open.h"

namespace sluice::runs {

// The store's side of a waiting sluice/approval step.
class StoreApprovalDesk : public steps::ApprovalDesk {
 public:
  Result<steps::ApprovalState> Open(const nlohmann::json& with) override;
  Result<steps::ApprovalState> Look() override;
};

struct ApprovalDecision {
  bool approve = true;
  std::vector<std::pair<std::string, std::string>> values;  // name -> text, as given (approvals only)
  std::string comment;
  std::string by;    // "user:<login>" (the CLI), "token:<name>" (the API)
  std::string via;   // how values are given, for errors: "with -v", "in values"
};

// What became of a decision; the front ends word it (the API: 200, 404, 409, 400).
struct DecisionOutcome {
  enum class Why { kRecorded, kNoRun, kNotWaiting, kBadValues } why = Why::kRecorded;
  std::string message;   // for every Why but kRecorded
  store::ApprovalRow row;  // kRecorded: the request as decided
};

// Records `d` on the request of run `run_id`'s step `step_id`, unless it
// is not waiting: no such request, decided already (of two decisions at
// once exactly one is recorded), its run finished, or its deadline passed
// (the timeout's decision is recorded then, as the waiting step would).
// An error only if the store fails.
Result<DecisionOutcome> Decide(store::Store& st, int64_t run_id, const std::string& step_id, const ApprovalDecision& d,
                               int64_t now_ms);

// A request as the run's JSON gives it (specs/api.yaml Approval): step,
// message, values (the declared ones, spec::ParamSpecJson), requested_ms,
// deadline_ms, on_timeout, and once decided: decision, decided_by,
// decided_ms, decided_values, comment.
nlohmann::json ApprovalJson(const store::ApprovalRow& row);

}  // namespace sluice::runs
