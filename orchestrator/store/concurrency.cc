#include "store/concurrency.h"

#include <sqlite3.h>

namespace sluice::store {

ConcurrencyStore::ConcurrencyStore(Db& db) : db_(db), alive_([](int64_t, int64_t) { return true; }) {}

Status ConcurrencyStore::CancelRun(int64_t run_id, const std::string& reason, int64_t now_ms) {
  Query run = db_.Prepare(
      "UPDATE runs SET state = 'cancelled', finished_ms = ?, cancel_requested = 0 WHERE id = ? "
      "AND state IN ('pending', 'running')");
  if (run.Bind(1, now_ms).Bind(2, run_id).Step() != SQLITE_DONE) return db_.Error("cancel run " + std::to_string(run_id));
  Query steps = db_.Prepare(
      "UPDATE steps SET state = 'cancelled', reason = ?, seq = (SELECT IFNULL(MAX(seq), 0) + 1 FROM steps) "
      "WHERE run_id = ? AND state IN ('pending', 'running')");
  if (steps.Bind(1, reason).Bind(2, run_id).Step() != SQLITE_DONE)
    return db_.Error("cancel the steps of run " + std::to_string(run_id));
  return Status::Ok();
}

Result<GroupEntry> ConcurrencyStore::EnterGroup(int64_t run_id, const std::string& group, bool cancel_in_progress,
                                                int64_t now_ms) {
  GroupEntry out;
  Status st = db_.Transaction("EnterGroup", [&]() -> Status {
    Query set = db_.Prepare("UPDATE runs SET concurrency_group = ?, group_admitted = 0 WHERE id = ?");
    if (set.Bind(1, group).Bind(2, run_id).Step() != SQLITE_DONE) return db_.Error("enter concurrency group");
    Query others = db_.Prepare(
        "SELECT id, group_admitted, IFNULL(driver_pid, 0), IFNULL(driver_start, 0) FROM runs "
        "WHERE concurrency_group = ? AND id <> ? AND state IN ('pending', 'running') ORDER BY id");
    others.Bind(1, group).Bind(2, run_id);
    std::vector<int64_t> waiting;
    Status read = others.ForEachRow("read concurrency group", [&] {
      int64_t id = others.Int(0), pid = others.Int(2);
      bool live = pid == 0 || alive_(pid, others.Int(3));  // no driver yet: `sluice serve` is starting one
      if (others.Int(1) == 0 && id < run_id) waiting.push_back(id);
      else if (others.Int(1) == 0 && live && out.replaced_by == 0) out.replaced_by = id;
      else if (others.Int(1) != 0 && cancel_in_progress && pid != 0 && alive_(pid, others.Int(3)))
        out.cancelling.push_back(id);
    });
    if (!read.ok()) return read;
    if (out.replaced_by != 0) {  // a newer run waits: this one is the older, replaced
      out.cancelling.clear();
      return CancelRun(run_id, "replaced by run " + std::to_string(out.replaced_by) + " in concurrency group " + group,
                       now_ms);
    }
    for (int64_t id : waiting) {
      Status c = CancelRun(id, "replaced by run " + std::to_string(run_id) + " in concurrency group " + group, now_ms);
      if (!c.ok()) return c;
      out.replaced.push_back(id);
    }
    for (int64_t id : out.cancelling) {
      Query ask = db_.Prepare("UPDATE runs SET cancel_requested = 1 WHERE id = ?");
      if (ask.Bind(1, id).Step() != SQLITE_DONE) return db_.Error("request cancel of run " + std::to_string(id));
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return out;
}

Result<GroupTurn> ConcurrencyStore::TryAdmit(int64_t run_id, int64_t now_ms) {
  GroupTurn turn;
  Status st = db_.Transaction("TryAdmit", [&]() -> Status {
    Query me = db_.Prepare("SELECT state, cancel_requested, IFNULL(concurrency_group, '') FROM runs WHERE id = ?");
    me.Bind(1, run_id);
    if (me.Step() != SQLITE_ROW) return db_.Error("read run " + std::to_string(run_id));
    std::string state = me.Text(0), group = me.Text(2);
    bool asked = me.Int(1) != 0;
    me.Reset();
    if (state != "pending" && state != "running") {
      turn.what = GroupTurn::What::kCancelled;
      return Status::Ok();
    }
    if (asked) {
      turn.what = GroupTurn::What::kCancelled;
      return CancelRun(run_id, "run cancelled", now_ms);
    }
    auto holder = GroupHolder(group);
    if (!holder.ok()) return holder.status();
    if (*holder != 0 && *holder != run_id) {
      turn.what = GroupTurn::What::kWaiting;
      turn.holder = *holder;
      return Status::Ok();
    }
    Query take = db_.Prepare("UPDATE runs SET group_admitted = 1 WHERE id = ?");
    if (take.Bind(1, run_id).Step() != SQLITE_DONE) return db_.Error("take concurrency group");
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return turn;
}

Result<int64_t> ConcurrencyStore::GroupHolder(const std::string& group) {
  Query q = db_.Prepare(
      "SELECT id, IFNULL(driver_pid, 0), IFNULL(driver_start, 0) FROM runs "
      "WHERE concurrency_group = ? AND group_admitted = 1 AND state IN ('pending', 'running') ORDER BY id");
  q.Bind(1, group);
  int64_t holder = 0;
  Status st = q.ForEachRow("read concurrency group", [&] {
    if (holder == 0 && q.Int(1) != 0 && alive_(q.Int(1), q.Int(2))) holder = q.Int(0);
  });
  if (!st.ok()) return st;
  return holder;
}

Status ConcurrencyStore::SetPool(const std::string& name, int slots, int64_t now_ms) {
  return db_.Transaction("SetPool", [&]() -> Status {
    Query q = db_.Prepare(
        "INSERT INTO pools(name, slots, updated_ms) VALUES (?, ?, ?) "
        "ON CONFLICT(name) DO UPDATE SET slots = excluded.slots, updated_ms = excluded.updated_ms");
    if (q.Bind(1, name).Bind(2, slots).Bind(3, now_ms).Step() != SQLITE_DONE) return db_.Error("set pool " + name);
    return Status::Ok();
  });
}

Result<std::vector<PoolLeaseRow>> ConcurrencyStore::Leases(const std::string& pool, bool reclaim) {
  Query q = db_.Prepare(
      "SELECT pool, run_id, step_id, item, slots, holder_pid, holder_start, leased_ms FROM pool_leases "
      "WHERE pool = ? ORDER BY leased_ms, run_id");
  q.Bind(1, pool);
  std::vector<PoolLeaseRow> live, dead;
  Status st = q.ForEachRow("read pool leases", [&] {
    PoolLeaseRow l{q.Text(0), q.Int(1), q.Text(2), static_cast<int>(q.Int(3)), static_cast<int>(q.Int(4)),
                   q.Int(5), q.Int(6), q.Int(7)};
    (alive_(l.holder_pid, l.holder_start) ? live : dead).push_back(std::move(l));
  });
  if (!st.ok()) return st;
  if (reclaim)
    for (const PoolLeaseRow& l : dead) {
      Query del = db_.Prepare("DELETE FROM pool_leases WHERE run_id = ? AND step_id = ? AND item = ?");
      if (del.Bind(1, l.run_id).Bind(2, l.step_id).Bind(3, l.item).Step() != SQLITE_DONE)
        return db_.Error("reclaim a lease of pool " + pool);
    }
  return live;
}

Status ConcurrencyStore::DeletePool(const std::string& name) {
  return db_.Transaction("DeletePool", [&]() -> Status {
    auto leases = Leases(name, /*reclaim=*/true);
    if (!leases.ok()) return leases.status();
    if (!leases->empty())
      return Status::Incompatible("pool " + name + " has " + std::to_string(leases->size()) +
                                  " leases held by running steps (run " + std::to_string(leases->front().run_id) +
                                  ", step " + leases->front().step_id + "); delete it when they end");
    Query q = db_.Prepare("DELETE FROM pools WHERE name = ?");
    if (q.Bind(1, name).Step() != SQLITE_DONE) return db_.Error("delete pool " + name);
    if (db_.Changes() == 0) return Status::NotFound("no pool " + name);
    return Status::Ok();
  });
}

Result<std::optional<PoolRow>> ConcurrencyStore::GetPool(const std::string& name) {
  Query q = db_.Prepare("SELECT name, slots, updated_ms FROM pools WHERE name = ?");
  q.Bind(1, name);
  int rc = q.Step();
  if (rc == SQLITE_DONE) return std::optional<PoolRow>();
  if (rc != SQLITE_ROW) return db_.Error("read pool " + name);
  PoolRow row{q.Text(0), static_cast<int>(q.Int(1)), q.Int(2), {}};
  q.Reset();
  auto leases = Leases(name, /*reclaim=*/false);
  if (!leases.ok()) return leases.status();
  row.leases = std::move(*leases);
  return std::optional<PoolRow>(std::move(row));
}

Result<std::vector<PoolRow>> ConcurrencyStore::ListPools() {
  Query q = db_.Prepare("SELECT name, slots, updated_ms FROM pools ORDER BY name");
  std::vector<PoolRow> out;
  Status st = q.ForEachRow("list pools", [&] {
    out.push_back(PoolRow{q.Text(0), static_cast<int>(q.Int(1)), q.Int(2), {}});
  });
  if (!st.ok()) return st;
  for (PoolRow& p : out) {
    auto leases = Leases(p.name, /*reclaim=*/false);
    if (!leases.ok()) return leases.status();
    p.leases = std::move(*leases);
  }
  return out;
}

Result<engine::PoolLease> ConcurrencyStore::Lease(const PoolLeaseRow& want) {
  Status st = db_.JoinBatch();
  if (!st.ok()) return st;
  engine::PoolLease out;
  Query pool = db_.Prepare("SELECT slots FROM pools WHERE name = ?");
  pool.Bind(1, want.pool);
  int rc = pool.Step();
  if (rc == SQLITE_DONE) {
    out.what = engine::PoolLease::What::kNoPool;
    return out;
  }
  if (rc != SQLITE_ROW) return db_.Abandon(db_.Error("read pool " + want.pool));
  out.slots = static_cast<int>(pool.Int(0));
  pool.Reset();
  st = Release(want.run_id, want.step_id, want.item);  // a lease its attempt left (a resumed run)
  if (!st.ok()) return db_.Abandon(st);
  auto leases = Leases(want.pool, /*reclaim=*/true);
  if (!leases.ok()) return db_.Abandon(leases.status());
  for (const PoolLeaseRow& l : *leases) out.used += l.slots;
  if (out.used + want.slots > out.slots) {
    out.what = engine::PoolLease::What::kFull;
    return out;
  }
  // The holder is the run's driver, as recorded (runs.driver_pid): a lease
  // lives as long as the process that drives its run.
  Query ins = db_.Prepare(
      "INSERT INTO pool_leases(pool, run_id, step_id, item, slots, holder_pid, holder_start, leased_ms) "
      "SELECT ?, id, ?, ?, ?, IFNULL(driver_pid, 0), IFNULL(driver_start, 0), ? FROM runs WHERE id = ?");
  ins.Bind(1, want.pool).Bind(2, want.step_id).Bind(3, want.item).Bind(4, want.slots).Bind(5, want.leased_ms);
  ins.Bind(6, want.run_id);
  if (ins.Step() != SQLITE_DONE) return db_.Abandon(db_.Error("lease pool " + want.pool));
  out.what = engine::PoolLease::What::kLeased;
  return out;
}

Status ConcurrencyStore::Release(int64_t run_id, const std::string& step_id, int item) {
  Status st = db_.JoinBatch();
  if (!st.ok()) return st;
  Query q = db_.Prepare("DELETE FROM pool_leases WHERE run_id = ? AND step_id = ? AND item = ?");
  if (q.Bind(1, run_id).Bind(2, step_id).Bind(3, item).Step() != SQLITE_DONE)
    return db_.Abandon(db_.Error("release pool lease"));
  return Status::Ok();
}

}  // namespace sluice::store
