#include "store/approvals.h"

namespace sluice::store {

namespace {

constexpr const char* kColumns =
    "run_id, step_id, message, value_specs, requested_ms, deadline_ms, on_timeout, decision, decided_by, decided_ms, "
    "decided_values, comment, round, acted_attempt";

ApprovalRow ReadRow(Query& q) {
  ApprovalRow r;
  r.run_id = q.Int(0);
  r.step_id = q.Text(1);
  r.message = q.Text(2);
  r.value_specs = q.Text(3);
  r.requested_ms = q.Int(4);
  r.deadline_ms = q.IsNull(5) ? 0 : q.Int(5);
  r.on_timeout = q.Text(6);
  r.decision = q.IsNull(7) ? "" : q.Text(7);
  r.decided_by = q.IsNull(8) ? "" : q.Text(8);
  r.decided_ms = q.IsNull(9) ? 0 : q.Int(9);
  r.decided_values = q.IsNull(10) ? "{}" : q.Text(10);
  r.comment = q.IsNull(11) ? "" : q.Text(11);
  r.round = static_cast<int>(q.Int(12));
  r.acted_attempt = q.IsNull(13) ? 0 : static_cast<int>(q.Int(13));
  return r;
}

}  // namespace

Result<ApprovalRow> ApprovalsStore::Open(const ApprovalRow& request) {
  Status st = db_.Transaction("Open", [&]() -> Status {
    Query q = db_.Prepare(
        "INSERT INTO approvals (run_id, step_id, message, value_specs, requested_ms, deadline_ms, on_timeout, round) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, step_id, round) DO NOTHING");
    q.Bind(1, request.run_id).Bind(2, request.step_id).Bind(3, request.message).Bind(4, request.value_specs);
    q.Bind(5, request.requested_ms);
    if (request.deadline_ms > 0) q.Bind(6, request.deadline_ms);
    else q.BindNull(6);
    q.Bind(7, request.on_timeout).Bind(8, request.round);
    if (q.Step() != kDone) return db_.Error("open the approval of run " + std::to_string(request.run_id) + " step " +
                                            request.step_id);
    return Status::Ok();
  });
  if (!st.ok()) return st;
  auto row = Get(request.run_id, request.step_id);
  if (!row.ok()) return row.status();
  if (!*row) return Status::Internal("store: the approval of step " + request.step_id + " was not recorded");
  return **row;
}

Result<std::optional<ApprovalRow>> ApprovalsStore::Get(int64_t run_id, const std::string& step_id) {
  static const std::string sql = std::string("SELECT ") + kColumns + " FROM approvals WHERE run_id = ? AND step_id = ? ORDER BY round DESC LIMIT 1";
  Query q = db_.Prepare(sql.c_str());
  q.Bind(1, run_id).Bind(2, step_id);
  int rc = q.Step();
  if (rc == kDone) return std::optional<ApprovalRow>();
  if (rc != kRow) return db_.Error("read the approval of run " + std::to_string(run_id) + " step " + step_id);
  return std::optional<ApprovalRow>(ReadRow(q));
}

Result<std::vector<ApprovalRow>> ApprovalsStore::OfRun(int64_t run_id) {
  static const std::string sql = std::string("SELECT ") + kColumns + " FROM approvals WHERE run_id = ? ORDER BY step_id, round";
  Query q = db_.Prepare(sql.c_str());
  q.Bind(1, run_id);
  std::vector<ApprovalRow> out;
  Status st = q.ForEachRow("read the approvals of run " + std::to_string(run_id), [&] { out.push_back(ReadRow(q)); });
  if (!st.ok()) return st;
  return out;
}

Status ApprovalsStore::Acted(int64_t run_id, const std::string& step_id, int round, int attempt) {
  return db_.Transaction("Acted", [&]() -> Status {
    Query q = db_.Prepare(
        "UPDATE approvals SET acted_attempt = ? WHERE run_id = ? AND step_id = ? AND round = ? AND acted_attempt IS NULL");
    q.Bind(1, attempt).Bind(2, run_id).Bind(3, step_id).Bind(4, round);
    if (q.Step() != kDone) return db_.Error("record the attempt that took the decision on step " + step_id);
    return Status::Ok();
  });
}

Result<bool> ApprovalsStore::Decide(int64_t run_id, const std::string& step_id, const std::string& decision,
                                    const std::string& by, int64_t decided_ms, const std::string& values_json,
                                    const std::string& comment) {
  bool recorded = false, found = true;
  Status st = db_.Transaction("Decide", [&]() -> Status {
    Query q = db_.Prepare(
        "UPDATE approvals SET decision = ?, decided_by = ?, decided_ms = ?, decided_values = ?, comment = ? "
        "WHERE run_id = ? AND step_id = ? AND decision IS NULL AND round = "
        "(SELECT MAX(round) FROM approvals WHERE run_id = ?6 AND step_id = ?7)");
    q.Bind(1, decision).Bind(2, by).Bind(3, decided_ms).Bind(4, values_json).Bind(5, comment);
    q.Bind(6, run_id).Bind(7, step_id);
    if (q.Step() != kDone) return db_.Error("record the decision on run " + std::to_string(run_id) + " step " + step_id);
    recorded = db_.Changes() == 1;
    if (!recorded) {
      Query e = db_.Prepare("SELECT 1 FROM approvals WHERE run_id = ? AND step_id = ?");
      e.Bind(1, run_id).Bind(2, step_id);
      found = e.Step() == kRow;
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  if (!found) return Status::NotFound("run " + std::to_string(run_id) + " step " + step_id + " has no approval");
  return recorded;
}

}  // namespace sluice::store
