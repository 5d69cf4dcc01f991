// Small string helpers shared by every module.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

// Edit distance between two short words (names of keys, steps, params).
size_t EditDistance(std::string_view a, std::string_view b);

// The candidate closest to `word` if it is close enough to be a likely typo,
// else an empty string. Used for "did you mean 'prepare'?" hints.
std::string ClosestMatch(std::string_view word, const std::vector<std::string>& candidates);

// " (did you mean 'x'?)" or "" when nothing is close.
std::string DidYouMean(std::string_view word, const std::vector<std::string>& candidates);

// "a\nb" -> {"a", "b"}; an empty string gives no parts.
std::vector<std::string> Split(std::string_view s, char sep);

std::string Join(const std::vector<std::string>& parts, std::string_view sep);

// "1 step", "0 steps", "3 steps": a count and its noun (regular plurals only).
std::string Plural(int64_t n, std::string_view noun);

// True if `s` matches [a-z0-9][a-z0-9-]*.
bool IsPipelineName(std::string_view s);
// True if `s` matches [A-Za-z_][A-Za-z0-9_-]* (step ids, param names, output keys).
bool IsIdentifier(std::string_view s);
// True if `s` is valid UTF-8 (values that go into JSON must be).
bool IsUtf8(std::string_view s);

// "2026-11-25T23:59:01.123Z"
std::string IsoTime(int64_t ms_since_epoch);

// `s` as a JSON string literal, quotes included (bytes >= 0x80 pass as they are).
std::string JsonString(std::string_view s);
// JsonString(s) appended to *out.
void AppendJsonString(std::string* out, std::string_view s);

// A string quoted for messages: 'abc' with control characters escaped.
std::string Quote(std::string_view s);

// A value of a logfmt line (key=value): bare if simple, else double-quoted
// with quotes, backslashes and newlines escaped.
std::string LogValue(std::string_view v);

}  // namespace sluice
