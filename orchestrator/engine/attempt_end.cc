#include "engine/attempt_end.h"

#include <cstdint>
#include <cstring>
#include <utility>

#include "engine/fingerprint.h"
#include "engine/outputs.h"
#include "util/duration.h"
#include "util/json.h"

namespace sluice::engine {

using spec::Value;

std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

std::string SpecDuration(Millis d) {
  static constexpr std::pair<int64_t, const char*> kUnits[] = {
      {86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
  std::string text;
  int64_t left = d.count();
  for (auto [ms, unit] : kUnits)
    if (left >= ms) {
      text += std::to_string(left / ms) + unit;
      left %= ms;
    }
  return text;
}

std::string RunTimeoutReason(Millis timeout) { return "the run's timeout of " + SpecDuration(timeout) + " passed"; }

AttemptVerdict JudgeExit(const spec::Step& s, const AttemptExit& exit, const StopCause& stop,
                         const std::string& output_path, Env& env) {
  AttemptVerdict v;
  std::string killed = !stop.killed ? ""
                       : !exit.reason.empty()                                      ? " (" + exit.reason + ")"
                       : stop.kind == StopCause::Kind::kCancel && stop.hard_cancel ? " (SIGKILL at once)"
                                                                                    : " (SIGKILL after the grace period)";
  if (stop.kind == StopCause::Kind::kCancel) {
    v.state = StepState::kCancelled;
    v.reason = "cancelled" + killed;
  } else if (stop.kind == StopCause::Kind::kTimeout) {
    v.reason = "timed out after " + FormatDuration(*s.timeout) + killed;
  } else if (stop.kind == StopCause::Kind::kRunTimeout) {
    v.reason = RunTimeoutReason(stop.run_timeout) + killed;
  } else if (exit.signal) {
    v.reason = (s.uses.empty() ? "killed by signal " : "plugin host killed by signal ") + std::to_string(exit.signal) +
               " (" + SignalName(exit.signal) + ")";
  } else if (exit.cancelled) {
    v.reason = "the step stopped as cancelled, but nothing cancelled it";
  } else if (exit.exit_code != 0) {
    v.reason = exit.reason.empty() ? "exit code " + std::to_string(exit.exit_code) : exit.reason;
  } else if (exit.outputs) {
    if (Status sizes = CheckOutputs(*exit.outputs); !sizes.ok()) {
      v.reason = sizes.message();
    } else {
      v.state = StepState::kSucceeded;
      v.outputs = *exit.outputs;
    }
  } else {
    auto outputs = ReadOutputs(output_path, env);
    if (!outputs.ok()) {
      v.reason = outputs.status().message();
    } else {
      v.state = StepState::kSucceeded;
      v.outputs = std::move(*outputs);
    }
  }
  return v;
}

void MaskSecrets(const SecretMask& mask, Outputs* outputs, const std::string& output_path, Env& env) {
  if (mask.empty()) return;
  for (auto& [k, v] : *outputs)
    if (v.is_string()) v = Value::Str(mask.Mask(v.as_string()));
  int64_t size = 0;
  auto text = env.ReadFile(output_path, SIZE_MAX, &size);
  if (!text.ok()) return;
  std::string masked = mask.Mask(*text);
  if (masked != *text) (void)env.WriteFile(output_path, masked);
}

Status PublishOutputs(const spec::Step& s, const AttemptRecord& attempt, const std::string& files_dir,
                      const OutputSink& sink, Outputs* outputs, std::vector<Metric>* metrics, std::string* failure) {
  std::vector<LineageEdge> produced;
  for (const auto& [name, kind] : s.outputs) {
    if (kind == "value") {
      if (!outputs->count(name)) {
        *failure = "declared output '" + name + "' was not set (a value: write " + name + "=... to $SLUICE_OUTPUT)";
        return Status::Ok();
      }
      continue;
    }
    std::string path = files_dir + "/" + name;
    FileSystem::Kind type = sink.env->LinkStat(path);
    if (type == FileSystem::Kind::kMissing) {
      *failure = "declared output '" + name + "' was not written (expected " + path + ")";
      return Status::Ok();
    }
    if (type != FileSystem::Kind::kFile && type != FileSystem::Kind::kDir) {
      *failure = "declared output '" + name + "' is not a regular file or folder (a symbolic link, FIFO or device: " +
                 path + "); only regular files and folders are published";
      return Status::Ok();
    }
    if (kind == "metrics") {
      int64_t size = 0;
      auto text = sink.env->ReadFile(path, SIZE_MAX, &size);
      auto j = nlohmann::json::parse(text.ok() ? *text : std::string(), nullptr, false);
      if (!j.is_object()) {
        *failure = "output '" + name + "' of kind metrics is not a JSON object: " + path;
        return Status::Ok();
      }
      for (auto& [k, v] : j.items())
        if (v.is_number()) metrics->push_back({k, v.get<double>(), 0});
    }
    if (!sink.artifacts) return Status::Internal("no artifact store to publish output '" + name + "'");
    auto a = sink.artifacts->Publish(path, kind);
    if (!a.ok()) {
      *failure = "publish output '" + name + "': " + a.status().message();
      return Status::Ok();
    }
    (*outputs)[name] = Value::Str(a->uri);
    produced.push_back({LineageEdge::Role::kProduced, name, *a});
  }
  Status st = sink.store->SaveLineage(attempt, produced);
  if (!st.ok()) return st;
  return RegisterModels(s, produced, sink.run_id, s.id, attempt.id, *sink.store, *sink.clock, outputs);
}

Status RegisterModels(const spec::Step& s, const std::vector<LineageEdge>& produced, int64_t run_id,
                      const std::string& step_id, int64_t attempt_id, RunStore& store, Clock& clock, Outputs* outputs) {
  if (!s.registration) return Status::Ok();
  const spec::ModelRegistration& r = *s.registration;
  for (const LineageEdge& e : produced) {
    if (e.name != r.output) continue;
    auto version = store.RegisterModel(r.name, e.artifact.hash, run_id, step_id, attempt_id, clock.WallMs());
    if (!version.ok()) return version.status();
    (*outputs)["registered"] = Value::Str(r.name + "@" + std::to_string(*version));
  }
  return Status::Ok();
}

std::string WhyNotReuse(const spec::Step& s, const CachedResult& hit, int64_t now_ms,
                        const ArtifactPublisher* artifacts) {
  // Reused up to max_age after the attempt that computed it ended.
  Millis age(now_ms - hit.finished_ms);
  if (s.cache_max_age && age > *s.cache_max_age)
    return "cache entry of run " + std::to_string(hit.run_id) + " is " + FormatAge(age) + " old, older than max_age " +
           FormatAge(*s.cache_max_age) + "; running the step";
  std::string damaged;
  for (const LineageEdge& p : hit.produced)
    if (!artifacts || !artifacts->Verify(p.artifact)) damaged = p.artifact.hash;
  if (damaged.empty()) return "";
  return "cache entry of run " + std::to_string(hit.run_id) + " is damaged (artifact " + damaged +
         " is missing or changed); running the step";
}

}  // namespace sluice::engine
