// RoutingExecutor: the one executor the engine sees. It composes the local
// executor and, when a step of the run asks for it, the Slurm one, and sends
// each attempt to the executor its placement names. Route() is the one place
// where the names `executor:` takes ("local", "slurm") are told apart.
//
// Each attempt stays with the executor that started (or adopted) it: Stop()
// goes there, and its AttemptExit comes back through Wait(), which
// multiplexes both: it takes an end the Slurm executor has queued, else
// blocks in the local executor's Wait(). So the Slurm executor must wake the
// local one when it queues an end (SlurmExecutor's `on_end`, set to the
// local executor's Wake() by whoever builds them, cli/ today).
//
// Slots() is the answer of the executor the placement names (Slurm: 0).
// CodeIdentity() and ParamsSchema() are always the local executor's: they
// are the plugin catalog's, and a Slurm node loads the same plugin folders.
//
// Ownership: borrows both executors; they must outlive it. Threading: as
// engine::Executor (the engine's thread; Wake() from anywhere).
#pragma once

#include <map>

#include "engine/executor.h"

namespace sluice::exec {

class RoutingExecutor : public engine::Executor {
 public:
  enum class Where { kLocal, kSlurm };
  // Where a step's `executor:` (Placement::executor) runs: "slurm" on the
  // cluster, anything else (the loader allows only "local") here.
  static Where Route(const std::string& executor);

  // `slurm` may be null when no step of the run asks for it; an attempt
  // placed there then fails to start.
  RoutingExecutor(engine::Executor* local, engine::Executor* slurm);

  Result<engine::Started> Start(const engine::AttemptRequest& request) override;
  // Splits the requests by executor; each gets its own in one call, so
  // Slurm can still make one job array of a foreach step's items.
  std::vector<Result<engine::Started>> StartAll(const std::vector<const engine::AttemptRequest*>& requests) override;
  void Stop(int64_t attempt_id, bool hard) override;
  std::optional<engine::AttemptExit> Wait(engine::TimePoint deadline) override;
  void Wake() override;
  int Slots(const engine::AttemptRequest& request) override;
  Status CheckStart(const engine::AttemptRequest& request) override;
  nlohmann::json CodeIdentity(const engine::AttemptRequest& request) override;
  nlohmann::json ParamsSchema(const engine::AttemptRequest& request) override;
  // Services run here: the local executor's.
  Result<int> ServicePort() override { return local_->ServicePort(); }
  bool ServiceReady(const engine::ServiceCheck& check) override { return local_->ServiceReady(check); }
  // Asks the Slurm executor (it knows its job ids), then the local one.
  Status Adopt(const engine::AttemptRecord& attempt) override;

 private:
  // The executor for `placement`; null when it is Slurm and there is none.
  engine::Executor* For(const engine::Placement& placement) const;
  std::optional<engine::AttemptExit> Ended(std::optional<engine::AttemptExit> e);

  engine::Executor* local_;
  engine::Executor* slurm_;
  std::map<int64_t, engine::Executor*> owner_;  // running attempts, by attempt id
};

}  // namespace sluice::exec
