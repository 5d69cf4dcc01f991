// Durations as written in specs and on the command line: "500ms", "10s",
// "5m", "2h", "1d", and sums of them ("1h30m"). Numbers may have a fraction
// ("1.5s"). A bare number is refused: the unit is never guessed.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace sluice {

using Millis = std::chrono::milliseconds;

// The duration, or nullopt if `text` is not one.
std::optional<Millis> ParseDuration(std::string_view text);

// Shortest readable form: "250ms", "12.3s", "4m05s", "2h10m".
std::string FormatDuration(Millis d);

}  // namespace sluice
