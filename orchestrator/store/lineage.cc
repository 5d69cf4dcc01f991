#include "store/lineage.h"

#include <nlohmann/json.hpp>
#include <sqlite3.h>

namespace sluice::store {

using engine::LineageEdge;

Status LineageStore::SaveLineage(const engine::AttemptRecord& a, const std::vector<LineageEdge>& edges) {
  if (edges.empty()) return Status::Ok();
  Status st = db_.JoinBatch();
  if (!st.ok()) return st;
  Query art =
      db_.Prepare("INSERT OR IGNORE INTO artifacts(hash, kind, size, uri, created_ms, stamp) VALUES (?, ?, ?, ?, ?, ?)");
  Query edge = db_.Prepare("INSERT OR IGNORE INTO lineage(attempt_id, artifact, role, name) VALUES (?, ?, ?, ?)");
  for (const LineageEdge& e : edges) {
    art.Bind(1, e.artifact.hash).Bind(2, e.artifact.kind).Bind(3, e.artifact.size).Bind(4, e.artifact.uri);
    art.Bind(5, a.started_ms);
    if (e.artifact.stamp.empty()) art.BindNull(6);
    else art.Bind(6, e.artifact.stamp);
    if (art.Step() != SQLITE_DONE) return db_.Abandon(db_.Error("record artifact " + e.artifact.hash));
    art.Reset();
    edge.Bind(1, a.id).Bind(2, e.artifact.hash).Bind(3, std::string(engine::Name(e.role))).Bind(4, e.name);
    if (edge.Step() != SQLITE_DONE) return db_.Abandon(db_.Error("record lineage of attempt " + std::to_string(a.id)));
    edge.Reset();
  }
  return Status::Ok();
}

Result<std::optional<engine::CachedResult>> LineageStore::FindCached(const std::string& fingerprint) {
  engine::CachedResult c;
  {
    Query q = db_.Prepare(
        "SELECT id, run_id, step_id, outputs, IFNULL(finished_ms, 0) FROM attempts WHERE fingerprint = ? AND state = 'succeeded' "
        "ORDER BY id DESC LIMIT 1");
    q.Bind(1, fingerprint);
    int rc = q.Step();
    if (rc == SQLITE_DONE) return std::optional<engine::CachedResult>();
    if (rc != SQLITE_ROW) return db_.Error("look up the cache");
    c.attempt_id = q.Int(0);
    c.run_id = q.Int(1);
    c.step_id = q.Text(2);
    c.finished_ms = q.Int(4);
    auto outputs = nlohmann::json::parse(q.Text(3), nullptr, false);
    if (outputs.is_object())
      for (auto& [k, v] : outputs.items()) c.outputs[k] = spec::Value::FromJson(v);
  }
  Query e = db_.Prepare(
      "SELECT l.name, a.hash, a.kind, a.size, a.uri, IFNULL(a.stamp, '') FROM lineage l JOIN artifacts a "
      "ON a.hash = l.artifact WHERE l.attempt_id = ? AND l.role = 'produced' ORDER BY l.name");
  e.Bind(1, c.attempt_id);
  Status st = e.ForEachRow("read the outputs of attempt " + std::to_string(c.attempt_id), [&] {
    c.produced.push_back(
        {LineageEdge::Role::kProduced, e.Text(0), {e.Text(1), e.Text(2), e.Int(3), e.Text(4), e.Text(5)}});
  });
  if (!st.ok()) return st;
  return std::optional<engine::CachedResult>(std::move(c));
}

Result<LineageStore::Graph> LineageStore::Lineage(const std::string& artifact_hash, int64_t attempt_id, bool upstream) {
  // 1. The attempts on the walk, into temp.walk_attempts: upstream, the
  //    producers of the start and, transitively, of what they consumed;
  //    downstream, the consumers of the start and of what they produced.
  //    Walking integer attempt ids is about three times faster than
  //    walking 64-character hashes.
  // 2. The artifacts on the walk, into temp.walk: the start and what those
  //    attempts consumed (upstream) or produced (downstream).
  // 3. Everything about them, set-based.
  static const char* kUp =
      "INSERT INTO temp.walk_attempts(id) WITH RECURSIVE att(id) AS ("
      "  SELECT attempt_id FROM lineage WHERE ?1 != '' AND artifact = ?1 AND role = 'produced'"
      "  UNION SELECT ?2 WHERE ?2 != 0"
      "  UNION SELECT p.attempt_id FROM att"
      "  JOIN lineage c ON c.attempt_id = att.id AND c.role = 'consumed'"
      "  JOIN lineage p ON p.artifact = c.artifact AND p.role = 'produced')"
      " SELECT id FROM att";
  static const char* kDown =
      "INSERT INTO temp.walk_attempts(id) WITH RECURSIVE att(id) AS ("
      "  SELECT attempt_id FROM lineage WHERE ?1 != '' AND artifact = ?1 AND role = 'consumed'"
      "  UNION SELECT ?2 WHERE ?2 != 0"
      "  UNION SELECT c.attempt_id FROM att"
      "  JOIN lineage p ON p.attempt_id = att.id AND p.role IN ('produced', 'reused')"
      "  JOIN lineage c ON c.artifact = p.artifact AND c.role = 'consumed')"
      " SELECT id FROM att";
  Status st = db_.Exec(
      "CREATE TEMP TABLE IF NOT EXISTS walk(hash TEXT PRIMARY KEY) WITHOUT ROWID;"
      "CREATE TEMP TABLE IF NOT EXISTS walk_attempts(id INTEGER PRIMARY KEY);"
      "DELETE FROM temp.walk; DELETE FROM temp.walk_attempts;");
  if (!st.ok()) return st;
  {
    Query q = db_.Prepare(upstream ? kUp : kDown);
    q.Bind(1, artifact_hash).Bind(2, attempt_id);
    if (q.Step() != SQLITE_DONE) return db_.Error("walk the lineage");
  }
  {
    Query q = db_.Prepare(upstream ? "INSERT OR IGNORE INTO temp.walk(hash) SELECT ?1 WHERE ?1 != ''"
                                     " UNION ALL SELECT l.artifact FROM temp.walk_attempts t"
                                     " JOIN lineage l ON l.attempt_id = t.id AND l.role = 'consumed'"
                                   : "INSERT OR IGNORE INTO temp.walk(hash) SELECT ?1 WHERE ?1 != ''"
                                     " UNION ALL SELECT l.artifact FROM temp.walk_attempts t"
                                     " JOIN lineage l ON l.attempt_id = t.id AND l.role IN ('produced', 'reused')");
    q.Bind(1, artifact_hash);
    if (q.Step() != SQLITE_DONE) return db_.Error("walk the lineage");
  }
  Graph g;
  {
    Query q = db_.Prepare("SELECT a.hash, a.kind, a.size, a.uri FROM temp.walk w JOIN artifacts a ON a.hash = w.hash");
    st = q.ForEachRow("read the lineage's artifacts",
                      [&] { g.artifacts.push_back({q.Text(0), q.Text(1), q.Int(2), q.Text(3)}); });
    if (!st.ok()) return st;
  }
  {
    Query q = db_.Prepare(
        "SELECT l.attempt_id, l.artifact, l.role, l.name FROM temp.walk_attempts t JOIN lineage l ON l.attempt_id = t.id"
        " WHERE l.artifact IN (SELECT hash FROM temp.walk)");
    st = q.ForEachRow("read the lineage's edges", [&] { g.edges.push_back({q.Int(0), q.Text(1), q.Text(2), q.Text(3)}); });
    if (!st.ok()) return st;
  }
  Query q = db_.Prepare(
      "SELECT a.id, a.run_id, a.step_id, a.item, a.number, a.state, a.reason, IFNULL(a.identity, '')"
      " FROM temp.walk_attempts t JOIN attempts a ON a.id = t.id");
  st = q.ForEachRow("read the lineage's attempts", [&] {
    engine::AttemptRecord a;
    a.id = q.Int(0);
    a.run_id = q.Int(1);
    a.step_id = q.Text(2);
    a.item = static_cast<int>(q.Int(3));
    a.number = static_cast<int>(q.Int(4));
    a.state = engine::ParseStepState(q.Text(5)).value_or(engine::StepState::kLost);
    a.reason = q.Text(6);
    a.identity = q.Text(7);
    g.attempts.push_back(std::move(a));
  });
  if (!st.ok()) return st;
  return g;
}

Result<std::vector<LineageStore::RunArtifact>> LineageStore::RunArtifacts(int64_t run_id, const std::string& step) {
  Query q = db_.Prepare(
      "SELECT t.step_id, t.item, t.number, t.id, l.role, l.name, a.hash, a.kind, a.size, a.uri"
      " FROM attempts t JOIN lineage l ON l.attempt_id = t.id AND l.role IN ('produced', 'reused')"
      " JOIN artifacts a ON a.hash = l.artifact"
      " WHERE t.run_id = ?1 AND (?2 = '' OR t.step_id = ?2) ORDER BY t.id, l.name");
  q.Bind(1, run_id).Bind(2, step);
  std::vector<RunArtifact> out;
  Status st = q.ForEachRow("read the artifacts of run " + std::to_string(run_id), [&] {
    out.push_back({q.Text(0), static_cast<int>(q.Int(1)), static_cast<int>(q.Int(2)), q.Int(3), q.Text(4), q.Text(5),
                   {q.Text(6), q.Text(7), q.Int(8), q.Text(9)}});
  });
  if (!st.ok()) return st;
  return out;
}

Result<bool> LineageStore::HasArtifact(const std::string& hash) {
  Query q = db_.Prepare("SELECT 1 FROM artifacts WHERE hash = ?");
  q.Bind(1, hash);
  int rc = q.Step();
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_.Error("look up artifact " + hash);
  return rc == SQLITE_ROW;
}

Result<std::vector<LineageEdge>> LineageStore::AttemptEdges(int64_t attempt_id) {
  Query q = db_.Prepare(
      "SELECT l.role, l.name, a.hash, a.kind, a.size, a.uri FROM lineage l JOIN artifacts a ON a.hash = l.artifact"
      " WHERE l.attempt_id = ? ORDER BY l.role, l.name");
  q.Bind(1, attempt_id);
  std::vector<LineageEdge> out;
  Status st = q.ForEachRow("read the lineage of attempt " + std::to_string(attempt_id), [&] {
    std::string role = q.Text(0);
    auto kind = role == "consumed" ? LineageEdge::Role::kConsumed
                : role == "produced" ? LineageEdge::Role::kProduced
                                     : LineageEdge::Role::kReused;
    out.push_back({kind, q.Text(1), {q.Text(2), q.Text(3), q.Int(4), q.Text(5)}});
  });
  if (!st.ok()) return st;
  return out;
}

Result<std::vector<std::pair<std::string, int64_t>>> LineageStore::CollectableArtifacts(int64_t keep_since_ms) {
  Query q = db_.Prepare(
      "WITH RECURSIVE keep(hash) AS ("
      "  SELECT artifact FROM model_versions WHERE deleted_ms IS NULL"
      "  UNION SELECT l.artifact FROM lineage l JOIN attempts a ON a.id = l.attempt_id JOIN runs r ON r.id = a.run_id"
      "    WHERE r.created_ms >= ?1 OR r.state IN ('pending', 'running', 'queued')"
      "  UNION SELECT c.artifact FROM keep JOIN lineage p ON p.artifact = keep.hash AND p.role = 'produced'"
      "    JOIN lineage c ON c.attempt_id = p.attempt_id AND c.role = 'consumed')"
      " SELECT hash, size FROM artifacts WHERE hash NOT IN (SELECT hash FROM keep) ORDER BY hash");
  q.Bind(1, keep_since_ms);
  std::vector<std::pair<std::string, int64_t>> out;
  Status st = q.ForEachRow("find collectable artifacts", [&] { out.emplace_back(q.Text(0), q.Int(1)); });
  if (!st.ok()) return st;
  return out;
}

}  // namespace sluice::store
