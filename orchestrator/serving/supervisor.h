// Supervisor: the serving gateway's replica processes (specs/services-design.md
// section 4). It starts each desired replica (a model version runs `sluice
// serve-model`, a command version its own argv), polls its readiness, takes
// it out of rotation when it dies or stops answering, restarts it after a
// doubling backoff, replaces a version's set when its revision changes (the
// new set beside the old; an old replica leaves as each new one is ready),
// and drains and stops what is no longer desired: out of the routing table,
// then SIGTERM to its process group once nothing is outstanding (or after
// the drain timeout), SIGKILL after the grace. A signal goes only to a pid
// whose start time still matches.
//
// Threading: not thread-safe. One thread (the gateway's control thread)
// calls every method. The Replica objects it hands out are shared with the
// routing tables: the supervisor writes their `port` and `in_rotation`
// atomics, the I/O threads their `outstanding` and `consecutive_failures`,
// which the supervisor only reads (drain). An I/O thread also ejects a
// failing replica (in_rotation false, `ejected_until_ms` set); a readiness
// poll that succeeds after that time puts it back.
//
// Ownership: the supervisor owns its children (spawned with exec::Spawn,
// reaped with exec::PollChild by it alone) and each slot's log file. It
// writes service_replicas and the "replica" history rows through the
// ServicesStore it is given (borrowed; it must outlive the supervisor and
// belong to the same thread). A store write that fails is logged to stderr
// and kept in last_error(); supervision goes on.
//
// Not here yet (seams for later build steps): adoption of replicas left
// running by an earlier gateway (section 3) would enter them through a
// method that takes a ReplicaRow and supervises it by SameProcessAlive
// instead of PollChild.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "serving/routing.h"
#include "store/services.h"

namespace sluice::serving {

// The timing of section 4, with the design's defaults; tests shorten them.
struct SupervisorOptions {
  // The sluice executable that model versions run `serve-model` with.
  std::string sluice_executable = "/proc/self/exe";
  // Logs go to <sluice_home>/services/<service>/<version>.<slot>.log, the
  // model server's port file beside it (<version>.<slot>.r<revision>.port).
  // Also SLUICE_HOME of children.
  std::string sluice_home;
  int64_t starting_poll_ms = 100;       // readiness poll while starting
  int64_t health_interval_ms = 1000;    // readiness poll once ready
  int unready_after = 2;                // failed polls in a row that take a ready replica out
  int64_t probe_timeout_ms = 200;       // one round of polls, all replicas at once
  int64_t backoff_initial_ms = 250;     // first restart delay, doubled per death
  int64_t backoff_max_ms = 30000;
  int64_t backoff_reset_after_ms = 60000;  // ready this long: the next death waits backoff_initial again
  int64_t drain_timeout_ms = 30000;     // a leaving replica with requests still outstanding
  int64_t grace_ms = 10000;             // SIGTERM to SIGKILL
  int64_t default_ready_timeout_ms = 120000;  // when the version's options name none
};

// Readiness polls: GET /v2/health/ready on 127.0.0.1:port, 200 is ready.
// Behind an interface so the gateway may later poll through its own async
// client. Called on the control thread only.
class ReadinessProbe {
 public:
  virtual ~ReadinessProbe() = default;
  // Polls every port at once; in the same order, whether each answered 200
  // within timeout_ms. Blocks at most about timeout_ms in all.
  virtual std::vector<bool> Probe(const std::vector<int>& ports, int64_t timeout_ms) = 0;
};

// The default probe: plain non-blocking POSIX sockets, one poll() over all.
class HttpReadinessProbe : public ReadinessProbe {
 public:
  std::vector<bool> Probe(const std::vector<int>& ports, int64_t timeout_ms) override;
};

// The argv of a model version's replica: `<sluice> serve-model <uri> --name
// <service> --model-version <n> --listen 127.0.0.1 --port 0 --port-file
// <port_file>`, then --threads, --max-batch, --max-wait-ms, --max-queue for
// those of the version's options JSON (threads, max_batch, max_wait_ms,
// max_queue) that are set and positive (max_wait_ms: 0 too).
// --model-version is left out for a file (model_version 0). InvalidSpec if
// the options are not a JSON object.
Result<std::vector<std::string>> ModelServerArgv(const std::string& sluice_executable, const std::string& service,
                                                 const store::ServiceVersionState& version,
                                                 const std::string& port_file);

// The marker environment of a replica (section 3: how a later gateway
// recognises its replicas): SLUICE_HOME, SLUICE_SERVICE,
// SLUICE_SERVICE_VERSION, SLUICE_REPLICA, SLUICE_REVISION, as "KEY=value".
std::vector<std::string> ReplicaMarkers(const std::string& sluice_home, const std::string& service,
                                        const std::string& version, int slot, int revision);

// Sends `signal` to the process group of `pid` only if `pid` still runs and
// started at `start_time` (a reused pid is never signalled). True if sent.
bool SignalIfSameProcess(int pid, int64_t start_time, int signal);

// Replicas left running by an earlier gateway of this store (one that was
// killed): each replica row of `services` whose pid still runs with the
// same start time and the row's markers gets SIGKILL to its process group,
// so the new gateway's supervisor starts the set afresh. Returns how many.
// (Adopting them instead, without a model reload, is section 3's plan.)
int EndLeftoverReplicas(store::ServicesStore& store, const std::vector<store::ServiceState>& services,
                        const std::string& sluice_home);

class Supervisor {
 public:
  // `probe` null: an HttpReadinessProbe.
  Supervisor(SupervisorOptions options, store::ServicesStore& store, std::unique_ptr<ReadinessProbe> probe = nullptr);
  // Kills (SIGKILL, by process group, same-process check) and reaps every
  // child still running: StopAll and Tick first for a clean stop.
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Makes `desired` (every service the gateway serves; a service left out
  // is gone) the replica set: per service and version that is not
  // removing or removed, slots 0..replicas-1 at the version's revision.
  // Starts what is missing now, replaces a changed revision by a new set
  // beside the old, drains what is no longer desired. Ignored after StopAll.
  void Reconcile(const std::vector<store::ServiceState>& desired, int64_t now_ms);

  // One round of supervision, every ~50 ms: reaps ended children (out of
  // rotation at once, restart after the backoff), reads model servers'
  // port files, polls readiness of those due (one round bounded by
  // probe_timeout_ms: the only blocking part), kills a replica not ready
  // within its ready_timeout (a crash), restarts those whose backoff is
  // over, retires old replicas as new ones become ready, and moves leaving
  // replicas through drain, SIGTERM and SIGKILL.
  void Tick(int64_t now_ms);

  // Gateway shutdown, tick-driven: every replica leaves (drain, SIGTERM,
  // SIGKILL after the grace) as Tick goes on; Reconcile is ignored from
  // now. Rows end as "stopped". Done when stopped() is true.
  void StopAll(int64_t now_ms);
  bool stopped() const { return stopping_all_ && replicas_.empty(); }

  // The version's replicas the routing table lists: those not leaving, in
  // slot order (during a revision change, old and new, the old first for
  // the same slot). Replicas not ready are listed with in_rotation false.
  std::vector<std::shared_ptr<Replica>> Replicas(const std::string& service, const std::string& version) const;
  // Moves whenever the membership Replicas() returns changes (a replica
  // added or leaving, for any version): rebuild the tables only then.
  int64_t replica_set_generation() const { return generation_; }
  // True while the version has any process or pending restart, leaving
  // ones included (a removing version is removed once this is false).
  bool HasReplicas(const std::string& service, const std::string& version) const;

  // The last store write that failed, or "".
  const std::string& last_error() const { return last_error_; }

  // For tests and the CLI's status: a replica's current row as written.
  struct Snapshot {
    store::ReplicaRow row;
    bool leaving = false;
    int64_t restart_at_ms = 0;  // backoff: when it restarts
  };
  std::vector<Snapshot> Snapshots() const;

 private:
  struct Managed;
  void Launch(Managed& m, int64_t now_ms);
  void OnExit(Managed& m, const std::string& how, int64_t now_ms);
  void Converge(int64_t now_ms);
  void Leave(Managed& m, int64_t now_ms);
  void Write(Managed& m, int64_t now_ms, const std::string& change_reason = "");
  void Forget(size_t index);
  bool SlotTakenByAnother(const Managed& m) const;

  SupervisorOptions options_;
  store::ServicesStore& store_;
  std::unique_ptr<ReadinessProbe> probe_;
  struct Desired {
    store::ServiceVersionState version;
    std::string service;
  };
  std::map<std::pair<std::string, std::string>, Desired> desired_;  // (service, version)
  std::vector<std::unique_ptr<Managed>> replicas_;
  int64_t generation_ = 0;
  bool stopping_all_ = false;
  std::string last_error_;
};

}  // namespace sluice::serving
