// Api: the routes of `sluice serve` (specs/api.yaml, OpenAPI 3): the JSON
// API under /api, webhooks under /hooks, and the embedded web UI.
//
// Who may do what: the UI's files, /api/health and the session login are
// open; every other /api route needs a token (Authorization: Bearer) or a
// session cookie made from one, with the scope the route names (read for
// every GET, run to start, cancel or retry a run or to promote or abort a
// rollout or to set a model's alias, admin to change a service). A
// request made with the cookie
// that changes anything must carry the session's X-CSRF-Token header and,
// if it has an Origin, come from this server's own origin. Webhooks are
// authenticated by their HMAC signature instead. No GET changes state.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "server/catalog.h"
#include "server/events.h"
#include "server/http.h"
#include "server/launcher.h"
#include "store/access.h"
#include "store/runs.h"

namespace sluice::store {
class Store;
}  // namespace sluice::store

namespace sluice::server {

struct ApiOptions {
  std::string home;             // the state folder, absolute
  size_t max_log_chunk = 1 << 20;
};

class Api {
 public:
  Api(ApiOptions options, Catalog* catalog, Launcher* launcher, EventHub* events);
  ~Api();
  // Answers `r`. A request that changes something (any method but GET and
  // HEAD, but POST /api/validate) or is refused for its credentials (401,
  // 403) also writes one logfmt line to stdout: time, method, path,
  // status, the token's name, the run it started or touched, the reason.
  Response Handle(const Request& r);

 private:
  Response Route(const Request& r);
  struct Caller;
  struct Session {
    std::string token;  // its text, kept in memory only, so revoking it ends the session
    std::string csrf;
  };

  // This thread's connection to the store (one per server thread), by the
  // part a route uses.
  store::RunsStore& Runs();
  store::AccessStore& Access();
  store::Store& ThreadStore();
  // The actor of a change: "token:" + the authenticated token's name.
  static std::string Actor();
  bool Authorize(const Request& r, store::TokenScope needed, Response* refusal);

  Response Login(const Request& r);
  Response SessionInfo(const Request& r);
  Response Logout(const Request& r);
  Response ListPipelines();
  Response GetPipeline(const std::string& name);
  Response ValidateSpec(const Request& r);
  Response ListRuns(const Request& r);
  Response StartRun(const Request& r, const std::string& pipeline);
  Response GetRun(int64_t id);
  Response CancelRun(int64_t id);
  Response RetryRun(int64_t id);
  Response ListAttempts(int64_t id);
  Response DriverLog(const Request& r, int64_t id);
  Response StepLog(const Request& r, int64_t id, const std::string& step);
  Response DecideApproval(const Request& r, int64_t id, const std::string& step);
  Response Events(const Request& r);
  Response Artifact(const Request& r, const std::string& hash);
  // The model registry, a run's artifacts and the lineage (api_models.cc).
  Response ListModels();
  Response GetModel(const std::string& name);
  Response SetModelAlias(const Request& r, const std::string& name);
  Response RunArtifacts(const Request& r, int64_t id);
  Response LineageGraph(const Request& r);
  Response Hook(const Request& r, const std::string& pipeline);
  Response StaticFile(const std::string& path);
  // The services' admin routes (api_services.cc; specs/api.yaml).
  Response ServiceRoute(const Request& r, const std::string& service);
  Response ListServices();
  Response GetService(const std::string& name);
  Response ServiceHistory(const Request& r, const std::string& name);
  Response ServiceWindows(const Request& r, const std::string& name);
  Response ServiceSeries(const Request& r, const std::string& name);
  Response ServiceRollouts(const Request& r, const std::string& name);
  Response GetRollout(const Request& r, int64_t id);
  Response RequestOfRollout(const std::string& name, const std::string& what);
  Response PutService(const Request& r, const std::string& name);
  Response PatchTraffic(const Request& r, const std::string& name);
  Response DeleteService(const Request& r, const std::string& name);
  Response NoSuchService(const std::string& name);

  struct StoredSpec;  // api_runs.cc
  std::shared_ptr<const StoredSpec> StoredPipeline(const store::RunRow& row);

  ApiOptions options_;
  Catalog* catalog_;
  Launcher* launcher_;
  EventHub* events_;
  std::mutex mu_;
  std::map<std::string, Session> sessions_;                                // by cookie value
  std::map<std::string, std::shared_ptr<const StoredSpec>> specs_;       // stored specs by hash
};

// The server's answer to anything that went wrong: {"error": {"code", "message"}}.
Response ErrorResponse(int status, const std::string& code, const std::string& message);

}  // namespace sluice::server
