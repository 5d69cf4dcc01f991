#include "store/feedback.h"

#include <sqlite3.h>

namespace sluice::store {

namespace {

void BindOptional(Query& q, int i, const std::string& v) {
  if (v.empty()) q.BindNull(i);
  else q.Bind(i, v);
}

}  // namespace

Status FeedbackStore::Append(const std::vector<FeedbackRow>& rows) {
  if (rows.empty()) return Status::Ok();
  return db_.Transaction("Append", [&]() -> Status {
    Query q = db_.Prepare(
        "INSERT INTO feedback (service, version, request_id, key, reward, label, at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)");
    for (const FeedbackRow& r : rows) {
      q.Bind(1, r.service).Bind(2, r.version);
      BindOptional(q, 3, r.request_id);
      BindOptional(q, 4, r.key);
      if (r.reward) q.BindDouble(5, *r.reward);
      else q.BindNull(5);
      if (r.label) q.Bind(6, *r.label);
      else q.BindNull(6);
      q.Bind(7, r.at_ms);
      if (q.Step() != SQLITE_DONE) return db_.Error("append feedback of service " + r.service);
      q.Reset();
    }
    return Status::Ok();
  });
}

Result<std::map<std::string, FeedbackSummary>> FeedbackStore::Summary(const std::string& service, int64_t from_ms,
                                                                      int64_t to_ms) {
  std::map<std::string, FeedbackSummary> out;
  {
    Query q = db_.Prepare(
        "SELECT version, COUNT(*), COUNT(reward), IFNULL(SUM(reward), 0), IFNULL(SUM(reward * reward), 0), "
        "COUNT(CASE WHEN reward > 0 THEN 1 END) "
        "FROM feedback WHERE service = ? AND at_ms >= ? AND at_ms < ? GROUP BY version");
    q.Bind(1, service).Bind(2, from_ms).Bind(3, to_ms);
    int rc;
    while ((rc = q.Step()) == SQLITE_ROW) {
      FeedbackSummary& s = out[q.Text(0)];
      s.count = q.Int(1);
      s.rewards = q.Int(2);
      s.reward_sum = q.Double(3);
      s.reward_sq_sum = q.Double(4);
      s.positive_rewards = q.Int(5);
    }
    if (rc != SQLITE_DONE) return db_.Error("sum the feedback of service " + service);
  }
  Query q = db_.Prepare(
      "SELECT version, label, COUNT(*) FROM feedback WHERE service = ? AND at_ms >= ? AND at_ms < ? "
      "AND label IS NOT NULL GROUP BY version, label");
  q.Bind(1, service).Bind(2, from_ms).Bind(3, to_ms);
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) out[q.Text(0)].labels[q.Text(1)] = q.Int(2);
  if (rc != SQLITE_DONE) return db_.Error("count the feedback labels of service " + service);
  return out;
}

Result<std::vector<FeedbackRow>> FeedbackStore::Rows(const std::string& service, int64_t from_ms, int64_t to_ms) {
  Query q = db_.Prepare(
      "SELECT version, IFNULL(request_id, ''), IFNULL(key, ''), reward, label, at_ms FROM feedback "
      "WHERE service = ? AND at_ms >= ? AND at_ms < ? ORDER BY at_ms, id");
  q.Bind(1, service).Bind(2, from_ms).Bind(3, to_ms);
  std::vector<FeedbackRow> out;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) {
    FeedbackRow r;
    r.service = service;
    r.version = q.Text(0);
    r.request_id = q.Text(1);
    r.key = q.Text(2);
    if (!q.IsNull(3)) r.reward = q.Double(3);
    if (!q.IsNull(4)) r.label = q.Text(4);
    r.at_ms = q.Int(5);
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return db_.Error("read the feedback of service " + service);
  return out;
}

}  // namespace sluice::store
