// RunsStore (store/runs.h): the run's outputs, table run_outputs
// (specs/store.md, version 16).
#include "store/runs.h"

#include <sqlite3.h>

namespace sluice::store {

Status RunsStore::SaveRunOutputs(int64_t run_id, const std::vector<engine::RunOutputValue>& outputs) {
  Status st = Join();
  if (!st.ok()) return st;
  Query clear = db_.Prepare("DELETE FROM run_outputs WHERE run_id = ?");
  if (clear.Bind(1, run_id).Step() != SQLITE_DONE)
    return db_.Abandon(db_.Error("clear the outputs of run " + std::to_string(run_id)));
  Query q = db_.Prepare("INSERT INTO run_outputs(run_id, name, position, value, reason) VALUES (?, ?, ?, ?, ?)");
  for (size_t i = 0; i < outputs.size(); ++i) {
    const engine::RunOutputValue& o = outputs[i];
    q.Bind(1, run_id).Bind(2, o.name).Bind(3, static_cast<int64_t>(i)).Bind(5, o.reason);
    if (o.value) q.Bind(4, *o.value);
    else q.BindNull(4);
    if (q.Step() != SQLITE_DONE)
      return db_.Abandon(db_.Error("save output " + o.name + " of run " + std::to_string(run_id)));
    q.Reset();
  }
  return Status::Ok();
}

Result<std::vector<engine::RunOutputValue>> RunsStore::RunOutputs(int64_t run_id) {
  Query q = db_.Prepare("SELECT name, value, reason FROM run_outputs WHERE run_id = ? ORDER BY position");
  q.Bind(1, run_id);
  std::vector<engine::RunOutputValue> out;
  Status st = q.ForEachRow("read the outputs of run " + std::to_string(run_id), [&] {
    engine::RunOutputValue o;
    o.name = q.Text(0);
    if (!q.IsNull(1)) o.value = q.Text(1);
    o.reason = q.Text(2);
    out.push_back(std::move(o));
  });
  if (!st.ok()) return st;
  return out;
}

}  // namespace sluice::store
