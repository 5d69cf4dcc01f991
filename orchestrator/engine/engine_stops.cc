// The engine's stops (engine.h): a cancel, the run's timeout, and the timers
// that retry, time out and kill attempts.
#include <functional>
#include <string>
#include <vector>

#include "engine/attempt_end.h"
#include "engine/decide.h"
#include "engine/engine.h"
#include "engine/engine_unit.h"
#include "util/duration.h"

namespace sluice::engine {

bool Engine::RunsDuringCancel(size_t node) const {
  return engine::RunsDuringCancel(plan_.pipeline->steps[node], StepContext(scope_, node, nullptr), hard_cancel_);
}

std::vector<size_t> Engine::TakeUnstarted(const std::function<bool(size_t node)>& keep) {
  std::vector<size_t> taken = graph_.DropReady([&](size_t u) { return keep(graph_.node_of(u)); });
  for (auto it = held_.begin(); it != held_.end();) {
    if (keep(it->first)) {
      ++it;
      continue;
    }
    taken.insert(taken.end(), it->second.begin(), it->second.end());
    it = held_.erase(it);
  }
  return taken;
}

Status Engine::EndUnits(const std::vector<size_t>& units, StepState state, const std::string& reason) {
  for (size_t u : units) {
    StepRecord& r = graph_.unit_record(u);
    r.state = state;
    r.reason = reason;
    Status st = store_->SaveSteps(run_id_, {&r});
    if (st.ok()) st = FinishUnit(u);
    if (!st.ok()) return st;
  }
  return Status::Ok();
}

void Engine::StopGently(int64_t attempt_id, size_t u) {
  executor_->Stop(attempt_id, false);
  timers_.push({clock_->Now() + options_.grace, Timer::Kind::kKill, u, units_[u].generation});
}

Status Engine::BeginCancel(bool hard) {
  bool first = !cancelling_;
  cancelling_ = true;
  if (hard) hard_cancel_ = true;
  RequeuePoolWaiting();
  if (first) {
    Event e{Event::Kind::kCancelling};
    e.message = hard ? "cancelling now" : "cancelling";
    Emit(e);
  }
  // Queued units stay queued only if their step runs during a cancel;
  // units waiting to retry do not retry.
  std::vector<size_t> cancelled = TakeUnstarted([this](size_t node) { return RunsDuringCancel(node); });
  // Finally steps go on (retries included) unless the cancel is hard.
  auto is_finally = [this](size_t u) { return plan_.pipeline->steps[graph_.node_of(u)].is_finally; };
  for (size_t u = 0; u < units_.size(); ++u)
    if (units_[u].waiting_retry && (hard || !is_finally(u))) {
      units_[u].waiting_retry = false;
      cancelled.push_back(u);
    }
  Status st = EndUnits(cancelled, StepState::kCancelled, "run cancelled");
  if (st.ok()) st = store_->Flush();
  if (!st.ok()) return st;
  for (auto& [id, u] : running_) {
    Unit& unit = units_[u];
    if (!hard && is_finally(u)) continue;
    if (unit.stop == StopCause::Kind::kNone) unit.stop = StopCause::Kind::kCancel;
    if (hard) {
      unit.killed = true;
      executor_->Stop(id, true);
    } else if (unit.stop == StopCause::Kind::kCancel) {
      StopGently(id, u);
    }
  }
  return Status::Ok();
}

Status Engine::BeginRunTimeout() {
  if (timed_out_ || graph_.MainFinished()) return Status::Ok();
  timed_out_ = true;
  RequeuePoolWaiting();
  const std::string reason = RunTimeoutReason(*plan_.pipeline->timeout);
  Event e{Event::Kind::kWarning};
  e.message = reason + "; stopping its steps";
  Emit(e);
  auto is_main = [this](size_t u) { return !plan_.pipeline->steps[graph_.node_of(u)].is_finally; };
  // Queued units do not start; a unit waiting to retry fails with the
  // failure it had.
  std::vector<size_t> unstarted =
      TakeUnstarted([this](size_t node) { return plan_.pipeline->steps[node].is_finally; });
  Status st = EndUnits(unstarted, StepState::kCancelled, "not started: " + reason);
  if (!st.ok()) return st;
  for (size_t u = 0; u < units_.size(); ++u) {
    if (!units_[u].waiting_retry || !is_main(u)) continue;
    units_[u].waiting_retry = false;
    StepRecord& r = graph_.unit_record(u);
    st = EndUnits({u}, StepState::kFailed, r.reason + "; not retried: " + reason);
    if (!st.ok()) return st;
  }
  st = store_->Flush();  // on record before any process is signalled
  if (!st.ok()) return st;
  for (auto& [id, u] : running_) {
    Unit& unit = units_[u];
    if (!is_main(u) || unit.stop != StopCause::Kind::kNone) continue;
    unit.stop = StopCause::Kind::kRunTimeout;
    StopGently(id, u);
  }
  return Status::Ok();
}

Status Engine::ArmDeadline() {
  if (!plan_.pipeline->timeout) return Status::Ok();
  int64_t now = clock_->WallMs();
  int64_t from = options_.started_ms > 0 ? options_.started_ms : now;
  int64_t left = from + plan_.pipeline->timeout->count() - now;
  if (left <= 0) return BeginRunTimeout();
  timers_.push({clock_->Now() + Millis(left), Timer::Kind::kDeadline, 0, 0});
  deadline_pending_ = true;
  return Status::Ok();
}

bool Engine::TimerDue() { return !timers_.empty() && timers_.top().at <= clock_->Now(); }

Status Engine::FireTimers() {
  TimePoint now = clock_->Now();
  while (!timers_.empty() && timers_.top().at <= now) {
    Timer t = timers_.top();
    timers_.pop();
    if (t.kind == Timer::Kind::kCancelPoll) {
      auto requested = store_->CancelRequested(run_id_);
      if (!requested.ok()) return requested.status();
      if (*requested && !cancelling_) {
        Status st = BeginCancel(false);
        if (!st.ok()) return st;
      }
      timers_.push({now + options_.cancel_poll, Timer::Kind::kCancelPoll, 0, 0});
      continue;
    }
    if (t.kind == Timer::Kind::kDeadline) {
      deadline_pending_ = false;
      Status st = BeginRunTimeout();
      if (!st.ok()) return st;
      continue;
    }
    Unit& unit = units_[t.unit];
    if (t.generation != unit.generation) continue;
    if (t.kind == Timer::Kind::kRetry) {
      if (unit.waiting_retry) {
        unit.waiting_retry = false;
        graph_.PushReady(t.unit);
      }
    } else if (t.kind == Timer::Kind::kTimeout) {
      if (unit.running && unit.stop == StopCause::Kind::kNone) {
        Status st = store_->Flush();
        if (!st.ok()) return st;
        unit.stop = StopCause::Kind::kTimeout;
        StopGently(unit.live().record.id, t.unit);
      }
    } else if (t.kind == Timer::Kind::kProbe) {
      Status st = ProbeService(t.unit);
      if (!st.ok()) return st;
    } else if (t.kind == Timer::Kind::kReady) {
      Status st = ServiceDeadline(t.unit);
      if (!st.ok()) return st;
    } else if (t.kind == Timer::Kind::kKill) {
      if (unit.running && !unit.killed) {
        Status st = store_->Flush();
        if (!st.ok()) return st;
        unit.killed = true;
        executor_->Stop(unit.live().record.id, true);
      }
    }
  }
  return Status::Ok();
}

TimePoint Engine::NextDeadline() const {
  return timers_.empty() ? clock_->Now() + std::chrono::hours(24) : timers_.top().at;
}

}  // namespace sluice::engine
