#include "store/registry_json.h"

#include "util/json.h"

namespace sluice::store {

using json = nlohmann::json;

std::map<std::string, double> VersionMetrics(RunsStore& runs, const ModelVersion& m) {
  std::map<std::string, double> last;
  if (!m.attempt_id) return last;
  auto rows = runs.ListAttemptMetrics(m.attempt_id);
  if (rows.ok())
    for (const auto& row : *rows) last[row.name] = row.value;
  return last;
}

json ModelVersionJson(const ModelVersion& m, const std::map<std::string, double>& metrics) {
  return {{"name", m.name},         {"version", m.version},       {"aliases", m.aliases},
          {"artifact", m.artifact}, {"uri", m.uri},               {"run", m.run_id},
          {"step", m.step_id},      {"attempt", m.attempt_id},    {"created_ms", m.created_ms},
          {"archived", m.archived_ms != 0}, {"metrics", metrics}};
}

json ModelAliasJson(const ModelAlias& a) {
  return {{"alias", a.alias},
          {"version", a.version},
          {"updated_ms", a.updated_ms},
          {"updated_by", a.updated_by.empty() ? json() : json(a.updated_by)}};
}

std::string LineageJsonText(const LineageStore::Graph& g, bool downstream) {
  std::string o;
  o.reserve(g.artifacts.size() * 260 + g.attempts.size() * 400 + g.edges.size() * 130 + 64);
  o += downstream ? "{\"direction\":\"downstream\",\"artifacts\":[" : "{\"direction\":\"upstream\",\"artifacts\":[";
  for (size_t i = 0; i < g.artifacts.size(); ++i) {
    const engine::ArtifactRef& a = g.artifacts[i];
    if (i) o += ',';
    o += "{\"hash\":" + JsonUserString(a.hash) + ",\"kind\":" + JsonUserString(a.kind) +
         ",\"size\":" + std::to_string(a.size) + ",\"uri\":" + JsonUserString(a.uri) + '}';
  }
  o += "],\"attempts\":[";
  for (size_t i = 0; i < g.attempts.size(); ++i) {
    const engine::AttemptRecord& a = g.attempts[i];
    if (i) o += ',';
    o += "{\"id\":" + std::to_string(a.id) + ",\"run\":" + std::to_string(a.run_id) + ",\"step\":" + JsonUserString(a.step_id);
    if (a.item >= 0) o += ",\"item\":" + std::to_string(a.item);
    o += ",\"attempt\":" + std::to_string(a.number) + ",\"state\":\"" + engine::Name(a.state) + '"';
    if (a.identity.size() >= 2 && a.identity.front() == '{' && a.identity.back() == '}') o += ",\"identity\":" + a.identity;
    o += '}';
  }
  o += "],\"edges\":[";
  for (size_t i = 0; i < g.edges.size(); ++i) {
    const LineageStore::Graph::Edge& e = g.edges[i];
    if (i) o += ',';
    o += "{\"attempt\":" + std::to_string(e.attempt_id) + ",\"artifact\":" + JsonUserString(e.hash) +
         ",\"role\":" + JsonUserString(e.role) + ",\"name\":" + JsonUserString(e.name) + '}';
  }
  o += ']';
  return o;
}

json LineageJson(const LineageStore::Graph& g, bool downstream) {
  json j = json::parse(LineageJsonText(g, downstream) + "}", nullptr, false);
  // A stored identity that is not JSON after all is left out, not the graph.
  if (j.is_discarded()) {
    LineageStore::Graph bare = g;
    for (auto& a : bare.attempts) a.identity.clear();
    j = json::parse(LineageJsonText(bare, downstream) + "}");
  }
  return j;
}

}  // namespace sluice::store
