// The $SLUICE_OUTPUT file of a subprocess step: `key=value` lines, and
// `key<<DELIM` ... `DELIM` for multi-line values (GitHub Actions'
// $GITHUB_OUTPUT convention). A key set twice is an error, so a value with a
// newline in it can never override an output the step set on purpose.
#pragma once

#include <string>

#include "engine/env.h"
#include "engine/types.h"
#include "util/status.h"

namespace sluice::engine {

// Output values travel in the store and reach steps as argv elements and
// environment variables (Linux refuses one over 128 KiB), so they are
// bounded; what is larger belongs in a declared file output.
constexpr size_t kMaxOutputValue = 64 << 10;   // bytes per value
constexpr size_t kMaxOutputFile = 1 << 20;     // bytes of $SLUICE_OUTPUT

// StepFailed naming the first value over kMaxOutputValue or not UTF-8 text,
// with the way out.
Status CheckOutputs(const Outputs& outputs);

// Parses the file's text. Errors name the line: "line 3: 'x y' is not key=value".
Result<Outputs> ParseOutputs(const std::string& text);

// Reads and parses the file through `env`; a missing file has no outputs.
Result<Outputs> ReadOutputs(const std::string& path, Env& env);
// The same on the real file system.
Result<Outputs> ReadOutputs(const std::string& path);

}  // namespace sluice::engine
