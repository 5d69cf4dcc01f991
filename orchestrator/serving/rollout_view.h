// RolloutView: a rollout (store/rollouts.h) and its events as the admin
// API's `GET /api/services/{s}/rollouts` and `GET /api/rollouts/{id}` and
// `sluice services show --json` give them (specs/api.yaml's Rollout and
// RolloutEvent), shaped once so both say the same. Pure functions; any
// thread.
#pragma once

#include <nlohmann/json.hpp>

#include "store/rollouts.h"

namespace sluice::serving {

// The rollout's fields; its config and outputs as JSON (null when empty),
// its request and ended_ms null when there is none.
nlohmann::json RolloutJson(const store::RolloutRecord& r);
// One event; its data as JSON (null when empty).
nlohmann::json RolloutEventJson(const store::RolloutEvent& e);

}  // namespace sluice::serving
