#include "deploy/experiments.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <thread>

#include <sluice/plugin.hpp>

#include "deploy/abtest.h"
#include "deploy/analysis.h"
#include "deploy/metrics.h"
#include "deploy/rollout.h"
#include "deploy/step_types.h"
#include "serving/service_spec.h"
#include "util/duration.h"
#include "util/json.h"
#include "util/strings.h"

namespace sluice::deploy {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr Millis kTick{50};

std::string Num(double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

// A p99 for outputs and events: milliseconds, "inf" above 30 s, "" without answers.
std::string MsText(const std::optional<double>& ms) {
  if (!ms) return "";
  if (!std::isfinite(*ms)) return "inf";
  return Num(*ms);
}
json MsJson(const std::optional<double>& ms) { return ms && std::isfinite(*ms) ? json(*ms) : json(nullptr); }

// A percent param in (0, 100] (or (0, 100) when `below_100`), as basis points.
int PercentParam(const json& p, const std::string& key, int fallback_bp, bool below_100) {
  if (!p.contains(key)) return fallback_bp;
  std::optional<int> bp = serving::ParseBasisPoints(JsonText(p[key]));
  const int top = below_100 ? 9'999 : 10'000;
  if (!bp || *bp <= 0 || *bp > top)
    throw std::runtime_error(key + ": " + JsonText(p[key]) + " is not a percent in (0, " + (below_100 ? "100)" : "100]"));
  return *bp;
}

// The service the experiment runs on: it must serve a version already (the
// live one, compared with or the control).
void RequireLiveService(Deployment& d, const std::string& strategy) {
  auto live = d.store().services().Get(d.service());
  if (live.ok()) return;
  if (live.status().code() == Code::kNotFound)
    throw std::runtime_error("service " + d.service() + " does not exist; deploy/" + strategy +
                             " compares a candidate with a live version: deploy one first (deploy/canary)");
  throw std::runtime_error("read service " + d.service() + ": " + live.status().message());
}

// Waits `duration`, checking cancel and a person's request; true when a
// person asked to promote. Progress says what it waits for.
bool Wait(Deployment& d, Millis duration, const std::string& what) {
  const auto start = Clock::now(), end = start + duration;
  auto next_progress = start;
  while (Clock::now() < end) {
    if (d.Tick()) return true;
    auto now = Clock::now();
    if (now >= next_progress && duration.count() > 0) {
      d.ctx().progress(std::min(1.0, std::chrono::duration<double>(now - start) / std::chrono::duration<double>(duration)),
                       what);
      next_progress = now + std::chrono::seconds(1);
    }
    std::this_thread::sleep_for(kTick);
  }
  return false;
}

// A reading of the gateway's /metrics, tried 3 times (the gateway polls its
// store every 20 ms; a refused connection in between is not a measurement).
Snapshot ScrapeOrThrow(Deployment& d) {
  std::string why;
  for (int i = 0; i < 3; ++i) {
    auto snap = d.Scrape();
    if (snap.ok()) return std::move(*snap);
    why = snap.status().message();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  throw std::runtime_error("could not read the gateway's /metrics 3 times: " + why);
}

// ---------------------------------------------------------------- deploy/shadow

struct ShadowThresholds {
  int64_t min_compared = 100;
  std::optional<double> min_agreement, max_error_rate, max_p99_ms;
};

ShadowThresholds ParseThresholds(const json& p) {
  ShadowThresholds t;
  if (!p.contains("thresholds")) return t;
  const json& j = p["thresholds"];
  if (!j.is_object()) throw std::runtime_error("thresholds: expected an object, got " + JsonText(j));
  static const std::vector<std::string> kKeys = {"min_compared", "min_agreement", "max_error_rate", "max_p99_ms"};
  for (const auto& [key, _] : j.items())
    if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end())
      throw std::runtime_error("thresholds." + key + ": unknown key" + DidYouMean(key, kKeys));
  auto number = [&](const char* key, double lo, double hi, const char* what) -> std::optional<double> {
    if (!j.contains(key)) return std::nullopt;
    if (!j[key].is_number() || j[key].get<double>() < lo || j[key].get<double>() > hi)
      throw std::runtime_error(std::string("thresholds.") + key + ": " + JsonText(j[key]) + " is not " + what);
    return j[key].get<double>();
  };
  if (j.contains("min_compared")) {
    if (!j["min_compared"].is_number_integer() || j["min_compared"].get<int64_t>() < 1)
      throw std::runtime_error("thresholds.min_compared: " + JsonText(j["min_compared"]) + " is not a whole number >= 1");
    t.min_compared = j["min_compared"].get<int64_t>();
  }
  t.min_agreement = number("min_agreement", 0, 1, "a share between 0 and 1");
  t.max_error_rate = number("max_error_rate", 0, 1, "a rate between 0 and 1");
  t.max_p99_ms = number("max_p99_ms", 0.001, 30'000, "a latency in (0, 30000] ms");
  return t;
}

struct Shadow : sluice::Step {
  void run(sluice::Context& ctx) override {
    const json& p = ctx.params();
    const int mirror_bp = PercentParam(p, "mirror", 10'000, false);
    if (!p.contains("duration")) throw std::runtime_error("duration: required (how long to mirror, such as 5m)");
    const Millis duration = DurationParam(ctx, "duration", Millis(0));
    const ShadowThresholds t = ParseThresholds(p);
    const bool promote = p.value("promote", false);
    const Millis ready_timeout = DurationParam(ctx, "ready_timeout", Millis(300'000));
    const Millis scale_down = DurationParam(ctx, "scale_down_delay", Millis(10'000));
    Deployment d(ctx, "shadow");
    RequireLiveService(d, "shadow");
    d.Drive([&] {
      Candidate c = d.ResolveCandidate();
      d.Begin(c);
      d.WaitReady(ready_timeout);
      // Step 1: mirroring (the candidate stays at 0% of the live traffic).
      d.Shift(1, 0, "shadow: " + c.version.name + " answers copies only");
      d.SetMirror(mirror_bp, "deploy/shadow: copies to " + d.candidate());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the gateway reads the store every 20 ms
      const Snapshot before = ScrapeOrThrow(d);
      const int64_t started_ms = Deployment::Now();
      const bool asked = Wait(d, duration, "shadow: " + serving::FormatPercent(mirror_bp) + "% copied to " + d.candidate());
      const Snapshot after = ScrapeOrThrow(d);
      const int64_t span_ms = Deployment::Now() - started_ms;
      d.SetMirror(0, "deploy/shadow: mirror off");
      const Snapshot grew = Increase(before, after);
      const Counts shadow = CountsOf(grew, {d.service(), d.candidate(), "mirror"});
      const Counts live = CountsOf(grew, {d.service(), d.stable(), "live"});
      const double agreement =
          shadow.mirror_compared > 0 ? static_cast<double>(shadow.mirror_agreed) / shadow.mirror_compared : 0;
      const double error_rate = shadow.requests > 0 ? static_cast<double>(shadow.errors) / shadow.requests : 0;
      const std::optional<double> shadow_p99 = LatencyQuantileMs(shadow, 0.99);
      const std::optional<double> live_p99 = LatencyQuantileMs(live, 0.99);

      // Every comparison stated; a failure lists the ones that failed.
      std::vector<std::string> held, failed;
      const std::string over = " over " + std::to_string(shadow.mirror_compared) + " compared copies";
      auto check = [&](bool ok, const std::string& text) { (ok ? held : failed).push_back(text); };
      check(shadow.mirror_compared >= t.min_compared,
            std::to_string(shadow.mirror_compared) + " compared copies " + (shadow.mirror_compared >= t.min_compared ? ">=" : "<") +
                " min_compared " + std::to_string(t.min_compared));
      if (t.min_agreement)
        check(shadow.mirror_compared > 0 && agreement >= *t.min_agreement,
              "agreement " + Num(agreement) + (agreement >= *t.min_agreement ? " >= " : " < ") + Num(*t.min_agreement) + over);
      if (t.max_error_rate)
        check(error_rate <= *t.max_error_rate, "error rate " + Num(error_rate) +
                                                   (error_rate <= *t.max_error_rate ? " <= " : " > ") +
                                                   Num(*t.max_error_rate) + " over " +
                                                   std::to_string(shadow.requests) + " copies answered");
      if (t.max_p99_ms) {
        const bool ok = shadow_p99 && *shadow_p99 <= *t.max_p99_ms;
        check(ok, "p99 " + (shadow_p99 ? MsText(shadow_p99) + " ms" : std::string("unknown (no copy answered)")) +
                      (ok ? " <= " : " > ") + Num(*t.max_p99_ms) + " ms (live " + MsText(live_p99) + " ms)");
      }
      const bool passed = failed.empty();

      json figures = {{"agreement", agreement},
                      {"compared", shadow.mirror_compared},
                      {"agreed", shadow.mirror_agreed},
                      {"dropped", shadow.mirror_dropped},
                      {"copies", shadow.requests},
                      {"shadow_errors", shadow.errors},
                      {"shadow_error_rate", error_rate},
                      {"shadow_p99_ms", MsJson(shadow_p99)},
                      {"live_requests", live.requests},
                      {"live_p99_ms", MsJson(live_p99)},
                      {"span_ms", span_ms},
                      {"passed", passed}};
      d.Note("analysis", std::string(passed ? "pass: " : "fail: ") + Join(passed ? held : failed, ", ") + "; " +
                             std::to_string(shadow.mirror_dropped) + " copies dropped",
             figures);
      ctx.output("agreement", Num(agreement));
      ctx.output("compared", std::to_string(shadow.mirror_compared));
      ctx.output("dropped", std::to_string(shadow.mirror_dropped));
      ctx.output("live_p99_ms", MsText(live_p99));
      ctx.output("shadow_p99_ms", MsText(shadow_p99));
      ctx.output("shadow_error_rate", Num(error_rate));
      ctx.output("passed", passed ? "true" : "false");

      if (asked) {
        d.Promote(scale_down, "promoted by a person during the shadow", figures);
      } else if (!passed) {
        d.RollBack(store::RolloutState::kRolledBack, Join(failed, ", "), Millis(0));
      } else if (promote) {
        d.Promote(scale_down, "the shadow passed: " + Join(held, ", "), figures);
      } else {
        d.End(store::RolloutState::kEnded, "the shadow passed (promote: false): " + Join(held, ", "), figures,
              Millis(0));
      }
    });
  }
};

// ---------------------------------------------------------------- deploy/ab-test

struct StickyKey {
  std::string header, field;
  std::string Text() const { return header.empty() ? "field " + field : "header " + header; }
};

std::optional<StickyKey> KeyParam(const json& p) {
  if (!p.contains("key")) return std::nullopt;
  const json& k = p["key"];
  StickyKey out;
  if (!k.is_object() || k.size() != 1 || !(k.contains("header") || k.contains("field")) ||
      !k.begin().value().is_string() || k.begin().value().get<std::string>().empty())
    throw std::runtime_error("key: expected {header: x-user-id} or {field: parameters.user_id}, got " + JsonText(k));
  (k.contains("header") ? out.header : out.field) = k.begin().value().get<std::string>();
  return out;
}

// Makes the service sticky by `key` if it is not sticky; refuses a service
// sticky by another key (its split would not be the experiment's).
void EnsureSticky(Deployment& d, const std::optional<StickyKey>& key) {
  auto live = d.store().services().Get(d.service());
  if (!live.ok()) throw std::runtime_error("read service " + d.service() + ": " + live.status().message());
  const bool sticky = !live->sticky_header.empty() || !live->sticky_field.empty();
  StickyKey now{live->sticky_header, live->sticky_field};
  if (sticky) {
    if (key && (key->header != now.header || key->field != now.field))
      throw std::runtime_error("key: service " + d.service() + " is sticky by " + now.Text() + ", not by " + key->Text() +
                               "; give key: " + (now.header.empty() ? "{field: " + now.field + "}" : "{header: " + now.header + "}"));
    return;
  }
  if (!key)
    throw std::runtime_error("key: service " + d.service() +
                             " is not sticky; say which request key splits the users: key: {header: x-user-id}");
  auto applied = d.store().services().Apply(WithSticky(*live, key->header, key->field), d.owner(),
                                            "deploy/ab-test: sticky by " + key->Text(), Deployment::Now());
  if (!applied.ok()) throw std::runtime_error("make service " + d.service() + " sticky: " + applied.status().message());
  d.Note("sticky", "service " + d.service() + " is now sticky by " + key->Text() + " (salt " + d.service() + ")");
}

struct Outcome {
  bool label = false;
  std::string success_label;
};

Outcome OutcomeParam(const json& p) {
  Outcome o;
  const std::string kind = p.value("outcome", std::string("reward"));
  if (kind == "label") {
    o.label = true;
    if (!p.contains("success_label") || !p["success_label"].is_string())
      throw std::runtime_error("success_label: required with outcome: label (the label that counts as a success)");
    o.success_label = p["success_label"].get<std::string>();
  } else if (kind != "reward") {
    throw std::runtime_error("outcome: expected reward or label, got " + Quote(kind));
  } else if (p.contains("success_label")) {
    throw std::runtime_error("success_label: only with outcome: label");
  }
  return o;
}

ArmCounts Arm(const std::string& name, double weight, const std::map<std::string, store::FeedbackSummary>& sums,
              const Outcome& o) {
  ArmCounts a;
  a.name = name;
  a.weight = weight;
  auto it = sums.find(name);
  if (it == sums.end()) return a;
  const store::FeedbackSummary& s = it->second;
  if (o.label) {
    a.samples = s.count - s.rewards;
    auto l = s.labels.find(o.success_label);
    a.successes = l == s.labels.end() ? 0 : l->second;
  } else {
    a.samples = s.rewards;
    a.successes = s.positive_rewards;
  }
  return a;
}

struct ABTest : sluice::Step {
  void run(sluice::Context& ctx) override {
    const json& p = ctx.params();
    const int split_bp = PercentParam(p, "split", 5'000, true);
    const std::optional<StickyKey> key = KeyParam(p);
    if (!p.contains("test")) throw std::runtime_error("test: required ({mde: 0.02} at least; specs/deploy.md)");
    auto config = ParseABConfig(p["test"]);
    if (!config.ok()) throw std::runtime_error(config.status().message());
    const Outcome outcome = OutcomeParam(p);
    if (!p.contains("max_duration"))
      throw std::runtime_error("max_duration: required (when to stop without a decision, such as 7d)");
    const Millis max_duration = DurationParam(ctx, "max_duration", Millis(0));
    const Millis interval = DurationParam(ctx, "interval", Millis(10'000));
    if (interval < Millis(100)) throw std::runtime_error("interval: at least 100ms");
    const std::optional<AnalysisSpec> guardrails = AnalysisParam(p, "guardrails", "");
    const bool promote = p.value("promote", true);
    const Millis ready_timeout = DurationParam(ctx, "ready_timeout", Millis(300'000));
    const Millis scale_down = DurationParam(ctx, "scale_down_delay", Millis(10'000));

    Deployment d(ctx, "ab-test");
    RequireLiveService(d, "ab-test");
    d.Drive([&] {
      Candidate c = d.ResolveCandidate();
      d.Begin(c);
      EnsureSticky(d, key);
      d.WaitReady(ready_timeout);
      const std::string a_name = d.stable(), b_name = d.candidate();
      const double weight_a = 10'000 - split_bp, weight_b = split_bp;
      int64_t start_ms = d.FirstEventAt("experiment");
      if (d.step_index() == 0 || start_ms == 0) {
        d.Shift(1, split_bp, "A/B split: " + b_name + " " + serving::FormatPercent(split_bp) + "%");
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the gateway reads the store every 20 ms
        start_ms = Deployment::Now();
        d.Note("experiment", "A " + a_name + " (control) against B " + b_name + ": feedback counted from now",
               json{{"start_ms", start_ms}, {"split_bp", split_bp}});
      }
      const Snapshot start = ScrapeOrThrow(d);
      Snapshot previous = start;
      std::optional<AnalysisTally> tally;
      if (guardrails) tally.emplace(*guardrails);
      SequentialState sequential;
      ABDecision last;
      ctx.output("samples_a", "0");
      ctx.output("samples_b", "0");

      auto outputs = [&](const ABDecision& dec, const std::string& decision) {
        json out = {{"winner", dec.winner},      {"effect", dec.effect},     {"ci_low", dec.ci_low},
                    {"ci_high", dec.ci_high},    {"p_value", dec.p_value},   {"samples_a", dec.samples.empty() ? 0 : dec.samples[0]},
                    {"samples_b", dec.samples.size() < 2 ? 0 : dec.samples[1]}, {"decision", decision}};
        for (const auto& [k, v] : out.items())
          ctx.output(k, v.is_string() ? v.get<std::string>() : v.is_number_float() ? Num(v.get<double>()) : JsonText(v));
        return out;
      };

      int scrape_errors = 0;
      while (true) {
        if (Wait(d, interval, "A/B test: " + b_name + " against " + a_name)) {
          d.Promote(scale_down, "promoted by a person during the A/B test", outputs(last, "promoted_by_person"));
          return;
        }
        auto snap = d.Scrape();
        if (!snap.ok()) {
          if (++scrape_errors >= 3)
            d.RollBack(store::RolloutState::kRolledBack,
                       "the analysis could not read the gateway 3 times: " + snap.status().message(), d.abort_delay());
          d.Note("analysis", "no measurement: " + snap.status().message());
          continue;
        }
        scrape_errors = 0;
        // Guardrails: B's own live traffic in this interval.
        if (tally) {
          Measurement m = tally->Add(CountsOf(Increase(previous, *snap), {d.service(), b_name, "live"}));
          d.Note("guardrail", std::string(VerdictName(m.verdict)) + ": " + m.reason,
                 json{{"verdict", VerdictName(m.verdict)}, {"requests", m.requests}, {"error_rate", m.error_rate}});
          if (tally->next() == AnalysisTally::Next::kFail)
            d.RollBack(store::RolloutState::kRolledBack,
                       "guardrail: " + std::string(m.verdict == Verdict::kInconclusive ? "inconclusive: " : "") + m.reason,
                       d.abort_delay());
        }
        // Exposures since the start: requests each variant answered live.
        const Snapshot since = Increase(start, *snap);
        previous = std::move(*snap);
        const int64_t exposed_a = CountsOf(since, {d.service(), a_name, "live"}).requests;
        const int64_t exposed_b = CountsOf(since, {d.service(), b_name, "live"}).requests;
        const SampleRatio srm = SampleRatioMismatch({exposed_a, exposed_b}, {weight_a, weight_b});

        auto sums = d.store().feedback().Summary(d.service(), start_ms, Deployment::Now() + 1);
        if (!sums.ok()) throw std::runtime_error("read the feedback of service " + d.service() + ": " + sums.status().message());
        const std::vector<ArmCounts> arms = {Arm(a_name, weight_a, *sums, outcome), Arm(b_name, weight_b, *sums, outcome)};
        ABDecision dec = DecideAB(*config, arms, &sequential);
        if (srm.mismatch) {
          dec.state = ABDecision::State::kInvalid;
          dec.srm = srm;
          char buf[64];
          std::snprintf(buf, sizeof buf, "%.2f, p %.3g", srm.chi_square, srm.p_value);
          dec.reason = std::string("sample ratio mismatch: chi-square ") + buf + " < " + Num(kSrmAlpha) + " (exposures " +
                       a_name + " " + std::to_string(exposed_a) + ", " + b_name + " " + std::to_string(exposed_b) +
                       "; expected split " + serving::FormatPercent(split_bp) + "% to " + b_name + ")";
        }
        last = dec;
        json data = {{"state", ABStateName(dec.state)},
                     {"needed_per_arm", dec.needed_per_arm},
                     {"have", {{a_name, arms[0].samples}, {b_name, arms[1].samples}}},
                     {"successes", {{a_name, arms[0].successes}, {b_name, arms[1].successes}}},
                     {"exposures", {{a_name, exposed_a}, {b_name, exposed_b}}},
                     {"srm", {{"chi_square", dec.srm.chi_square}, {"p_value", dec.srm.p_value}}},
                     {"effect", dec.effect},
                     {"ci_low", dec.ci_low},
                     {"ci_high", dec.ci_high},
                     {"p_value", dec.p_value},
                     {"winner", dec.winner}};
        d.Note("analysis", std::string(ABStateName(dec.state)) + ": " + dec.reason, data);

        switch (dec.state) {
          case ABDecision::State::kInvalid:
            outputs(dec, "invalid");
            d.RollBack(store::RolloutState::kRolledBack, dec.reason, d.abort_delay());
          case ABDecision::State::kWinner:
            if (dec.winner == b_name && promote) {
              d.Promote(scale_down, dec.reason, outputs(dec, "winner"));
            } else {
              d.End(store::RolloutState::kEnded,
                    dec.reason + (dec.winner == b_name ? " (promote: false: " + a_name + " stays)" : ""),
                    outputs(dec, "winner"), d.abort_delay());
            }
            return;
          case ABDecision::State::kNoDifference:
            d.End(store::RolloutState::kEnded, dec.reason + "; " + a_name + " stays", outputs(dec, "no_difference"),
                  d.abort_delay());
            return;
          case ABDecision::State::kWaiting:
            break;
        }
        if (Deployment::Now() - start_ms >= max_duration.count()) {
          d.End(store::RolloutState::kEnded,
                "no decision within max_duration " + FormatDuration(max_duration) + " (" + dec.reason + "); " + a_name +
                    " stays",
                outputs(dec, "undecided"), d.abort_delay());
          return;
        }
      }
    });
  }
};

const std::string& ShadowSchema() {
  static const std::string schema =
      R"json({"type": "object", "additionalProperties": false, "required": ["service", "duration"], "properties": {)json" +
      kVersionProperties + R"json(,
  "mirror": {"type": "number", "exclusiveMinimum": 0, "maximum": 100, "default": 100, "description": "percent of the live requests copied to the candidate"},
  "duration": {"type": "string", "description": "how long to mirror (5m)"},
  "thresholds": {"type": "object", "additionalProperties": false, "properties": {
     "min_compared": {"type": "integer", "minimum": 1, "default": 100},
     "min_agreement": {"type": "number", "minimum": 0, "maximum": 1},
     "max_error_rate": {"type": "number", "minimum": 0, "maximum": 1},
     "max_p99_ms": {"type": "number", "exclusiveMinimum": 0, "maximum": 30000}}},
  "promote": {"type": "boolean", "default": false, "description": "promote the candidate when the thresholds hold"},
  "scale_down_delay": {"type": "string", "default": "10s", "description": "how long the old version runs at 0% after a promotion"}}})json";
  return schema;
}

const std::string& ABTestSchema() {
  static const std::string schema =
      R"json({"type": "object", "additionalProperties": false, "required": ["service", "test", "max_duration"], "properties": {)json" +
      kVersionProperties + R"json(,
  "split": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 100, "default": 50, "description": "percent of the keys routed to B"},
  "key": {"type": "object", "description": "the sticky key: {header: x-user-id} or {field: parameters.user_id}"},
  "test": {"type": "object", "description": "{alpha, power, mde, baseline, test: fixed|sequential, tau2, max_per_arm}"},
  "outcome": {"type": "string", "enum": ["reward", "label"], "default": "reward"},
  "success_label": {"type": "string", "description": "with outcome: label, the label that counts as a success"},
  "interval": {"type": "string", "default": "10s", "description": "how often the feedback is read and the test evaluated"},
  "max_duration": {"type": "string", "description": "when to stop without a decision (A stays)"},
  "guardrails": {"type": "object", "description": "an analysis judged every interval on B's live traffic; a failure rolls back"},
  "promote": {"type": "boolean", "default": true, "description": "promote B when it wins"},
  "scale_down_delay": {"type": "string", "default": "10s"}}})json";
  return schema;
}

const char* kShadowOutputs =
    R"json({"version": "value", "previous": "value", "rollout": "value", "rolled_back": "value", "agreement": "value", "compared": "value", "dropped": "value", "live_p99_ms": "value", "shadow_p99_ms": "value", "shadow_error_rate": "value", "passed": "value"})json";
const char* kABOutputs =
    R"json({"version": "value", "previous": "value", "rollout": "value", "rolled_back": "value", "winner": "value", "effect": "value", "ci_low": "value", "ci_high": "value", "p_value": "value", "samples_a": "value", "samples_b": "value", "decision": "value"})json";

}  // namespace

sluice_step_type ShadowStepType() {
  return sluice::StepType<Shadow>(
      "shadow", 1,
      "Mirrors live requests to a candidate and compares its answers, errors and latency with the live version's",
      ShadowSchema(), kShadowOutputs);
}

sluice_step_type ABTestStepType() {
  return sluice::StepType<ABTest>(
      "ab-test", 1, "Splits users by a sticky key between the live version and a variant and decides on their feedback",
      ABTestSchema(), kABOutputs);
}

}  // namespace sluice::deploy
