// LineageStore: artifacts and the lineage edges between them and the
// attempts that consumed, produced or reused them (MLMD's Artifacts, Events
// and Executions), the cache lookups that ride on them, and which artifact
// files `sluice gc` may remove.
//
// Who uses it: the engine through RunsStore (SaveLineage, FindCached),
// `sluice lineage`, `sluice gc`, `sluice models register` (is the artifact
// known, where did it come from), `sluice plan` (cache forecast) and the
// OpenLineage events (an attempt's edges).
//
// One object per thread, like its Db.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/types.h"
#include "store/db.h"

namespace sluice::store {

class LineageStore {
 public:
  explicit LineageStore(Db& db) : db_(db) {}

  // Records artifacts (once per hash) and the attempt's edges to them. A
  // journal write: it joins the batch, committed by the next Flush().
  // Called through RunsStore::SaveLineage.
  Status SaveLineage(const engine::AttemptRecord& attempt, const std::vector<engine::LineageEdge>& edges);
  // The newest succeeded attempt with this fingerprint and what it
  // produced, if any.
  Result<std::optional<engine::CachedResult>> FindCached(const std::string& fingerprint);

  // The lineage graph around an artifact (by hash) or an attempt, walking
  // producers and inputs (upstream) or consumers and outputs (downstream)
  // to any depth.
  struct Graph {
    std::vector<engine::ArtifactRef> artifacts;
    std::vector<engine::AttemptRecord> attempts;
    struct Edge { int64_t attempt_id; std::string hash; std::string role; std::string name; };
    std::vector<Edge> edges;
  };
  Result<Graph> Lineage(const std::string& artifact_hash, int64_t attempt_id, bool upstream);
  // What a run's attempts produced or reused (a cache hit's outputs), by
  // step, item, attempt and output name; only `step`'s when it is not empty.
  struct RunArtifact {
    std::string step_id;
    int item = -1;
    int attempt = 0;  // the attempt's number
    int64_t attempt_id = 0;
    std::string role;  // produced | reused
    std::string name;  // the output's name
    engine::ArtifactRef artifact;
  };
  Result<std::vector<RunArtifact>> RunArtifacts(int64_t run_id, const std::string& step);
  // True if the store has a record of this artifact.
  Result<bool> HasArtifact(const std::string& hash);
  // The attempt's lineage edges, with their artifacts.
  Result<std::vector<engine::LineageEdge>> AttemptEdges(int64_t attempt_id);

  // Artifacts nothing kept depends on: not a registered model version or
  // upstream of one, and not touched by a run created at or after
  // `keep_since_ms` or still unfinished. (hash, size) pairs.
  Result<std::vector<std::pair<std::string, int64_t>>> CollectableArtifacts(int64_t keep_since_ms);

 private:
  Db& db_;
};

}  // namespace sluice::store
