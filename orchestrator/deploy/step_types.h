// The `deploy` built-in plugin: deployment strategies as pipeline step
// types (specs/deploy.md), over the serving gateway's store
// (specs/services.md):
//   deploy/canary      weight steps with pauses and analysis, automatic rollback
//   deploy/blue-green  the candidate beside the live version, a smoke check on
//                      its preview route, one atomic switch, a watch after it
//   deploy/rollback    back to the version the last promotion replaced
//   deploy/shadow      copies of live requests to the candidate, compared
//                      with the live answers (experiments.h)
//   deploy/ab-test     a sticky split with a statistical decision on
//                      callers' feedback (experiments.h)
// Each drives one rollout (rollout.h) that a resumed run continues. They
// only wait on the gateway and the store, so their attempts take no local
// slot (exec/builtin.h); cli/main.cc registers the plugin.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>
#include <sluice/plugin.hpp>

#include "deploy/analysis.h"
#include "sluice/plugin.h"
#include "util/duration.h"

namespace sluice::deploy {

const sluice_plugin* DeployPlugin();

// Shared by the strategy files (step_types.cc, experiments.cc); each throws
// std::runtime_error naming the key, which fails the attempt.

// A duration param of the step's `with:`, or `fallback` when it is left out.
Millis DurationParam(sluice::Context& ctx, const std::string& key, Millis fallback);
// The analysis object at `parent[key]`, if any; `where` prefixes errors.
std::optional<AnalysisSpec> AnalysisParam(const nlohmann::json& parent, const std::string& key,
                                          const std::string& where);
// The JSON schema properties every strategy that brings a version takes
// (service, model, replicas, version, ready_timeout, abort_delay), without braces.
extern const std::string kVersionProperties;

}  // namespace sluice::deploy
