// ApprovalsStore: manual approvals of the sluice/approval step type (the
// `approvals` table of specs/store.md, schema version 14). A waiting step
// opens its request; one decision closes it: a person's (sluice approve /
// reject, POST /api/runs/{id}/steps/{step}/approval) or the timeout's.
//
// Who writes: the step's attempt (Open, and Decide on its deadline), the CLI
// and the server (Decide). Who reads: the step's attempt (it polls Get), the
// run's JSON, `sluice show`. One object per thread, like its Db.
// REQUIRES (Open, Decide): no journal batch is open (db.h; checked).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "store/db.h"

namespace sluice::store {

struct ApprovalRow {
  int64_t run_id = 0;
  std::string step_id;
  int round = 1;                    // 2, 3, ...: asked again by a retry of the step
  std::string message;
  std::string value_specs = "[]";   // JSON array: the declared values, as spec::ParamSpecJson gives them
  int64_t requested_ms = 0;
  int64_t deadline_ms = 0;          // 0: no timeout
  std::string on_timeout = "reject";
  // Empty while waiting; else "approve" or "reject".
  std::string decision;
  std::string decided_by;           // "user:<login>", "token:<name>" or "timeout"
  int64_t decided_ms = 0;
  std::string decided_values = "{}";  // JSON object: name -> value, typed (approvals only)
  std::string comment;
  int acted_attempt = 0;            // the attempt that took the decision (0: none yet)
};

class ApprovalsStore {
 public:
  explicit ApprovalsStore(Db& db) : db_(db) {}

  // Returns the step's latest request, recording `request` (at its round)
  // first unless that round exists: a resumed run keeps the first one's
  // deadline and whatever was decided meanwhile.
  Result<ApprovalRow> Open(const ApprovalRow& request);
  // The latest request of one step, if it has one.
  Result<std::optional<ApprovalRow>> Get(int64_t run_id, const std::string& step_id);
  // The requests of a run, by step id and round.
  Result<std::vector<ApprovalRow>> OfRun(int64_t run_id);
  // Records that `attempt` took the latest request's decision, unless one did.
  Status Acted(int64_t run_id, const std::string& step_id, int round, int attempt);
  // Records a decision unless the latest request has one: true if this one
  // is recorded, false if another came first (of two at once exactly one
  // wins, by the UPDATE's condition). NotFound if the step has no request.
  Result<bool> Decide(int64_t run_id, const std::string& step_id, const std::string& decision,
                      const std::string& by, int64_t decided_ms, const std::string& values_json,
                      const std::string& comment);

 private:
  Db& db_;
};

}  // namespace sluice::store
