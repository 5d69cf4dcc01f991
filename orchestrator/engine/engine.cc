// The engine's loop (engine.h): restore, decide and expand steps, an
// attempt's exit, a unit's and a step's end, and Run. Starts are in
// engine_start.cc, cancel, timeout and timers in engine_stops.cc, pools in
// engine_pools.cc and services in engine_services.cc.
#include "engine/engine.h"

#include <algorithm>
#include <map>
#include <memory>
#include <string_view>

#include "engine/attempt_end.h"
#include "engine/attempt_render.h"
#include "engine/decide.h"
#include "engine/engine_unit.h"
#include "engine/run_outputs.h"
#include "util/duration.h"

namespace sluice::engine {

Engine::Engine(const Plan& plan, const spec::ParamValues& params, int64_t run_id, RunStore* store, Executor* executor,
               Clock* clock, Observer* observer, EngineOptions options, std::vector<StepRecord> resume)
    : plan_(plan),
      params_(params),
      run_id_(run_id),
      store_(store),
      executor_(executor),
      clock_(clock),
      observer_(observer),
      options_(std::move(options)),
      env_(options_.env),
      renderer_(*plan.pipeline, run_id, options_.log_dir),
      graph_(plan),
      free_slots_(std::max(1, options_.jobs)),
      rng_(options_.seed),
      resume_(std::move(resume)) {
  if (!env_) {
    own_env_ = std::make_unique<RealEnv>();
    env_ = own_env_.get();
  }
  files_ = options_.files ? options_.files : env_;
  scope_ = {&plan_, &params_, &graph_, &renderer_.pipeline_env(), &cancelling_, env_, files_, &options_.workdir, &timed_out_,
            &options_.interval};
}

Engine::~Engine() = default;

void Engine::RequestCancel(bool hard) {
  int want = hard ? 2 : 1;
  int cur = cancel_request_.load();
  while (cur < want && !cancel_request_.compare_exchange_weak(cur, want)) {
  }
  executor_->Wake();
}

void Engine::Emit(Event e) {
  if (observer_) observer_->OnEvent(e);
}

std::string Engine::EndReason() const {
  return timed_out_ && !cancelling_ ? RunTimeoutReason(*plan_.pipeline->timeout) : "";
}

Engine::Counts Engine::counts() const {
  RunGraph::Counts c = graph_.counts();
  return {c.total, c.finished, static_cast<int>(running_.size()), c.failed};
}

// Slot accounting is here and in MarkRunning / OnExit (free_slots_). What an
// attempt takes is the executor's answer (Executor::Slots: locally
// resources.cpu; none on a cluster, whose scheduler queues it, or for a
// built-in step that only waits), at most all of them. Asked when the step's
// units are made, before an attempt is rendered: from where and what it runs.
int Engine::SlotsFor(const spec::Step& s) const {
  if (s.service) return 0;  // it serves; the steps that need it do the work
  AttemptRequest shape;
  shape.placement = PlacementOf(s);
  if (!s.uses.empty()) {
    auto [plugin, type] = spec::SplitUses(s.uses);
    shape.plugin = PluginCall{plugin, type};
    shape.plugin->isolated = s.isolation == spec::Step::Isolation::kProcess;
  }
  return std::clamp(executor_->Slots(shape), 0, std::max(1, options_.jobs));
}

Status Engine::Restore() {
  std::vector<const StepRecord*> fresh = graph_.Restore(std::move(resume_));
  units_.resize(graph_.unit_count());
  if (fresh.empty()) return Status::Ok();
  return store_->SaveSteps(run_id_, fresh);
}

Status Engine::Decide(size_t i) {
  StepRecord& rec = graph_.record(i);
  const spec::Step& s = plan_.pipeline->steps[i];
  auto finish_as = [&](StepState state, std::string reason) -> Status {
    rec.state = state;
    rec.reason = std::move(reason);
    Status st = store_->SaveSteps(run_id_, {&rec});
    if (!st.ok()) return st;
    Event e{Event::Kind::kSkipped, s.id};
    e.state = state;
    e.message = rec.reason;
    Emit(e);
    st = FinishNode(i);
    return st.ok() ? CountEnd() : st;
  };
  if (cancelling_ && !RunsDuringCancel(i)) return finish_as(StepState::kCancelled, "run cancelled");
  if (timed_out_ && !s.is_finally)
    return finish_as(StepState::kCancelled, "not started: " + RunTimeoutReason(*plan_.pipeline->timeout));
  if (s.service && DependantsFinal(i))  // a resumed run whose dependants are all done
    return finish_as(StepState::kSucceeded, "not started: every step that needs it had finished");
  StepDecision d = DecideStep(s, rec, StepContext(scope_, i, nullptr));
  if (d.end) return finish_as(*d.end, std::move(d.reason));
  if (!plan_.item_needs[i].empty() && !d.items) {
    // A step of a call with foreach after its first: the call's items, as
    // its item needs made them.
    for (size_t n : plan_.item_needs[i])
      if (graph_.record(n).items) {
        d.items = *graph_.record(n).items;
        break;
      }
    if (!d.items) return finish_as(StepState::kSkipped, "step '" + plan_.pipeline->steps[plan_.item_needs[i][0]].id +
                                                            "' made no items for its call");
  }
  return Expand(i, d.items ? &*d.items : nullptr);
}

Status Engine::Expand(size_t i, const spec::List* items) {
  RunGraph::Expansion x = graph_.Expand(i, items);
  units_.resize(graph_.unit_count());
  int slots = SlotsFor(plan_.pipeline->steps[i]);
  for (size_t u = x.first; u < x.end; ++u) units_[u].slots = slots;
  if (!x.to_save.empty()) {
    Status st = store_->SaveSteps(run_id_, x.to_save);
    if (!st.ok()) return st;
  }
  const spec::Step& s = plan_.pipeline->steps[i];
  int failed_item = -1;  // fail_fast: an item that failed here, before anything started
  for (size_t u = x.first; u < x.end; ++u) {
    StepRecord& r = graph_.unit_record(u);
    if (IsFinal(r.state)) continue;
    if (r.state == StepState::kRunning && AdoptUnit(u)) {
      if (s.max_parallel > 0) {
        units_[u].in_flight = true;
        ++in_flight_[i];
      }
      continue;
    }
    if (graph_.waits_for_items(u)) continue;  // decided once its item needs' item is final
    if (failed_item >= 0) {
      // fail_fast, and an item before this one failed without starting.
      Status st = EndItemUnstarted(u, StepState::kCancelled, "fail_fast: item " + std::to_string(failed_item) + " failed");
      if (!st.ok()) return st;
      continue;
    }
    if (r.attempts == 0) {
      if (std::optional<StepDecision> d = DecideItem(s, StepContext(scope_, i, &r))) {
        Status st = EndItemUnstarted(u, *d->end, d->reason);
        if (!st.ok()) return st;
        if (s.fail_fast && *d->end == StepState::kFailed) failed_item = r.item;
        continue;
      }
    }
    if (r.state == StepState::kRunning) {
      // Left running by an orchestrator that died: that attempt is lost. The
      // orchestrator's death is not the step's failure, so it runs again
      // without spending a retry; only a step lost kMaxLostInARow times in a
      // row (it may be what kills the orchestrator) fails.
      auto lost = store_->LostInARow(run_id_, r.step_id, r.item);
      if (!lost.ok()) return lost.status();
      if (*lost >= kMaxLostInARow) {
        r.state = StepState::kFailed;
        r.reason = "its last " + std::to_string(*lost) + " attempts were lost (the orchestrator stopped while each ran)";
        Status st = store_->SaveSteps(run_id_, {&r});
        if (!st.ok()) return st;
        st = FinishUnit(u);
        if (!st.ok()) return st;
        if (s.fail_fast) failed_item = r.item;
        continue;
      }
      if (*lost > 0) r.tries = std::max(0, r.tries - 1);
      r.state = StepState::kPending;
    }
    Enqueue(u);
  }
  if (graph_.unfinished_units(i) == 0 && !graph_.finished(i)) return FinishNode(i);
  return Status::Ok();
}

Status Engine::OnExit(const AttemptExit& raw_exit) {
  if (raw_exit.attempt_id < 0) return OnProbeExit(raw_exit);
  auto it = running_.find(raw_exit.attempt_id);
  if (it == running_.end()) return Status::Internal("exit of unknown attempt " + std::to_string(raw_exit.attempt_id));
  size_t u = it->second;
  running_.erase(it);
  Unit& unit = units_[u];
  StepRecord& rec = graph_.unit_record(u);
  const spec::Step& s = plan_.pipeline->steps[graph_.node_of(u)];
  AttemptExit exit = raw_exit;
  exit.reason = unit.live().secrets.Mask(exit.reason);
  unit.running = false;
  free_slots_ += unit.slots;
  Status released = ReleasePool(u);
  if (!released.ok()) return released;
  AttemptRecord& a = unit.live().record;
  a.finished_ms = clock_->WallMs();
  a.exit_code = exit.exit_code;
  // steps.<id>.exit_code: what the process exited with, null if a signal ended it.
  rec.exit_code = exit.signal ? spec::Value() : spec::Value::Int(exit.exit_code);
  if (s.service) return EndServiceAttempt(u, exit);
  StopCause stop{unit.stop, unit.killed, hard_cancel_, plan_.pipeline->timeout.value_or(Millis(0))};
  AttemptVerdict verdict = JudgeExit(s, exit, stop, unit.live().output_path, *env_);
  a.state = verdict.state;
  a.reason = std::move(verdict.reason);
  if (verdict.outputs) rec.outputs = std::move(*verdict.outputs);
  MaskSecrets(unit.live().secrets, &rec.outputs, unit.live().output_path, *env_);  // $SLUICE_OUTPUT is kept with the log
  AttemptExit result = exit;
  if (a.state == StepState::kSucceeded && !s.outputs.empty()) {
    std::string failure;
    OutputSink sink{store_, options_.artifacts, env_, clock_, run_id_};
    Status published = PublishOutputs(s, a, unit.live().files_dir, sink, &rec.outputs, &result.metrics, &failure);
    if (!published.ok()) return published;
    if (!failure.empty()) {
      a.state = StepState::kFailed;
      a.reason = failure;
    }
  }
  Status st = store_->SaveMetrics(a, result.metrics);
  if (!st.ok()) return st;
  if (a.state == StepState::kFailed)
    return AfterFailure(u, {rec.exit_code, exit.signal, unit.stop == StopCause::Kind::kTimeout, a.reason});
  rec.reason = a.reason;
  return EndUnit(u, a.state);
}

Status Engine::EndUnit(size_t u, StepState state, const std::vector<LineageEdge>* lineage) {
  Unit& unit = units_[u];
  StepRecord& rec = graph_.unit_record(u);
  rec.state = state;
  Status st = store_->FinishAttempt(&unit.live().record, rec);
  if (st.ok() && lineage) st = store_->SaveLineage(unit.live().record, *lineage);
  if (!st.ok()) return st;
  Event e{Event::Kind::kFinished, rec.step_id, rec.item, unit.live().record.number, unit.live().record.id, state};
  e.message = unit.live().record.reason;
  Emit(e);
  // The unit is final: its attempt is on record and nothing reads it again.
  // What it held (the identity text, paths, secrets) goes, so a run's memory
  // is what its records need, not what its attempts needed.
  unit.Release();
  return FinishUnit(u);
}

Status Engine::AfterFailure(size_t u, const FailedAttempt& failed) {
  Unit& unit = units_[u];
  StepRecord& rec = graph_.unit_record(u);
  AttemptRecord& a = unit.live().record;
  const spec::Step& s = plan_.pipeline->steps[graph_.node_of(u)];
  rec.outputs.clear();
  // A cancel or the run's timeout ends the retries of the steps of
  // `steps:`; finally steps keep theirs until a hard cancel.
  bool stopping = s.is_finally ? hard_cancel_ : cancelling_ || timed_out_;
  bool retry = !stopping && rec.tries <= s.retry.limit;
  std::string not_retried;
  if (retry && !RetryAllowed(s, failed, StepContext(scope_, graph_.node_of(u), &rec), &not_retried)) {
    a.reason += "; " + not_retried;
    retry = false;
  }
  rec.reason = a.reason;
  if (retry) {
    rec.state = StepState::kPending;
    Status st = store_->FinishAttempt(&a, rec);
    if (!st.ok()) return st;
    auto delay = RetryDelay(s.retry.backoff, rec.tries, rng_);
    unit.waiting_retry = true;
    ++unit.generation;
    timers_.push({clock_->Now() + delay, Timer::Kind::kRetry, u, unit.generation});
    Event e{Event::Kind::kRetrying, s.id, rec.item, a.number, a.id, StepState::kFailed};
    e.message = a.reason + "; retry " + std::to_string(rec.tries) + "/" + std::to_string(s.retry.limit) + " in " +
                FormatDuration(delay);
    Emit(e);
    return Status::Ok();
  }
  // Running units are all asked to stop by a cancel (and end cancelled): one
  // that fails during a cancel is a cleanup step that started after it.
  return EndUnit(u, StepState::kFailed);
}

void Engine::Enqueue(size_t u) {
  size_t i = graph_.node_of(u);
  int limit = plan_.pipeline->steps[i].max_parallel;
  if (limit > 0 && in_flight_[i] >= limit) {
    held_[i].push_back(u);
    return;
  }
  if (limit > 0) {
    units_[u].in_flight = true;
    ++in_flight_[i];
  }
  graph_.PushReady(u);
}

Status Engine::EndItemUnstarted(size_t u, StepState state, const std::string& reason) {
  StepRecord& r = graph_.unit_record(u);
  r.state = state;
  r.reason = reason;
  Status st = store_->SaveSteps(run_id_, {&r});
  if (!st.ok()) return st;
  Event e{Event::Kind::kSkipped, r.step_id, r.item};
  e.state = state;
  e.message = reason;
  Emit(e);
  return FinishUnit(u);
}

Status Engine::FinishUnit(size_t u) {
  size_t i = graph_.node_of(u);
  const spec::Step& s = plan_.pipeline->steps[i];
  const StepRecord& rec = graph_.unit_record(u);
  if (s.fail_fast && rec.state == StepState::kFailed) {
    // fail_fast: the items not started yet (queued, held back by
    // max_parallel, or waiting to retry) are cancelled; running ones finish.
    std::string reason = "fail_fast: item " + std::to_string(rec.item) + " failed";
    std::vector<size_t> pending = graph_.DropReady([&](size_t v) { return graph_.node_of(v) != i; });
    auto held = held_.find(i);
    if (held != held_.end()) {
      pending.insert(pending.end(), held->second.begin(), held->second.end());
      held_.erase(held);
    }
    for (size_t v : graph_.units_of(i))
      if (units_[v].waiting_retry) {
        units_[v].waiting_retry = false;
        pending.push_back(v);
      }
    std::sort(pending.begin(), pending.end());
    for (size_t v : pending) {
      Status st = EndItemUnstarted(v, StepState::kCancelled, reason);
      if (!st.ok()) return st;
    }
  }
  if (units_[u].in_flight) {
    units_[u].in_flight = false;
    --in_flight_[i];
    auto held = held_.find(i);
    if (held != held_.end() && !held->second.empty()) {
      size_t next = held->second.front();
      held->second.pop_front();
      Enqueue(next);
    }
  }
  bool last = graph_.FinishUnit(u);
  std::vector<size_t> released = graph_.ReleaseItems(u);
  Status st = last ? FinishNode(i) : Status::Ok();
  for (size_t v : released)
    if (st.ok()) st = StartItem(v);
  return st.ok() ? CountEnd() : st;
}

Status Engine::StartItem(size_t u) {
  size_t i = graph_.node_of(u);
  const spec::Step& s = plan_.pipeline->steps[i];
  StepRecord& r = graph_.unit_record(u);
  if (cancelling_ && !RunsDuringCancel(i)) return EndItemUnstarted(u, StepState::kCancelled, "run cancelled");
  if (timed_out_ && !s.is_finally)
    return EndItemUnstarted(u, StepState::kCancelled, "not started: " + RunTimeoutReason(*plan_.pipeline->timeout));
  if (std::optional<StepDecision> d = DecideItem(s, StepContext(scope_, i, &r))) return EndItemUnstarted(u, *d->end, d->reason);
  Enqueue(u);
  return Status::Ok();
}

Status Engine::CountEnd() {
  if (++ends_uncommitted_ < kEndsPerCommit) return Status::Ok();
  ends_uncommitted_ = 0;
  return store_->Flush();
}

Status Engine::FinishNode(size_t i) {
  StepRecord& rec = graph_.record(i);
  if (rec.items) {
    graph_.FoldItems(i);
    Status st = store_->SaveSteps(run_id_, {&rec});
    if (!st.ok()) return st;
    Event e{Event::Kind::kFinished, rec.step_id, -1, 0, 0, rec.state};
    e.message = rec.reason;
    Emit(e);
  }
  graph_.FinishStep(i);
  return StopServedServices(i);
}

Result<RunState> Engine::Run() {
  StepContext top(scope_, 0, nullptr);
  Status st = renderer_.SetEnvironment(options_.base_env, top);
  if (!st.ok()) return st;
  st = env_->CreateDirs(options_.log_dir);
  if (!st.ok()) return st;
  st = store_->SetRunState(run_id_, RunState::kRunning, clock_->WallMs());
  if (!st.ok()) return st;
  st = Restore();
  if (!st.ok()) return st;
  st = ArmDeadline();
  if (!st.ok()) return st;
  timers_.push({clock_->Now() + options_.cancel_poll, Timer::Kind::kCancelPoll, 0, 0});
  while (true) {
    while (auto i = graph_.NextToDecide()) {
      st = Decide(*i);
      if (!st.ok()) return st;
      if (TimerDue()) break;
    }
    if (int c = cancel_request_.load(); c > 0 && (!cancelling_ || (c == 2 && !hard_cancel_))) {
      st = BeginCancel(c == 2);
      if (!st.ok()) return st;
      continue;
    }
    st = StartReady();
    if (!st.ok()) return st;
    // A long stretch of units that end without running (decided, cached,
    // failing before a start) never waits; its timers (a cancel asked for in
    // the store, the run's timeout, a running step's) fire here.
    if (TimerDue()) {
      st = FireTimers();
      if (!st.ok()) return st;
    }
    // A unit can end without running (a cache hit, a failure before it
    // starts): decide its dependants before waiting for anything. One whose
    // process could not start gave its slots back: fill them now, since
    // nothing would wake the wait below for it.
    if (graph_.HasToDecide()) continue;
    if (!hard_cancel_ && !graph_.ready().empty() && units_[graph_.ready().front()].slots <= free_slots_) continue;
    if (graph_.AllFinished()) break;
    if (running_.empty() && graph_.ready().empty() && pool_waiting_.empty() &&
        timers_.size() <= 1u + deadline_pending_)
      return Status::Internal("the run stalled with " + std::to_string(graph_.unfinished_steps()) +
                              " steps unfinished");
    st = store_->Flush();  // nothing stays uncommitted while we wait
    if (!st.ok()) return st;
    ends_uncommitted_ = 0;
    if (observer_) observer_->Idle();
    auto exit = executor_->Wait(NextDeadline());
    // Take every attempt that has ended by now before starting new ones, so
    // their successors start under one commit.
    while (exit) {
      st = OnExit(*exit);
      if (!st.ok()) return st;
      exit = executor_->Wait(clock_->Now());
    }
    st = FireTimers();
    if (!st.ok()) return st;
  }
  RunState final = FinalRunState(plan_, graph_, cancelling_, timed_out_);
  // The run's outputs go with its final state, in one commit (a retry cleared the old ones).
  if (!plan_.pipeline->outputs.empty()) st = store_->SaveRunOutputs(run_id_, RenderRunOutputs(scope_));
  if (st.ok()) st = store_->SetRunState(run_id_, final, clock_->WallMs());
  if (st.ok()) st = store_->Flush();
  if (!st.ok()) return st;
  Event e{Event::Kind::kRunFinished};
  e.run_state = final;
  e.message = EndReason();
  Emit(e);
  return final;
}

}  // namespace sluice::engine
