// ConcurrencyStore: what limits runs across processes (specs/store.md,
// schema version 17): the runs' concurrency groups (a pipeline's
// `concurrency:`), and named pools of slots with the leases attempts hold.
//
// Several processes drive runs at once (each `sluice run` / `resume`, and
// the children of `sluice serve`), so every decision here is one SQLite
// transaction (BEGIN IMMEDIATE: writers are serialised), and a run or lease
// whose process is gone counts for nothing: a run holds its group, and a
// lease its slots, only while the recorded process (pid and start time)
// lives. Whether it does is asked of `alive` (set by the CLI to
// exec::SameProcessAlive; the store reads no /proc itself).
//
// Who writes: the drivers (groups, leases), `sluice pool` (pools). Who
// reads: `sluice show`, `sluice pool list`. One object per thread, like its Db.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/run_store.h"
#include "store/db.h"

namespace sluice::store {

// Whether the process with this pid and start time still lives.
using ProcessAlive = std::function<bool(int64_t pid, int64_t start)>;

struct PoolLeaseRow {
  std::string pool;
  int64_t run_id = 0;
  std::string step_id;
  int item = -1;
  int slots = 1;
  int64_t holder_pid = 0, holder_start = 0;  // the run's driver that took it
  int64_t leased_ms = 0;
};

struct PoolRow {
  std::string name;
  int slots = 0;
  int64_t updated_ms = 0;
  std::vector<PoolLeaseRow> leases;  // held by live processes only, oldest first
  int used() const {
    int n = 0;
    for (const auto& l : leases) n += l.slots;
    return n;
  }
};


// Entering a concurrency group: what it did to the group's other runs.
struct GroupEntry {
  std::vector<int64_t> replaced;    // older runs that waited in the group: now cancelled
  std::vector<int64_t> cancelling;  // cancel_in_progress: the run holding the group, asked to cancel
  int64_t replaced_by = 0;          // a newer run waits in the group: this one is cancelled instead
};

// One look at whether a run may start in its group.
struct GroupTurn {
  enum class What { kAdmitted, kWaiting, kCancelled } what = What::kAdmitted;
  int64_t holder = 0;  // kWaiting: the run that holds the group
};

class ConcurrencyStore {
 public:
  explicit ConcurrencyStore(Db& db);

  // How liveness is told (default: every process counts as alive, so
  // nothing is reclaimed).
  void SetProcessAlive(ProcessAlive alive) { alive_ = std::move(alive); }

  // --- groups. REQUIRES: no journal batch is open (each is a transaction).
  // The run enters `group` (recorded on the run; it holds it no longer).
  // Newer runs win, by id (the order they were created in): the group's
  // older runs still waiting (pending, not holding it) are cancelled, as
  // are their unfinished steps; if a newer one waits (its driver alive, or
  // none yet), this run is the one cancelled (`replaced_by`). With
  // `cancel_in_progress`, a run holding the group whose driver lives is
  // asked to cancel (its driver polls runs.cancel_requested, as for
  // `sluice cancel`).
  Result<GroupEntry> EnterGroup(int64_t run_id, const std::string& group, bool cancel_in_progress, int64_t now_ms);
  // The run takes its group if no other run of it holds it (pending or
  // running, its driver alive): kAdmitted. kCancelled when the run was
  // cancelled meanwhile, or a cancel was asked for (then it is marked
  // cancelled here). Else kWaiting, with the holder.
  Result<GroupTurn> TryAdmit(int64_t run_id, int64_t now_ms);
  // The run of `group` holding it now (its driver alive), 0 for none.
  Result<int64_t> GroupHolder(const std::string& group);

  // --- pools. REQUIRES: no journal batch is open.
  // Creates the pool or changes its slots (fewer than are leased: new
  // leases wait until enough end).
  Status SetPool(const std::string& name, int slots, int64_t now_ms);
  // Deletes the pool and its leases left by dead processes. NotFound for no
  // such pool; Incompatible while a live process holds a lease of it.
  Status DeletePool(const std::string& name);
  Result<std::vector<PoolRow>> ListPools();
  Result<std::optional<PoolRow>> GetPool(const std::string& name);

  // --- leases: journal calls (they join the open batch, whose BEGIN
  // IMMEDIATE makes the count and the insert one decision).
  // Leases `want.slots` of `want.pool` for an attempt of (run, step, item),
  // after deleting the pool's leases whose holder is dead. The holder is
  // the run's recorded driver (`want`'s holder fields are not read). A
  // lease the same (run, step, item) still has is replaced.
  Result<engine::PoolLease> Lease(const PoolLeaseRow& want);
  // Gives back the lease of (run, step, item), if any.
  Status Release(int64_t run_id, const std::string& step_id, int item);

 private:
  // The pool's leases; those of dead holders are deleted when `reclaim`.
  Result<std::vector<PoolLeaseRow>> Leases(const std::string& pool, bool reclaim);
  // Marks the run and its unfinished steps cancelled.
  Status CancelRun(int64_t run_id, const std::string& reason, int64_t now_ms);

  Db& db_;
  ProcessAlive alive_;
};

}  // namespace sluice::store
