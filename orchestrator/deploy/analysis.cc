#include "deploy/analysis.h"

#include <cmath>
#include <cstdio>
#include <vector>

#include "util/json.h"
#include "util/strings.h"

namespace sluice::deploy {
namespace {

const std::vector<std::string> kKeys = {"interval",   "min_requests",  "max_error_rate",     "max_p99_ms",
                                        "max_p50_ms", "failure_limit", "max_class_distance", "inconclusive"};

std::string Number(double v, int digits) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

// A measured value next to its limit, with as many digits as it takes for
// the text to show the comparison it states: 0.010001 against 0.01 is
// "0.010001", not "0.01 > 0.01".
std::string Measured(double v, double limit) {
  const std::string limit_text = Number(limit, 6);
  for (int digits = 3; digits < 17; ++digits) {
    std::string text = Number(v, digits);
    if (v == limit || text != limit_text) return text;
  }
  return Number(v, 17);
}

std::string Milliseconds(double ms) {
  if (std::isinf(ms)) return "> " + Number(serving::kLatencyBoundsMs.back(), 6) + " ms";
  return "<= " + Number(ms, 6) + " ms";
}

Status KeyError(const std::string& key, const std::string& what) {
  return Status::InvalidSpec("analysis." + key + ": " + what);
}

// A JSON value as written, for messages.
std::string Shown(const nlohmann::json& v) { return JsonText(v); }

Status ReadNumber(const nlohmann::json& v, const std::string& key, double* out) {
  if (!v.is_number()) return KeyError(key, "expected a number, got " + Shown(v));
  *out = v.get<double>();
  if (!std::isfinite(*out)) return KeyError(key, Shown(v) + " is not a finite number");
  return Status::Ok();
}

Status ReadInteger(const nlohmann::json& v, const std::string& key, int64_t* out) {
  double d = 0;
  if (!v.is_number() || (d = v.get<double>(), std::floor(d) != d) || std::fabs(d) > 9e15) {
    return KeyError(key, "expected a whole number, got " + Shown(v));
  }
  *out = v.is_number_float() ? static_cast<int64_t>(d) : v.get<int64_t>();
  return Status::Ok();
}

Status ReadLatencyLimit(const nlohmann::json& v, const std::string& key, std::optional<double>* out) {
  double ms = 0;
  if (Status s = ReadNumber(v, key, &ms); !s.ok()) return s;
  const double largest = serving::kLatencyBoundsMs.back();
  if (ms <= 0) return KeyError(key, Shown(v) + " is not a latency above 0 ms");
  if (ms > largest) {
    return KeyError(key, Shown(v) + " is above " + Number(largest, 6) +
                             " ms, the gateway's largest latency bucket: it cannot be judged");
  }
  *out = ms;
  return Status::Ok();
}

}  // namespace

const char* InconclusiveActionName(InconclusiveAction a) {
  switch (a) {
    case InconclusiveAction::kPause: return "pause";
    case InconclusiveAction::kFail: return "fail";
    case InconclusiveAction::kExtend: return "extend";
  }
  return "pause";
}

const char* VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kPass: return "pass";
    case Verdict::kFail: return "fail";
    case Verdict::kInconclusive: return "inconclusive";
  }
  return "inconclusive";
}

Result<AnalysisSpec> ParseAnalysisSpec(const nlohmann::json& analysis) {
  if (!analysis.is_object()) {
    return Status::InvalidSpec("analysis: expected an object of settings, got " + Shown(analysis));
  }
  for (const auto& [key, value] : analysis.items()) {
    bool known = false;
    for (const std::string& k : kKeys) known = known || k == key;
    if (!known) return KeyError(key, "unknown key" + DidYouMean(key, kKeys));
  }
  AnalysisSpec spec;
  if (analysis.contains("interval")) {
    const nlohmann::json& v = analysis["interval"];
    std::optional<Millis> d = v.is_string() ? ParseDuration(v.get<std::string>()) : std::nullopt;
    if (!d) return KeyError("interval", "expected a duration such as \"10s\", got " + Shown(v));
    if (*d < Millis(1000)) return KeyError("interval", Shown(v) + " is shorter than 1s");
    spec.interval = *d;
  }
  if (!analysis.contains("min_requests")) {
    return KeyError("min_requests", "required (the fewest answers in an interval that can be judged)");
  }
  if (Status s = ReadInteger(analysis["min_requests"], "min_requests", &spec.min_requests); !s.ok()) return s;
  if (spec.min_requests < 1) return KeyError("min_requests", Shown(analysis["min_requests"]) + " is less than 1");
  if (analysis.contains("max_error_rate")) {
    const nlohmann::json& v = analysis["max_error_rate"];
    double rate = 0;
    if (Status s = ReadNumber(v, "max_error_rate", &rate); !s.ok()) return s;
    if (rate < 0 || rate > 1) return KeyError("max_error_rate", Shown(v) + " is not a rate between 0 and 1");
    spec.max_error_rate = rate;
  }
  if (analysis.contains("max_p99_ms")) {
    if (Status s = ReadLatencyLimit(analysis["max_p99_ms"], "max_p99_ms", &spec.max_p99_ms); !s.ok()) return s;
  }
  if (analysis.contains("max_p50_ms")) {
    if (Status s = ReadLatencyLimit(analysis["max_p50_ms"], "max_p50_ms", &spec.max_p50_ms); !s.ok()) return s;
  }
  if (analysis.contains("max_class_distance")) {
    const nlohmann::json& v = analysis["max_class_distance"];
    double d = 0;
    if (Status s = ReadNumber(v, "max_class_distance", &d); !s.ok()) return s;
    if (d < 0 || d > 1) return KeyError("max_class_distance", Shown(v) + " is not a distance between 0 and 1");
    spec.max_class_distance = d;
  }
  if (!spec.max_error_rate && !spec.max_p99_ms && !spec.max_p50_ms && !spec.max_class_distance) {
    return Status::InvalidSpec(
        "analysis: needs at least one of max_error_rate, max_p99_ms, max_p50_ms, max_class_distance");
  }
  if (analysis.contains("failure_limit")) {
    if (Status s = ReadInteger(analysis["failure_limit"], "failure_limit", &spec.failure_limit); !s.ok()) return s;
    if (spec.failure_limit < 0) {
      return KeyError("failure_limit", Shown(analysis["failure_limit"]) + " is less than 0");
    }
  }
  if (analysis.contains("inconclusive")) {
    const nlohmann::json& v = analysis["inconclusive"];
    const std::string text = v.is_string() ? v.get<std::string>() : "";
    if (text == "pause") spec.inconclusive = InconclusiveAction::kPause;
    else if (text == "fail") spec.inconclusive = InconclusiveAction::kFail;
    else if (text == "extend") spec.inconclusive = InconclusiveAction::kExtend;
    else return KeyError("inconclusive", "expected pause, fail or extend, got " + Shown(v));
  }
  return spec;
}

Measurement Judge(const AnalysisSpec& spec, const Counts& counts) {
  Measurement m;
  m.requests = counts.requests;
  m.errors = counts.errors;
  m.error_rate = counts.requests > 0 ? static_cast<double>(counts.errors) / static_cast<double>(counts.requests) : 0;
  m.p99_ms = LatencyQuantileMs(counts, 0.99);
  m.p50_ms = LatencyQuantileMs(counts, 0.50);
  const std::string over = " over " + Plural(counts.requests, "request");
  if (counts.requests < spec.min_requests) {
    m.verdict = Verdict::kInconclusive;
    m.reason = Plural(counts.requests, "request") + " < min_requests " + std::to_string(spec.min_requests);
    return m;
  }
  if ((spec.max_p99_ms || spec.max_p50_ms) && !m.p99_ms) {
    // The gateway counts a latency for every answer; a scrape without them is not one to judge by.
    m.verdict = Verdict::kInconclusive;
    m.reason = "no latencies recorded" + over;
    return m;
  }
  std::vector<std::string> passed, failed;
  if (spec.max_error_rate) {
    const double limit = *spec.max_error_rate;
    const bool ok = m.error_rate <= limit;
    (ok ? passed : failed)
        .push_back("error rate " + Measured(m.error_rate, limit) + (ok ? " <= " : " > ") + Number(limit, 6));
  }
  auto latency = [&](const char* name, const std::optional<double>& value, const std::optional<double>& limit) {
    if (!limit) return;
    const bool ok = *value <= *limit;
    (ok ? passed : failed)
        .push_back(std::string(name) + " " + Milliseconds(*value) + (ok ? " <= " : " > ") + Number(*limit, 6) + " ms");
  };
  latency("p99", m.p99_ms, spec.max_p99_ms);
  latency("p50", m.p50_ms, spec.max_p50_ms);
  m.verdict = failed.empty() ? Verdict::kPass : Verdict::kFail;
  m.reason = Join(failed.empty() ? passed : failed, ", ") + over;
  return m;
}

Measurement AnalysisTally::Add(const Counts& interval) {
  Counts counts = carried_;
  counts.Add(interval);
  Measurement m = Judge(spec_, counts);
  carried_ = Counts{};
  switch (m.verdict) {
    case Verdict::kPass:
      ++passed_;
      break;
    case Verdict::kFail:
      ++failures_;
      break;
    case Verdict::kInconclusive:
      switch (spec_.inconclusive) {
        case InconclusiveAction::kFail:
          ++failures_;
          break;
        case InconclusiveAction::kExtend:
          ++inconclusive_;
          carried_ = counts;
          break;
        case InconclusiveAction::kPause:
          ++inconclusive_;
          break;
      }
      break;
  }
  if (failed()) next_ = Next::kFail;
  else if (m.verdict == Verdict::kInconclusive && spec_.inconclusive == InconclusiveAction::kPause) next_ = Next::kPause;
  else next_ = Next::kContinue;
  return m;
}

std::string AnalysisTally::Summary() const {
  return "failed (" + std::to_string(failures_) + ")" + (failed() ? " > " : " <= ") + "failure_limit (" +
         std::to_string(spec_.failure_limit) + ")";
}

}  // namespace sluice::deploy

namespace sluice::deploy {

double ClassDistance(const std::map<std::string, int64_t>& a, const std::map<std::string, int64_t>& b) {
  int64_t na = 0, nb = 0;
  for (const auto& [_, n] : a) na += n;
  for (const auto& [_, n] : b) nb += n;
  if (na <= 0 || nb <= 0) return 0;
  std::map<std::string, std::pair<int64_t, int64_t>> both;
  for (const auto& [c, n] : a) both[c].first = n;
  for (const auto& [c, n] : b) both[c].second = n;
  double sum = 0;
  for (const auto& [_, counts] : both)
    sum += std::abs(static_cast<double>(counts.first) / na - static_cast<double>(counts.second) / nb);
  return sum / 2;
}

Measurement JudgeClasses(const AnalysisSpec& spec, const std::map<std::string, int64_t>& candidate,
                         const std::map<std::string, int64_t>& stable) {
  Measurement m;
  int64_t nc = 0, ns = 0;
  for (const auto& [_, n] : candidate) nc += n;
  for (const auto& [_, n] : stable) ns += n;
  m.requests = nc;
  if (nc < spec.min_requests || ns == 0) {
    m.verdict = Verdict::kInconclusive;
    m.reason = nc < spec.min_requests
                   ? std::to_string(nc) + " classified answers < min_requests " + std::to_string(spec.min_requests)
                   : "the stable version has no classified answers to compare with";
    return m;
  }
  double d = ClassDistance(candidate, stable);
  double limit = *spec.max_class_distance;
  m.verdict = d > limit ? Verdict::kFail : Verdict::kPass;
  m.reason = "predicted classes differ from the stable version's by " + Measured(d, limit) + (d > limit ? " > " : " <= ") +
             Number(limit, 6) + " over " + std::to_string(nc) + " and " + std::to_string(ns) + " classified answers";
  return m;
}

}  // namespace sluice::deploy
