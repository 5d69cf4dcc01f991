#include "runs/concurrency.h"

#include <thread>

#include "engine/executor.h"
#include "exec/process.h"
#include "util/strings.h"

namespace sluice::runs {

namespace {

// Now, as records keep it (the engine's clock, milliseconds since the epoch).
int64_t WallMs() { return engine::SystemClock().WallMs(); }

}  // namespace

void UseProcessTable(store::ConcurrencyStore& pools) {
  pools.SetProcessAlive([](int64_t pid, int64_t start) {
    return pid > 0 && exec::SameProcessAlive(static_cast<int>(pid), start);
  });
}

Status CheckPools(store::ConcurrencyStore& pools, const spec::Pipeline& p) {
  std::vector<std::string> errors;
  for (const spec::Step& s : p.steps) {
    if (s.pool.empty()) continue;
    auto pool = pools.GetPool(s.pool);
    if (!pool.ok()) return pool.status();
    if (!*pool)
      errors.push_back(spec::At(p.file, s.pool_pos,
                                "step " + Quote(s.id) + " uses pool " + Quote(s.pool) +
                                    ", which does not exist (sluice pool set " + s.pool + " --slots N creates it)"));
    else if ((*pool)->slots < s.pool_slots)
      errors.push_back(spec::At(p.file, s.pool_pos,
                                "step " + Quote(s.id) + " takes " + std::to_string(s.pool_slots) + " slots of pool " +
                                    Quote(s.pool) + ", which has " + std::to_string((*pool)->slots)));
  }
  if (errors.empty()) return Status::Ok();
  return Status::InvalidSpec(Join(errors, "\n"));
}

Result<store::GroupTurn::What> WaitForGroup(store::ConcurrencyStore& pools, store::RunsStore& runs,
                                            const store::RunRow& row, bool cancel_in_progress,
                                            const GroupWaitHooks& hooks, std::chrono::milliseconds poll) {
  auto entry = pools.EnterGroup(row.id, row.group, cancel_in_progress, WallMs());
  if (!entry.ok()) return entry.status();
  if (hooks.entered) hooks.entered(*entry);
  int64_t last_holder = 0;
  while (true) {
    if (hooks.interrupted && hooks.interrupted()) {
      Status st = runs.RequestCancel(row.id);  // TryAdmit cancels it
      if (!st.ok()) return st;
    }
    auto turn = pools.TryAdmit(row.id, WallMs());
    if (!turn.ok()) return turn.status();
    if (turn->what != store::GroupTurn::What::kWaiting) return turn->what;
    if (turn->holder != last_holder && hooks.waiting) hooks.waiting(turn->holder);
    last_holder = turn->holder;
    std::this_thread::sleep_for(poll);
  }
}

}  // namespace sluice::runs
