#include "store/registry_json.h"

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

json LineageJson(const LineageStore::Graph& g, bool downstream) {
  json j = {{"direction", downstream ? "downstream" : "upstream"},
            {"artifacts", json::array()},
            {"attempts", json::array()},
            {"edges", json::array()}};
  for (const auto& a : g.artifacts) j["artifacts"].push_back({{"hash", a.hash}, {"kind", a.kind}, {"size", a.size}, {"uri", a.uri}});
  for (const auto& a : g.attempts) {
    json at = {{"id", a.id}, {"run", a.run_id}, {"step", a.step_id}, {"attempt", a.number}, {"state", engine::Name(a.state)}};
    if (a.item >= 0) at["item"] = a.item;
    auto identity = json::parse(a.identity, nullptr, false);
    if (!identity.is_discarded()) at["identity"] = identity;
    j["attempts"].push_back(at);
  }
  for (const auto& e : g.edges)
    j["edges"].push_back({{"attempt", e.attempt_id}, {"artifact", e.hash}, {"role", e.role}, {"name", e.name}});
  return j;
}

}  // namespace sluice::store
