// What the API's route files (api.cc, api_runs.cc, api_hooks.cc) share.
// Internal to server/.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "server/http.h"

namespace sluice::server::internal {

// Milliseconds since the epoch, now.
int64_t NowMs();
// A JSON answer, never cached.
Response Json(int status, const nlohmann::json& body);
// A run id as a path segment: 1 to 18 digits, above 0.
bool ParseId(const std::string& text, int64_t* id);
// The real path of `p` if it exists and lies under `dir` (both resolved).
std::optional<std::filesystem::path> ResolveInside(const std::filesystem::path& p, const std::filesystem::path& dir);

}  // namespace sluice::server::internal
