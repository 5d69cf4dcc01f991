// Checks a plugin step's `with:` against its step type's JSON Schema, with
// every problem at its place in the spec. A practical subset of JSON Schema
// 2020-12: type (object, array, string, number, integer, boolean, null),
// properties, required, additionalProperties (false or a schema), items,
// enum, const, minimum, maximum, minLength, maxLength, minItems, maxItems.
// Other keywords are ignored. A value that is a `${{ }}` expression passes
// the type checks: its type is known only at run time.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "spec/yaml_tree.h"

namespace sluice::spec {

// Appends "FILE:LINE:COL: message" lines to `errors`. `what` names the step
// type in messages ("acme/clean"); `at` is where `with:` would be (the
// `uses:` value) when the step has none.
void CheckParamsAgainstSchema(const std::string& file, const std::string& step_id, const std::string& what,
                              const YamlNode* with, SourcePos at, const nlohmann::json& schema,
                              std::vector<std::string>* errors);

// The same checks on a plugin step's params as rendered for an attempt
// (every `${{ }}` evaluated), and the schema's `default`s filled in for the
// properties left out, so a plugin need not repeat them. Returns the first
// problem ("param 'top' must be at least 1, not -5"), or "" when they pass.
std::string CheckRenderedParams(nlohmann::json* params, const nlohmann::json& schema);

}  // namespace sluice::spec
