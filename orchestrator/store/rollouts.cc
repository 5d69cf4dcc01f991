#include "store/rollouts.h"

#include <sqlite3.h>

#include "util/strings.h"

namespace sluice::store {

namespace {

constexpr const char* kStateNames[] = {"progressing", "paused", "promoted", "rolled_back", "aborted", "ended"};

void BindOptional(Query& q, int i, const std::string& v) {
  if (v.empty()) q.BindNull(i);
  else q.Bind(i, v);
}

#define SLUICE_ROLLOUT_COLUMNS                                                                                      \
  "id, service, strategy, run_id, step_id, stable_version, candidate_version, state, step_index, candidate_bp, " \
  "IFNULL(request, ''), IFNULL(request_actor, ''), reason, config, IFNULL(outputs, ''), started_ms, updated_ms, "  \
  "IFNULL(ended_ms, 0)"

RolloutRecord RolloutFromRow(Query& q) {
  RolloutRecord r;
  r.id = q.Int(0);
  r.service = q.Text(1);
  r.strategy = q.Text(2);
  r.run_id = q.Int(3);
  r.step_id = q.Text(4);
  r.stable_version = q.Text(5);
  r.candidate_version = q.Text(6);
  r.state = ParseRolloutState(q.Text(7)).value_or(RolloutState::kEnded);
  r.step_index = static_cast<int>(q.Int(8));
  r.candidate_bp = static_cast<int>(q.Int(9));
  r.request = q.Text(10);
  r.request_actor = q.Text(11);
  r.reason = q.Text(12);
  r.config = q.Text(13);
  r.outputs = q.Text(14);
  r.started_ms = q.Int(15);
  r.updated_ms = q.Int(16);
  r.ended_ms = q.Int(17);
  return r;
}

// Reads zero or one rollout from a query already bound.
Result<std::optional<RolloutRecord>> OneRollout(Db& db, Query& q, const std::string& what) {
  int rc = q.Step();
  if (rc == SQLITE_DONE) return std::optional<RolloutRecord>();
  if (rc != SQLITE_ROW) return db.Error("read " + what);
  return std::optional<RolloutRecord>(RolloutFromRow(q));
}

}  // namespace

const char* RolloutStateName(RolloutState s) { return kStateNames[static_cast<int>(s)]; }

std::optional<RolloutState> ParseRolloutState(const std::string& name) {
  for (int i = 0; i < static_cast<int>(std::size(kStateNames)); ++i)
    if (name == kStateNames[i]) return static_cast<RolloutState>(i);
  return std::nullopt;
}

Status RolloutsStore::AppendEvent(int64_t id, const std::string& kind, const std::string& message,
                                  const std::string& data, int64_t now_ms) {
  Query q = db_.Prepare("INSERT INTO rollout_events(rollout_id, at_ms, kind, message, data) VALUES (?, ?, ?, ?, ?)");
  q.Bind(1, id).Bind(2, now_ms).Bind(3, kind).Bind(4, message);
  BindOptional(q, 5, data);
  if (q.Step() != SQLITE_DONE) return db_.Error("record an event of rollout " + std::to_string(id));
  return Status::Ok();
}

Result<int64_t> RolloutsStore::Create(const RolloutRecord& r, const std::string& message, int64_t now_ms) {
  int64_t id = 0;
  Status st = db_.Transaction("Create", [&]() -> Status {
    Query active = db_.Prepare("SELECT " SLUICE_ROLLOUT_COLUMNS
                               " FROM rollouts WHERE service = ? AND state IN ('progressing', 'paused')");
    active.Bind(1, r.service);
    auto other = OneRollout(db_, active, "the rollouts of service " + r.service);
    if (!other.ok()) return other.status();
    if (*other)
      return Status::Incompatible("service '" + r.service + "' is being deployed by rollout " +
                                  std::to_string((*other)->id) + " (" + (*other)->strategy + " of run " +
                                  std::to_string((*other)->run_id) + ", step " + (*other)->step_id +
                                  "); abort it first: sluice services abort " + r.service);
    Query q = db_.Prepare(
        "INSERT INTO rollouts(service, strategy, run_id, step_id, stable_version, candidate_version, state, "
        "step_index, candidate_bp, reason, config, started_ms, updated_ms) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'progressing', ?7, ?8, ?9, ?10, ?11, ?11)");
    q.Bind(1, r.service).Bind(2, r.strategy).Bind(3, r.run_id).Bind(4, r.step_id).Bind(5, r.stable_version);
    q.Bind(6, r.candidate_version).Bind(7, r.step_index).Bind(8, r.candidate_bp).Bind(9, message);
    q.Bind(10, r.config).Bind(11, now_ms);
    if (q.Step() != SQLITE_DONE) return db_.Error("record a rollout of service " + r.service);
    id = db_.LastInsertId();
    return AppendEvent(id, "start", message, "", now_ms);
  });
  if (!st.ok()) return st;
  return id;
}

Status RolloutsStore::Advance(int64_t id, const RolloutProgress& p, const std::string& kind,
                              const std::string& message, const std::string& data, int64_t now_ms) {
  return db_.Transaction("Advance", [&]() -> Status {
    Query read = db_.Prepare("SELECT state FROM rollouts WHERE id = ?");
    read.Bind(1, id);
    int rc = read.Step();
    if (rc == SQLITE_DONE) return Status::NotFound("no rollout " + std::to_string(id));
    if (rc != SQLITE_ROW) return db_.Error("read rollout " + std::to_string(id));
    std::optional<RolloutState> now_state = ParseRolloutState(read.Text(0));
    if (!now_state || !IsActive(*now_state))
      return Status::Incompatible("rollout " + std::to_string(id) + " has ended (" + read.Text(0) + ")");
    read.Reset();
    bool ends = !IsActive(p.state);
    Query q = db_.Prepare(
        "UPDATE rollouts SET state = ?1, step_index = ?2, candidate_bp = ?3, reason = ?4, updated_ms = ?5, "
        "outputs = CASE WHEN ?6 = '' THEN outputs ELSE ?6 END, "
        "ended_ms = CASE WHEN ?7 THEN ?5 ELSE NULL END, "
        "request = CASE WHEN ?7 THEN NULL ELSE request END, "
        "request_actor = CASE WHEN ?7 THEN NULL ELSE request_actor END WHERE id = ?8");
    q.Bind(1, RolloutStateName(p.state)).Bind(2, p.step_index).Bind(3, p.candidate_bp).Bind(4, p.reason);
    q.Bind(5, now_ms).Bind(6, p.outputs).Bind(7, ends ? 1 : 0).Bind(8, id);
    if (q.Step() != SQLITE_DONE) return db_.Error("update rollout " + std::to_string(id));
    return AppendEvent(id, kind, message, data, now_ms);
  });
}

Status RolloutsStore::Record(int64_t id, const std::string& kind, const std::string& message,
                             const std::string& data, int64_t now_ms) {
  return db_.Transaction("Record", [&]() -> Status {
    Query q = db_.Prepare("UPDATE rollouts SET updated_ms = ? WHERE id = ?");
    q.Bind(1, now_ms).Bind(2, id);
    if (q.Step() != SQLITE_DONE) return db_.Error("update rollout " + std::to_string(id));
    if (db_.Changes() == 0) return Status::NotFound("no rollout " + std::to_string(id));
    return AppendEvent(id, kind, message, data, now_ms);
  });
}

Result<int64_t> RolloutsStore::Request(const std::string& service, const std::string& what, const std::string& actor,
                                       int64_t now_ms) {
  if (what != "promote" && what != "abort")
    return Status::InvalidSpec("a rollout can be asked to promote or abort, not " + Quote(what));
  int64_t id = 0;
  Status st = db_.Transaction("Request", [&]() -> Status {
    Query q = db_.Prepare("SELECT id FROM rollouts WHERE service = ? AND state IN ('progressing', 'paused')");
    q.Bind(1, service);
    int rc = q.Step();
    if (rc == SQLITE_DONE) return Status::NotFound("service '" + service + "' has no rollout in progress");
    if (rc != SQLITE_ROW) return db_.Error("read the rollouts of service " + service);
    id = q.Int(0);
    q.Reset();
    Query u = db_.Prepare("UPDATE rollouts SET request = ?, request_actor = ?, updated_ms = ? WHERE id = ?");
    u.Bind(1, what).Bind(2, actor).Bind(3, now_ms).Bind(4, id);
    if (u.Step() != SQLITE_DONE) return db_.Error("update rollout " + std::to_string(id));
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return id;
}

Result<RolloutsStore::TakenRequest> RolloutsStore::TakeRequest(int64_t id, int64_t now_ms) {
  TakenRequest taken;
  std::string& what = taken.what;
  Status st = db_.Transaction("TakeRequest", [&]() -> Status {
    Query q = db_.Prepare("SELECT IFNULL(request, ''), IFNULL(request_actor, '') FROM rollouts WHERE id = ?");
    q.Bind(1, id);
    int rc = q.Step();
    if (rc == SQLITE_DONE) return Status::NotFound("no rollout " + std::to_string(id));
    if (rc != SQLITE_ROW) return db_.Error("read rollout " + std::to_string(id));
    what = q.Text(0);
    taken.actor = q.Text(1);
    const std::string& actor = taken.actor;
    q.Reset();
    if (what.empty()) return Status::Ok();
    Query u = db_.Prepare("UPDATE rollouts SET request = NULL, request_actor = NULL, updated_ms = ? WHERE id = ?");
    u.Bind(1, now_ms).Bind(2, id);
    if (u.Step() != SQLITE_DONE) return db_.Error("update rollout " + std::to_string(id));
    return AppendEvent(id, what, actor + " asked to " + what, "", now_ms);
  });
  if (!st.ok()) return st;
  return taken;
}

Result<RolloutRecord> RolloutsStore::Get(int64_t id) {
  Query q = db_.Prepare("SELECT " SLUICE_ROLLOUT_COLUMNS " FROM rollouts WHERE id = ?");
  q.Bind(1, id);
  auto r = OneRollout(db_, q, "rollout " + std::to_string(id));
  if (!r.ok()) return r.status();
  if (!*r) return Status::NotFound("no rollout " + std::to_string(id));
  return **r;
}

Result<std::optional<RolloutRecord>> RolloutsStore::ActiveOfStep(int64_t run_id, const std::string& step_id) {
  Query q = db_.Prepare("SELECT " SLUICE_ROLLOUT_COLUMNS
                        " FROM rollouts WHERE run_id = ? AND step_id = ? AND state IN ('progressing', 'paused')");
  q.Bind(1, run_id).Bind(2, step_id);
  return OneRollout(db_, q, "the rollouts of run " + std::to_string(run_id));
}

Result<std::optional<RolloutRecord>> RolloutsStore::ActiveOfService(const std::string& service) {
  Query q = db_.Prepare("SELECT " SLUICE_ROLLOUT_COLUMNS
                        " FROM rollouts WHERE service = ? AND state IN ('progressing', 'paused')");
  q.Bind(1, service);
  return OneRollout(db_, q, "the rollouts of service " + service);
}

Result<std::vector<RolloutRecord>> RolloutsStore::OfService(const std::string& service, int limit) {
  Query q = db_.Prepare("SELECT " SLUICE_ROLLOUT_COLUMNS " FROM rollouts WHERE service = ? ORDER BY id DESC LIMIT ?");
  q.Bind(1, service).Bind(2, limit);
  std::vector<RolloutRecord> out;
  Status st = q.ForEachRow("read the rollouts of service " + service, [&] { out.push_back(RolloutFromRow(q)); });
  if (!st.ok()) return st;
  return out;
}

Result<std::vector<RolloutEvent>> RolloutsStore::Events(int64_t id, int64_t after_id) {
  Query q = db_.Prepare(
      "SELECT id, rollout_id, at_ms, kind, message, IFNULL(data, '') FROM rollout_events "
      "WHERE rollout_id = ? AND id > ? ORDER BY id");
  q.Bind(1, id).Bind(2, after_id);
  std::vector<RolloutEvent> out;
  Status st = q.ForEachRow("read the events of rollout " + std::to_string(id), [&] {
    RolloutEvent e;
    e.id = q.Int(0);
    e.rollout_id = q.Int(1);
    e.at_ms = q.Int(2);
    e.kind = q.Text(3);
    e.message = q.Text(4);
    e.data = q.Text(5);
    out.push_back(std::move(e));
  });
  if (!st.ok()) return st;
  return out;
}

}  // namespace sluice::store
