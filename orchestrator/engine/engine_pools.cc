// The engine's pools (engine.h): a step's `pool:` slots, leased per attempt
// through the RunStore, which shares them with every other run.
#include <string>

#include "engine/engine.h"
#include "engine/engine_unit.h"

namespace sluice::engine {

Result<Engine::PoolTurn> Engine::TakePool(size_t u) {
  const spec::Step& s = plan_.pipeline->steps[graph_.node_of(u)];
  if (s.pool.empty()) return PoolTurn::kGo;
  Unit& unit = units_[u];
  StepRecord& rec = graph_.unit_record(u);
  auto lease = store_->LeasePool(run_id_, rec.step_id, rec.item, s.pool, s.pool_slots);
  if (!lease.ok()) return lease.status();
  const std::string pool = "pool '" + s.pool + "'";
  auto fail = [&](const std::string& reason) -> Result<PoolTurn> {
    unit.waiting_pool = false;
    Status st = FailBeforeStart(u, reason, /*retryable=*/false);
    if (!st.ok()) return st;
    return PoolTurn::kEnded;
  };
  switch (lease->what) {
    case PoolLease::What::kLeased:
      unit.leased = true;
      if (unit.waiting_pool) rec.reason.clear();  // saved with the attempt
      unit.waiting_pool = false;
      return PoolTurn::kGo;
    case PoolLease::What::kNoPool:
      return fail(pool + " does not exist (it was deleted; sluice pool set " + s.pool + " --slots N makes it again)");
    case PoolLease::What::kFull: break;
  }
  if (s.pool_slots > lease->slots)
    return fail("the step takes " + std::to_string(s.pool_slots) + " slots of " + pool + ", which has " +
                std::to_string(lease->slots));
  if (unit.waiting_pool) return PoolTurn::kWait;
  unit.waiting_pool = true;
  rec.reason = "waiting for " + pool + ": " + std::to_string(lease->used) + " of " + std::to_string(lease->slots) +
               " slots taken";
  Status st = store_->SaveSteps(run_id_, {&rec});
  if (!st.ok()) return st;
  Event e{Event::Kind::kWarning, rec.step_id, rec.item};
  e.message = rec.reason;
  Emit(e);
  return PoolTurn::kWait;
}

Status Engine::ReleasePool(size_t u) {
  Unit& unit = units_[u];
  if (!unit.leased) return Status::Ok();
  unit.leased = false;
  const StepRecord& rec = graph_.unit_record(u);
  return store_->ReleasePool(run_id_, rec.step_id, rec.item);
}

void Engine::RequeuePoolWaiting() {
  for (size_t u : pool_waiting_) {
    units_[u].waiting_pool = false;
    graph_.PushReady(u);
  }
  pool_waiting_.clear();
}

}  // namespace sluice::engine
