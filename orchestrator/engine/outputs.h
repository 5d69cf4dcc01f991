// The $SLUICE_OUTPUT file of a subprocess step: `key=value` lines, and
// `key<<DELIM` ... `DELIM` for multi-line values (GitHub Actions'
// $GITHUB_OUTPUT convention). A key set twice is an error, so a value with a
// newline in it can never override an output the step set on purpose.
#pragma once

#include <string>

#include "engine/types.h"
#include "util/status.h"

namespace sluice::engine {

// Parses the file's text. Errors name the line: "line 3: 'x y' is not key=value".
Result<Outputs> ParseOutputs(const std::string& text);

// Reads and parses the file; a missing file has no outputs.
Result<Outputs> ReadOutputs(const std::string& path);

}  // namespace sluice::engine
