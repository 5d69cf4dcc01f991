#include "server/api.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "engine/plan.h"
#include "runs/verbs.h"
#include "server/web_assets.h"
#include "server/webhook.h"
#include "spec/expr.h"
#include "store/open.h"
#include "store/run_json.h"
#include "util/hash.h"
#include "util/json.h"
#include "util/strings.h"

namespace sluice::server {

namespace fs = std::filesystem;
using engine::RunState;
using engine::StepState;
using json = nlohmann::json;
using store::TokenScope;

namespace {

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

// The real path of `p` if it exists and lies under `dir` (both resolved).
std::optional<fs::path> ResolveInside(const fs::path& p, const fs::path& dir) {
  std::error_code ec;
  fs::path real = fs::canonical(p, ec);
  if (ec) return std::nullopt;
  fs::path root = fs::canonical(dir, ec);
  if (ec || !Inside(real, root)) return std::nullopt;
  return real;
}

json ParamsOf(const spec::Pipeline& p) {
  json out = json::array();
  for (const spec::ParamSpec& ps : p.params) {
    json j = {{"name", ps.name}, {"type", spec::ParamTypeName(ps.type)}, {"description", ps.description}};
    j["default"] = ps.default_value ? ps.default_value->ToJson() : json();
    j["required"] = !ps.default_value;
    if (ps.min) j["min"] = *ps.min;
    if (ps.max) j["max"] = *ps.max;
    if (!ps.allowed.empty()) {
      j["enum"] = json::array();
      for (const auto& v : ps.allowed) j["enum"].push_back(v.ToJson());
    }
    out.push_back(j);
  }
  return out;
}

json DagOf(const spec::Pipeline& p, const spec::ParamValues* params) {
  engine::Plan plan = engine::MakePlan(p);
  std::vector<engine::Forecast> forecast;
  if (params) forecast = engine::ForecastPlan(plan, *params);
  json steps = json::array();
  for (size_t i : plan.order) {
    const spec::Step& s = p.steps[i];
    json j = {{"id", s.id}, {"needs", s.needs}, {"layer", plan.layer[i]}, {"foreach", s.has_foreach},
              {"kind", s.uses.empty() ? "run" : s.uses}};
    if (!forecast.empty()) {
      auto k = forecast[i].kind;
      j["forecast"] = k == engine::Forecast::Kind::kRuns ? "runs" : k == engine::Forecast::Kind::kSkipped ? "skipped" : "at-run-time";
      if (forecast[i].items >= 0) j["items"] = forecast[i].items;
    }
    steps.push_back(j);
  }
  return steps;
}

// Left running or pending by a driver that is gone (kill -9): `sluice resume` finishes it.
using runs::Interrupted;

std::string RunJsonText(const store::RunRow& r) { return store::RunJsonText(r, Interrupted(r), NowMs()); }

json RunJson(const store::RunRow& r) { return store::RunJson(r, Interrupted(r), NowMs()); }

// How deeply `j` nests (0 for a scalar, 1 for [1]), counted without
// recursion; stops counting past kMaxJsonDepth.
int Depth(const json& j) {
  int deepest = 0;
  std::vector<std::pair<const json*, int>> todo = {{&j, 0}};
  while (!todo.empty() && deepest <= spec::kMaxJsonDepth) {
    auto [at, depth] = todo.back();
    todo.pop_back();
    if (!at->is_structured()) continue;
    deepest = std::max(deepest, depth + 1);
    for (const json& e : *at) todo.emplace_back(&e, depth + 1);
  }
  return deepest;
}

// `event.*` lookups into a webhook delivery's JSON.
class EventContext : public spec::EvalContext {
 public:
  EventContext(const json& event, std::string event_name) : event_(event), event_name_(std::move(event_name)) {}
  Result<spec::Value> Lookup(const std::vector<std::string>& path) const override {
    if (path[0] == "event_name") return spec::Value::Str(event_name_);
    const json* at = &event_;
    for (size_t i = 1; i < path.size(); ++i) {
      if (at->is_object() && at->contains(path[i])) {
        at = &(*at)[path[i]];
      } else if (at->is_array() && !path[i].empty() && path[i].find_first_not_of("0123456789") == std::string::npos &&
                 std::stoul(path[i]) < at->size()) {
        at = &(*at)[std::stoul(path[i])];
      } else {
        return Status::NotFound("the delivery has no " + Join(std::vector<std::string>(path.begin(), path.begin() + i + 1), "."));
      }
    }
    // Value::FromJson and dump() recurse: a delivery may nest deeper than the stack allows.
    if (Depth(*at) > spec::kMaxJsonDepth)
      return Status::InvalidSpec("the delivery's " + Join(path, ".") + " nests deeper than " +
                                 std::to_string(spec::kMaxJsonDepth) + " levels (the limit)");
    if (at->is_object()) return spec::Value::Str(at->dump());
    return spec::Value::FromJson(*at);
  }
  bool StatusFunction(std::string_view) const override { return true; }

 private:
  const json& event_;
  std::string event_name_;
};

// A JSON param value as the text `-p name=value` would give.
std::string OverrideText(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
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
store::Store& ThreadStore(const std::string& home) {
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

store::RunsStore& Api::Runs() { return ThreadStore(options_.home).runs(); }
store::AccessStore& Api::Access() { return ThreadStore(options_.home).access(); }

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
    if (s.size() == 4 && s[3] == "log") {
      if (auto g = guard("GET", TokenScope::kRead)) return *g;
      return DriverLog(r, id);
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

// --- pipelines --------------------------------------------------------------

namespace {

json SchedulesOf(const spec::Pipeline& p, int count) {
  json out = json::array();
  int64_t now = NowMs() / 1000;
  for (const spec::Schedule& s : p.schedules) {
    json next = json::array();
    for (int64_t t = now; static_cast<int>(next.size()) < count;) {
      auto n = s.cron.Next(t, s.zone);
      if (!n) break;
      next.push_back(IsoTime(*n * 1000));
      t = *n;
    }
    out.push_back({{"cron", s.cron.text()}, {"timezone", s.timezone}, {"catchup", s.catchup}, {"next", next}});
  }
  return out;
}

}  // namespace

Response Api::ListPipelines() {
  json out = json::array();
  for (const auto& e : catalog_->List()) {
    json j = {{"name", e->name}, {"file", fs::path(e->file).filename().string()}, {"valid", e->pipeline != nullptr}};
    if (e->pipeline) {
      j["description"] = e->pipeline->description;
      j["steps"] = e->pipeline->steps.size();
      j["schedules"] = SchedulesOf(*e->pipeline, 1);
      j["webhook"] = e->pipeline->webhook.has_value();
      store::RunFilter f;
      f.pipeline = e->name;
      f.limit = 5;
      json runs = json::array();
      if (auto rows = Runs().ListRuns(f); rows.ok())
        for (auto& row : *rows) runs.push_back(RunJson(row));
      j["runs"] = runs;
    } else {
      j["errors"] = Split(e->error, '\n');
    }
    out.push_back(j);
  }
  return Json(200, {{"pipelines", out}});
}

Response Api::GetPipeline(const std::string& name) {
  auto e = catalog_->Find(name);
  if (!e) return ErrorResponse(404, "not_found", "no pipeline " + Quote(name) + " in " + catalog_->dir());
  json j = {{"name", e->name}, {"file", fs::path(e->file).filename().string()}, {"valid", e->pipeline != nullptr}};
  if (!e->pipeline) {
    j["errors"] = Split(e->error, '\n');
    return Json(200, j);
  }
  const spec::Pipeline& p = *e->pipeline;
  auto defaults = spec::ResolveParams(p, {});
  j["description"] = p.description;
  j["params"] = ParamsOf(p);
  j["dag"] = DagOf(p, defaults.ok() ? &*defaults : nullptr);
  j["schedules"] = SchedulesOf(p, 5);
  if (p.webhook) {
    json params = json::object();
    for (const auto& [k, t] : p.webhook->params) params[k] = t.source;
    j["webhook"] = {{"path", "/hooks/" + p.name}, {"secret_env", p.webhook->secret_env}, {"params", params}};
  } else {
    j["webhook"] = nullptr;
  }
  return Json(200, j);
}

Response Api::ValidateSpec(const Request& r) {
  auto p = spec::ParsePipeline(r.Query("file").value_or("pipeline.yaml"), r.body);
  if (!p.ok()) return ErrorResponse(400, "invalid_spec", p.status().message());
  auto defaults = spec::ResolveParams(*p, {});
  return Json(200, {{"valid", true}, {"name", p->name}, {"dag", DagOf(*p, defaults.ok() ? &*defaults : nullptr)}});
}

// --- runs -------------------------------------------------------------------

Response Api::ListRuns(const Request& r) {
  store::RunFilter f;
  f.pipeline = r.Query("pipeline").value_or("");
  if (auto st = r.Query("state")) {
    auto parsed = engine::ParseRunState(*st);
    if (!parsed)
      return ErrorResponse(400, "bad_request", "state must be queued, pending, running, succeeded, failed or cancelled");
    f.state = parsed;
  }
  if (auto before = r.Query("before"); before && !ParseId(*before, &f.before_id))
    return ErrorResponse(400, "bad_request", "before must be a run id");
  if (auto limit = r.Query("limit")) {
    int64_t n = 0;
    if (!ParseId(*limit, &n) || n > 1000) return ErrorResponse(400, "bad_request", "limit must be from 1 to 1000");
    f.limit = static_cast<int>(n);
  }
  auto rows = Runs().ListRuns(f);
  if (!rows.ok()) return ErrorResponse(500, "internal", rows.status().message());
  Response res;
  res.headers.emplace_back("Cache-Control", "no-store");
  res.body.reserve(rows->size() * 400 + 64);
  res.body = "{\"runs\":[";
  for (size_t i = 0; i < rows->size(); ++i) res.body += (i ? "," : "") + RunJsonText((*rows)[i]);
  bool more = static_cast<int>(rows->size()) == f.limit && !rows->empty();
  res.body += "],\"next_before\":" + (more ? std::to_string(rows->back().id) : std::string("null")) + "}";
  return res;
}

Response Api::StartRun(const Request& r, const std::string& name) {
  auto e = catalog_->Find(name);
  if (!e) return ErrorResponse(404, "not_found", "no pipeline " + Quote(name) + " in " + catalog_->dir());
  if (!e->pipeline) return ErrorResponse(400, "invalid_spec", e->error);
  json body = r.body.empty() ? json::object() : json::parse(r.body, nullptr, false);
  if (!body.is_object()) return ErrorResponse(400, "bad_request", "the body must be a JSON object: {\"params\": {...}}");
  std::vector<std::pair<std::string, std::string>> overrides;
  if (body.contains("params")) {
    if (!body["params"].is_object()) return ErrorResponse(400, "bad_request", "params must be an object");
    for (auto& [k, v] : body["params"].items()) {
      if (v.is_object() || v.is_array() || v.is_null())
        return ErrorResponse(400, "invalid_params", "param " + Quote(k) + " must be a string, number or boolean");
      overrides.emplace_back(k, OverrideText(v));
    }
  }
  auto params = spec::ResolveParams(*e->pipeline, overrides, "in the request");
  if (!params.ok()) return ErrorResponse(400, "invalid_params", params.status().message());
  auto id = launcher_->Start(Runs(), *e->pipeline, *params, "api");
  if (!id.ok()) return ErrorResponse(500, "internal", id.status().message());
  auto row = Runs().GetRun(*id);
  if (!row.ok()) return ErrorResponse(500, "internal", row.status().message());
  Response res = Json(201, RunJson(*row));
  res.headers.emplace_back("Location", "/api/runs/" + std::to_string(*id));
  return res;
}

std::shared_ptr<const spec::Pipeline> Api::StoredPipeline(const store::RunRow& row) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = specs_.find(row.spec_hash);
    if (it != specs_.end()) return it->second;
  }
  auto text = Runs().SpecText(row.spec_hash);
  if (!text.ok()) return nullptr;
  auto p = spec::ParsePipeline(row.spec_path, *text);
  if (!p.ok()) return nullptr;
  auto shared = std::make_shared<const spec::Pipeline>(std::move(*p));
  std::lock_guard<std::mutex> lock(mu_);
  specs_[row.spec_hash] = shared;
  return shared;
}

Response Api::GetRun(int64_t id) {
  auto row = Runs().GetRun(id);
  if (!row.ok()) return ErrorResponse(404, "not_found", "no run " + std::to_string(id));
  json j = RunJson(*row);
  auto p = StoredPipeline(*row);
  auto records = Runs().LoadSteps(id);
  auto attempts = Runs().ListAttempts(id);
  auto metrics = Runs().ListMetrics(id);
  if (!records.ok() || !attempts.ok() || !metrics.ok()) return ErrorResponse(500, "internal", "cannot read run " + std::to_string(id));
  std::map<std::string, const engine::StepRecord*> main_records;
  std::map<std::string, std::map<std::string, int>> item_counts;
  for (const auto& rec : *records) {
    if (rec.item < 0) main_records[rec.step_id] = &rec;
    else item_counts[rec.step_id][engine::Name(rec.state)]++;
  }
  store::UnitDurations durations(*attempts, NowMs());
  json steps = p ? DagOf(*p, nullptr) : json::array();
  for (auto& s : steps) {
    std::string sid = s["id"];
    auto it = main_records.find(sid);
    if (it != main_records.end()) {
      const auto& rec = *it->second;
      s.update(store::StepRecordJson(rec, durations.Of(sid, -1)));
      s["attempts"] = rec.attempts;
      if (rec.items) s["items"] = rec.items->size();
    } else {
      s["state"] = "pending";
      s["duration_ms"] = store::DurationJson(durations.Of(sid, -1));
    }
    if (item_counts.count(sid)) s["item_states"] = item_counts[sid];
  }
  j["steps"] = steps;
  json items = json::array();
  for (const auto& rec : *records)
    if (rec.item >= 0) {
      json item = store::StepRecordJson(rec, durations.Of(rec.step_id, rec.item));
      item["attempts"] = rec.attempts;
      items.push_back(std::move(item));
    }
  j["items"] = items;
  json at = json::array();
  for (const auto& a : *attempts) at.push_back(store::AttemptJson(a));
  j["attempts"] = at;
  json ms = json::array();
  for (const auto& mrow : *metrics) ms.push_back(store::MetricJson(mrow));
  j["metrics"] = ms;
  j["driver_log"] = fs::exists(launcher_->DriverLog(id));
  return Json(200, j);
}

Response Api::CancelRun(int64_t id) {
  auto row = Runs().GetRun(id);
  if (!row.ok()) return ErrorResponse(404, "not_found", "no run " + std::to_string(id));
  // A queued run is cancelled now; a started one gets the request its driver polls.
  auto cancel = runs::RunVerbs(Runs(), options_.home).Cancel(*row);
  if (!cancel.ok()) return ErrorResponse(500, "internal", cancel.status().message());
  if (cancel->was_queued) {
    launcher_->Forget(Runs(), id);
    return Json(202, {{"id", id}, {"cancel_requested", true}, {"state", "cancelled"}});
  }
  if (cancel->refused)
    return ErrorResponse(409, "conflict", "run " + std::to_string(id) + " already " + engine::Name(cancel->refused.state));
  return Json(202, {{"id", id}, {"cancel_requested", true}});
}

Response Api::RetryRun(int64_t id) {
  auto row = Runs().GetRun(id);
  if (!row.ok()) return ErrorResponse(404, "not_found", "no run " + std::to_string(id));
  // The API's retry names no steps: the failed and cancelled ones run again.
  using Why = runs::Refusal::Why;
  switch (runs::CanRetry(*row, /*names_steps=*/false).why) {
    case Why::kNone: break;
    case Why::kUnfinished:
    case Why::kDriven: return ErrorResponse(409, "conflict", "run " + std::to_string(id) + " has not finished");
    case Why::kQueued:
    case Why::kQueuedForRetry:
      return ErrorResponse(409, "conflict", "run " + std::to_string(id) + " is queued and has not started");
    case Why::kNothingToRetry:
    default:
      return ErrorResponse(409, "conflict", "run " + std::to_string(id) + " succeeded; there are no failed steps to retry");
  }
  auto p = StoredPipeline(*row);
  auto queued = launcher_->Retry(Runs(), *row, p ? p->max_active_runs : 0);
  if (!queued.ok()) return ErrorResponse(500, "internal", queued.status().message());
  return Json(202, {{"id", id}, {"retrying", true}, {"queued", *queued}});
}

Response Api::ListAttempts(int64_t id) {
  auto row = Runs().GetRun(id);
  if (!row.ok()) return ErrorResponse(404, "not_found", "no run " + std::to_string(id));
  auto attempts = Runs().ListAttempts(id);
  if (!attempts.ok()) return ErrorResponse(500, "internal", attempts.status().message());
  json at = json::array();
  for (const auto& a : *attempts) at.push_back(store::AttemptJson(a));
  return Json(200, {{"attempts", at}});
}

namespace {

// Bytes [offset, offset + limit) of a file, as text/plain, with its size.
Response FileRange(const fs::path& path, const Request& r, size_t max_chunk, const std::string& state) {
  int64_t offset = 0, limit = static_cast<int64_t>(max_chunk);
  if (auto o = r.Query("offset")) {
    if (*o != "0" && !ParseId(*o, &offset)) return ErrorResponse(400, "bad_request", "offset must be a number of bytes");
  }
  if (auto l = r.Query("limit")) {
    if (!ParseId(*l, &limit)) return ErrorResponse(400, "bad_request", "limit must be a positive number of bytes");
    limit = std::min<int64_t>(limit, static_cast<int64_t>(max_chunk));
  }
  std::error_code ec;
  int64_t size = static_cast<int64_t>(fs::file_size(path, ec));
  if (ec) size = 0;
  std::string text;
  if (offset < size) {
    std::ifstream in(path, std::ios::binary);
    in.seekg(offset);
    text.resize(static_cast<size_t>(std::min(limit, size - offset)));
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(in.gcount()));
  }
  Response res;
  res.content_type = "text/plain; charset=utf-8";
  res.body = std::move(text);
  res.headers.emplace_back("Cache-Control", "no-store");
  res.headers.emplace_back("X-Log-Size", std::to_string(size));
  res.headers.emplace_back("X-Log-Offset", std::to_string(std::min(offset, size)));
  if (!state.empty()) res.headers.emplace_back("X-Attempt-State", state);
  return res;
}

}  // namespace

Response Api::DriverLog(const Request& r, int64_t id) {
  if (!Runs().GetRun(id).ok()) return ErrorResponse(404, "not_found", "no run " + std::to_string(id));
  fs::path log = launcher_->DriverLog(id);
  auto real = ResolveInside(log, options_.home + "/logs");
  if (!real) return ErrorResponse(404, "not_found", "run " + std::to_string(id) + " was not started by this server");
  return FileRange(*real, r, options_.max_log_chunk, "");
}

Response Api::StepLog(const Request& r, int64_t id, const std::string& step) {
  if (!Runs().GetRun(id).ok()) return ErrorResponse(404, "not_found", "no run " + std::to_string(id));
  int64_t item = -1, number = 0;
  if (auto i = r.Query("item"); i && *i != "-1" && !(*i == "0" ? (item = 0, true) : ParseId(*i, &item)))
    return ErrorResponse(400, "bad_request", "item must be a foreach item index");
  if (auto a = r.Query("attempt"); a && !ParseId(*a, &number))
    return ErrorResponse(400, "bad_request", "attempt must be an attempt number (1, 2, ...)");
  auto attempts = Runs().ListAttempts(id);
  if (!attempts.ok()) return ErrorResponse(500, "internal", attempts.status().message());
  const engine::AttemptRecord* found = nullptr;
  for (const auto& a : *attempts)
    if (a.step_id == step && a.item == item && (number == 0 || a.number == number)) found = &a;
  if (!found)
    return ErrorResponse(404, "not_found", "run " + std::to_string(id) + " has no attempt of " + Quote(step) +
                                               (item >= 0 ? "[" + std::to_string(item) + "]" : std::string()));
  fs::path logs = options_.home + "/logs";
  auto real = ResolveInside(found->log_path, logs);
  bool follow = r.Query("follow").value_or("") == "1" || r.Query("follow").value_or("") == "true";
  if (!real && !follow) return ErrorResponse(404, "not_found", "the attempt has no log yet");
  if (follow) {
    int64_t offset = 0;
    if (auto o = r.Query("offset"); o && *o != "0" && !ParseId(*o, &offset))
      return ErrorResponse(400, "bad_request", "offset must be a number of bytes");
    if (!Inside(fs::path(found->log_path).lexically_normal(), fs::path(logs).lexically_normal()))
      return ErrorResponse(404, "not_found", "the attempt's log is not in the store");
    Response res;
    std::string path = found->log_path, step_id = found->step_id;
    int it = found->item, n = found->number;
    EventHub* hub = events_;
    res.on_stream = [=](std::shared_ptr<EventStream> stream) { hub->FollowLog(stream, path, offset, id, step_id, it, n); };
    return res;
  }
  return FileRange(*real, r, options_.max_log_chunk, engine::Name(found->state));
}

Response Api::Events(const Request& r) {
  int64_t run = 0;
  if (auto q = r.Query("run"); q && !ParseId(*q, &run)) return ErrorResponse(400, "bad_request", "run must be a run id");
  Response res;
  EventHub* hub = events_;
  res.on_stream = [hub, run](std::shared_ptr<EventStream> stream) { hub->Subscribe(stream, run); };
  return res;
}

Response Api::Artifact(const Request& r, const std::string& hash) {
  bool hex = hash.size() == 64 && hash.find_first_not_of("0123456789abcdef") == std::string::npos;
  if (!hex) return ErrorResponse(404, "not_found", "artifacts are named by their SHA-256 (64 hex digits)");
  fs::path root = options_.home + "/artifacts";
  fs::path base = root / hash;
  auto real = ResolveInside(base, root);
  if (!real) return ErrorResponse(404, "not_found", "no artifact " + hash);
  fs::path file = *real;
  std::string sub = r.Query("path").value_or("");
  std::error_code ec;
  if (fs::is_directory(file, ec)) {
    if (sub.empty()) {
      json files = json::array();
      for (auto it = fs::recursive_directory_iterator(file, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
        if (it->is_regular_file()) files.push_back({{"path", it->path().lexically_relative(file).string()}, {"size", it->file_size()}});
      return Json(200, {{"hash", hash}, {"kind", "dir"}, {"files", files}});
    }
    auto inner = ResolveInside(file / sub, file);
    if (fs::path(sub).is_absolute() || !inner) return ErrorResponse(404, "not_found", "no file " + Quote(sub) + " in artifact " + hash);
    file = *inner;
  } else if (!sub.empty()) {
    return ErrorResponse(404, "not_found", "artifact " + hash + " is a file, not a folder");
  }
  if (!fs::is_regular_file(file, ec)) return ErrorResponse(404, "not_found", "not a file");
  auto size = fs::file_size(file, ec);
  if (size > (256u << 20)) return ErrorResponse(413, "too_large", "the file is over 256 MB; read it from the store's folder");
  std::ifstream in(file, std::ios::binary);
  Response res;
  res.content_type = "application/octet-stream";
  res.body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  std::string name = sub.empty() ? hash : fs::path(sub).filename().string();
  std::string safe;
  for (char c : name) safe += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_') ? c : '_';
  res.headers.emplace_back("Content-Disposition", "attachment; filename=\"" + safe + "\"");
  // Opened in a tab anyway, an HTML artifact runs no script in the UI's origin.
  res.headers.emplace_back("Content-Security-Policy", "sandbox");
  return res;
}

// --- webhooks ---------------------------------------------------------------

Response Api::Hook(const Request& r, const std::string& name) {
  auto e = catalog_->Find(name);
  if (!e || !e->pipeline || !e->pipeline->webhook) return ErrorResponse(404, "not_found", "no webhook for " + Quote(name));
  const spec::Pipeline& p = *e->pipeline;
  const char* secret = std::getenv(p.webhook->secret_env.c_str());
  if (!secret || !*secret)
    return ErrorResponse(503, "unavailable", "the webhook's secret ($" + p.webhook->secret_env + ") is not set on the server");
  // Standard Webhooks (a signed timestamp) when the sender uses its headers,
  // else GitHub's signature of the body alone.
  std::string delivery;
  int64_t now_ms = NowMs();
  if (!r.Header("webhook-signature").empty() || !r.Header("webhook-id").empty() || !r.Header("webhook-timestamp").empty()) {
    auto key = DecodeStandardSecret(secret);
    if (!key.ok())
      return ErrorResponse(503, "unavailable", "the webhook's secret ($" + p.webhook->secret_env + "): " + key.status().message());
    delivery = r.Header("webhook-id");
    Status sig = VerifyStandardSignature(*key, delivery, r.Header("webhook-timestamp"), r.body, r.Header("webhook-signature"),
                                         now_ms / 1000);
    if (!sig.ok()) return ErrorResponse(401, "unauthenticated", sig.message());
  } else {
    Status sig = VerifySignature(secret, r.body, r.Header("x-hub-signature-256"));
    if (!sig.ok()) return ErrorResponse(401, "unauthenticated", sig.message());
    delivery = r.Header("x-github-delivery");
  }
  if (delivery.size() > 256) return ErrorResponse(400, "bad_request", "the delivery id is over 256 bytes");
  json event = json::parse(r.body, nullptr, false);
  if (event.is_discarded()) return ErrorResponse(400, "bad_request", "the delivery is not JSON");
  // The event's name: GitHub's X-GitHub-Event, else the payload's "type"
  // (Standard Webhooks). GitHub's ping, sent when a hook is added, is
  // answered and starts nothing; so is an event the pipeline does not list.
  std::string event_name = r.Header("x-github-event");
  if (event_name.empty() && event.is_object() && event.contains("type") && event["type"].is_string())
    event_name = event["type"].get<std::string>();
  if (event_name == "ping") return Json(200, {{"ping", true}, {"pipeline", p.name}});
  const auto& wanted = p.webhook->events;
  if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), event_name) == wanted.end())
    return Json(200, {{"ignored", true},
                      {"event", event_name},
                      {"reason", "on.webhook.events of " + p.name + " does not list " + Quote(event_name)}});
  std::vector<std::pair<std::string, std::string>> overrides;
  EventContext ctx(event, event_name);
  for (const auto& [k, t] : p.webhook->params) {
    auto v = spec::EvaluateTemplate(t, ctx);
    if (!v.ok()) return ErrorResponse(400, "invalid_params", "webhook param " + Quote(k) + ": " + v.status().message());
    overrides.emplace_back(k, v->Render());
  }
  auto params = spec::ResolveParams(p, overrides, "by on.webhook.params");
  if (!params.ok()) return ErrorResponse(400, "invalid_params", params.status().message());
  // A replay: the same delivery id, or the same signed body under a new id,
  // within the window. A delivery without an id is known by its body alone.
  std::string body_hash = Sha256Hex(r.body);
  std::string key = delivery.empty() ? "sha256:" + body_hash : delivery;
  auto seen = Access().RecordDelivery(p.name, key, body_hash, now_ms, kReplayWindowSeconds * 1000);
  if (!seen.ok()) return ErrorResponse(500, "internal", seen.status().message());
  if (seen->duplicate) {
    json answer = {{"duplicate", true}, {"delivery", delivery}, {"run", seen->run_id ? json(seen->run_id) : json()}};
    if (seen->same_body)
      answer["reason"] = "the same body was delivered within the last 24 hours" +
                         (seen->earlier_delivery.rfind("sha256:", 0) == 0 ? std::string()
                                                                          : " (delivery " + seen->earlier_delivery + ")");
    return Json(200, answer);
  }
  auto id = launcher_->Start(Runs(), p, *params, "webhook");
  if (!id.ok()) return ErrorResponse(500, "internal", id.status().message());
  Status st = Access().SetDeliveryRun(p.name, key, *id);
  if (!st.ok()) return ErrorResponse(500, "internal", "run " + std::to_string(*id) + " started, but: " + st.message());
  auto row = Runs().GetRun(*id);
  return Json(202, {{"run", *id}, {"delivery", delivery}, {"state", row.ok() ? engine::Name(row->state) : "pending"}});
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
