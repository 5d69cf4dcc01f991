// What limits a run across processes, decided for every driver alike
// (`sluice run`, `resume`, `retry`, and the children of `sluice serve`):
// the pools its steps name must exist with enough slots before it starts,
// and a run of a pipeline with `concurrency:` enters its group and waits,
// polling the store, until it holds it (specs/pipeline.md "Concurrency").
// The decisions are the store's transactions (store/concurrency.h); here
// are the rules around them and the process table they ask.
//
// Nothing here prints: the caller words what the hooks report.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

#include "spec/pipeline.h"
#include "store/concurrency.h"
#include "store/runs.h"

namespace sluice::runs {

// Has `pools` tell a live process by /proc (exec::SameProcessAlive): runs
// and leases of dead drivers then count for nothing.
void UseProcessTable(store::ConcurrencyStore& pools);

// Every pool a step of `p` names exists and has at least the slots the
// step takes. InvalidSpec, one located line per step that does not.
Status CheckPools(store::ConcurrencyStore& pools, const spec::Pipeline& p);

struct GroupWaitHooks {
  std::function<void(const store::GroupEntry&)> entered;  // what entering did to others
  std::function<void(int64_t holder)> waiting;            // the run holding the group, each time it changes
  std::function<bool()> interrupted;                      // true: stop waiting, cancel the run (Ctrl-C)
};

// Enters the run's group (row.group, not empty) and polls every `poll`
// until the run holds it (kAdmitted) or is cancelled while it waits
// (kCancelled: replaced by a newer run of the group, `sluice cancel`, or
// `interrupted`). REQUIRES: this process is the run's driver.
Result<store::GroupTurn::What> WaitForGroup(store::ConcurrencyStore& pools, store::RunsStore& runs,
                                            const store::RunRow& row, bool cancel_in_progress,
                                            const GroupWaitHooks& hooks,
                                            std::chrono::milliseconds poll = std::chrono::milliseconds(250));

}  // namespace sluice::runs
