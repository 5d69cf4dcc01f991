#include "exec/routing_executor.h"

namespace sluice::exec {

RoutingExecutor::Where RoutingExecutor::Route(const std::string& executor) {
  return executor == "slurm" ? Where::kSlurm : Where::kLocal;
}

RoutingExecutor::RoutingExecutor(engine::Executor* local, engine::Executor* slurm) : local_(local), slurm_(slurm) {}

engine::Executor* RoutingExecutor::For(const engine::Placement& placement) const {
  return Route(placement.executor) == Where::kSlurm ? slurm_ : local_;
}

namespace {
Status NoSlurm(const engine::AttemptRequest& r) {
  return Status::Internal("step " + r.step_label + " runs on Slurm, but this run has no Slurm executor");
}
}  // namespace

Result<engine::Started> RoutingExecutor::Start(const engine::AttemptRequest& request) {
  engine::Executor* e = For(request.placement);
  if (!e) return NoSlurm(request);
  auto started = e->Start(request);
  if (started.ok()) owner_[request.attempt_id] = e;
  return started;
}

std::vector<Result<engine::Started>> RoutingExecutor::StartAll(
    const std::vector<const engine::AttemptRequest*>& requests) {
  std::vector<Result<engine::Started>> out(requests.size(), Result<engine::Started>(engine::Started{}));
  for (engine::Executor* e : {local_, slurm_}) {
    std::vector<size_t> mine;
    std::vector<const engine::AttemptRequest*> batch;
    for (size_t i = 0; i < requests.size(); ++i)
      if (For(requests[i]->placement) == e) {
        mine.push_back(i);
        batch.push_back(requests[i]);
      }
    if (batch.empty()) continue;
    if (!e) {
      for (size_t i : mine) out[i] = NoSlurm(*requests[i]);
      continue;
    }
    std::vector<Result<engine::Started>> started = e->StartAll(batch);
    for (size_t k = 0; k < mine.size(); ++k) {
      if (started[k].ok()) owner_[requests[mine[k]]->attempt_id] = e;
      out[mine[k]] = std::move(started[k]);
    }
  }
  return out;
}

void RoutingExecutor::Stop(int64_t attempt_id, bool hard) {
  auto it = owner_.find(attempt_id);
  (it == owner_.end() ? local_ : it->second)->Stop(attempt_id, hard);
}

std::optional<engine::AttemptExit> RoutingExecutor::Ended(std::optional<engine::AttemptExit> e) {
  if (e) owner_.erase(e->attempt_id);
  return e;
}

std::optional<engine::AttemptExit> RoutingExecutor::Wait(engine::TimePoint deadline) {
  // A deadline already past: the Slurm executor only hands over what it queued.
  if (slurm_)
    if (auto e = slurm_->Wait(engine::TimePoint::min())) return Ended(std::move(e));
  if (auto e = local_->Wait(deadline)) return Ended(std::move(e));
  // Woken: by a Slurm job's end (its on_end), or for the engine to look at its flags.
  if (slurm_) return Ended(slurm_->Wait(engine::TimePoint::min()));
  return std::nullopt;
}

void RoutingExecutor::Wake() { local_->Wake(); }

int RoutingExecutor::Slots(const engine::AttemptRequest& request) {
  engine::Executor* e = For(request.placement);
  return e ? e->Slots(request) : 0;
}

Status RoutingExecutor::CheckStart(const engine::AttemptRequest& request) {
  engine::Executor* e = For(request.placement);
  return e ? e->CheckStart(request) : Status::Ok();
}

nlohmann::json RoutingExecutor::CodeIdentity(const engine::AttemptRequest& request) {
  return local_->CodeIdentity(request);
}

nlohmann::json RoutingExecutor::ParamsSchema(const engine::AttemptRequest& request) {
  return local_->ParamsSchema(request);
}

Status RoutingExecutor::Adopt(const engine::AttemptRecord& attempt) {
  if (slurm_) {
    Status st = slurm_->Adopt(attempt);
    if (st.ok()) owner_[attempt.id] = slurm_;
    if (st.code() != Code::kNotFound) return st;  // adopted, or Slurm's own job that cannot be followed
  }
  Status st = local_->Adopt(attempt);
  if (st.ok()) owner_[attempt.id] = local_;
  return st;
}

}  // namespace sluice::exec
