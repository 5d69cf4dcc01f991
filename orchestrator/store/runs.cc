// RunsStore (store/runs.h): runs, step records, attempts and metrics, and
// the engine's journal. About 640 lines, kept in one file: the SQL of one
// concern, each statement beside the function that runs it.
#include "store/runs.h"

#include <chrono>
#include <limits>

#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include "store/concurrency.h"
#include "store/lineage.h"
#include "store/registry.h"
#include "util/hash.h"
#include "util/json.h"

namespace sluice::store {

using engine::AttemptRecord;
using engine::StepRecord;
using engine::StepState;

// Every write of a step record sets its seq to one more than the largest
// (specs/store.md, version 13): writers are serialised by SQLite's lock, so
// a later commit's records have larger seqs than any committed before it.
// One UPDATE statement gives its rows the same seq.
#define SLUICE_SEQ_AFTER_LAST "(SELECT IFNULL(MAX(seq), 0) + 1 FROM steps)"
#define SLUICE_NEXT_SEQ "seq = " SLUICE_SEQ_AFTER_LAST

namespace {

std::string OutputsJson(const engine::Outputs& o) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : o) j[k] = v.ToJson();
  return JsonText(j);
}

const char* kRunColumns =
    "SELECT id, pipeline, spec_hash, spec_path, workdir, params, state, jobs, created_ms, "
    "IFNULL(started_ms, 0), IFNULL(finished_ms, 0), IFNULL(driver_pid, 0), IFNULL(driver_start, 0), cancel_requested, trigger, "
    "queued_from IS NOT NULL, scheduled_ms, interval_start_ms, IFNULL(concurrency_group, ''), group_admitted "
    "FROM runs ";

RunRow ReadRun(Query& q) {
  RunRow r;
  r.id = q.Int(0);
  r.pipeline = q.Text(1);
  r.spec_hash = q.Text(2);
  r.spec_path = q.Text(3);
  r.workdir = q.Text(4);
  r.params_json = q.Text(5);
  r.state = engine::ParseRunState(q.Text(6)).value_or(engine::RunState::kPending);
  r.jobs = static_cast<int>(q.Int(7));
  r.created_ms = q.Int(8);
  r.started_ms = q.Int(9);
  r.finished_ms = q.Int(10);
  r.driver_pid = q.Int(11);
  r.driver_start = q.Int(12);
  r.cancel_requested = q.Int(13) != 0;
  r.trigger = q.Text(14);
  r.queued_retry = q.Int(15) != 0;
  if (!q.IsNull(16)) r.interval = engine::DataInterval{.start_ms = q.Int(17), .end_ms = q.Int(16)};
  r.group = q.Text(18);
  r.group_admitted = q.Int(19) != 0;
  return r;
}

// Stores a spec's text under its hash (once).
Status SaveSpec(Db& db, const std::string& hash, const std::string& text) {
  Query q = db.Prepare("INSERT OR IGNORE INTO specs(hash, text) VALUES (?, ?)");
  if (q.Bind(1, hash).Bind(2, text).Step() != SQLITE_DONE) return db.Error("save spec");
  return Status::Ok();
}

}  // namespace

Result<int64_t> RunsStore::CreateRun(const std::string& pipeline, const std::string& spec_text,
                                     const std::string& spec_path, const std::string& workdir,
                                     const std::string& params_json, int jobs, int64_t now_ms,
                                     const std::string& trigger, bool queued,
                                     const std::optional<engine::DataInterval>& interval,
                                     const std::string& group) {
  std::string hash = Sha256Hex(spec_text);
  int64_t id = 0;
  Status st = db_.Transaction("CreateRun", [&] {
    Status saved = SaveSpec(db_, hash, spec_text);
    if (!saved.ok()) return saved;
    Query run = db_.Prepare(
        "INSERT INTO runs(pipeline, spec_hash, spec_path, workdir, params, state, jobs, created_ms, trigger, "
        "scheduled_ms, interval_start_ms, concurrency_group) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    run.Bind(1, pipeline).Bind(2, hash).Bind(3, spec_path).Bind(4, workdir).Bind(5, params_json);
    run.Bind(6, std::string(queued ? "queued" : "pending")).Bind(7, jobs).Bind(8, now_ms).Bind(9, trigger);
    if (interval)
      run.Bind(10, interval->end_ms).Bind(11, interval->start_ms);
    else
      run.BindNull(10).BindNull(11);
    if (group.empty()) run.BindNull(12);
    else run.Bind(12, group);
    if (run.Step() != SQLITE_DONE) return db_.Error("create run");
    id = db_.LastInsertId();
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return id;
}

Result<RunRow> RunsStore::GetRun(int64_t id) {
  static const std::string sql = std::string(kRunColumns) + "WHERE id = ?";
  Query q = db_.Prepare(sql.c_str());
  q.Bind(1, id);
  int rc = q.Step();
  if (rc == SQLITE_DONE) return Status::NotFound("no run " + std::to_string(id));
  if (rc != SQLITE_ROW) return db_.Error("read run " + std::to_string(id));
  return ReadRun(q);
}

Result<std::vector<RunRow>> RunsStore::ListRuns(int limit) {
  RunFilter f;
  f.limit = limit;
  return ListRuns(f);
}

Result<std::vector<RunRow>> RunsStore::ListRuns(const RunFilter& f) {
  // One statement per filter shape, so that SQLite walks the primary key (or
  // the pipeline index) backwards and stops at the limit; a single statement
  // with "(? = '' OR ...)" terms made it scan the whole table.
  // The trigger and the time are checked on the rows the walk meets.
  static const std::string rest = " AND id < ?1 AND (?5 = '' OR trigger = ?5) AND created_ms >= ?6 ORDER BY id DESC LIMIT ?4";
  static const std::string sqls[4] = {
      std::string(kRunColumns) + "WHERE 1" + rest,
      std::string(kRunColumns) + "WHERE pipeline = ?2" + rest,
      std::string(kRunColumns) + "WHERE state = ?3" + rest,
      std::string(kRunColumns) + "WHERE pipeline = ?2 AND state = ?3" + rest,
  };
  int shape = (f.pipeline.empty() ? 0 : 1) + (f.state ? 2 : 0);
  Query q = db_.Prepare(sqls[shape].c_str());
  q.Bind(1, f.before_id > 0 ? f.before_id : std::numeric_limits<int64_t>::max());
  if (!f.pipeline.empty()) q.Bind(2, f.pipeline);
  if (f.state) q.Bind(3, std::string(engine::Name(*f.state)));
  q.Bind(4, f.limit);
  q.Bind(5, f.trigger).Bind(6, f.since_ms);
  std::vector<RunRow> out;
  Status st = q.ForEachRow("list runs", [&] { out.push_back(ReadRun(q)); });
  if (!st.ok()) return st;
  return out;
}

Result<std::vector<RunRow>> RunsStore::QueuedRuns() {
  static const std::string sql = std::string(kRunColumns) + "WHERE state = 'queued' ORDER BY id";
  Query q = db_.Prepare(sql.c_str());
  std::vector<RunRow> out;
  Status st = q.ForEachRow("list queued runs", [&] { out.push_back(ReadRun(q)); });
  if (!st.ok()) return st;
  return out;
}

Result<std::vector<RunRow>> RunsStore::ScheduledRuns(const std::string& pipeline, int64_t from_ms, int64_t to_ms) {
  static const std::string sql =
      std::string(kRunColumns) + "WHERE pipeline = ? AND scheduled_ms BETWEEN ? AND ? ORDER BY scheduled_ms, id";
  Query q = db_.Prepare(sql.c_str());
  q.Bind(1, pipeline).Bind(2, from_ms).Bind(3, to_ms);
  std::vector<RunRow> out;
  Status st = q.ForEachRow("list scheduled runs of " + pipeline, [&] { out.push_back(ReadRun(q)); });
  if (!st.ok()) return st;
  return out;
}

Result<bool> RunsStore::QueueRetry(int64_t run_id) {
  if (Status st = db_.RequireNoBatch("QueueRetry"); !st.ok()) return st;
  Query q = db_.Prepare(
      "UPDATE runs SET queued_from = state, state = 'queued' WHERE id = ? AND state IN ('failed', 'cancelled')");
  if (q.Bind(1, run_id).Step() != SQLITE_DONE) return db_.Error("queue a retry of run " + std::to_string(run_id));
  return db_.Changes() == 1;
}

Result<bool> RunsStore::StartQueued(int64_t run_id) {
  if (Status st = db_.RequireNoBatch("StartQueued"); !st.ok()) return st;
  Query q = db_.Prepare(
      "UPDATE runs SET state = IFNULL(queued_from, 'pending'), queued_from = NULL WHERE id = ? AND state = 'queued'");
  if (q.Bind(1, run_id).Step() != SQLITE_DONE) return db_.Error("start queued run " + std::to_string(run_id));
  return db_.Changes() == 1;
}

Result<bool> RunsStore::CancelQueued(int64_t run_id, int64_t now_ms) {
  if (Status st = db_.RequireNoBatch("CancelQueued"); !st.ok()) return st;
  Query q = db_.Prepare(
      "UPDATE runs SET state = 'cancelled', queued_from = NULL, finished_ms = ? WHERE id = ? AND state = 'queued'");
  if (q.Bind(1, now_ms).Bind(2, run_id).Step() != SQLITE_DONE)
    return db_.Error("cancel queued run " + std::to_string(run_id));
  return db_.Changes() == 1;
}

Result<std::string> RunsStore::SpecText(const std::string& hash) {
  Query q = db_.Prepare("SELECT text FROM specs WHERE hash = ?");
  q.Bind(1, hash);
  if (q.Step() != SQLITE_ROW) return Status::NotFound("no spec with hash " + hash);
  return q.Text(0);
}

Status RunsStore::SaveStepOrder(int64_t run_id, const std::vector<std::string>& step_ids) {
  std::string text;
  for (const std::string& id : step_ids) text.append(id).append(1, '\n');
  return db_.Transaction("SaveStepOrder", [&] {
    Query q = db_.Prepare(
        "UPDATE specs SET step_order = ? WHERE hash = (SELECT spec_hash FROM runs WHERE id = ?) AND step_order IS NULL");
    if (q.Bind(1, text).Bind(2, run_id).Step() != SQLITE_DONE)
      return db_.Error("save the step order of run " + std::to_string(run_id));
    return Status::Ok();
  });
}

Result<std::vector<std::string>> RunsStore::StepOrder(const std::string& spec_hash) {
  Query q = db_.Prepare("SELECT step_order FROM specs WHERE hash = ?");
  q.Bind(1, spec_hash);
  std::vector<std::string> ids;
  int rc = q.Step();
  if (rc == SQLITE_DONE || (rc == SQLITE_ROW && q.IsNull(0))) return ids;
  if (rc != SQLITE_ROW) return q.Error("read the step order of spec " + spec_hash);
  std::string text = q.Text(0);
  for (size_t at = 0; at < text.size();) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    ids.push_back(text.substr(at, end - at));
    at = end + 1;
  }
  return ids;
}

namespace {

// steps.<id>.exit_code from an attempt's row: null when it never ran (-1)
// or a signal ended it: its reason says so, or the engine stopped it and the
// status is 128 + the signal.
spec::Value ExitCodeOf(int64_t code, const std::string& reason) {
  auto starts = [&](const char* prefix) { return reason.rfind(prefix, 0) == 0; };
  bool signalled = starts("killed by signal") || starts("plugin host killed by signal") ||
                   (code >= 128 && (starts("timed out") || starts("cancelled") || starts("the run's timeout")));
  return code < 0 || signalled ? spec::Value() : spec::Value::Int(code);
}

}  // namespace

Result<std::vector<StepRecord>> RunsStore::LoadSteps(int64_t run_id) {
  // The last attempt (number = attempts) gives steps.<id>.exit_code.
  Query q = db_.Prepare(
      "SELECT s.step_id, s.item, s.state, s.tries, s.attempts, s.item_value, s.items, s.outputs, s.reason, "
      "a.exit_code, a.reason FROM steps s LEFT JOIN attempts a ON a.run_id = s.run_id AND a.step_id = s.step_id "
      "AND a.item = s.item AND a.number = s.attempts "
      "WHERE s.run_id = ? ORDER BY s.step_id, s.item");
  q.Bind(1, run_id);
  std::vector<StepRecord> out;
  auto parse = [](const std::string& t) { return nlohmann::json::parse(t, nullptr, false); };
  Status st = q.ForEachRow("load steps of run " + std::to_string(run_id), [&] {
    StepRecord s;
    s.step_id = q.Text(0);
    s.item = static_cast<int>(q.Int(1));
    s.state = engine::ParseStepState(q.Text(2)).value_or(StepState::kPending);
    s.tries = static_cast<int>(q.Int(3));
    s.attempts = static_cast<int>(q.Int(4));
    if (!q.IsNull(5)) s.item_value = spec::Value::FromJson(parse(q.Text(5)));
    if (!q.IsNull(6)) {
      spec::Value items = spec::Value::FromJson(parse(q.Text(6)));
      if (items.is_list()) s.items = items.as_list();
    }
    auto outputs = parse(q.Text(7));
    if (outputs.is_object())
      for (auto& [k, v] : outputs.items()) s.outputs[k] = spec::Value::FromJson(v);
    s.reason = q.Text(8);
    if (!q.IsNull(9)) s.exit_code = ExitCodeOf(q.Int(9), q.Text(10));
    out.push_back(std::move(s));
  });
  if (!st.ok()) return st;
  // A foreach step's exit_code is its items' in item order; its rows follow
  // the step's own (item -1) row.
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i].item >= 0 || !out[i].items) continue;
    spec::List codes;
    for (size_t k = i + 1; k < out.size() && out[k].step_id == out[i].step_id; ++k) codes.push_back(out[k].exit_code);
    out[i].exit_code = spec::Value::Of(std::move(codes));
  }
  return out;
}

#define SLUICE_ATTEMPT_COLUMNS                                                                        \
  "SELECT id, step_id, item, number, state, reason, IFNULL(exit_code, -1), IFNULL(pid, 0), "           \
  "IFNULL(started_ms, 0), IFNULL(finished_ms, 0), log_path, IFNULL(job_id, '') FROM attempts "

namespace {

AttemptRecord ReadAttempt(Query& q, int64_t run_id) {
  AttemptRecord a;
  a.id = q.Int(0);
  a.run_id = run_id;
  a.step_id = q.Text(1);
  a.item = static_cast<int>(q.Int(2));
  a.number = static_cast<int>(q.Int(3));
  a.state = engine::ParseStepState(q.Text(4)).value_or(StepState::kLost);
  a.reason = q.Text(5);
  a.exit_code = static_cast<int>(q.Int(6));
  a.pid = q.Int(7);
  a.started_ms = q.Int(8);
  a.finished_ms = q.Int(9);
  a.log_path = q.Text(10);
  a.job_id = q.Text(11);
  return a;
}

}  // namespace

Result<std::vector<AttemptRecord>> RunsStore::ListAttempts(int64_t run_id) {
  Query q = db_.Prepare(SLUICE_ATTEMPT_COLUMNS "WHERE run_id = ? ORDER BY id");
  q.Bind(1, run_id);
  std::vector<AttemptRecord> out;
  Status st = q.ForEachRow("list attempts of run " + std::to_string(run_id), [&] { out.push_back(ReadAttempt(q, run_id)); });
  if (!st.ok()) return st;
  return out;
}

Result<std::vector<AttemptRecord>> RunsStore::StepAttempts(int64_t run_id, const std::string& step, int item) {
  Query q = db_.Prepare(SLUICE_ATTEMPT_COLUMNS "WHERE run_id = ? AND step_id = ? AND item = ? ORDER BY number");
  q.Bind(1, run_id).Bind(2, step).Bind(3, item);
  std::vector<AttemptRecord> out;
  Status st = q.ForEachRow("list attempts of run " + std::to_string(run_id) + " / step " + step,
                           [&] { out.push_back(ReadAttempt(q, run_id)); });
  if (!st.ok()) return st;
  return out;
}

Result<AttemptRecord> RunsStore::LatestAttempt(int64_t run_id, const std::string& step, int item) {
  auto all = StepAttempts(run_id, step, item);
  if (!all.ok()) return all.status();
  if (all->empty()) return Status::NotFound("run " + std::to_string(run_id) + " has no attempt of step '" + step + "'");
  return all->back();
}

#undef SLUICE_ATTEMPT_COLUMNS

Result<std::vector<StepChange>> RunsStore::StepsWrittenAfter(int64_t seq) {
  Query q = db_.Prepare("SELECT run_id, step_id, item, state, attempts, seq FROM steps WHERE seq > ? ORDER BY seq");
  q.Bind(1, seq);
  std::vector<StepChange> out;
  Status st = q.ForEachRow("read the step records written after " + std::to_string(seq), [&] {
    out.push_back({q.Int(0), q.Text(1), static_cast<int>(q.Int(2)),
                   engine::ParseStepState(q.Text(3)).value_or(StepState::kPending), static_cast<int>(q.Int(4)), q.Int(5)});
  });
  if (!st.ok()) return st;
  return out;
}

Result<int64_t> RunsStore::LastStepSeq() {
  Query q = db_.Prepare("SELECT IFNULL(MAX(seq), 0) FROM steps");
  if (q.Step() != SQLITE_ROW) return db_.Error("read the last step record written");
  return q.Int(0);
}

Result<std::optional<AttemptRecord>> RunsStore::LatestResult(const std::string& pipeline, const std::string& step,
                                                             int item) {
  Query q = db_.Prepare(
      "SELECT a.id, a.run_id, a.state, IFNULL(a.identity, ''), IFNULL(a.fingerprint, ''), IFNULL(a.finished_ms, 0)"
      " FROM runs r JOIN attempts a ON a.run_id = r.id AND a.step_id = ?2 AND a.item = ?3"
      " WHERE r.pipeline = ?1 AND a.state IN ('succeeded', 'cached') ORDER BY r.id DESC, a.number DESC LIMIT 1");
  q.Bind(1, pipeline).Bind(2, step).Bind(3, static_cast<int64_t>(item));
  int rc = q.Step();
  if (rc == SQLITE_DONE) return std::optional<AttemptRecord>();
  if (rc != SQLITE_ROW) return db_.Error("find the latest result of step '" + step + "'");
  AttemptRecord a;
  a.id = q.Int(0);
  a.run_id = q.Int(1);
  a.step_id = step;
  a.item = item;
  a.state = engine::ParseStepState(q.Text(2)).value_or(StepState::kSucceeded);
  a.identity = q.Text(3);
  a.fingerprint = q.Text(4);
  a.finished_ms = q.Int(5);
  return std::optional<AttemptRecord>(std::move(a));
}

Result<std::vector<MetricRow>> RunsStore::ListMetrics(int64_t run_id) {
  Query q = db_.Prepare(
      "SELECT a.step_id, a.item, a.number, m.name, m.value, m.\"index\" FROM metrics m JOIN attempts a ON a.id = m.attempt_id "
      "WHERE a.run_id = ? ORDER BY m.rowid");
  q.Bind(1, run_id);
  std::vector<MetricRow> out;
  Status st = q.ForEachRow("list metrics of run " + std::to_string(run_id), [&] {
    out.push_back({q.Text(0), static_cast<int>(q.Int(1)), static_cast<int>(q.Int(2)), q.Text(3), q.Double(4), q.Int(5)});
  });
  if (!st.ok()) return st;
  return out;
}

Result<std::vector<MetricRow>> RunsStore::ListAttemptMetrics(int64_t attempt_id) {
  Query q = db_.Prepare(
      "SELECT a.step_id, a.item, a.number, m.name, m.value, m.\"index\" FROM metrics m JOIN attempts a ON a.id = m.attempt_id "
      "WHERE m.attempt_id = ? ORDER BY m.rowid");
  q.Bind(1, attempt_id);
  std::vector<MetricRow> out;
  Status st = q.ForEachRow("list metrics of attempt " + std::to_string(attempt_id), [&] {
    out.push_back({q.Text(0), static_cast<int>(q.Int(1)), static_cast<int>(q.Int(2)), q.Text(3), q.Double(4), q.Int(5)});
  });
  if (!st.ok()) return st;
  return out;
}

Status RunsStore::SetDriver(int64_t run_id, int64_t pid, int64_t pid_start) {
  if (Status st = db_.RequireNoBatch("SetDriver"); !st.ok()) return st;
  Query q = db_.Prepare("UPDATE runs SET driver_pid = ?, driver_start = ? WHERE id = ?");
  q.Bind(1, pid).Bind(2, pid_start).Bind(3, run_id);
  if (q.Step() != SQLITE_DONE) return db_.Error("set the driver of run " + std::to_string(run_id));
  return Status::Ok();
}

Result<bool> RunsStore::FailIfDrivenBy(int64_t run_id, int64_t pid, int64_t pid_start, int64_t at_ms) {
  if (Status st = db_.RequireNoBatch("FailIfDrivenBy"); !st.ok()) return st;
  Query q = db_.Prepare(
      "UPDATE runs SET state = 'failed', finished_ms = ? WHERE id = ? AND state IN ('pending', 'running') "
      "AND IFNULL(driver_pid, 0) = ? AND IFNULL(driver_start, 0) = ?");
  q.Bind(1, at_ms).Bind(2, run_id).Bind(3, pid).Bind(4, pid_start);
  if (q.Step() != SQLITE_DONE) return db_.Error("fail run " + std::to_string(run_id));
  return db_.Changes() > 0;
}

Status RunsStore::RequestCancel(int64_t run_id) {
  if (Status st = db_.RequireNoBatch("RequestCancel"); !st.ok()) return st;
  Query q = db_.Prepare("UPDATE runs SET cancel_requested = 1 WHERE id = ?");
  q.Bind(1, run_id);
  if (q.Step() != SQLITE_DONE) return db_.Error("cancel run " + std::to_string(run_id));
  return Status::Ok();
}

Result<std::vector<AttemptRecord>> RunsStore::TakeOverRun(int64_t run_id, int64_t now_ms) {
  auto all = ListAttempts(run_id);
  if (!all.ok()) return all.status();
  std::vector<AttemptRecord> lost;
  for (AttemptRecord& a : *all)
    if (a.state == StepState::kRunning && a.job_id.empty()) lost.push_back(a);
  Status st = db_.Transaction("TakeOverRun", [&] {
    Query q = db_.Prepare(
        "UPDATE attempts SET state = 'lost', reason = 'the orchestrator stopped while it ran', finished_ms = ? "
        "WHERE run_id = ? AND state = 'running' AND IFNULL(job_id, '') = ''");
    Query c = db_.Prepare("UPDATE runs SET cancel_requested = 0 WHERE id = ?");
    if (q.Bind(1, now_ms).Bind(2, run_id).Step() != SQLITE_DONE || c.Bind(1, run_id).Step() != SQLITE_DONE)
      return db_.Error("take over run " + std::to_string(run_id));
    return Status::Ok();
  });
  if (!st.ok()) return st;
  for (AttemptRecord& a : lost) a.state = StepState::kLost;
  return lost;
}

Status RunsStore::ResetSteps(int64_t run_id, const std::vector<std::string>& rerun,
                             const std::vector<std::string>& failed_items, const RunSpecUpdate* reload) {
  // Records are reset, never deleted: their attempt counters keep attempt
  // numbers (and log file names) unique within the run.
  return db_.Transaction("ResetSteps", [&] {
    if (reload) {
      std::string hash = Sha256Hex(reload->spec_text);
      Query run = db_.Prepare("UPDATE runs SET spec_hash = ?, params = ? WHERE id = ?");
      if (!SaveSpec(db_, hash, reload->spec_text).ok() ||
          run.Bind(1, hash).Bind(2, reload->params_json).Bind(3, run_id).Step() != SQLITE_DONE)
        return db_.Error("store the reloaded spec of run " + std::to_string(run_id));
    }
    Query all = db_.Prepare(
        "UPDATE steps SET state = 'pending', tries = 0, reason = '', outputs = '{}', items = NULL, " SLUICE_NEXT_SEQ
        " WHERE run_id = ? AND step_id = ?");
    Query failed = db_.Prepare(
        "UPDATE steps SET state = 'pending', tries = 0, reason = '', outputs = '{}', " SLUICE_NEXT_SEQ
        " WHERE run_id = ? AND step_id = ? AND (item < 0 OR state IN ('failed', 'cancelled', 'skipped', 'pending', 'running'))");
    Query run = db_.Prepare("UPDATE runs SET state = 'pending', finished_ms = NULL, cancel_requested = 0 WHERE id = ?");
    bool ok = true;
    for (const std::string& s : rerun) {
      ok = ok && all.Bind(1, run_id).Bind(2, s).Step() == SQLITE_DONE;
      all.Reset();
    }
    for (const std::string& s : failed_items) {
      ok = ok && failed.Bind(1, run_id).Bind(2, s).Step() == SQLITE_DONE;
      failed.Reset();
    }
    ok = ok && run.Bind(1, run_id).Step() == SQLITE_DONE;
    // The run's outputs are rendered again at its new end.
    Query outputs = db_.Prepare("DELETE FROM run_outputs WHERE run_id = ?");
    ok = ok && outputs.Bind(1, run_id).Step() == SQLITE_DONE;
    if (!ok) return db_.Error("reset steps of run " + std::to_string(run_id));
    return Status::Ok();
  });
}

// --- the journal

Status RunsStore::Join() {
  if (db_.batch_open()) return Status::Ok();
  Status st = db_.JoinBatch();
  if (!st.ok()) return st;
  Query q = db_.Prepare("UPDATE attempts SET pid = ? WHERE id = ?");
  for (const auto& [id, pid] : pending_pids_) {
    if (q.Bind(1, pid).Bind(2, id).Step() != SQLITE_DONE)
      return db_.Abandon(db_.Error("record pid of attempt " + std::to_string(id)));
    q.Reset();
  }
  pending_pids_.clear();
  return Status::Ok();
}

Status RunsStore::Flush() { return db_.Flush(); }

Result<engine::PoolLease> RunsStore::LeasePool(int64_t run_id, const std::string& step_id, int item,
                                               const std::string& pool, int slots) {
  if (!pools_) return engine::PoolLease{};
  PoolLeaseRow want;
  want.pool = pool;
  want.run_id = run_id;
  want.step_id = step_id;
  want.item = item;
  want.slots = slots;
  want.leased_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  return pools_->Lease(want);
}

Status RunsStore::ReleasePool(int64_t run_id, const std::string& step_id, int item) {
  return pools_ ? pools_->Release(run_id, step_id, item) : Status::Ok();
}

// A record saved again updates its row in place (INSERT OR REPLACE deleted
// the row and inserted it again).
Status RunsStore::SaveStep(int64_t run_id, const StepRecord& s) {
  Query q = db_.Prepare(
      "INSERT INTO steps(run_id, step_id, item, state, tries, attempts, item_value, items, outputs, reason, seq) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, " SLUICE_SEQ_AFTER_LAST ") ON CONFLICT DO UPDATE SET state = excluded.state, "
      "tries = excluded.tries, attempts = excluded.attempts, item_value = excluded.item_value, items = excluded.items, "
      "outputs = excluded.outputs, reason = excluded.reason, seq = excluded.seq");
  q.Bind(1, run_id).Bind(2, s.step_id).Bind(3, s.item).Bind(4, std::string(engine::Name(s.state)));
  q.Bind(5, s.tries).Bind(6, s.attempts);
  if (s.item >= 0) q.Bind(7, JsonText(s.item_value.ToJson()));
  else q.BindNull(7);
  if (s.items) q.Bind(8, JsonText(spec::Value::Of(*s.items).ToJson()));
  else q.BindNull(8);
  q.Bind(9, OutputsJson(s.outputs)).Bind(10, s.reason);
  if (q.Step() != SQLITE_DONE) return db_.Error("save step " + s.step_id);
  return Status::Ok();
}

// What an attempt's beginning and end change in its step's row (the row
// exists: the engine saves every record before it runs), updated in place
// rather than deleted and inserted again. A missing row is saved whole.
Status RunsStore::UpdateStep(int64_t run_id, const StepRecord& s) {
  Query q = db_.Prepare(
      "UPDATE steps SET state = ?, tries = ?, attempts = ?, outputs = ?, reason = ?, " SLUICE_NEXT_SEQ
      " WHERE run_id = ? AND step_id = ? AND item = ?");
  q.Bind(1, std::string(engine::Name(s.state))).Bind(2, s.tries).Bind(3, s.attempts);
  q.Bind(4, OutputsJson(s.outputs)).Bind(5, s.reason);
  q.Bind(6, run_id).Bind(7, s.step_id).Bind(8, s.item);
  if (q.Step() != SQLITE_DONE) return db_.Error("save step " + s.step_id);
  return db_.Changes() == 1 ? Status::Ok() : SaveStep(run_id, s);
}

Status RunsStore::SaveSteps(int64_t run_id, const std::vector<const StepRecord*>& steps) {
  Status st = Join();
  if (!st.ok()) return st;
  for (const StepRecord* s : steps) {
    st = SaveStep(run_id, *s);
    if (!st.ok()) return db_.Abandon(st);
  }
  return Status::Ok();
}

Status RunsStore::BeginAttempt(AttemptRecord* a, const StepRecord& step) {
  Status st = Join();
  if (!st.ok()) return st;
  {
    Query q = db_.Prepare(
        "INSERT INTO attempts(run_id, step_id, item, number, state, reason, started_ms, log_path) "
        "VALUES (?, ?, ?, ?, 'running', '', ?, ?)");
    q.Bind(1, a->run_id).Bind(2, a->step_id).Bind(3, a->item).Bind(4, a->number).Bind(5, a->started_ms).Bind(6, a->log_path);
    if (q.Step() != SQLITE_DONE)
      return db_.Abandon(db_.Error("record attempt " + std::to_string(a->number) + " of step " + a->step_id));
  }
  a->id = db_.LastInsertId();
  a->state = StepState::kRunning;
  st = UpdateStep(a->run_id, step);
  return st.ok() ? st : db_.Abandon(st);
}

Status RunsStore::AttemptStarted(const AttemptRecord& a) {
  if (a.pid > 0) pending_pids_.emplace_back(a.id, a.pid);
  if (a.job_id.empty()) return Status::Ok();
  Status st = Join();
  if (!st.ok()) return st;
  Query q = db_.Prepare("UPDATE attempts SET job_id = ? WHERE id = ?");
  q.Bind(1, a.job_id).Bind(2, a.id);
  if (q.Step() != SQLITE_DONE) return db_.Abandon(db_.Error("record the job of attempt " + std::to_string(a.id)));
  return Status::Ok();
}

Status RunsStore::FinishAttempt(AttemptRecord* attempt, const StepRecord& step) {
  const AttemptRecord& a = *attempt;
  // An attempt that ends before its pid was written takes it along here.
  std::erase_if(pending_pids_, [&](const auto& p) { return p.first == a.id; });
  Status st = Join();
  if (!st.ok()) return st;
  {
    // The same columns in the same order, so the binds below serve both.
    Query q = db_.Prepare(
        a.id == 0 ? "INSERT INTO attempts(state, reason, exit_code, finished_ms, pid, fingerprint, identity, outputs, "
                    "run_id, step_id, item, number, started_ms, log_path) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                  : "UPDATE attempts SET state = ?, reason = ?, exit_code = ?, finished_ms = ?, pid = IFNULL(?, pid), "
                    "fingerprint = ?, identity = ?, outputs = ? WHERE id = ?");
    q.Bind(1, std::string(engine::Name(a.state))).Bind(2, a.reason);
    if (a.exit_code >= 0) q.Bind(3, a.exit_code);
    else q.BindNull(3);
    q.Bind(4, a.finished_ms);
    if (a.pid > 0) q.Bind(5, a.pid);
    else q.BindNull(5);
    if (a.fingerprint.empty()) q.BindNull(6).BindNull(7);
    else q.Bind(6, a.fingerprint).Bind(7, a.identity);
    if (a.state == StepState::kSucceeded || a.state == StepState::kCached) q.Bind(8, OutputsJson(step.outputs));
    else q.BindNull(8);
    if (a.id == 0) {
      q.Bind(9, a.run_id).Bind(10, a.step_id).Bind(11, a.item).Bind(12, a.number).Bind(13, a.started_ms);
      q.Bind(14, a.log_path);
      if (q.Step() != SQLITE_DONE)
        return db_.Abandon(db_.Error("record attempt " + std::to_string(a.number) + " of step " + a.step_id));
      attempt->id = db_.LastInsertId();
    } else {
      q.Bind(9, a.id);
      if (q.Step() != SQLITE_DONE) return db_.Abandon(db_.Error("finish attempt " + std::to_string(a.id)));
    }
  }
  st = UpdateStep(a.run_id, step);
  return st.ok() ? st : db_.Abandon(st);
}

Status RunsStore::SetRunState(int64_t run_id, engine::RunState state, int64_t at_ms) {
  Status st = Join();
  if (!st.ok()) return st;
  bool final = state != engine::RunState::kPending && state != engine::RunState::kRunning &&
               state != engine::RunState::kQueued;
  Query q = db_.Prepare(final ? "UPDATE runs SET state = ?, finished_ms = ? WHERE id = ?"
                              : "UPDATE runs SET state = ?, started_ms = IFNULL(started_ms, ?) WHERE id = ?");
  q.Bind(1, std::string(engine::Name(state))).Bind(2, at_ms).Bind(3, run_id);
  if (q.Step() != SQLITE_DONE) return db_.Abandon(db_.Error("set state of run " + std::to_string(run_id)));
  return Status::Ok();
}

Status RunsStore::SaveMetrics(const AttemptRecord& a, const std::vector<engine::Metric>& metrics) {
  if (metrics.empty()) return Status::Ok();
  Status st = Join();
  if (!st.ok()) return st;
  Query q = db_.Prepare("INSERT INTO metrics(attempt_id, name, value, \"index\", at_ms) VALUES (?, ?, ?, ?, ?)");
  for (const engine::Metric& m : metrics) {
    q.Bind(1, a.id).Bind(2, m.name).BindDouble(3, m.value).Bind(4, m.index).Bind(5, a.finished_ms);
    if (q.Step() != SQLITE_DONE)
      return db_.Abandon(db_.Error("save metric " + m.name + " of attempt " + std::to_string(a.id)));
    q.Reset();
  }
  return Status::Ok();
}

Status RunsStore::SaveLineage(const AttemptRecord& a, const std::vector<engine::LineageEdge>& edges) {
  if (edges.empty()) return Status::Ok();
  Status st = Join();
  return st.ok() ? lineage_.SaveLineage(a, edges) : st;
}

Result<int> RunsStore::RegisterModel(const std::string& name, const std::string& artifact, int64_t run_id,
                                     const std::string& step_id, int64_t attempt_id, int64_t now_ms) {
  Status st = Join();
  if (!st.ok()) return st;
  return registry_.RegisterModel(name, artifact, run_id, step_id, attempt_id, now_ms);
}

Result<std::optional<engine::CachedResult>> RunsStore::FindCached(const std::string& fingerprint) {
  return lineage_.FindCached(fingerprint);
}

Result<bool> RunsStore::CancelRequested(int64_t run_id) {
  Query q = db_.Prepare("SELECT cancel_requested FROM runs WHERE id = ?");
  q.Bind(1, run_id);
  if (q.Step() != SQLITE_ROW) return db_.Error("read run " + std::to_string(run_id));
  return q.Int(0) != 0;
}

Result<int> RunsStore::LostInARow(int64_t run_id, const std::string& step_id, int item) {
  Query q = db_.Prepare("SELECT state FROM attempts WHERE run_id = ? AND step_id = ? AND item = ? ORDER BY number DESC");
  q.Bind(1, run_id).Bind(2, step_id).Bind(3, item);
  int lost = 0;
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW && q.Text(0) == "lost") ++lost;
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_.Error("read the attempts of " + step_id);
  return lost;
}

}  // namespace sluice::store
