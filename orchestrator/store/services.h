// ServicesStore: services' desired state and its history (specs/store.md,
// schema version 11; the design is specs/services-design.md section 2). A
// service is a deployed model with versions; what a user, the admin API or
// a deployment step wants of it is its desired state: the applied document,
// its versions (what runs, how many replicas, which weight), sticky and
// mirror settings. The gateway (serving/) reads it and makes it so.
//
// Every desired-state write is one transaction of its own (BEGIN IMMEDIATE)
// that also appends its service_changes row: no writer skips the history.
// REQUIRES: no journal batch is open (db.h; checked, an Internal error).
//
// Who uses it: `sluice services` (apply, list, show, history, delete), the
// gateway, and later the admin API and the deployment step types. It knows
// nothing of service.yaml: serving::ServiceSpec turns a document into a
// ServiceState. One object per thread, like its Db.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "store/db.h"

namespace sluice::store {

// One version of a service, as desired.
struct ServiceVersionState {
  std::string name;                  // blue, green, ...
  std::string kind;                  // "model" or "command"
  // kind model: the reference as written and what it resolved to at apply.
  std::string model_ref;             // fashion@2, or a file
  std::string model_name;            // empty for a file
  int model_version = 0;             // 0 for a file
  std::string artifact;              // hash; empty if unregistered
  std::string uri;                   // the file or folder served
  // kind command: JSON text of argv and env.
  std::string command;               // ["python3","srv.py"]
  std::string env;                   // {"MODE":"fast"}
  std::string workdir;
  std::string port_env;
  std::string options = "{}";        // JSON: threads, max_batch, ready_timeout_ms, ...
  int replicas = 1;
  int weight_bp = 0;                 // basis points, 0..10000
  // Filled by the store on reads, ignored by Apply:
  int ordinal = 0;                   // order first applied (sticky bucket order)
  int revision = 0;                  // +1 each time what runs changes
  std::string state;                 // active | removing | removed
};

// A service's desired state.
struct ServiceState {
  std::string name;
  std::string spec;                  // canonical JSON of the applied document
  std::string spec_hash;             // of `spec`: the same hash again is no change
  std::string sticky_header, sticky_field, sticky_salt;  // empty: not sticky
  std::string mirror_version;        // empty: no mirror
  int mirror_bp = 0;                 // 0..10000
  std::string infer_token_hash;      // empty: infer is open
  // Apply: true when the document had no traffic (an existing service keeps
  // its versions' weights, a new version gets 0); the versions' weight_bp
  // are then ignored.
  bool keep_weights = false;
  std::vector<ServiceVersionState> versions;  // reads: by ordinal, removed ones left out
  // Filled by the store on reads:
  std::string traffic_owner;
  int64_t generation = 0;
  int64_t created_ms = 0, updated_ms = 0;
};

// One row of a service's history.
struct ServiceChange {
  int64_t id = 0;
  std::string service;
  int64_t at_ms = 0;
  std::string kind;                  // apply, delete, traffic, replica, ejection
  std::string actor;                 // user:alice, token:ci, run:12/deploy#3, gateway
  std::string reason;
  std::string before, after;         // the spec before and after; empty for none
};

// One replica's row in service_replicas, as the gateway's supervisor keeps
// it (serving/supervisor.h). The row of a slot belongs to the slot's newest
// replica: during a revision change the old one, leaving, writes no row.
struct ReplicaRow {
  std::string service, version;
  int slot = 0;
  int revision = 0;
  int pid = 0;                       // 0: no process (backoff, stopped)
  int64_t start_time = 0;            // exec::ProcessStartTime of pid; 0 with it
  int port = 0;                      // 0: not known yet
  std::string state;                 // starting | ready | unready | ejected | draining | backoff | stopped
  int restarts = 0;
  std::string last_exit;             // "exited with status 3", "killed by signal 9 (SIGKILL)"; empty: none
  std::string log_path;
  int64_t started_ms = 0, ready_ms = 0;  // 0: never (NULL in the table)
  int64_t updated_ms = 0;
};

// What SetTraffic changes: the live weights, and the mirror if asked.
struct TrafficChange {
  // (version, basis points): the versions named get these weights, every
  // other active version 0. The weights must add up to exactly 10000.
  std::vector<std::pair<std::string, int>> weights_bp;
  bool set_mirror = false;           // false: the mirror stays as it is
  std::string mirror_version;        // with set_mirror: empty ends the mirror
  int mirror_bp = 0;                 // with a mirror_version: 1..10000
  int64_t expected_generation = 0;   // 0: any; else the generation the caller saw
  // Who drives the weights: empty for a person or the admin API, "run:12/deploy"
  // for a rollout. While the service's traffic_owner is set, only it may.
  std::string owner;
};

// What Apply did.
struct ApplyOutcome {
  bool changed = false;              // false: the same document was applied already
  int64_t change_id = 0;             // the history row (0 when unchanged)
  int64_t generation = 0;            // the service's generation after the call
};

class ServicesStore {
 public:
  explicit ServicesStore(Db& db) : db_(db) {}

  // Makes `desired` the service's desired state and appends an "apply" row
  // to its history, in one transaction. Applying a document whose
  // spec_hash equals the live one changes nothing and records nothing.
  // A version named for the first time gets the next ordinal and revision
  // 1; a version whose kind, model, command, env, workdir, port_env or
  // options change gets revision + 1 (its replicas are replaced); a version
  // left out of the document becomes "removing" with weight 0. Applying a
  // deleted service's name creates it again (its generation goes on).
  // While a rollout drives the service (traffic_owner set), only that
  // owner may apply (as `actor`): anyone else gets Incompatible naming it.
  // REQUIRES: no journal batch is open.
  Result<ApplyOutcome> Apply(const ServiceState& desired, const std::string& actor, const std::string& reason,
                             int64_t now_ms);
  // Deletes a service: it is no longer listed or found, its versions become
  // "removing" with weight 0 (the gateway stops their replicas), and a
  // "delete" row goes into its history, which stays readable. NotFound if
  // there is no such service; Incompatible while a rollout drives it.
  // REQUIRES: no journal batch is open.
  Status Delete(const std::string& name, const std::string& actor, const std::string& reason, int64_t now_ms);

  // Sets a service's live weights (and its mirror, if asked) and nothing
  // else, and appends a "traffic" row (before and after: the JSON
  // {"traffic": {"blue": 9000, ...}, "mirror": {"version", "bp"} | null}, in
  // basis points) in one transaction; the generation goes up by one. It
  // returns the change (changed is always true: even the same weights again
  // are a change, recorded). The spec document is not touched: re-applying it unchanged
  // keeps these weights.
  // Errors: NotFound for no such service (or a deleted one); Incompatible
  // when expected_generation is given and is not the live one, or the
  // service's traffic_owner is set and is not change.owner; InvalidSpec,
  // naming each problem, for a version that is not active in the service, a
  // weight outside 0..10000 or named twice, weights not adding up to 10000,
  // a weight on a 0-replica version, and a mirror to an unknown version, to
  // one with weight or 0 replicas, or with a share outside 1..10000.
  // REQUIRES: no journal batch is open.
  Result<ApplyOutcome> SetTraffic(const std::string& name, const TrafficChange& change, const std::string& actor,
                             const std::string& reason, int64_t now_ms);

  // Hands who drives the service's weights from `expected` to `owner`
  // ("run:12/deploy" while a rollout runs; empty: anyone) and appends an
  // "owner" row to its history, in one transaction. Incompatible when the
  // live traffic_owner is neither `expected` nor `owner` (setting the same
  // owner again changes nothing and records nothing); NotFound for no such
  // service.
  // REQUIRES: no journal batch is open.
  Status SetTrafficOwner(const std::string& name, const std::string& owner, const std::string& expected,
                         const std::string& actor, const std::string& reason, int64_t now_ms);

  // A service's desired state (NotFound if none, or deleted), with its
  // versions that are not removed, by ordinal.
  Result<ServiceState> Get(const std::string& name);
  // Every service that is not deleted, by name.
  Result<std::vector<ServiceState>> List();
  // A service's history, newest first: at most `limit` rows with an id
  // below `before_id` (0: from the newest). Deleted services keep theirs;
  // an unknown name has none.
  Result<std::vector<ServiceChange>> History(const std::string& name, int64_t before_id, int limit);

  // --- replicas: written by the gateway alone (its control thread)
  // Writes the row of (service, version, slot), replacing the one there.
  // With a `change_reason`, also appends a "replica" row by actor "gateway"
  // to the service's history, in the same transaction (a death: "replica 1
  // of blue exited with status 3; restarting in 250 ms").
  // REQUIRES: no journal batch is open.
  Status PutReplica(const ReplicaRow& row, const std::string& change_reason = "");
  // Removes the row of (service, version, slot); none there is no error.
  // REQUIRES: no journal batch is open.
  Status DeleteReplica(const std::string& service, const std::string& version, int slot);
  // A service's replica rows, by version name and slot (deleted services
  // included: the rows are the gateway's, whatever the desired state says).
  Result<std::vector<ReplicaRow>> Replicas(const std::string& service);
  // Appends an event of the gateway's to a service's history, changing
  // nothing else (kind "ejection": a replica taken out of rotation after
  // consecutive failures; actor "gateway"). Returns the row's id.
  // REQUIRES: no journal batch is open.
  Result<int64_t> RecordEvent(const std::string& service, const std::string& kind, const std::string& reason,
                              int64_t now_ms);

 private:
  Status ReadVersions(ServiceState& s);
  Result<int64_t> AppendChange(const std::string& service, const std::string& kind, const std::string& actor,
                               const std::string& reason, const std::string& before, const std::string& after,
                               int64_t now_ms);
  Status ApplyVersions(const ServiceState& desired, int64_t now_ms);

  Db& db_;
};

}  // namespace sluice::store
