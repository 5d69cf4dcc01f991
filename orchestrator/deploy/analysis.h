// The analysis of a canary (or of a blue-green preview, or a guardrail): the
// step's `with.analysis` object, the verdict on one interval's counts, and
// the tally of verdicts across the intervals of one step
// (specs/deploy.md, section Analysis).
//
// It follows Argo Rollouts' AnalysisRun: each interval is one measurement
// that is successful, failed or inconclusive; every comparison is stated in
// the measurement's reason; the analysis fails when the failed measurements
// exceed failure_limit ("failed (2) > failure_limit (1)"). Unlike Argo, a
// measurement is inconclusive for one reason only, too little traffic
// (fewer than min_requests answers in the interval), and what an
// inconclusive interval does is the spec's `inconclusive` key.
//
// Pure code: no I/O, no threads, no clock. The caller reads the gateway's
// /metrics at both ends of each interval (deploy/metrics.h) and hands the
// increase of the version's own series here. Values; an AnalysisTally
// belongs to one step and is used by one thread at a time.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "deploy/metrics.h"
#include "util/duration.h"
#include "util/status.h"

namespace sluice::deploy {

// What an inconclusive interval does.
enum class InconclusiveAction {
  kPause,   // the rollout pauses until a person promotes or aborts it (Argo's behaviour)
  kFail,    // the interval counts as a failed one, toward failure_limit
  kExtend,  // the interval is extended: its counts are added to the next one's
};
const char* InconclusiveActionName(InconclusiveAction a);  // "pause", "fail", "extend"

struct AnalysisSpec {
  Millis interval{10000};            // "interval", default 10s, at least 1s
  int64_t min_requests = 0;          // "min_requests", required, >= 1
  std::optional<double> max_error_rate;  // "max_error_rate", in [0, 1]
  std::optional<double> max_p99_ms;      // "max_p99_ms", in (0, 30000]
  std::optional<double> max_p50_ms;      // "max_p50_ms", in (0, 30000]
  // "max_class_distance", in [0, 1]: how far the version's predicted-class
  // distribution may be from the stable version's (total variation
  // distance; JudgeClasses). A model with random weights answers 200 fast
  // and is caught only here.
  std::optional<double> max_class_distance;
  int64_t failure_limit = 0;         // "failure_limit", >= 0
  InconclusiveAction inconclusive = InconclusiveAction::kPause;  // "inconclusive"
};

// Parses the step's `with.analysis` object. Every error is InvalidSpec and
// names the key: "analysis.max_error_rate: 1.5 is not a rate between 0 and 1",
// "analysis.max_eror_rate: unknown key (did you mean 'max_error_rate'?)",
// "analysis.min_requests: required". At least one of max_error_rate,
// max_p99_ms and max_p50_ms is required: an analysis that checks nothing
// would pass every version.
Result<AnalysisSpec> ParseAnalysisSpec(const nlohmann::json& analysis);

enum class Verdict { kPass, kFail, kInconclusive };
const char* VerdictName(Verdict v);  // "pass", "fail", "inconclusive"

// One interval's measurement.
struct Measurement {
  Verdict verdict = Verdict::kInconclusive;
  int64_t requests = 0;
  int64_t errors = 0;
  double error_rate = 0;         // errors / requests; 0 without requests
  std::optional<double> p99_ms;  // bucket upper bounds (metrics.h); +inf above 30 s
  std::optional<double> p50_ms;
  // Each comparison stated: "error rate 0.034 > 0.01 over 412 requests";
  // a pass lists every check ("error rate 0.002 <= 0.01, p99 <= 25 ms <= 50 ms
  // over 412 requests"), a failure only the checks that failed.
  std::string reason;
};

// The verdict on one interval's counts:
//   inconclusive  requests < min_requests ("12 requests < min_requests 200");
//   fail          error_rate > max_error_rate, or p99 > max_p99_ms, or
//                 p50 > max_p50_ms (a value exactly at its limit passes);
//   pass          otherwise.
// The quantiles are bucket upper bounds, so a latency limit that is one of
// the gateway's bucket bounds (serving::kLatencyBoundsMs: ..., 25, 30, 40,
// 50, 75, 100, ...) is decided exactly; a limit between two bounds is
// decided against the upper one, which may fail a version whose true p99 is
// just under the limit (never pass one above it).
Measurement Judge(const AnalysisSpec& spec, const Counts& counts);

// The total variation distance of two class histograms (counts by class
// name): half the sum over the classes of either of |p(c) - q(c)|, from 0
// (the same distribution) to 1 (no class in common). 0 when either is empty.
double ClassDistance(const std::map<std::string, int64_t>& a, const std::map<std::string, int64_t>& b);

// The verdict on the predicted classes of the version (`candidate`) against
// the stable version's, both counted over the same span:
//   inconclusive  fewer than min_requests classified answers of the candidate
//                 ("12 classified answers < min_requests 200");
//   fail          ClassDistance > max_class_distance ("predicted classes
//                 differ from the stable version's by 0.82 > 0.3 over 412
//                 and 1650 classified answers");
//   pass          otherwise (a distance exactly at the limit passes).
// REQUIRES: spec.max_class_distance is set.
Measurement JudgeClasses(const AnalysisSpec& spec, const std::map<std::string, int64_t>& candidate,
                         const std::map<std::string, int64_t>& stable);

// The verdicts of the intervals of one step, in order.
class AnalysisTally {
 public:
  explicit AnalysisTally(AnalysisSpec spec) : spec_(std::move(spec)) {}

  // Judges one interval's counts and counts its verdict. With `inconclusive:
  // extend`, the counts of the inconclusive intervals just before are added
  // first (so an interval grows until it holds min_requests); any conclusive
  // verdict clears them.
  Measurement Add(const Counts& interval);

  // What the step does after the last Add.
  enum class Next {
    kContinue,  // go on (a pass, a failure within failure_limit, or an extended interval)
    kPause,     // the last interval was inconclusive and the spec says pause
    kFail,      // failed(): roll back
  };
  Next next() const { return next_; }

  // failures() > failure_limit; once true, stays true.
  bool failed() const { return failures_ > spec_.failure_limit; }
  // "failed (2) > failure_limit (1)", or "failed (1) <= failure_limit (1)".
  std::string Summary() const;

  int64_t intervals() const { return passed_ + failures_ + inconclusive_; }
  int64_t passed() const { return passed_; }
  int64_t failures() const { return failures_; }  // inconclusive ones too with `inconclusive: fail`
  // The inconclusive intervals not counted in failures().
  int64_t inconclusive() const { return inconclusive_; }
  // Counts carried into the next interval (`inconclusive: extend`).
  const Counts& carried() const { return carried_; }

  const AnalysisSpec& spec() const { return spec_; }

 private:
  AnalysisSpec spec_;
  Counts carried_;
  int64_t passed_ = 0, failures_ = 0, inconclusive_ = 0;
  Next next_ = Next::kContinue;
};

}  // namespace sluice::deploy
