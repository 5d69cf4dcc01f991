// The API (server/api.h): authentication, sessions, routing, the log line,
// and the UI's files. The pipelines' and runs' routes are in api_runs.cc,
// webhooks in api_hooks.cc, services in api_services.cc, models, artifacts
// and lineage in api_models.cc.
#include "server/api.h"
#include "server/api_helpers.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "runs/verbs.h"
#include "server/web_assets.h"
#include "store/open.h"
#include "util/hash.h"
#include "util/json.h"
#include "util/strings.h"

namespace sluice::server {

namespace fs = std::filesystem;
using json = nlohmann::json;
using store::TokenScope;

using internal::Json;
using internal::ParseId;

namespace internal {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Response Json(int status, const json& body) {
  Response r;
  r.status = status;
  r.body = JsonText(body);
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

bool ParseId(const std::string& text, int64_t* id) {
  if (text.empty() || text.size() > 18) return false;
  for (char c : text)
    if (c < '0' || c > '9') return false;
  *id = std::stoll(text);
  return *id > 0;
}

// The real path of `p` if it exists and lies under `dir` (both resolved).
std::optional<fs::path> ResolveInside(const fs::path& p, const fs::path& dir) {
  std::error_code ec;
  fs::path real = fs::canonical(p, ec);
  if (ec) return std::nullopt;
  fs::path root = fs::canonical(dir, ec);
  if (ec || !Inside(real, root)) return std::nullopt;
  return real;
}

}  // namespace internal

namespace {

bool ConstantTimeEqual(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string RandomHex(size_t bytes) {
  std::vector<unsigned char> raw(bytes);
  if (RAND_bytes(raw.data(), static_cast<int>(bytes)) != 1) throw std::runtime_error("no random bytes from OpenSSL");
  return HexEncode(raw.data(), raw.size());
}

std::string Cookie(const Request& r, std::string_view name) {
  std::string all = r.Header("cookie");
  size_t pos = 0;
  while (pos < all.size()) {
    size_t end = all.find(';', pos);
    std::string part = all.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    size_t b = part.find_first_not_of(' ');
    if (b != std::string::npos) part = part.substr(b);
    if (part.size() > name.size() && part.compare(0, name.size(), name) == 0 && part[name.size()] == '=')
      return part.substr(name.size() + 1);
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return "";
}

// Who the request in hand on this thread authenticated as (a request is
// answered on one thread, start to end): its token's name, for the log line.
thread_local std::string t_caller;

}  // namespace


Response ErrorResponse(int status, const std::string& code, const std::string& message) {
  return Json(status, {{"error", {{"code", code}, {"message", message}}}});
}

Api::Api(ApiOptions options, Catalog* catalog, Launcher* launcher, EventHub* events)
    : options_(std::move(options)), catalog_(catalog), launcher_(launcher), events_(events) {}

Api::~Api() = default;

namespace {
// One connection per server thread (a Store is used by one thread).
store::Store& OpenThreadStore(const std::string& home) {
  thread_local std::map<std::string, std::unique_ptr<store::Store>> stores;
  auto& s = stores[home];
  if (!s) {
    auto opened = store::Store::Open(home + "/sluice.db");
    if (!opened.ok()) throw std::runtime_error(opened.status().message());
    s = std::move(*opened);
  }
  return *s;
}
}  // namespace

store::Store& Api::ThreadStore() { return OpenThreadStore(options_.home); }
store::RunsStore& Api::Runs() { return ThreadStore().runs(); }
store::AccessStore& Api::Access() { return ThreadStore().access(); }
std::string Api::Actor() { return "token:" + t_caller; }

bool Api::Authorize(const Request& r, TokenScope needed, Response* refusal) {
  std::string auth = r.Header("authorization");
  std::string token;
  bool cookie = false;
  std::string csrf;
  if (!auth.empty()) {
    if (auth.rfind("Bearer ", 0) != 0) {
      *refusal = ErrorResponse(401, "unauthenticated", "Authorization must be 'Bearer <token>'");
      return false;
    }
    token = auth.substr(7);
  } else if (std::string id = Cookie(r, "sluice_session"); !id.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sessions_.find(id);
    if (it != sessions_.end()) {
      token = it->second.token;
      csrf = it->second.csrf;
      cookie = true;
    }
  }
  if (token.empty()) {
    *refusal = ErrorResponse(401, "unauthenticated",
                             "this route needs a token (Authorization: Bearer <token>; sluice token create) or a session");
    return false;
  }
  auto found = Access().FindToken(token);
  if (!found.ok() || !*found) {
    *refusal = ErrorResponse(401, "unauthenticated", "the token is not valid (unknown or revoked)");
    return false;
  }
  if (cookie && r.method != "GET" && r.method != "HEAD") {
    std::string origin = r.Header("origin");
    if (!origin.empty() && origin != "http://" + r.Header("host") && origin != "https://" + r.Header("host")) {
      *refusal = ErrorResponse(403, "forbidden", "cross-origin request refused");
      return false;
    }
    if (!ConstantTimeEqual(r.Header("x-csrf-token"), csrf)) {
      *refusal = ErrorResponse(403, "forbidden", "missing or wrong X-CSRF-Token for this session");
      return false;
    }
  }
  t_caller = (*found)->name.empty() ? "token " + std::to_string((*found)->id) : (*found)->name;
  if (!(*found)->Allows(needed)) {
    *refusal = ErrorResponse(403, "forbidden",
                             std::string("this route needs scope ") + store::TokenScopeName(needed) + "; the token has " +
                                 store::TokenScopeName((*found)->scope));
    return false;
  }
  return true;
}

Response Api::Handle(const Request& r) {
  t_caller.clear();
  Response res = Route(r);
  bool reading = r.method == "GET" || r.method == "HEAD";
  bool validating = r.method == "POST" && r.segments.size() == 2 && r.segments[0] == "api" && r.segments[1] == "validate";
  bool refused = res.status == 401 || res.status == 403;
  if ((reading || validating) && !refused) return res;
  std::string path = r.target.substr(0, r.target.find('?'));
  std::string line = IsoTime(std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count()) +
                     " event=request method=" + LogValue(r.method) + " path=" + LogValue(path) +
                     " status=" + std::to_string(res.status);
  if (!t_caller.empty()) line += " who=" + LogValue(t_caller);
  else if (!r.segments.empty() && r.segments[0] == "hooks") line += " who=webhook";
  auto body = json::parse(res.body, nullptr, false);
  if (body.is_object()) {
    for (const char* key : {"run", "id"})
      if (body.contains(key) && body[key].is_number_integer()) {
        line += " run=" + std::to_string(body[key].get<int64_t>());
        break;
      }
    if (body.contains("delivery") && body["delivery"].is_string()) line += " delivery=" + LogValue(body["delivery"].get<std::string>());
    const json& error = body.contains("error") ? body["error"] : json();
    if (error.is_object() && error.contains("message") && error["message"].is_string())
      line += " reason=" + LogValue(error["message"].get<std::string>());
  }
  line += "\n";
  std::fputs(line.c_str(), stdout);
  std::fflush(stdout);
  return res;
}

Response Api::Route(const Request& r) {
  const auto& s = r.segments;
  const std::string& m = r.method;
  auto method_not_allowed = [&](const char* allow) {
    Response res = ErrorResponse(405, "method_not_allowed", m + " is not allowed here (allowed: " + allow + ")");
    res.headers.emplace_back("Allow", allow);
    return res;
  };
  if (s.empty() || (s.size() == 1 && s[0] != "api" && s[0] != "hooks")) {
    if (m != "GET" && m != "HEAD") return method_not_allowed("GET");
    return StaticFile(s.empty() ? "index.html" : s[0]);
  }
  if (s[0] == "hooks") {
    if (s.size() != 2) return ErrorResponse(404, "not_found", "no such route");
    if (m != "POST") return method_not_allowed("POST");
    return Hook(r, s[1]);
  }
  if (s[0] != "api") return ErrorResponse(404, "not_found", "no such route");
  if (s.size() == 2 && s[1] == "health") {
    if (m != "GET" && m != "HEAD") return method_not_allowed("GET");
    return Json(200, {{"ok", true}});
  }
  if (s.size() == 2 && s[1] == "session") {
    if (m == "POST") return Login(r);
    if (m == "GET") return SessionInfo(r);
    if (m == "DELETE") return Logout(r);
    return method_not_allowed("GET, POST, DELETE");
  }
  bool reading = m == "GET" || m == "HEAD";
  Response refusal;
  // Each route: the method it takes, then the scope it needs.
  auto guard = [&](const char* method, TokenScope scope) -> std::optional<Response> {
    if (m != method) return method_not_allowed(method);
    if (!Authorize(r, scope, &refusal)) return refusal;
    return std::nullopt;
  };
  int64_t id = 0;
  if (s.size() == 2 && s[1] == "pipelines") {
    if (auto g = guard("GET", TokenScope::kRead)) return *g;
    return ListPipelines();
  }
  if (s.size() == 2 && s[1] == "validate") {
    if (auto g = guard("POST", TokenScope::kRead)) return *g;
    return ValidateSpec(r);
  }
  if (s.size() >= 3 && s[1] == "pipelines") {
    if (s.size() == 3) {
      if (auto g = guard("GET", TokenScope::kRead)) return *g;
      return GetPipeline(s[2]);
    }
    if (s.size() == 4 && s[3] == "runs") {
      if (reading) {
        if (auto g = guard("GET", TokenScope::kRead)) return *g;
        Request q = r;
        q.query.emplace_back("pipeline", s[2]);
        return ListRuns(q);
      }
      if (auto g = guard("POST", TokenScope::kRun)) return *g;
      return StartRun(r, s[2]);
    }
    return ErrorResponse(404, "not_found", "no such route");
  }
  if (s.size() == 2 && s[1] == "runs") {
    if (auto g = guard("GET", TokenScope::kRead)) return *g;
    return ListRuns(r);
  }
  if (s.size() == 2 && s[1] == "events") {
    if (auto g = guard("GET", TokenScope::kRead)) return *g;
    return Events(r);
  }
  if (s.size() == 3 && s[1] == "artifacts") {
    if (auto g = guard("GET", TokenScope::kRead)) return *g;
    return Artifact(r, s[2]);
  }
  if (s.size() == 2 && s[1] == "models") {
    if (auto g = guard("GET", TokenScope::kRead)) return *g;
    return ListModels();
  }
  if (s.size() == 3 && s[1] == "models") {
    if (auto g = guard("GET", TokenScope::kRead)) return *g;
    return GetModel(s[2]);
  }
  if (s.size() == 4 && s[1] == "models" && s[3] == "aliases") {
    if (auto g = guard("POST", TokenScope::kRun)) return *g;
    return SetModelAlias(r, s[2]);
  }
  if (s.size() == 2 && s[1] == "lineage") {
    if (auto g = guard("GET", TokenScope::kRead)) return *g;
    return LineageGraph(r);
  }
  if (s.size() == 2 && s[1] == "services") {
    if (auto g = guard("GET", TokenScope::kRead)) return *g;
    return ListServices();
  }
  if (s.size() >= 3 && s.size() <= 4 && s[1] == "services") return ServiceRoute(r, s[2]);
  if (s.size() == 3 && s[1] == "rollouts") {
    if (!ParseId(s[2], &id)) return ErrorResponse(404, "not_found", "no rollout " + Quote(s[2]) + " (rollouts are numbered 1, 2, ...)");
    if (auto g = guard("GET", TokenScope::kRead)) return *g;
    return GetRollout(r, id);
  }
  if (s.size() >= 3 && s[1] == "runs") {
    if (!ParseId(s[2], &id)) return ErrorResponse(404, "not_found", "no run " + Quote(s[2]) + " (runs are numbered 1, 2, ...)");
    if (s.size() == 3) {
      if (auto g = guard("GET", TokenScope::kRead)) return *g;
      return GetRun(id);
    }
    if (s.size() == 4 && s[3] == "cancel") {
      if (auto g = guard("POST", TokenScope::kRun)) return *g;
      return CancelRun(id);
    }
    if (s.size() == 4 && s[3] == "retry") {
      if (auto g = guard("POST", TokenScope::kRun)) return *g;
      return RetryRun(id);
    }
    if (s.size() == 4 && s[3] == "attempts") {
      if (auto g = guard("GET", TokenScope::kRead)) return *g;
      return ListAttempts(id);
    }
    if (s.size() == 4 && s[3] == "artifacts") {
      if (auto g = guard("GET", TokenScope::kRead)) return *g;
      return RunArtifacts(r, id);
    }
    if (s.size() == 4 && s[3] == "log") {
      if (auto g = guard("GET", TokenScope::kRead)) return *g;
      return DriverLog(r, id);
    }
    if (s.size() == 6 && s[3] == "steps" && s[5] == "approval") {
      if (auto g = guard("POST", TokenScope::kRun)) return *g;
      return DecideApproval(r, id, s[4]);
    }
    if (s.size() == 6 && s[3] == "steps" && s[5] == "log") {
      if (auto g = guard("GET", TokenScope::kRead)) return *g;
      return StepLog(r, id, s[4]);
    }
  }
  return ErrorResponse(404, "not_found", "no such route");
}

// --- sessions ---------------------------------------------------------------

Response Api::Login(const Request& r) {
  json body = json::parse(r.body, nullptr, false);
  if (!body.is_object() || !body.contains("token") || !body["token"].is_string())
    return ErrorResponse(400, "bad_request", "expected {\"token\": \"slc_...\"}");
  std::string token = body["token"];
  auto found = Access().FindToken(token);
  if (!found.ok() || !*found) return ErrorResponse(401, "unauthenticated", "the token is not valid (unknown or revoked)");
  std::string id = RandomHex(32), csrf = RandomHex(32);
  {
    std::lock_guard<std::mutex> lock(mu_);
    sessions_[id] = Session{token, csrf};
  }
  Response res = Json(200, {{"scope", store::TokenScopeName((*found)->scope)}, {"name", (*found)->name}, {"csrf", csrf}});
  res.headers.emplace_back("Set-Cookie", "sluice_session=" + id + "; Path=/; HttpOnly; SameSite=Strict");
  return res;
}

Response Api::SessionInfo(const Request& r) {
  std::string id = Cookie(r, "sluice_session");
  Session session;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sessions_.find(id);
    if (id.empty() || it == sessions_.end()) return Json(200, {{"scope", nullptr}});  // not signed in: not an error
    session = it->second;
  }
  auto found = Access().FindToken(session.token);
  if (!found.ok() || !*found) return Json(200, {{"scope", nullptr}});
  return Json(200, {{"scope", store::TokenScopeName((*found)->scope)}, {"name", (*found)->name}, {"csrf", session.csrf}});
}

Response Api::Logout(const Request& r) {
  Response refusal;
  if (!Authorize(r, TokenScope::kRead, &refusal)) return refusal;
  std::lock_guard<std::mutex> lock(mu_);
  sessions_.erase(Cookie(r, "sluice_session"));
  Response res = Json(200, {{"ok", true}});
  res.headers.emplace_back("Set-Cookie", "sluice_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
  return res;
}

// --- the UI -----------------------------------------------------------------

Response Api::StaticFile(const std::string& path) {
  const WebAsset* a = FindWebAsset(path);
  if (!a) return ErrorResponse(404, "not_found", "no such file");
  Response res;
  res.content_type = a->content_type;
  res.static_body = std::string_view(reinterpret_cast<const char*>(a->data), a->size);
  res.headers.emplace_back("Cache-Control", "no-cache");
  res.headers.emplace_back("Content-Security-Policy",
                           "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                           "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
  res.headers.emplace_back("X-Frame-Options", "DENY");
  res.headers.emplace_back("Referrer-Policy", "no-referrer");
  return res;
}

}  // namespace sluice::server
