// What a deployment step changes in a service's desired state: the
// candidate version it brings (from the step's `with:`), added beside the
// live versions at weight 0, and a version taken out again. Each function
// returns the state to hand to ServicesStore::Apply; the weights are moved
// with ServicesStore::SetTraffic, never here (keep_weights is set).
//
// The candidate is written in the step's `with.version` as a version of a
// service.yaml is (specs/services.md): {model: fashion@3, replicas: 2} or
// {command: [...], port_env: PORT}; `with.model` and `with.replicas` are a
// short form of it. It is parsed and resolved by serving/ exactly as
// `sluice services apply` would (a registry reference is pinned now).
//
// Reads the registry only. Any thread, one store object per thread.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "store/registry.h"
#include "store/services.h"
#include "util/status.h"

namespace sluice::deploy {

struct Candidate {
  store::ServiceVersionState version;  // resolved, weight 0
  nlohmann::json document;             // its canonical JSON, as the service's spec keeps versions
};

// The candidate of a step's `with:` for `service`. Its name: with.version.name
// if given, else "v<N>" for a registry model NAME@... that resolved to
// version N, else `fallback_name`. InvalidSpec naming the key for a bad
// version (the service.yaml parser's message, its place given as `where`).
Result<Candidate> ResolveCandidate(const nlohmann::json& with, const std::string& service,
                                   const std::string& fallback_name, const std::string& where,
                                   store::RegistryStore& registry);

// A new service whose only version is the candidate, at 100%.
store::ServiceState NewService(const std::string& service, const Candidate& c);
// `live` with the candidate added (or replacing a version of its name) at
// weight 0; the other versions keep their weights.
store::ServiceState WithVersion(const store::ServiceState& live, const Candidate& c);
// `live` without version `name` (it becomes removing: the gateway drains
// its replicas and stops them at zero in flight).
store::ServiceState WithoutVersion(const store::ServiceState& live, const std::string& name);

// `live` made sticky: requests with the same `header` value (or, with
// `header` empty, the same value at the body's dot path `field`) reach the
// same version; salt: the service's name (specs/services.md, `sticky`).
store::ServiceState WithSticky(const store::ServiceState& live, const std::string& header, const std::string& field);

// A version's canonical JSON in `live`'s spec (null if it has none), and the
// candidate made from it again: how deploy/rollback brings back a version
// that a rollout removed (kept in the rollout's outputs as "previous").
nlohmann::json VersionDocument(const store::ServiceState& live, const std::string& name);
nlohmann::json VersionStateJson(const store::ServiceVersionState& v);
Result<Candidate> CandidateFromJson(const nlohmann::json& saved);

// Whether two versions run the same thing (same model artifact or file,
// or the same command, environment and options).
bool SameWhatRuns(const store::ServiceVersionState& a, const store::ServiceVersionState& b);

}  // namespace sluice::deploy
