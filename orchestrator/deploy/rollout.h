// Deployment: one deploy/* step's drive of one service (specs/deploy.md).
// What every strategy shares: the store of the attempt's run, the rollout
// record (RolloutsStore) that makes the drive resumable, the service's
// traffic_owner (only this step moves the weights while it runs), the
// gateway (started if none runs), the candidate's readiness, a traffic
// shift, a pause with analysis windows, and the two ends: promote and roll
// back.
//
// Every shift and decision is written to the rollout's events and the
// attempt's log and progress as it happens. A rollback sets the stable
// version's weight to 100% first (one store write the gateway sees within
// its poll), then records it, then takes the candidate out (the gateway
// drains it: it stops at zero requests in flight).
//
// Failures are thrown, as the step ABI's C++ helper expects: a rollback
// throws std::runtime_error("rolled back: <reason>"), a cancel of the run
// rolls back and rethrows sluice::Cancelled, a store or gateway error
// throws its message. Any of them after Begin() leaves traffic on stable.
//
// One Deployment per attempt, on the attempt's thread.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>
#include <sluice/plugin.hpp>

#include "deploy/analysis.h"
#include "deploy/metrics.h"
#include "deploy/target.h"
#include "exec/builtin.h"
#include "store/open.h"
#include "util/duration.h"

namespace sluice::deploy {

class Deployment {
 public:
  // Opens the store of the attempt running on this thread; throws if this
  // thread runs no built-in attempt or the store cannot be opened.
  Deployment(sluice::Context& ctx, std::string strategy);

  // The candidate of the step's `with:` (target.h), named "run<N>" if
  // nothing else names it.
  Candidate ResolveCandidate();

  // Starts this step's rollout of `c`, or continues the one a previous
  // attempt of the step left active (then `resumed()` and `step_index()`
  // say where). Starting: the service is made (new, the candidate at 100%
  // once ready) or given the candidate at weight 0, its weights are taken
  // (traffic_owner), and the rollout is recorded. `config` is the `with:`.
  void Begin(const Candidate& c);

  // Waits until the candidate's replicas are ready (checking cancel and
  // requests); rolls back when `timeout` passes.
  void WaitReady(Millis timeout);

  // The candidate gets `candidate_bp`, the stable version the rest; the
  // rollout moves to `step_index`.
  void Shift(int step_index, int candidate_bp, const std::string& why);

  enum class PauseEnd { kElapsed, kPromoteRequested };
  // Waits `duration` (none: until a person promotes or aborts), judging the
  // candidate's live traffic every analysis interval when `analysis` is
  // given. A failed analysis rolls back; an inconclusive one does what the
  // analysis says (pause, fail, extend).
  // `role`: whose traffic is judged, live (routed by weight) or pinned (a
  // blue-green preview reached by the x-sluice-version header).
  PauseEnd Pause(int step_index, std::optional<Millis> duration, const AnalysisSpec* analysis,
                 const std::string& role = "live");

  // All traffic to the candidate, the old stable version taken out after
  // `scale_down_delay` (kept in the outputs as `previous` for
  // deploy/rollback), the weights handed back; the rollout ends promoted.
  void Promote(Millis scale_down_delay, const std::string& why, nlohmann::json outputs = nlohmann::json::object());

  // Traffic back to stable (and the mirror off), the candidate out after
  // `delay`, the rollout ended in `state` with `outputs` (the step's result,
  // "version" set to the stable one), the weights handed back; does not
  // throw for the decision (store errors do). How an experiment that keeps
  // the stable version ends without failing: a shadow that passed without
  // promote, an A/B test that A won or that found no difference.
  // REQUIRES: Begin() of a service that had a stable version.
  void End(store::RolloutState state, const std::string& why, nlohmann::json outputs, Millis delay);

  // Traffic back to stable, the candidate out after `delay`, the rollout
  // ended in `state` (rolled_back or aborted); throws "rolled back: why".
  [[noreturn]] void RollBack(store::RolloutState state, const std::string& why, Millis delay);

  // Runs `body` (everything after the constructor): an error it throws
  // after Begin() that is not a decision (a store or gateway error) aborts
  // the rollout, traffic back to stable, and fails the step with it.
  void Drive(const std::function<void()>& body);

  // Checks cancel (rolls back and rethrows) and a person's request: abort
  // rolls back ("aborted by user:alice"); promote is returned true, and
  // promoted_by() says who.
  bool Tick();
  const std::string& promoted_by() const { return promoted_by_; }

  // The gateway's /metrics now (metrics.h).
  Result<Snapshot> Scrape();

  bool resumed() const { return resumed_; }
  int step_index() const { return rollout_.step_index; }
  const std::string& stable() const { return rollout_.stable_version; }
  const std::string& candidate() const { return rollout_.candidate_version; }
  const std::string& service() const { return service_; }
  const exec::BuiltinAttempt& attempt() const { return attempt_; }
  store::Store& store() { return *store_; }
  sluice::Context& ctx() { return ctx_; }
  // Appends an event to the rollout and a line to the log.
  void Note(const std::string& kind, const std::string& message, const nlohmann::json& data = nullptr);
  // Whether the gateway's routing table has a ready replica of `version`
  // (GET /v2/models/{service}/versions/{version}/ready answers 200).
  bool GatewayRoutesTo(const std::string& version);
  // Moves the weights (as the owner). A mirror to the candidate ends with
  // the move (a mirror version must have weight 0).
  void SetWeights(int candidate_bp, const std::string& reason);
  // Copies `bp` basis points (1..10000) of the live requests to the
  // candidate, or none with bp 0; all the live weight stays on stable.
  // REQUIRES: the candidate at 0% and a stable version.
  void SetMirror(int bp, const std::string& reason);
  // Who drives the service's weights while this rollout runs ("run:12/deploy").
  const std::string& owner() const { return owner_; }
  // How long a rolled-back candidate keeps running at 0% (with.abort_delay).
  Millis abort_delay() const { return abort_delay_; }
  // When the rollout's first event of `kind` happened (ms since the epoch),
  // or 0 if it has none.
  int64_t FirstEventAt(const std::string& kind);
  // Milliseconds since the epoch.
  static int64_t Now();

 private:
  void Check(const Status& st, const std::string& what);
  void Release();
  // A rollout of the service left active by a run that ended (cancelled or
  // failed while its driver was gone) is aborted first, as its owner would:
  // its stable version back to 100%, its candidate out, the weights handed
  // back. A rollout whose run may still go on is left alone.
  void TakeOverEndedRollout();
  // A version of this name on its way out (removing: its replicas drain)
  // is waited for until the gateway has stopped it, so that applying it
  // again starts a new set of replicas (a removed version comes back at
  // revision + 1) instead of meeting the draining ones.
  void WaitUntilGone(const std::string& version);
  // An OpenLineage RunEvent (COMPLETE) for a promotion, to
  // $SLUICE_OPENLINEAGE_FILE and/or $SLUICE_OPENLINEAGE_URL as the run's
  // events go: job "service.NAME.promote", input the served model file,
  // output the dataset "NAME/VERSION" in namespace "sluice-service".
  // Best effort: a failure is a line of the step's log.
  void EmitPromotionEvent(const std::string& artifact_uri);
  // Waits `delay` before `version` is taken out (a cancel cuts it short).
  void LetRunFor(const std::string& version, Millis delay);
  void RemoveVersion(const std::string& name, const std::string& reason);
  // The predicted classes of `version`'s live answers in the flushed
  // windows from the one holding `since_ms` on (the payload profile).
  std::map<std::string, int64_t> ClassesSince(const std::string& version, int64_t since_ms);

  sluice::Context& ctx_;
  std::string strategy_;
  exec::BuiltinAttempt attempt_;
  std::unique_ptr<store::Store> store_;
  std::string service_;
  std::string owner_;
  store::RolloutRecord rollout_;
  bool resumed_ = false;
  bool ended_ = false;
  Millis abort_delay_{5000};
  std::string promoted_by_;
  std::chrono::steady_clock::time_point next_request_poll_;  // Tick reads requests from the store no more often
};

}  // namespace sluice::deploy
