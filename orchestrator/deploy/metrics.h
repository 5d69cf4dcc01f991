// The serving gateway's request counters, read from its `GET /metrics` text,
// for the deploy steps' analysis (specs/deploy.md, section Analysis).
//
// The gateway exposes cumulative counters per (service, version, role)
// (serving/stats.h AppendRequestMetrics):
//   sluice_requests_total{service,version,role,code}              counter
//   sluice_request_duration_seconds_bucket{service,version,role,le} histogram
// and, per {service, version} of a mirror target (specs/services.md "Mirror
// agreement"), kept in the series of role "mirror":
//   sluice_mirror_compared_total, sluice_mirror_agreed_total,
//   sluice_mirror_dropped_total                                    counters
// ParseMetrics turns one scrape into a Snapshot; Increase takes two scrapes,
// one at each end of an analysis interval, and returns what accrued between
// them, the way Prometheus' increase() does. Every other metric family in the
// text (gateway-level counters, gauges, the histogram's _sum and _count) is
// checked for syntax and otherwise skipped.
//
// Pure code: no I/O, no threads, no clock. Plain values, safe to copy.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "serving/stats.h"
#include "util/status.h"

namespace sluice::deploy {

// The counts of one (service, version, role) over some span.
//
// Errors: an answer whose code is 5xx, or whose code the gateway reports as
// "other" (a status outside serving::kStatusSlots). "other" is counted as an
// error because it may hide a 5xx (501, 505, ...) that the gateway does not
// keep apart, and an analysis that would rather roll back a good version than
// promote a bad one treats what it cannot tell as bad. 4xx codes (bad input,
// authentication, overload shed with 429) are the caller's or the gateway's,
// not the version's, and are not errors.
struct Counts {
  int64_t requests = 0;                 // the sum of `codes`
  int64_t errors = 0;                   // see above
  std::map<std::string, int64_t> codes;  // "200", "503", "other" -> answers
  // Latencies per bucket, NOT cumulative: latency[i] counts the answers in
  // (kLatencyBoundsMs[i-1], kLatencyBoundsMs[i]]; the last one is +Inf.
  std::array<int64_t, serving::kLatencyBuckets> latency{};
  // Role "mirror" only: copies whose answers were compared with the live
  // answer (both 200), those that agreed, and copies dropped.
  int64_t mirror_compared = 0, mirror_agreed = 0, mirror_dropped = 0;

  void Add(const Counts& other);
  bool operator==(const Counts&) const = default;
};

// An answer code counts as an error (see Counts).
bool IsErrorCode(std::string_view code);

struct SeriesKey {
  std::string service, version, role;  // role: "live", "mirror" or "pinned"
  auto operator<=>(const SeriesKey&) const = default;
};

using Snapshot = std::map<SeriesKey, Counts>;

// One scrape of the gateway's /metrics (Prometheus text format 0.0.4).
// Fails with InvalidSpec "metrics line N: ..." for a line that is not a
// comment, a blank or a well-formed sample; for a sample of the two families
// above without one of its labels, with a value that is not a whole
// non-negative number, with an `le` that is not one of the gateway's bounds,
// or repeated; for a cumulative bucket smaller than the one before it.
// A series with buckets must have all of them ("metrics: series
// fashion/v2/live: bucket le=\"0.05\" missing"). A mirror counter needs
// the labels service and version and a whole value, once per series.
Result<Snapshot> ParseMetrics(std::string_view text);

// What accrued between two scrapes of the same gateway, series by series.
// A series whose counters all grew (or stayed) gives after - before. A series
// any of whose counters went down was reset: the gateway restarted between
// the scrapes, so (as Prometheus' increase() does for one counter) `after` is
// the increase; the whole series is taken from `after`, since a restart resets
// every counter of it at once. A series only in `after` is new: `after` is
// its increase. A series with no increase is left out.
Snapshot Increase(const Snapshot& before, const Snapshot& after);

// The series' counts, or empty counts if the snapshot has none.
Counts CountsOf(const Snapshot& snapshot, const SeriesKey& key);

// The q-quantile (0 < q <= 1) of the latencies, in milliseconds, with
// serving::LatencyQuantileMs's semantics: the smallest bucket bound b such
// that at least ceil(q * n) of the n latencies were <= b. So it is an upper
// bound of the true quantile, too high by less than its bucket's width, and
// "quantile <= T" is decided exactly when T is a bucket bound. The /metrics
// text does not carry the largest latency, so a quantile that falls in the
// +Inf bucket is +infinity (more than 30 s). nullopt without latencies.
std::optional<double> LatencyQuantileMs(const Counts& counts, double q);

}  // namespace sluice::deploy
