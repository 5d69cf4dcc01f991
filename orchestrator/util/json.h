// JSON text of values that may hold user bytes (step outputs, plugin
// messages, environment values): nlohmann's dump() throws on bytes that are
// not UTF-8, which would take the process down; this replaces them with
// U+FFFD instead.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace sluice {

// `indent` as nlohmann's dump(): -1 for one line.
inline std::string JsonText(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

// `s` as a JSON string literal, quotes included, where `s` may hold user
// bytes: bytes that are not UTF-8 become U+FFFD, as in JsonText. For JSON
// written as text (the API's busiest answers) without a JSON value.
std::string JsonUserString(std::string_view s);

}  // namespace sluice
