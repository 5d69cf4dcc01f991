// Store: the store file opened once, with one object per concern of it.
// Store::Open() opens (creating and migrating) the SQLite file and wires
// the concerns to its one connection; callers hand each consumer the part
// it uses, and hold the Store for as long as any part is in use:
//
//   db()        the connection, the journal's batch (Flush), data_version,
//               integrity_check (db.h)
//   runs()      runs, step records, attempts, metrics; the engine's
//               journal, engine::RunStore (runs.h)
//   lineage()   artifacts, lineage, cache lookups, gc (lineage.h)
//   registry()  the model registry (registry.h)
//   access()    API tokens, schedule fires, webhook deliveries (access.h)
//   services()  services' desired state and history (services.h)
//   gateway()   the serving gateway's claim and statistics windows (gateway.h)
//   rollouts()  deployments by the deploy/* step types and their events (rollouts.h)
//   feedback()  callers' rewards and labels of the gateway's answers (feedback.h)
//   approvals() manual approvals of sluice/approval steps (approvals.h)
//   concurrency() concurrency groups, pools and their leases (concurrency.h)
//
// One Store is used by one thread (a server thread opens its own); several
// processes may open the same file (db.h). A store for another database
// (PostgreSQL, for several schedulers) would provide the same concern
// classes' methods; they are concrete classes until a second one exists.
#pragma once

#include <memory>
#include <string>

#include "store/access.h"
#include "store/approvals.h"
#include "store/concurrency.h"
#include "store/db.h"
#include "store/feedback.h"
#include "store/gateway.h"
#include "store/lineage.h"
#include "store/registry.h"
#include "store/rollouts.h"
#include "store/runs.h"
#include "store/services.h"

namespace sluice::store {

class Store {
 public:
  // Opens (creating if needed) the database at `path` and migrates it to
  // the current schema. Refuses a database written by a newer Sluice.
  static Result<std::unique_ptr<Store>> Open(const std::string& path);

  Db& db() { return *db_; }
  RunsStore& runs() { return runs_; }
  LineageStore& lineage() { return lineage_; }
  RegistryStore& registry() { return registry_; }
  AccessStore& access() { return access_; }
  ServicesStore& services() { return services_; }
  GatewayStore& gateway() { return gateway_; }
  RolloutsStore& rollouts() { return rollouts_; }
  FeedbackStore& feedback() { return feedback_; }
  ApprovalsStore& approvals() { return approvals_; }
  ConcurrencyStore& concurrency() { return concurrency_; }

 private:
  explicit Store(std::unique_ptr<Db> db)
      : db_(std::move(db)),
        lineage_(*db_),
        registry_(*db_),
        concurrency_(*db_),
        runs_(*db_, lineage_, registry_, &concurrency_),
        access_(*db_),
        services_(*db_),
        gateway_(*db_),
        rollouts_(*db_),
        feedback_(*db_),
        approvals_(*db_) {}

  std::unique_ptr<Db> db_;  // first: destroyed last
  LineageStore lineage_;
  RegistryStore registry_;
  ConcurrencyStore concurrency_;
  RunsStore runs_;
  AccessStore access_;
  ServicesStore services_;
  GatewayStore gateway_;
  RolloutsStore rollouts_;
  FeedbackStore feedback_;
  ApprovalsStore approvals_;
};

}  // namespace sluice::store
