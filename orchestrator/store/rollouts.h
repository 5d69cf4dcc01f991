// RolloutsStore: deployments as the deploy/* step types drive them
// (specs/deploy.md, specs/store.md schema version 12). A rollout is one
// deployment step's drive of one service's traffic: which version is
// stable, which is the candidate, which of the strategy's steps it is at
// (so `sluice resume` continues it there), what a person asked of it
// (promote, abort) and what it decided, one event per traffic shift and
// analysis. The traffic itself is ServicesStore's: a step sets the weights
// there (as the service's traffic_owner), then records here what it did.
//
// A rollout is active while its state is progressing or paused; a service
// has at most one active rollout (Create refuses a second). Every write is
// a transaction of its own.
// REQUIRES (writes): no journal batch is open (db.h; checked).
//
// Who uses it: the deploy/* step types (deploy/), `sluice services
// promote|abort`, the API's promote and abort, the UI's service page.
// One object per thread, like its Db.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "store/db.h"

namespace sluice::store {

// progressing: shifting traffic or analysing; paused: waiting for a person
// (an inconclusive analysis with `inconclusive: pause`, or a step without a
// duration); the rest are ends.
enum class RolloutState { kProgressing, kPaused, kPromoted, kRolledBack, kAborted, kEnded };
const char* RolloutStateName(RolloutState s);
std::optional<RolloutState> ParseRolloutState(const std::string& name);
inline bool IsActive(RolloutState s) { return s == RolloutState::kProgressing || s == RolloutState::kPaused; }

struct RolloutRecord {
  int64_t id = 0;
  std::string service;
  std::string strategy;              // canary blue-green ab-test shadow rollback
  int64_t run_id = 0;
  std::string step_id;
  std::string stable_version;        // empty: the service had nothing serving
  std::string candidate_version;
  RolloutState state = RolloutState::kProgressing;
  int step_index = 0;
  int candidate_bp = 0;
  std::string request;               // "", promote, abort
  std::string request_actor;
  std::string reason;
  std::string config = "{}";         // JSON text
  std::string outputs;               // JSON text; empty until it ends
  int64_t started_ms = 0, updated_ms = 0, ended_ms = 0;  // ended_ms 0: not ended

  // The service's traffic_owner while this rollout drives it.
  std::string Owner() const { return "run:" + std::to_string(run_id) + "/" + step_id; }
};

struct RolloutEvent {
  int64_t id = 0;
  int64_t rollout_id = 0;
  int64_t at_ms = 0;
  std::string kind;                  // start shift analysis pause resume promote rollback abort end
  std::string message;
  std::string data;                  // JSON text; empty for none
};

// Where a rollout is now, written with one event.
struct RolloutProgress {
  RolloutState state = RolloutState::kProgressing;
  int step_index = 0;
  int candidate_bp = 0;
  std::string reason;
  std::string outputs;               // with an end state: JSON text of the result
};

class RolloutsStore {
 public:
  explicit RolloutsStore(Db& db) : db_(db) {}

  // Records a new rollout (state progressing, its "start" event) and
  // returns its id. Incompatible, naming it, when the service has an active
  // rollout already.
  // REQUIRES: no journal batch is open.
  Result<int64_t> Create(const RolloutRecord& r, const std::string& message, int64_t now_ms);
  // Moves a rollout to `p` and appends `kind`'s event with `message` and
  // `data`, in one transaction. An end state sets ended_ms and clears any
  // request. NotFound for no such rollout; Incompatible when it has ended.
  // REQUIRES: no journal batch is open.
  Status Advance(int64_t id, const RolloutProgress& p, const std::string& kind, const std::string& message,
                 const std::string& data, int64_t now_ms);
  // Appends an event and changes nothing else (an analysis that passed).
  // REQUIRES: no journal batch is open.
  Status Record(int64_t id, const std::string& kind, const std::string& message, const std::string& data,
                int64_t now_ms);

  // Asks the active rollout of `service` to promote or abort (`what`), as
  // `actor`; the step takes the request on its next look (TakeRequest).
  // Returns the rollout's id. NotFound when the service has no active
  // rollout; InvalidSpec for another `what`.
  // REQUIRES: no journal batch is open.
  Result<int64_t> Request(const std::string& service, const std::string& what, const std::string& actor,
                          int64_t now_ms);
  // The request pending on rollout `id` (what "" for none) and who asked,
  // cleared; an event "promote" or "abort" by its actor records that it
  // was taken.
  // REQUIRES: no journal batch is open.
  struct TakenRequest {
    std::string what;                // "", promote, abort
    std::string actor;
  };
  Result<TakenRequest> TakeRequest(int64_t id, int64_t now_ms);

  Result<RolloutRecord> Get(int64_t id);
  // The active rollout of a run's step, if any: what a retried or resumed
  // attempt continues.
  Result<std::optional<RolloutRecord>> ActiveOfStep(int64_t run_id, const std::string& step_id);
  // The active rollout of a service, if any.
  Result<std::optional<RolloutRecord>> ActiveOfService(const std::string& service);
  // A service's rollouts, newest first, at most `limit`.
  Result<std::vector<RolloutRecord>> OfService(const std::string& service, int limit);
  // A rollout's events with an id above `after_id`, oldest first.
  Result<std::vector<RolloutEvent>> Events(int64_t id, int64_t after_id);

 private:
  Status AppendEvent(int64_t id, const std::string& kind, const std::string& message, const std::string& data,
                     int64_t now_ms);

  Db& db_;
};

}  // namespace sluice::store
