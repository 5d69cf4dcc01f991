#include "runs/verbs.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "engine/plan.h"
#include "exec/process.h"

namespace sluice::runs {

namespace fs = std::filesystem;
using engine::RunState;
using engine::StepState;

namespace {

bool Unfinished(RunState s) { return s == RunState::kPending || s == RunState::kRunning; }

Refusal Refuse(Refusal::Why why, const store::RunRow& row) {
  Refusal r;
  r.why = why;
  r.state = row.state;
  if (why == Refusal::Why::kDriven) r.driver_pid = row.driver_pid;
  return r;
}

// Its step ids in its plan's order (by layer, then the spec's order): how
// `sluice show` lists a run's steps.
std::vector<std::string> PlanOrder(const spec::Pipeline& p) {
  std::vector<std::string> ids;
  ids.reserve(p.steps.size());
  for (size_t i : engine::MakePlan(p).order) ids.push_back(p.steps[i].id);
  return ids;
}

}  // namespace

Result<StoredRun> LoadStoredRun(store::RunsStore& runs, int64_t id) {
  auto row = runs.GetRun(id);
  if (!row.ok()) return row.status();
  auto text = runs.SpecText(row->spec_hash);
  if (!text.ok()) return text.status();
  auto p = spec::ParsePipeline(row->spec_path, *text);
  if (!p.ok()) return p.status();
  auto j = nlohmann::json::parse(row->params_json, nullptr, false);
  spec::ParamValues params;
  for (const spec::ParamSpec& ps : p->params)
    if (j.is_object() && j.contains(ps.name)) params[ps.name] = spec::Value::FromJson(j[ps.name]);
  return StoredRun{std::move(*row), std::move(*p), std::move(params)};
}

bool DriverAlive(const store::RunRow& row) {
  return row.driver_pid != 0 && row.driver_pid != ::getpid() &&
         exec::SameProcessAlive(static_cast<int>(row.driver_pid), row.driver_start);
}

bool Interrupted(const store::RunRow& row) {
  return Unfinished(row.state) && row.driver_pid != 0 && !DriverAlive(row);
}

Refusal CanResume(const store::RunRow& row) {
  using Why = Refusal::Why;
  if (row.state == RunState::kQueued) return Refuse(row.queued_retry ? Why::kQueuedForRetry : Why::kQueued, row);
  if (!Unfinished(row.state)) return Refuse(Why::kFinished, row);
  if (DriverAlive(row)) return Refuse(Why::kDriven, row);
  return {};
}

Refusal CanRetry(const store::RunRow& row, bool names_steps) {
  using Why = Refusal::Why;
  if (row.state == RunState::kQueued) return Refuse(row.queued_retry ? Why::kQueuedForRetry : Why::kQueued, row);
  if (Unfinished(row.state)) return Refuse(DriverAlive(row) ? Why::kDriven : Why::kUnfinished, row);
  if (row.state == RunState::kSucceeded && !names_steps) return Refuse(Why::kNothingToRetry, row);
  return {};
}

Refusal CanCancel(const store::RunRow& row) {
  if (row.state == RunState::kQueued || Unfinished(row.state)) return {};
  return Refuse(Refusal::Why::kFinished, row);
}

RunVerbs::RunVerbs(store::RunsStore& runs, std::string home, engine::Clock* clock)
    : runs_(runs), home_(fs::absolute(home).lexically_normal().string()), clock_(clock ? clock : &system_clock_) {}

Result<int64_t> RunVerbs::Create(const spec::Pipeline& p, const spec::ParamValues& params, int jobs,
                                 const std::string& trigger, bool queued,
                                 const std::optional<engine::DataInterval>& interval) {
  fs::path spec_path = fs::absolute(p.file).lexically_normal();
  auto group = spec::RenderConcurrencyGroup(p, params);
  if (!group.ok()) return group.status();
  auto id = runs_.CreateRun(p.name, p.text, spec_path.string(), spec_path.parent_path().string(),
                            spec::ParamsJson(params).dump(), jobs, NowMs(), trigger, queued, interval, *group);
  if (!id.ok()) return id;
  Status kept = runs_.SaveStepOrder(*id, PlanOrder(p));
  if (!kept.ok()) return kept;
  return id;
}

Status RunVerbs::BecomeDriver(int64_t run_id) {
  return runs_.SetDriver(run_id, ::getpid(), exec::ProcessStartTime(::getpid()));
}

Result<bool> RunVerbs::Claim(store::RunRow* row) {
  auto claimed = runs_.StartQueued(row->id);
  if (!claimed.ok()) return claimed.status();
  auto fresh = runs_.GetRun(row->id);
  if (!fresh.ok()) return fresh.status();
  *row = std::move(*fresh);
  return *claimed;
}

Result<Resumption> RunVerbs::Resume(store::RunRow* row) {
  Resumption out;
  if (row->state == RunState::kQueued && !row->queued_retry) {
    // Queued by `sluice serve` behind a max_active_runs cap: asked for by
    // hand, it starts now, and the server's queue skips it.
    auto claimed = Claim(row);
    if (!claimed.ok()) return claimed.status();
    out.claimed = *claimed;
  }
  if ((out.refused = CanResume(*row))) return out;
  auto lost = TakeOver(row->id);
  if (!lost.ok()) return lost.status();
  KillLeftovers(*lost);
  auto records = runs_.LoadSteps(row->id);
  if (!records.ok()) return records.status();
  out.records = std::move(*records);
  auto attempts = runs_.ListAttempts(row->id);
  if (!attempts.ok()) return attempts.status();
  for (const auto& a : *attempts)
    if (a.state == StepState::kRunning && !a.job_id.empty()) out.adopt.push_back(a);
  return out;
}

Result<Refusal> RunVerbs::CheckRetry(store::RunRow* row, bool names_steps) {
  if (row->state == RunState::kQueued && row->queued_retry) {
    // A retry `sluice serve` queued behind a cap: it runs here, now.
    auto claimed = Claim(row);
    if (!claimed.ok()) return claimed.status();
  }
  return CanRetry(*row, names_steps);
}

Result<RetryStart> RunVerbs::Retry(StoredRun* run, const std::string& from, std::optional<spec::Pipeline> reload,
                                   spec::ParamValues reload_params) {
  int64_t id = run->row.id;
  std::optional<store::RunSpecUpdate> update;
  std::vector<std::string> changed;
  if (reload) {
    changed = ChangedSteps(run->pipeline.text, *reload);
    update = store::RunSpecUpdate{reload->text, spec::ParamsJson(reload_params).dump()};
    run->pipeline = std::move(*reload);
    run->params = std::move(reload_params);
  }
  auto records = runs_.LoadSteps(id);
  if (!records.ok()) return records.status();
  RetryStart out;
  out.plan = PlanRetry(run->pipeline, *records, from, changed);
  if (out.plan.refused) return out;
  // This process drives the run from the moment it is pending again: the
  // old driver, dead, must not make it look abandoned meanwhile.
  Status st = BecomeDriver(id);
  if (!st.ok()) return st;
  st = runs_.ResetSteps(id, out.plan.rerun, out.plan.failed_items, update ? &*update : nullptr);
  if (st.ok() && update) st = runs_.SaveStepOrder(id, PlanOrder(run->pipeline));
  if (!st.ok()) return st;
  auto lost = TakeOver(id);
  if (!lost.ok()) return lost.status();
  records = runs_.LoadSteps(id);
  if (!records.ok()) return records.status();
  out.records = std::move(*records);
  return out;
}

Result<Cancellation> RunVerbs::Cancel(const store::RunRow& row) {
  Cancellation out;
  store::RunRow now = row;
  if (now.state == RunState::kQueued) {
    // Not started: cancelled where it waits (the server's queue skips it).
    auto cancelled = runs_.CancelQueued(now.id, NowMs());
    if (!cancelled.ok()) return cancelled.status();
    if (*cancelled) {
      out.was_queued = true;
      return out;
    }
    auto fresh = runs_.GetRun(now.id);  // it left the queue meanwhile
    if (!fresh.ok()) return fresh.status();
    now = std::move(*fresh);
  }
  if (now.state == RunState::kQueued || !Unfinished(now.state)) {
    out.refused = Refuse(Refusal::Why::kFinished, now);
    return out;
  }
  Status st = runs_.RequestCancel(now.id);
  if (!st.ok()) return st;
  out.driven = DriverAlive(now);
  if (out.driven) out.driver_pid = now.driver_pid;
  return out;
}

Status RunVerbs::CancelUndriven(int64_t run_id) {
  auto lost = TakeOver(run_id);
  if (!lost.ok()) return lost.status();
  KillLeftovers(*lost);
  auto records = runs_.LoadSteps(run_id);
  if (!records.ok()) return records.status();
  std::vector<const engine::StepRecord*> changed;
  for (engine::StepRecord& r : *records)
    if (!engine::IsFinal(r.state)) {
      r.state = StepState::kCancelled;
      r.reason = "run cancelled";
      changed.push_back(&r);
    }
  // SaveSteps and SetRunState are journal writes: Flush commits them.
  Status st = runs_.SaveSteps(run_id, changed);
  if (st.ok()) st = runs_.SetRunState(run_id, RunState::kCancelled, NowMs());
  if (st.ok()) st = runs_.Flush();
  return st;
}

Result<bool> RunVerbs::FailAbandoned(int64_t run_id) {
  auto row = runs_.GetRun(run_id);
  if (!row.ok()) return row.status();
  if (!Unfinished(row->state) || DriverAlive(*row)) return false;
  // Only if no driver took the run over since it was read.
  return runs_.FailIfDrivenBy(run_id, row->driver_pid, row->driver_start, NowMs());
}

Result<std::vector<engine::AttemptRecord>> RunVerbs::TakeOver(int64_t run_id) {
  return runs_.TakeOverRun(run_id, NowMs());
}

// An attempt's process leads its own group, and starts with variables that
// name it (SLUICE_HOME, SLUICE_RUN_ID, SLUICE_STEP, SLUICE_ATTEMPT and, for
// a foreach item, SLUICE_ITEM_INDEX). With a recorded pid, the group is
// signalled when that pid names no process (a group id stays reserved while
// a member lives, so only the step's leftovers can hold it) or names a group
// leader with the attempt's markers; a reused pid is left alone. Without one
// (the driver died before writing it), the leader is found by its markers.
void RunVerbs::KillLeftovers(const std::vector<engine::AttemptRecord>& lost) const {
  for (const auto& a : lost) {
    std::vector<std::string> markers = {"SLUICE_HOME=" + home_, "SLUICE_RUN_ID=" + std::to_string(a.run_id),
                                        "SLUICE_STEP=" + a.step_id, "SLUICE_ATTEMPT=" + std::to_string(a.number)};
    if (a.item >= 0) markers.push_back("SLUICE_ITEM_INDEX=" + std::to_string(a.item));
    std::vector<int> leaders;
    int pid = static_cast<int>(a.pid);
    if (pid <= 0) leaders = exec::FindProcessesStartedWith(markers);
    else if (exec::ProcessStartTime(pid) == 0 || exec::StartedWithEnvironment(pid, markers)) leaders = {pid};
    for (int leader : leaders) ::kill(-leader, SIGKILL);
  }
}

}  // namespace sluice::runs
