// The JSON view of a run's records: a run, a step record (a step or a
// foreach item), an attempt, a metric. One view, used by `sluice runs` and
// `sluice show --format json` and by the HTTP API (specs/api.yaml), so a
// field has one name and one meaning in both: times are ISO 8601 strings
// (`created`, `started`, `finished`, null when not yet) beside the same
// instants in milliseconds (`created_ms`, ...; 0 when not yet); a run's
// `state` is the stored state and `interrupted` says its driver is gone.
//
// The documents built from these differ only in how they group records:
// `sluice show` nests each step's attempts, metrics and items under it;
// GET /api/runs/{id} lists them beside the steps, which carry counts.
//
// Pure functions of their arguments (whether a driver is alive is asked of
// the process table by the caller, exec/, which the store may not include);
// any thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/types.h"
#include "store/runs.h"

namespace sluice::store {

// A run: id, pipeline, state, trigger, params, created, started, finished,
// created_ms, started_ms, finished_ms, duration_ms (started to finished, or
// to `now_ms` while it runs; null before it starts), interrupted,
// cancel_requested. `interrupted`: pending or running, but the process
// recorded as its driver is gone. As text, written by hand: the run lists
// are the API's busiest answers. The params column holds JSON Sluice wrote.
std::string RunJsonText(const RunRow& r, bool interrupted, int64_t now_ms);
// RunJsonText appended to *out.
void AppendRunJson(std::string* out, const RunRow& r, bool interrupted, int64_t now_ms);
nlohmann::json RunJson(const RunRow& r, bool interrupted, int64_t now_ms);

// An attempt: id, step, item (-1 for a plain step), number, state, reason,
// exit_code, pid, job_id, started, finished, started_ms, finished_ms, log.
// The text versions append to `out` and are the definitions (a run of
// 10,000 steps is answered in text; the nlohmann ones parse them).
void AppendAttemptJson(std::string* out, const engine::AttemptRecord& a);
nlohmann::json AttemptJson(const engine::AttemptRecord& a);

// A metric: step (the step's id), item, attempt (its number), name, value,
// index (the epoch or batch it was measured at).
void AppendMetricJson(std::string* out, const MetricRow& m);
nlohmann::json MetricJson(const MetricRow& m);

// A step record: id (the step's), state, reason, outputs, duration_ms; a
// foreach item adds item (its index) and item_value. The fields alone
// (every one but id, without braces) for documents that add their own.
void AppendStepRecordFields(std::string* out, const engine::StepRecord& s, std::optional<int64_t> duration_ms);
nlohmann::json StepRecordJson(const engine::StepRecord& s, std::optional<int64_t> duration_ms);

// A run's outputs (the spec's `outputs:`), in order: a list of {name, value,
// reason}, value null (and reason set) for an absent one.
void AppendRunOutputsJson(std::string* out, const std::vector<engine::RunOutputValue>& outputs);
nlohmann::json RunOutputsJson(const std::vector<engine::RunOutputValue>& outputs);

// How long each step and item took, from a run's attempts (oldest first):
// a unit's duration is its last attempt's (earlier attempts and the backoff
// between them are not the step's work), an unfinished one's up to `now_ms`;
// a step's with item -1 runs from the first start to the last end of the
// last attempts of all its units (a foreach step's items). Borrows nothing.
class UnitDurations {
 public:
  UnitDurations(const std::vector<engine::AttemptRecord>& attempts, int64_t now_ms);
  // None before any attempt.
  std::optional<int64_t> Of(const std::string& step, int item) const;

 private:
  struct Span {
    int64_t started_ms, finished_ms;
  };
  std::map<std::pair<std::string, int>, Span> last_;  // by (step, item)
  int64_t now_ms_;
};

// A duration for JSON: the milliseconds, or null.
inline nlohmann::json DurationJson(std::optional<int64_t> ms) { return ms ? nlohmann::json(*ms) : nlohmann::json(); }
inline std::string DurationText(std::optional<int64_t> ms) { return ms ? std::to_string(*ms) : std::string("null"); }

}  // namespace sluice::store
