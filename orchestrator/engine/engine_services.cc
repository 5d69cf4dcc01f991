// The engine's services (engine.h, specs/pipeline.md "Services"): a step
// that listens on a loopback port Sluice picks, is checked until it is
// ready, lets its dependants in, and is stopped once they are all final.
#include <algorithm>

#include "engine/attempt_end.h"
#include "engine/engine.h"
#include "engine/engine_unit.h"

namespace sluice::engine {

bool Engine::DependantsFinal(size_t node) const {
  const auto& ds = plan_.dependants[node];
  return std::all_of(ds.begin(), ds.end(), [&](size_t d) { return graph_.finished(d); });
}

namespace {

// The executor's check for a `tcp` or `http` ready check of the service `rec`.
ServiceCheck CheckOf(const spec::ServiceSpec& svc, const StepRecord& rec) {
  ServiceCheck check;
  check.kind = svc.ready == spec::ServiceSpec::Ready::kHttp ? ServiceCheck::Kind::kHttp : ServiceCheck::Kind::kTcp;
  check.port = static_cast<int>(rec.port.as_int());
  check.http_path = svc.http_path;
  return check;
}

}  // namespace

Status Engine::PickServicePort(size_t u, bool* failed) {
  auto port = executor_->ServicePort();
  if (port.ok()) {
    graph_.unit_record(u).port = spec::Value::Int(*port);
    return Status::Ok();
  }
  *failed = true;
  return FailBeforeStart(u, port.status().message(), /*retryable=*/true);
}

void Engine::ArmService(size_t u) {
  Unit& unit = units_[u];
  const spec::ServiceSpec& svc = *plan_.pipeline->steps[graph_.node_of(u)].service;
  unit.ready = unit.served = unit.not_ready = false;
  unit.probe = 0;
  TimePoint now = clock_->Now();
  timers_.push({now, Timer::Kind::kProbe, u, unit.generation});
  timers_.push({now + svc.timeout, Timer::Kind::kReady, u, unit.generation});
}

Status Engine::ProbeService(size_t u) {
  Unit& unit = units_[u];
  if (!unit.running || unit.ready || unit.stop != StopCause::Kind::kNone || unit.probe != 0) return Status::Ok();
  const spec::ServiceSpec& svc = *plan_.pipeline->steps[graph_.node_of(u)].service;
  const StepRecord& rec = graph_.unit_record(u);
  if (svc.ready == spec::ServiceSpec::Ready::kRun) {
    // Through the executor, whose reaper reports its end as an attempt's.
    AttemptRequest probe = *unit.live().probe;
    probe.attempt_id = next_probe_id_--;
    auto started = executor_->Start(probe);
    if (started.ok()) {
      unit.probe = probe.attempt_id;
      probes_[probe.attempt_id] = u;
      return Status::Ok();
    }
    (void)env_->AppendFile(probe.log_path, "sluice: " + started.status().message() + "\n");  // best effort
  } else if (executor_->ServiceReady(CheckOf(svc, rec))) {
    return ServiceReady(u);
  }
  timers_.push({clock_->Now() + spec::kServiceProbeInterval, Timer::Kind::kProbe, u, unit.generation});
  return Status::Ok();
}

Status Engine::ServiceDeadline(size_t u) {
  Unit& unit = units_[u];
  if (!unit.running || unit.ready || unit.stop != StopCause::Kind::kNone) return Status::Ok();
  const spec::ServiceSpec& svc = *plan_.pipeline->steps[graph_.node_of(u)].service;
  if (svc.ready != spec::ServiceSpec::Ready::kRun && executor_->ServiceReady(CheckOf(svc, graph_.unit_record(u))))
    return ServiceReady(u);
  unit.not_ready = true;
  return StopService(u);
}

Status Engine::OnProbeExit(const AttemptExit& exit) {
  auto it = probes_.find(exit.attempt_id);
  if (it == probes_.end()) return Status::Ok();  // its service ended first, which stopped it
  size_t u = it->second;
  probes_.erase(it);
  Unit& unit = units_[u];
  unit.probe = 0;
  if (!unit.running || unit.ready || unit.stop != StopCause::Kind::kNone) return Status::Ok();
  if (exit.signal == 0 && exit.exit_code == 0) return ServiceReady(u);
  timers_.push({clock_->Now() + spec::kServiceProbeInterval, Timer::Kind::kProbe, u, unit.generation});
  return Status::Ok();
}

Status Engine::ServiceReady(size_t u) {
  Unit& unit = units_[u];
  size_t node = graph_.node_of(u);
  StepRecord& rec = graph_.unit_record(u);
  unit.ready = true;
  rec.reason = "ready on 127.0.0.1:" + rec.port.Render();
  Status st = store_->SaveSteps(run_id_, {&rec});
  if (!st.ok()) return st;
  Event e{Event::Kind::kReady, rec.step_id, rec.item, unit.live().record.number, unit.live().record.id,
          StepState::kRunning};
  e.message = rec.reason;
  Emit(e);
  graph_.ReleaseDependants(node);
  if (DependantsFinal(node)) {  // a resumed run's: nothing left to serve
    unit.served = true;
    return StopService(u);
  }
  return Status::Ok();
}

Status Engine::StopServedServices(size_t node) {
  for (size_t n : plan_.needs[node]) {
    if (!plan_.pipeline->steps[n].service || graph_.finished(n) || !DependantsFinal(n)) continue;
    for (size_t u : graph_.units_of(n)) {
      Unit& unit = units_[u];
      if (!unit.running || !unit.ready || unit.stop != StopCause::Kind::kNone) continue;
      unit.served = true;
      Status st = StopService(u);
      if (!st.ok()) return st;
    }
  }
  return Status::Ok();
}

Status Engine::StopService(size_t u) {
  Unit& unit = units_[u];
  Status st = store_->Flush();  // on record before the process is signalled
  if (!st.ok()) return st;
  unit.stop = StopCause::Kind::kService;
  executor_->Stop(unit.live().record.id, false);
  timers_.push({clock_->Now() + options_.grace, Timer::Kind::kKill, u, unit.generation});
  return Status::Ok();
}

Status Engine::EndServiceAttempt(size_t u, const AttemptExit& exit) {
  Unit& unit = units_[u];
  StepRecord& rec = graph_.unit_record(u);
  AttemptRecord& a = unit.live().record;
  const spec::Step& s = plan_.pipeline->steps[graph_.node_of(u)];
  if (unit.probe != 0) {
    executor_->Stop(unit.probe, true);
    probes_.erase(unit.probe);
    unit.probe = 0;
  }
  bool was_ready = unit.ready;
  unit.ready = false;
  rec.outputs.clear();
  std::string killed = unit.killed ? " (SIGKILL after the grace period)" : "";
  if (unit.stop == StopCause::Kind::kService && unit.served) {
    a.state = StepState::kSucceeded;
    a.reason = "stopped once the steps that need it were final" + killed;
    rec.reason = a.reason;
    return EndUnit(u, StepState::kSucceeded);
  }
  if (unit.stop == StopCause::Kind::kService) {
    a.state = StepState::kFailed;
    a.reason = "not ready after " + SpecDuration(s.service->timeout) + killed;
  } else if (unit.stop != StopCause::Kind::kNone) {  // a cancel, its timeout, the run's timeout
    StopCause stop{unit.stop, unit.killed, hard_cancel_, plan_.pipeline->timeout.value_or(Millis(0))};
    AttemptVerdict verdict = JudgeExit(s, exit, stop, unit.live().output_path, *env_);
    a.state = verdict.state == StepState::kSucceeded ? StepState::kFailed : verdict.state;
    a.reason = std::move(verdict.reason);
  } else {
    a.state = StepState::kFailed;
    a.reason = std::string("service ") +
               (exit.signal ? "was killed by signal " + std::to_string(exit.signal) + " (" + SignalName(exit.signal) + ")"
                            : "exited with " + std::to_string(exit.exit_code)) +
               (was_ready ? " before its dependants finished" : " before it was ready");
  }
  if (a.state != StepState::kFailed) {
    rec.reason = a.reason;
    return EndUnit(u, a.state);
  }
  if (!was_ready) return AfterFailure(u, {rec.exit_code, exit.signal, unit.stop == StopCause::Kind::kTimeout, a.reason});
  // Its dependants were let in against this attempt's port: it is not retried.
  rec.tries = std::max(rec.tries, s.retry.limit + 1);
  Status st = AfterFailure(u, {rec.exit_code, exit.signal, unit.stop == StopCause::Kind::kTimeout, a.reason});
  if (!st.ok()) return st;
  return SkipServiceDependants(graph_.node_of(u));
}

Status Engine::SkipServiceDependants(size_t node) {
  const auto& ds = plan_.dependants[node];
  auto depends = [&](size_t v) { return std::find(ds.begin(), ds.end(), graph_.node_of(v)) != ds.end(); };
  std::vector<size_t> skip = graph_.DropReady([&](size_t v) { return !depends(v); });
  for (auto it = pool_waiting_.begin(); it != pool_waiting_.end();) {
    if (!depends(*it)) {
      ++it;
      continue;
    }
    units_[*it].waiting_pool = false;
    skip.push_back(*it);
    it = pool_waiting_.erase(it);
  }
  for (size_t d : ds) {
    auto held = held_.find(d);
    if (held == held_.end()) continue;
    skip.insert(skip.end(), held->second.begin(), held->second.end());
    held_.erase(held);
  }
  std::sort(skip.begin(), skip.end());
  const std::string reason = "not started: service '" + plan_.pipeline->steps[node].id + "' failed";
  if (!plan_.pipeline->steps[node].continue_on_error)
    for (size_t d : ds) graph_.SetUpstreamFailed(d);
  for (size_t v : skip) {
    Status st = EndItemUnstarted(v, StepState::kSkipped, reason);
    if (!st.ok()) return st;
  }
  return Status::Ok();
}

}  // namespace sluice::engine
