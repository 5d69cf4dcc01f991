#include "deploy/step_types.h"

#include <httplib.h>

#include <stdexcept>

#include <sluice/plugin.hpp>

#include "deploy/analysis.h"
#include "deploy/experiments.h"
#include "deploy/rollout.h"
#include "serving/service_spec.h"
#include "util/duration.h"
#include "util/json.h"
#include "util/strings.h"

namespace sluice::deploy {
namespace {

using nlohmann::json;

}  // namespace

Millis DurationParam(sluice::Context& ctx, const std::string& key, Millis fallback) {
  if (!ctx.params().contains(key)) return fallback;
  std::string text = ctx.params()[key].is_string() ? ctx.param<std::string>(key) : JsonText(ctx.params()[key]);
  std::optional<Millis> d = ParseDuration(text);
  if (!d || d->count() < 0) throw std::runtime_error(key + ": " + Quote(text) + " is not a duration (use 500ms, 30s, 5m)");
  return *d;
}

std::optional<AnalysisSpec> AnalysisParam(const json& parent, const std::string& key, const std::string& where) {
  if (!parent.contains(key)) return std::nullopt;
  auto a = ParseAnalysisSpec(parent[key]);
  if (!a.ok()) {
    std::string message = a.status().message();
    // ParseAnalysisSpec names its keys "analysis.x"; the step's key may differ.
    if (key != "analysis" && message.rfind("analysis", 0) == 0) message = key + message.substr(8);
    throw std::runtime_error((where.empty() ? "" : where + ".") + message);
  }
  return *a;
}

namespace {

// One step of a canary: the candidate's weight, then how long to hold it.
struct CanaryStep {
  int weight_bp = 0;
  std::optional<Millis> pause;  // none: until a person promotes (the last step: none needed)
  bool has_pause = false;
};

std::vector<CanaryStep> ParseCanarySteps(const json& steps) {
  if (!steps.is_array() || steps.empty()) throw std::runtime_error("steps: a list of {weight, pause} is required");
  std::vector<CanaryStep> out;
  int previous = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    const json& s = steps[i];
    std::string where = "steps[" + std::to_string(i) + "]";
    if (!s.is_object() || !s.contains("weight") || !s["weight"].is_number())
      throw std::runtime_error(where + ": needs a weight, a percent like 10 or 12.5");
    for (const auto& [key, _] : s.items())
      if (key != "weight" && key != "pause") throw std::runtime_error(where + "." + key + ": unknown key (weight, pause)");
    std::optional<int> bp = serving::ParseBasisPoints(JsonText(s["weight"]));
    if (!bp || *bp <= 0 || *bp > 10'000)
      throw std::runtime_error(where + ".weight: " + JsonText(s["weight"]) + " is not a percent in (0, 100]");
    if (*bp < previous)
      throw std::runtime_error(where + ".weight: " + serving::FormatPercent(*bp) + " is below the step before (" +
                               serving::FormatPercent(previous) + "); weights only grow");
    previous = *bp;
    CanaryStep step;
    step.weight_bp = *bp;
    if (s.contains("pause")) {
      step.has_pause = true;
      std::string text = s["pause"].is_string() ? s["pause"].get<std::string>() : JsonText(s["pause"]);
      std::optional<Millis> d = ParseDuration(text);
      if (!d || d->count() < 0) throw std::runtime_error(where + ".pause: " + Quote(text) + " is not a duration (30s, 5m)");
      step.pause = *d;
    }
    out.push_back(step);
  }
  return out;
}

// ---------------------------------------------------------------- deploy/canary

struct Canary : sluice::Step {
  void run(sluice::Context& ctx) override {
    std::vector<CanaryStep> steps = ParseCanarySteps(ctx.params().value("steps", json()));
    std::optional<AnalysisSpec> analysis = AnalysisParam(ctx.params(), "analysis", "");
    Millis ready_timeout = DurationParam(ctx, "ready_timeout", Millis(300'000));
    Millis scale_down = DurationParam(ctx, "scale_down_delay", Millis(10'000));
    Deployment d(ctx, "canary");
    d.Drive([&] { Run(d, steps, analysis, ready_timeout, scale_down); });
  }

  static void Run(Deployment& d, const std::vector<CanaryStep>& steps, const std::optional<AnalysisSpec>& analysis,
                  Millis ready_timeout, Millis scale_down) {
    Candidate c = d.ResolveCandidate();
    d.Begin(c);
    d.WaitReady(ready_timeout);
    if (d.stable().empty()) {
      d.Promote(Millis(0), "a new service: nothing to compare with");
      return;
    }
    for (size_t i = static_cast<size_t>(d.step_index()); i < steps.size(); ++i) {
      const CanaryStep& s = steps[i];
      d.Shift(static_cast<int>(i), s.weight_bp, "step " + std::to_string(i + 1) + " of " + std::to_string(steps.size()));
      if (s.weight_bp == 10'000) break;
      bool last = i + 1 == steps.size();
      if (!s.has_pause && last) break;
      if (d.Pause(static_cast<int>(i), s.pause, analysis ? &*analysis : nullptr) ==
          Deployment::PauseEnd::kPromoteRequested) {
        d.Promote(scale_down, "promoted by " + d.promoted_by() + " at step " + std::to_string(i + 1));
        return;
      }
    }
    d.Promote(scale_down, "every step passed");
  }
};

// ---------------------------------------------------------------- deploy/blue-green

// Sends `count` copies of `body` to the candidate on its preview route (the
// x-sluice-version header pins a request to a version); each must answer 200.
std::string SmokeCheck(Deployment& d, const json& smoke) {
  auto row = d.store().gateway().Read();
  if (!row.ok() || !*row) return "no gateway to send the smoke check to";
  int count = smoke.value("count", 5);
  std::string body = JsonText(smoke.value("request", json::object()));
  httplib::Client client((*row)->listen, (*row)->port);
  client.set_read_timeout(30, 0);
  httplib::Headers headers = {{"x-sluice-version", d.candidate()}};
  for (int i = 0; i < count; ++i) {
    auto r = client.Post("/v2/models/" + d.service() + "/infer", headers, body, "application/json");
    if (!r) return "smoke request " + std::to_string(i + 1) + ": " + httplib::to_string(r.error());
    if (r->status != 200)
      return "smoke request " + std::to_string(i + 1) + " answered " + std::to_string(r->status) + ": " +
             r->body.substr(0, 200);
    d.Tick();
  }
  d.Note("smoke", std::to_string(count) + " requests to " + d.candidate() + " on its preview route answered 200");
  return "";
}

struct BlueGreen : sluice::Step {
  void run(sluice::Context& ctx) override {
    const json& p = ctx.params();
    Millis ready_timeout = DurationParam(ctx, "ready_timeout", Millis(300'000));
    Millis rollback_window = DurationParam(ctx, "rollback_window", Millis(0));
    json preview = p.value("preview", json::object());
    json post = p.value("post_promotion", json::object());
    std::optional<AnalysisSpec> preview_analysis = AnalysisParam(preview, "analysis", "preview");
    std::optional<AnalysisSpec> post_analysis = AnalysisParam(post, "analysis", "post_promotion");
    auto duration_of = [](const json& section, const std::string& where) -> std::optional<Millis> {
      if (!section.contains("duration")) return std::nullopt;
      std::string text = section["duration"].is_string() ? section["duration"].get<std::string>() : "";
      std::optional<Millis> d = ParseDuration(text);
      if (!d || d->count() < 0) throw std::runtime_error(where + ".duration: " + Quote(text) + " is not a duration");
      return d;
    };
    std::optional<Millis> preview_for = duration_of(preview, "preview");
    std::optional<Millis> post_for = duration_of(post, "post_promotion");
    if (preview_analysis && !preview_for) throw std::runtime_error("preview.duration: required with preview.analysis");
    if (post_analysis && !post_for) throw std::runtime_error("post_promotion.duration: required with post_promotion.analysis");

    Deployment d(ctx, "blue-green");
    d.Drive([&] {
    Candidate c = d.ResolveCandidate();
    d.Begin(c);
    d.WaitReady(ready_timeout);
    if (d.stable().empty()) {
      d.Promote(Millis(0), "a new service: nothing to switch from");
      return;
    }
    // Step 0: preview (the candidate at 0%, reachable by header); step 1: switched, watched.
    if (d.step_index() == 0) {
      if (p.contains("smoke")) {
        std::string failed = SmokeCheck(d, p["smoke"]);
        if (!failed.empty()) d.RollBack(store::RolloutState::kRolledBack, "smoke check: " + failed, Millis(0));
      }
      if (preview_for) {
        d.Note("preview", "analysing " + d.candidate() + "'s preview traffic for " + FormatDuration(*preview_for));
        if (d.Pause(0, preview_for, preview_analysis ? &*preview_analysis : nullptr, "pinned") ==
            Deployment::PauseEnd::kPromoteRequested) {
          d.Promote(rollback_window, "promoted by " + d.promoted_by() + " during the preview");
          return;
        }
      }
    }
    d.Shift(1, 10'000, "switch: all traffic to " + d.candidate());
    if (post_for) {
      d.Note("post-promotion", "watching " + d.candidate() + " for " + FormatDuration(*post_for));
      (void)d.Pause(1, post_for, post_analysis ? &*post_analysis : nullptr);
    }
    d.Promote(rollback_window, "switched");
    });
  }
};

// ---------------------------------------------------------------- deploy/rollback

struct Rollback : sluice::Step {
  void run(sluice::Context& ctx) override {
    Millis ready_timeout = DurationParam(ctx, "ready_timeout", Millis(300'000));
    Deployment d(ctx, "rollback");
    auto rollouts = d.store().rollouts().OfService(d.service(), 200);
    if (!rollouts.ok()) throw std::runtime_error(rollouts.status().message());
    json previous;
    int64_t from = 0;
    for (const store::RolloutRecord& r : *rollouts) {
      if (r.state != store::RolloutState::kPromoted) continue;
      json out = json::parse(r.outputs.empty() ? "{}" : r.outputs, nullptr, false);
      if (out.is_object() && out.contains("previous")) {
        previous = out["previous"];
        from = r.id;
      }
      break;  // only the newest promotion counts: roll back what it did
    }
    if (previous.is_null())
      throw std::runtime_error("service " + d.service() +
                               " has no promotion to roll back (no promoted rollout that replaced a version)");
    auto c = CandidateFromJson(previous);
    if (!c.ok()) throw std::runtime_error("rollout " + std::to_string(from) + ": " + c.status().message());
    d.Drive([&] {
      d.Begin(*c);
      d.WaitReady(ready_timeout);
      d.Promote(Millis(0), "rolled back what rollout " + std::to_string(from) + " promoted");
    });
  }
};

}  // namespace

// What every strategy that brings a version takes.
const std::string kVersionProperties = R"json(
  "service": {"type": "string", "minLength": 1, "description": "the service (created if it does not exist)"},
  "model": {"type": "string", "description": "what to deploy: a registered model NAME@VERSION, NAME@ALIAS, or a TorchScript file"},
  "replicas": {"type": "integer", "minimum": 0, "maximum": 16},
  "version": {"type": "object", "description": "the candidate as a service.yaml version, with an optional name"},
  "ready_timeout": {"type": "string", "default": "5m", "description": "how long the candidate may take to be ready"},
  "abort_delay": {"type": "string", "default": "5s", "description": "how long a rolled-back candidate keeps running at 0%"})json";

namespace {

const std::string kAnalysis =
    R"json({"type": "object", "description": "judged every interval on the version's own traffic (specs/deploy.md)"})json";

const std::string kCanarySchema =
    R"json({"type": "object", "additionalProperties": false, "required": ["service", "steps"], "properties": {)json" +
    kVersionProperties + R"json(,
  "steps": {"type": "array", "minItems": 1, "maxItems": 50,
            "items": {"type": "object", "additionalProperties": false, "required": ["weight"], "properties": {
              "weight": {"type": "number", "minimum": 0.01, "maximum": 100, "description": "percent of live traffic"},
              "pause": {"type": "string", "description": "how long to hold it: 30s, 5m; none: until promoted"}}},
            "description": "[{weight: 10, pause: 30s}, {weight: 50, pause: 1m}, {weight: 100}]"},
  "analysis": )json" + kAnalysis + R"json(,
  "scale_down_delay": {"type": "string", "default": "10s", "description": "how long the old version runs at 0% after the promotion"}}})json";

const std::string kBlueGreenSchema =
    R"json({"type": "object", "additionalProperties": false, "required": ["service"], "properties": {)json" +
    kVersionProperties + R"json(,
  "smoke": {"type": "object", "additionalProperties": false, "properties": {
     "request": {"type": "object", "description": "an OIP v2 infer request sent to the candidate's preview route"},
     "count": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 5}}},
  "preview": {"type": "object", "additionalProperties": false, "properties": {
     "duration": {"type": "string"}, "analysis": )json" + kAnalysis + R"json(}},
  "post_promotion": {"type": "object", "additionalProperties": false, "properties": {
     "duration": {"type": "string"}, "analysis": )json" + kAnalysis + R"json(}},
  "rollback_window": {"type": "string", "default": "0s", "description": "how long the old version runs at 0% after the switch"}}})json";

const std::string kRollbackSchema = R"json({"type": "object", "additionalProperties": false, "required": ["service"], "properties": {
  "service": {"type": "string", "minLength": 1},
  "ready_timeout": {"type": "string", "default": "5m"},
  "abort_delay": {"type": "string", "default": "5s"}}})json";

const std::string kOutputs = R"json({"version": "value", "previous": "value", "rollout": "value", "rolled_back": "value"})json";

}  // namespace

const sluice_plugin* DeployPlugin() {
  static const sluice_step_type types[] = {
      sluice::StepType<Canary>(
          "canary", 1, "Shifts traffic to a new version in weight steps with pauses and analysis; rolls back on a failed analysis",
          kCanarySchema, kOutputs),
      sluice::StepType<BlueGreen>(
          "blue-green", 1, "Starts a new version beside the live one, checks it on its preview route, switches all traffic at once",
          kBlueGreenSchema, kOutputs),
      sluice::StepType<Rollback>("rollback", 1, "Routes everything back to the version the last promotion replaced",
                                 kRollbackSchema, kOutputs),
      ShadowStepType(),
      ABTestStepType(),
  };
  static const sluice_plugin plugin = {sizeof(sluice_plugin),
                                       SLUICE_PLUGIN_ABI_MAJOR,
                                       {"deploy", 6},
                                       {SLUICE_VERSION, sizeof(SLUICE_VERSION) - 1},
                                       sizeof(types) / sizeof(types[0]),
                                       types};
  return &plugin;
}

}  // namespace sluice::deploy
