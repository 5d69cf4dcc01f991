// The `sluice` subcommands. Each returns the process exit code:
//   0 ok, 1 the run failed or something was not found, 2 bad spec, params or
//   usage, 130 the run was cancelled.
// cli/ is the one place where concrete classes are wired together.
#pragma once

#include <signal.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "store/open.h"

namespace sluice::cli {

constexpr int kExitOk = 0, kExitFailed = 1, kExitUsage = 2, kExitCancelled = 130;

using Overrides = std::vector<std::pair<std::string, std::string>>;

// Where state lives: $SLUICE_HOME, else ./.sluice.
std::string HomeDir();
// Opens (creating) the store in HomeDir(); prints the error and returns null on failure.
std::unique_ptr<store::Store> OpenStore();
// "42" -> 42, "latest" -> the newest run; prints an error for anything else.
// Messages name the run by its number, never as "latest".
bool ParseRunId(const std::string& text, int64_t* id);
// Prints `message` (and a newline) to stderr; returns `code`.
int Fail(const std::string& message, int code);
// Now, in milliseconds since the epoch (the wall clock the store records).
int64_t WallClockMs();
// "train", or "sweep[2]" for a foreach item.
std::string StepLabel(const std::string& step, int item);

// While it lives, SIGINT and SIGTERM call `handler` (which may only touch
// atomics); the handlers before it come back when it goes.
class InterruptHandler {
 public:
  explicit InterruptHandler(void (*handler)(int));
  ~InterruptHandler();
  InterruptHandler(const InterruptHandler&) = delete;
  InterruptHandler& operator=(const InterruptHandler&) = delete;

 private:
  struct sigaction old_int_ {}, old_term_ {};
};

int Validate(const std::vector<std::string>& files);
int Plan(const std::string& file, const Overrides& params, const std::string& format);
int Run(const std::string& file, const Overrides& params, int jobs, const std::string& grace, bool no_cache);
int Resume(const std::string& run, const std::string& grace, bool no_cache);
// `from`: that step and everything after it run again, none from the cache.
// `reload`: the spec file as it is now replaces the stored one.
int Retry(const std::string& run, const std::string& from, const std::string& grace, bool no_cache, bool reload);
int Cancel(const std::string& run);
// sluice approve / reject: the decision on a step waiting for approval, as
// Actor(); exit 2 for a bad value (the step keeps waiting), 1 if the step is
// not waiting.
int DecideApproval(const std::string& run, const std::string& step, bool approve, const Overrides& values,
                   const std::string& comment);
// Who the CLI records as making a change: `user:` + the login name.
std::string Actor();
// `pipeline` and `state` filter as the API's GET /api/runs does (empty: any).
int Runs(int limit, const std::string& pipeline, const std::string& state, const std::string& format);
int Show(const std::string& run, const std::string& format);
int Logs(const std::string& run, const std::string& step, int attempt, bool follow);
int Plugins(const std::string& dir, const std::string& format);
// Loads `library` as sluice would (refusing it with the reason if it cannot
// serve), then copies it into DIR/plugins/ under its own file name,
// replacing an older build of the same plugin atomically, and writes the
// copy's descriptor beside it.
int InstallPlugin(const std::string& library, const std::string& dir);
// Loads `library` as sluice would (refusing it with the reason) and writes
// its descriptor, LIB.json, beside it (exec/plugin_descriptor.h).
int DescribePlugin(const std::string& library);
int Lineage(const std::string& target, bool downstream, const std::string& format);
int Models(const std::string& name, bool all, const std::string& format);
// Sets `alias` to `version`; with `remove`, removes it (only if it points at
// `version`, when that is given).
int PromoteModel(const std::string& name, int version, const std::string& alias, bool remove);
// NAME@VERSION: archive (or unarchive) and delete.
int ArchiveModel(const std::string& ref, bool archived);
int DeleteModel(const std::string& ref);
int RegisterModel(const std::string& artifact, const std::string& name);
int ModelPath(const std::string& ref);
int Gc(const std::string& older_than, bool dry_run);
// API tokens for `sluice serve` (scopes read < run < admin).
int CreateToken(const std::string& name, const std::string& scope);
int ListTokens(const std::string& format);
int RevokeToken(int64_t id);
// pool set, list, delete (pool_commands.cc).
int SetPool(const std::string& name, int slots);
int ListPools(const std::string& format);
int DeletePool(const std::string& name);
int Schedules(const std::vector<std::string>& paths, int count, const std::string& format);
// The most runs one backfill starts.
constexpr size_t kMaxBackfillRuns = 10000;
// One run of `file` per fire time of its `schedule_number`th schedule (from
// 1) from `from` to `to`, each with its data interval, at most `max_active`
// at once; an interval whose newest run succeeded or is still going is
// skipped unless `reprocess` is "all". `dry_run`: only lists the intervals.
int Backfill(const std::string& file, const std::string& from, const std::string& to, int schedule_number,
             int max_active, const std::string& reprocess, bool dry_run, const Overrides& params);

// Services (cli/services_commands.cc): the desired state in the store; a
// change is recorded with actor user:<login name> and `reason` (empty: a
// default naming the command). Exit 2 on a spec error (FILE:LINE:COL lines).
// Then, unless no_gateway, makes sure a gateway serves the store: one that
// runs is named, else one is started in the background on `port`
// (EnsureGateway); with a `wait_timeout` (a duration: 2m), waits that long
// at most for the service's replicas (WaitForReplicas).
int ServicesApply(const std::string& file, const std::string& reason, int port, bool no_gateway,
                  const std::string& wait_timeout);
int Services(bool as_json);
int ShowService(const std::string& name, bool as_json);
int ServiceHistory(const std::string& name, int limit);
int DeleteService(const std::string& name, const std::string& reason);
// Asks the service's active rollout to `what` (promote or abort) as
// user:<login name>; exit 1 when it has none.
int AskRollout(const std::string& name, const std::string& what);

// The serving gateway (cli/gateway_commands.cc).
struct GatewayCliOptions {
  std::string listen = "127.0.0.1";
  int port = 8080;
  int threads = 2;
  bool background = false;  // started by services apply: logs to $SLUICE_HOME/gateway.log, ignores SIGHUP
};
// Runs the store's gateway until SIGINT, SIGTERM or `sluice gateway stop`.
int RunGateway(const GatewayCliOptions& options);
// Asks the store's gateway to stop and waits (45 s at most) for it to go.
int StopGateway();
// Asks the gateway `g` (a live holder of the store's gateway role) to stop:
// stop_requested in its row, then SIGTERM; waits (45 s at most) for the
// process to go (its replicas drained and stopped). True once it is gone.
bool StopGatewayProcess(store::Store& store, const store::GatewayRecord& g);
// Names the gateway that serves the store, or starts `sluice gateway
// --background --port PORT` (its own process group, output to
// $SLUICE_HOME/gateway.log) and waits up to 10 s for it to listen.
int EnsureGateway(int port);
// Waits until every desired replica of `service` (each active version's
// slots at its revision) is ready; past `limit`, exit 1 naming each slot
// that is not, with its state, last exit and log.
int WaitForReplicas(const std::string& service, std::chrono::milliseconds limit);

struct ServeModelOptions {
  std::string model;  // a TorchScript file or NAME@VERSION / NAME@ALIAS / NAME@latest
  std::string name;   // in URLs; default: the registry name, or "model"
  std::string listen = "127.0.0.1";
  int port = 8081;
  int threads = 0;  // request threads; 0: the plugin's default
  int max_batch = 1;
  double max_wait_ms = 2;
  int max_queue = -1;                      // -1: the plugin's default
  std::string token_env;                   // a variable holding a bearer token
  std::vector<std::string> allowed_hosts;  // Host names answered besides IP addresses and localhost
  std::string read_timeout = "10s";        // a request's header and body, or an idle connection
  int max_connections = 1024;
  // Once listening, the bound port is written to PORT_FILE.tmp, which is
  // then renamed to this file: a reader never sees a partial number, and
  // --port 0 has no race between picking a port and using it. Empty: none.
  std::string port_file;
  // The version reported as model_version (and in the metadata's versions)
  // for a model file; 0: "1". With a registry reference it must be the
  // version the reference resolves to.
  int model_version = 0;
};
int ServeModel(const ServeModelOptions& options);

struct ServeOptions {
  std::string dir = ".";
  std::string listen = "127.0.0.1";
  int port = 8080;
  int threads = 0;  // 0: one per core, at least 2
  size_t max_body = 1 << 20;
  int max_connections = 1024;
  std::string read_timeout = "10s";
  int max_active_runs = 16;  // runs the server drives at once; more wait in state queued
};
int Serve(const ServeOptions& options);

}  // namespace sluice::cli
