// The JSON views of the model registry and of the lineage: a model
// version, an alias, and a lineage graph. One view each, used by `sluice
// models --format json`, `sluice lineage --format json` and the HTTP API
// (GET /api/models, /api/models/{name}, /api/lineage; specs/api.yaml), so a
// field has one name and one meaning in both.
//
// Pure functions of their arguments but VersionMetrics, which reads the
// store it is given; any thread, each with its own store.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "store/lineage.h"
#include "store/registry.h"
#include "store/runs.h"

namespace sluice::store {

// What the registering attempt measured, the latest value per metric name
// (a version registered by hand has none). A read error gives none.
std::map<std::string, double> VersionMetrics(RunsStore& runs, const ModelVersion& m);

// A version: name, version, aliases, artifact, uri, run (0: registered by
// hand), step, attempt (the registering attempt's id, 0 by hand),
// created_ms, archived, metrics ({name: value}).
nlohmann::json ModelVersionJson(const ModelVersion& m, const std::map<std::string, double>& metrics);

// An alias: alias, version, updated_ms, updated_by (null when not recorded).
nlohmann::json ModelAliasJson(const ModelAlias& a);

// A lineage graph: direction (upstream or downstream), artifacts ({hash,
// kind, size, uri}), attempts ({id, run, step, item (foreach items only),
// attempt (its number), state, identity}), edges ({attempt, artifact, role,
// name}). The text is the definition, without its closing brace so that a
// caller may add fields (GET /api/lineage adds query_us): a chain of 10,000
// artifacts is answered in text. An attempt's identity is the JSON text
// Sluice stored, placed as it is (left out when it is not an object).
std::string LineageJsonText(const LineageStore::Graph& g, bool downstream);
nlohmann::json LineageJson(const LineageStore::Graph& g, bool downstream);

}  // namespace sluice::store
