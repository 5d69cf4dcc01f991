// FakeRunStore: an engine::RunStore in memory, for engine tests with no
// SQLite. It keeps what the engine writes (step records, attempts, metrics,
// lineage, registered models) and answers the engine's questions from it the
// way store::RunsStore does (FindCached: the newest succeeded attempt with
// the fingerprint; LostInARow: the item's latest attempts that are lost).
// Flush() only counts: everything is "committed" as written. Tests read it
// back with LoadSteps, ListAttempts and GetRunState, and act as other
// processes would with CreateRun, RequestCancel and TakeOverRun.
// Not thread-safe.
#pragma once

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "engine/run_store.h"

namespace sluice::testing {

class FakeRunStore : public engine::RunStore {
 public:
  int64_t CreateRun() {
    int64_t id = static_cast<int64_t>(runs_.size()) + 1;
    runs_[id] = {};
    return id;
  }
  // `sluice cancel`.
  void RequestCancel(int64_t run_id) { runs_[run_id].cancel_requested = true; }
  // What `sluice resume` does to a dead orchestrator's run: its running
  // attempts that no cluster follows are lost.
  void TakeOverRun(int64_t run_id) {
    for (engine::AttemptRecord& a : attempts_)
      if (a.run_id == run_id && a.state == engine::StepState::kRunning && a.job_id.empty())
        a.state = engine::StepState::kLost;
  }
  // The run's step records, by step id then item.
  std::vector<engine::StepRecord> LoadSteps(int64_t run_id) const {
    std::vector<engine::StepRecord> out;
    for (const auto& [key, r] : steps_)
      if (std::get<0>(key) == run_id) out.push_back(r);
    return out;
  }
  // The run's attempts in the order they began.
  std::vector<engine::AttemptRecord> ListAttempts(int64_t run_id) const {
    std::vector<engine::AttemptRecord> out;
    for (const engine::AttemptRecord& a : attempts_)
      if (a.run_id == run_id) out.push_back(a);
    return out;
  }
  engine::RunState GetRunState(int64_t run_id) const { return runs_.at(run_id).state; }
  int flushes = 0;
  int begun = 0;  // BeginAttempt calls

  Status SaveSteps(int64_t run_id, const std::vector<const engine::StepRecord*>& steps) override {
    for (const engine::StepRecord* r : steps) steps_[{run_id, r->step_id, r->item}] = *r;
    return Status::Ok();
  }
  Status BeginAttempt(engine::AttemptRecord* attempt, const engine::StepRecord& step) override {
    ++begun;
    attempt->id = static_cast<int64_t>(attempts_.size()) + 1;
    attempts_.push_back(*attempt);
    return SaveSteps(attempt->run_id, {&step});
  }
  Status AttemptStarted(const engine::AttemptRecord& attempt) override {
    engine::AttemptRecord& a = attempts_.at(static_cast<size_t>(attempt.id - 1));
    a.pid = attempt.pid;
    a.job_id = attempt.job_id;
    return Status::Ok();
  }
  Status FinishAttempt(engine::AttemptRecord* attempt, const engine::StepRecord& step) override {
    if (attempt->id == 0) {  // never begun: inserted ended
      attempt->id = static_cast<int64_t>(attempts_.size()) + 1;
      attempts_.push_back(*attempt);
    }
    attempts_.at(static_cast<size_t>(attempt->id - 1)) = *attempt;
    outputs_[attempt->id] = step.outputs;
    return SaveSteps(attempt->run_id, {&step});
  }
  Status SaveMetrics(const engine::AttemptRecord& attempt, const std::vector<engine::Metric>& metrics) override {
    auto& m = metrics_[attempt.id];
    m.insert(m.end(), metrics.begin(), metrics.end());
    return Status::Ok();
  }
  Status SaveLineage(const engine::AttemptRecord& attempt, const std::vector<engine::LineageEdge>& edges) override {
    auto& l = lineage_[attempt.id];
    l.insert(l.end(), edges.begin(), edges.end());
    return Status::Ok();
  }
  Result<int> RegisterModel(const std::string& name, const std::string& artifact, int64_t, const std::string&, int64_t,
                            int64_t) override {
    std::vector<std::string>& versions = models_[name];
    auto it = std::find(versions.begin(), versions.end(), artifact);
    if (it != versions.end()) return static_cast<int>(it - versions.begin()) + 1;
    versions.push_back(artifact);
    return static_cast<int>(versions.size());
  }
  Result<std::optional<engine::CachedResult>> FindCached(const std::string& fingerprint) override {
    for (auto a = attempts_.rbegin(); a != attempts_.rend(); ++a) {
      if (a->fingerprint != fingerprint || a->state != engine::StepState::kSucceeded) continue;
      engine::CachedResult c{a->id, a->run_id, a->step_id, a->finished_ms, outputs_[a->id], {}};
      for (const engine::LineageEdge& e : lineage_[a->id])
        if (e.role == engine::LineageEdge::Role::kProduced) c.produced.push_back(e);
      return std::optional<engine::CachedResult>(std::move(c));
    }
    return std::optional<engine::CachedResult>();
  }
  Status SetRunState(int64_t run_id, engine::RunState state, int64_t) override {
    runs_[run_id].state = state;
    return Status::Ok();
  }
  Status SaveRunOutputs(int64_t run_id, const std::vector<engine::RunOutputValue>& outputs) override {
    runs_[run_id].outputs = outputs;
    return Status::Ok();
  }
  const std::vector<engine::RunOutputValue>& RunOutputs(int64_t run_id) const { return runs_.at(run_id).outputs; }
  Result<bool> CancelRequested(int64_t run_id) override { return runs_[run_id].cancel_requested; }
  Result<int> LostInARow(int64_t run_id, const std::string& step_id, int item) override {
    std::vector<const engine::AttemptRecord*> mine;
    for (const engine::AttemptRecord& a : attempts_)
      if (a.run_id == run_id && a.step_id == step_id && a.item == item) mine.push_back(&a);
    std::sort(mine.begin(), mine.end(), [](auto* x, auto* y) { return x->number > y->number; });
    int lost = 0;
    for (const engine::AttemptRecord* a : mine) {
      if (a->state != engine::StepState::kLost) break;
      ++lost;
    }
    return lost;
  }
  Status Flush() override {
    ++flushes;
    return Status::Ok();
  }
  // Pools as `sluice pool set` makes them (name -> slots); leases by (run,
  // step, item) -> slots; every LeasePool call counted.
  std::map<std::string, int> pools;
  int lease_calls = 0;
  Result<engine::PoolLease> LeasePool(int64_t run_id, const std::string& step_id, int item, const std::string& pool,
                                      int slots) override {
    ++lease_calls;
    engine::PoolLease out;
    auto p = pools.find(pool);
    if (p == pools.end()) {
      out.what = engine::PoolLease::What::kNoPool;
      return out;
    }
    out.slots = p->second;
    for (const auto& [key, lease] : leases_)
      if (lease.first == pool) out.used += lease.second;
    if (out.used + slots > out.slots) {
      out.what = engine::PoolLease::What::kFull;
      return out;
    }
    leases_[{run_id, step_id, item}] = {pool, slots};
    return out;
  }
  Status ReleasePool(int64_t run_id, const std::string& step_id, int item) override {
    leases_.erase({run_id, step_id, item});
    return Status::Ok();
  }

 private:
  std::map<std::tuple<int64_t, std::string, int>, std::pair<std::string, int>> leases_;
  struct Run {
    engine::RunState state = engine::RunState::kPending;
    bool cancel_requested = false;
    std::vector<engine::RunOutputValue> outputs;
  };
  std::map<int64_t, Run> runs_;
  std::map<std::tuple<int64_t, std::string, int>, engine::StepRecord> steps_;
  std::vector<engine::AttemptRecord> attempts_;  // attempt id - 1
  std::map<int64_t, engine::Outputs> outputs_;   // by attempt id
  std::map<int64_t, std::vector<engine::Metric>> metrics_;
  std::map<int64_t, std::vector<engine::LineageEdge>> lineage_;
  std::map<std::string, std::vector<std::string>> models_;  // name -> artifact of each version
};

}  // namespace sluice::testing
