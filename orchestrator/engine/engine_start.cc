// The engine's starts (engine.h): a ready unit's attempt rendered,
// fingerprinted and looked up in the cache, recorded, then launched;
// an attempt adopted after a resume; a failure before the start.
#include <algorithm>
#include <map>
#include <string_view>

#include "engine/attempt_end.h"
#include "engine/attempt_render.h"
#include "engine/engine.h"
#include "engine/engine_unit.h"
#include "engine/fingerprint.h"
#include "util/secrets.h"

namespace sluice::engine {

// Records an attempt for every ready unit there are slots for, commits them
// together, then starts them: one commit however many steps start at once.
Status Engine::StartReady() {
  std::vector<std::pair<size_t, AttemptRequest>> launching;
  int slots = free_slots_;
  // `u` has its slots and its pool's lease: its attempt is rendered.
  auto prepare = [&](size_t u) -> Status {
    std::optional<AttemptRequest> req;
    Status s = PrepareUnit(u, &req);
    if (!s.ok()) return s;
    if (!req) return ReleasePool(u);  // it ended before it started (cached, failed)
    slots -= units_[u].slots;
    launching.emplace_back(u, std::move(*req));
    return Status::Ok();
  };
  // Units waiting for a pool first, each when there are slots for it. A
  // pool found full is not asked again this turn for as many slots or more:
  // one store transaction per pool and poll, however many units wait.
  if (!pool_waiting_.empty() && !hard_cancel_ && clock_->Now() >= next_pool_try_) {
    next_pool_try_ = clock_->Now() + options_.cancel_poll;
    std::map<std::string_view, int> full;  // pool -> the fewest slots it could not give
    for (size_t i = 0; i < pool_waiting_.size();) {
      size_t u = pool_waiting_[i];
      const spec::Step& s = plan_.pipeline->steps[graph_.node_of(u)];
      auto known = full.find(s.pool);
      if (units_[u].slots > slots || (known != full.end() && s.pool_slots >= known->second)) {
        ++i;
        continue;
      }
      auto turn = TakePool(u);
      if (!turn.ok()) return turn.status();
      if (*turn == PoolTurn::kWait) {
        full[s.pool] = known == full.end() ? s.pool_slots : std::min(known->second, s.pool_slots);
        ++i;
        continue;
      }
      pool_waiting_.erase(pool_waiting_.begin() + static_cast<std::ptrdiff_t>(i));
      if (*turn == PoolTurn::kGo) {
        Status s = prepare(u);
        if (!s.ok()) return s;
      }
    }
  }
  while (!graph_.ready().empty() && !hard_cancel_) {
    size_t u = graph_.ready().front();
    if (units_[u].slots > slots) break;
    graph_.PopReady();
    auto turn = TakePool(u);
    if (!turn.ok()) return turn.status();
    if (*turn == PoolTurn::kWait) pool_waiting_.push_back(u);
    if (*turn != PoolTurn::kGo) continue;
    Status s = prepare(u);
    if (!s.ok()) return s;
    if (TimerDue()) break;
  }
  if (launching.empty()) return Status::Ok();
  Status s = store_->Flush();  // the attempts are on record before their processes exist
  if (!s.ok()) return s;
  ends_uncommitted_ = 0;
  std::vector<const AttemptRequest*> requests;
  for (auto& [u, req] : launching) requests.push_back(&req);
  std::vector<Result<Started>> started = executor_->StartAll(requests);
  for (size_t i = 0; i < launching.size() && s.ok(); ++i)
    s = LaunchUnit(launching[i].first, std::move(started[i]));
  return s;
}

Status Engine::PrepareUnit(size_t u, std::optional<AttemptRequest>* out) {
  Unit& unit = units_[u];
  StepRecord& rec = graph_.unit_record(u);
  const spec::Step& s = plan_.pipeline->steps[graph_.node_of(u)];
  std::vector<LineageEdge> inputs;
  StepContext ctx(scope_, graph_.node_of(u), &rec, &inputs);

  if (s.service) {
    bool failed = false;
    Status st = PickServicePort(u, &failed);
    if (!st.ok() || failed) return st;
  }
  auto rendered = RenderStep(s, ctx, options_.workdir, executor_);
  if (!rendered.ok()) return FailBeforeStart(u, rendered.status().message(), /*retryable=*/false);
  int number = rec.attempts + 1;
  AttemptPaths paths;
  AttemptRequest req = renderer_.Request(s, rec, number, *rendered, &paths);
  unit.live().output_path = paths.output;
  unit.live().files_dir = paths.files_dir;
  // One that cannot start (its command not found, its workdir missing) fails
  // here, in the batch, instead of after a commit of its own, and its attempt
  // is written once, ended. One that could not be a cache hit is checked
  // first, with the PATH it would run with: its fingerprint and environment
  // would be of no use to it.
  bool reusable = s.cache && options_.use_cache;
  if (!reusable) {
    if (auto path = renderer_.PathEntry(*rendered)) req.env = {std::move(*path)};
    Status startable = executor_->CheckStart(req);
    if (!startable.ok()) {
      NewAttempt(u);
      unit.live().record.log_path = req.log_path;
      return StartFailed(u, startable.message(), clock_->WallMs());
    }
  }

  // What identifies this attempt's work: its fingerprint is the cache key.
  IdentityParts parts;
  parts.step = &s;
  parts.rendered = &*rendered;
  if (req.plugin) parts.code_identity = executor_->CodeIdentity(req);
  parts.pipeline_env = &renderer_.pipeline_env();
  parts.inputs = inputs;
  parts.spec_dir = options_.workdir;
  auto fp = ComputeFingerprint(parts, *files_);
  if (!fp.ok()) return FailBeforeStart(u, fp.status().message(), /*retryable=*/false);
  const std::string& fingerprint = fp->sha256;
  const std::string& identity_text = fp->identity;
  if (s.cache && options_.use_cache) {
    auto hit = store_->FindCached(fingerprint);
    if (!hit.ok()) return hit.status();
    if (*hit) {
      Event w{Event::Kind::kWarning, s.id, rec.item};
      w.message = WhyNotReuse(s, **hit, clock_->WallMs(), options_.artifacts);
      if (w.message.empty()) return ReuseCached(u, **hit, fingerprint, identity_text, inputs);
      Emit(w);
    }
  }
  if (!s.outputs.empty()) {
    Status made = env_->CreateDirs(unit.live().files_dir);
    if (!made.ok()) return FailBeforeStart(u, made.message(), /*retryable=*/true);
  }
  Status env = renderer_.SetEnv(s, rec, number, *rendered, paths, !s.outputs.empty(), &req);
  if (!env.ok()) return FailBeforeStart(u, env.message(), /*retryable=*/false);
  unit.live().secrets = SecretMask(req.secrets);
  if (s.service) {
    req.env.push_back("SLUICE_SERVICE_PORT=" + rec.port.Render());
    if (!s.service->run.empty()) {  // ready: {run: [...]}: with the service's environment, in its workdir
      AttemptRequest probe;
      probe.argv = s.service->run;
      probe.env = req.env;
      probe.workdir = req.workdir;
      probe.log_path = req.log_path.substr(0, req.log_path.size() - 4) + ".ready.log";
      probe.step_label = req.step_label + " (ready check)";
      probe.secrets = req.secrets;
      unit.live().probe = std::move(probe);
    }
  }

  NewAttempt(u);
  unit.live().record.log_path = req.log_path;
  unit.live().record.fingerprint = fingerprint;
  unit.live().record.identity = identity_text;
  if (reusable) {
    Status startable = executor_->CheckStart(req);
    if (!startable.ok()) return StartFailed(u, startable.message(), clock_->WallMs());
  }
  Status st = store_->BeginAttempt(&unit.live().record, rec);
  if (st.ok()) st = store_->SaveLineage(unit.live().record, inputs);
  if (!st.ok()) return st;
  req.attempt_id = unit.live().record.id;
  *out = std::move(req);
  return Status::Ok();
}

Status Engine::ReuseCached(size_t u, const CachedResult& hit, const std::string& fingerprint,
                           const std::string& identity, const std::vector<LineageEdge>& inputs) {
  Unit& unit = units_[u];
  StepRecord& rec = graph_.unit_record(u);
  NewAttempt(u);
  unit.live().record.finished_ms = unit.live().record.started_ms;
  unit.live().record.fingerprint = fingerprint;
  unit.live().record.identity = identity;
  std::vector<LineageEdge> edges = inputs;
  for (LineageEdge e : hit.produced) {
    e.role = LineageEdge::Role::kReused;
    edges.push_back(std::move(e));
  }
  unit.live().record.state = StepState::kCached;
  unit.live().record.exit_code = 0;
  rec.exit_code = spec::Value::Int(0);
  unit.live().record.reason = "cached: the outputs of run " + std::to_string(hit.run_id) + ", step " + hit.step_id +
                        " (attempt id " + std::to_string(hit.attempt_id) + ")";
  rec.outputs = hit.outputs;
  rec.reason = unit.live().record.reason;
  // The registry is asked again, not the cache: the version may have been
  // deleted since (the same content then becomes a new version).
  Status registered = RegisterModels(plan_.pipeline->steps[graph_.node_of(u)], hit.produced, hit.run_id, hit.step_id,
                                     hit.attempt_id, *store_, *clock_, &rec.outputs);
  if (!registered.ok()) return registered;
  return EndUnit(u, StepState::kCached, &edges);  // the attempt, written once, ended
}

Status Engine::LaunchUnit(size_t u, Result<Started> started) {
  Unit& unit = units_[u];
  const StepRecord& rec = graph_.unit_record(u);
  const spec::Step& s = plan_.pipeline->steps[graph_.node_of(u)];
  if (!started.ok()) {
    Status released = ReleasePool(u);
    if (!released.ok()) return released;
    return StartFailed(u, started.status().message(), clock_->WallMs());
  }
  unit.live().record.pid = started->pid;
  unit.live().record.job_id = started->job_id;
  Status st = store_->AttemptStarted(unit.live().record);
  if (!st.ok()) return st;
  MarkRunning(u);
  Event e{Event::Kind::kStarted, s.id, rec.item, unit.live().record.number, unit.live().record.id, StepState::kRunning};
  e.pid = started->pid;
  e.job_id = started->job_id;
  Emit(e);
  return Status::Ok();
}

Status Engine::StartFailed(size_t u, const std::string& reason, int64_t finished_ms) {
  Unit& unit = units_[u];
  unit.live().record.state = StepState::kFailed;
  unit.live().record.reason = reason;
  unit.live().record.finished_ms = finished_ms;
  // No log file: the reason is on record, and `sluice logs` prints it.
  // (Creating one cost more than the rest of the failure.)
  graph_.unit_record(u).exit_code = spec::Value();
  return AfterFailure(u, {spec::Value(), 0, false, reason});
}

// The unit's attempt (unit.live().record) is running: count it, take its slots,
// arm its timeout.
void Engine::MarkRunning(size_t u) {
  Unit& unit = units_[u];
  const spec::Step& s = plan_.pipeline->steps[graph_.node_of(u)];
  unit.running = true;
  unit.stop = StopCause::Kind::kNone;
  unit.killed = false;
  ++unit.generation;
  running_[unit.live().record.id] = u;
  free_slots_ -= unit.slots;
  if (s.timeout) timers_.push({clock_->Now() + *s.timeout, Timer::Kind::kTimeout, u, unit.generation});
  if (s.service) ArmService(u);
}

// A unit whose attempt a dead orchestrator left running on a cluster, if the
// executor can follow it: it is running again, as if just started.
bool Engine::AdoptUnit(size_t u) {
  Unit& unit = units_[u];
  const StepRecord& rec = graph_.unit_record(u);
  const spec::Step& s = plan_.pipeline->steps[graph_.node_of(u)];
  auto it = std::find_if(options_.adopt.begin(), options_.adopt.end(), [&](const AttemptRecord& a) {
    return a.step_id == rec.step_id && a.item == rec.item && a.number == rec.attempts;
  });
  if (it == options_.adopt.end() || !executor_->Adopt(*it).ok()) return false;
  unit.live().record = *it;
  unit.live().record.state = StepState::kRunning;
  AttemptPaths paths = PathsOfLog(it->log_path);
  unit.live().output_path = paths.output;
  unit.live().files_dir = paths.files_dir;
  MarkRunning(u);
  Event e{Event::Kind::kStarted, s.id, rec.item, unit.live().record.number, unit.live().record.id, StepState::kRunning};
  e.job_id = unit.live().record.job_id;
  e.message = "adopted";
  Emit(e);
  return true;
}

void Engine::NewAttempt(size_t u) {
  Unit& unit = units_[u];
  StepRecord& rec = graph_.unit_record(u);
  rec.attempts += 1;
  rec.tries += 1;
  rec.state = StepState::kRunning;
  unit.live().record = AttemptRecord{};
  unit.live().record.run_id = run_id_;
  unit.live().record.step_id = rec.step_id;
  unit.live().record.item = rec.item;
  unit.live().record.number = rec.attempts;
  unit.live().record.started_ms = clock_->WallMs();
}

// Its attempt is not begun: FinishAttempt records it once, already ended.
Status Engine::FailBeforeStart(size_t u, const std::string& reason, bool retryable) {
  Unit& unit = units_[u];
  StepRecord& rec = graph_.unit_record(u);
  NewAttempt(u);
  if (!retryable) rec.tries = std::max(rec.tries, plan_.pipeline->steps[graph_.node_of(u)].retry.limit + 1);
  return StartFailed(u, reason, unit.live().record.started_ms);
}

}  // namespace sluice::engine
