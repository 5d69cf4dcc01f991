// The services' admin routes of the API (specs/api.yaml, `/api/services`;
// specs/services-design.md section 8): read the desired state, replica
// rows, last minute, history, windows, chart series and rollouts (scope
// read); ask the active rollout to promote or abort (scope run); apply a
// document, set the traffic, delete (scope admin). Changes go through ServicesStore,
// one transaction each with its history row, by actor `token:<name>`; what
// the answers show of a service is serving/service_view.h's, the same as
// `sluice services --json`.
#include "server/api.h"
#include "server/api_helpers.h"

#include <map>
#include <optional>
#include <utility>

#include <nlohmann/json.hpp>

#include "serving/rollout_view.h"
#include "serving/service_spec.h"
#include "serving/service_state.h"
#include "serving/service_view.h"
#include "serving/stats.h"
#include "store/open.h"
#include "util/strings.h"

namespace sluice::server {

using json = nlohmann::json;
using internal::Json;
using internal::NowMs;
using store::TokenScope;

namespace {

constexpr int kHistoryDefault = 50;
constexpr int kHistoryMax = 500;
constexpr size_t kWindowsMax = 8640;       // a day of one version and role
constexpr int64_t kWindowsDefaultSpanMs = 3600'000;
constexpr int64_t kSeriesDefaultSpanMs = 30 * 60'000;
constexpr int64_t kSeriesMaxSpanMs = 24 * 3600'000;
constexpr int kRolloutsDefault = 20;
constexpr int kRolloutsMax = 200;

// A refusal whose message is several problems, one a line: each also in
// `errors`.
Response Problems(int status, const std::string& code, const std::string& lines) {
  json errors = json::array();
  for (const std::string& line : Split(lines, '\n'))
    if (!line.empty()) errors.push_back(line);
  return Json(status, {{"error", {{"code", code}, {"message", lines}, {"errors", errors}}}});
}

// A non-negative whole number of up to 18 digits.
bool ParseCount(const std::string& text, int64_t* n) {
  if (text == "0") {
    *n = 0;
    return true;
  }
  return internal::ParseId(text, n);
}

json Nullable(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

}  // namespace

Response Api::ServiceRoute(const Request& r, const std::string& service) {
  const auto& s = r.segments;
  auto method_not_allowed = [&](const char* allow) {
    Response res = ErrorResponse(405, "method_not_allowed", r.method + " is not allowed here (allowed: " + allow + ")");
    res.headers.emplace_back("Allow", allow);
    return res;
  };
  Response refusal;
  auto allowed = [&](TokenScope scope) { return Authorize(r, scope, &refusal); };
  const std::string& m = r.method;
  if (s.size() == 3) {
    if (m == "GET") return allowed(TokenScope::kRead) ? GetService(service) : refusal;
    if (m == "PUT") return allowed(TokenScope::kAdmin) ? PutService(r, service) : refusal;
    if (m == "DELETE") return allowed(TokenScope::kAdmin) ? DeleteService(r, service) : refusal;
    return method_not_allowed("GET, PUT, DELETE");
  }
  if (s[3] == "history" || s[3] == "windows") {
    if (m != "GET") return method_not_allowed("GET");
    if (!allowed(TokenScope::kRead)) return refusal;
    return s[3] == "history" ? ServiceHistory(r, service) : ServiceWindows(r, service);
  }
  if (s[3] == "rollouts" || s[3] == "series") {
    if (m != "GET") return method_not_allowed("GET");
    if (!allowed(TokenScope::kRead)) return refusal;
    return s[3] == "rollouts" ? ServiceRollouts(r, service) : ServiceSeries(r, service);
  }
  if (s[3] == "promote" || s[3] == "abort") {
    if (m != "POST") return method_not_allowed("POST");
    if (!allowed(TokenScope::kRun)) return refusal;
    return RequestOfRollout(service, s[3]);
  }
  if (s[3] == "traffic") {
    if (m != "PATCH") return method_not_allowed("PATCH");
    if (!allowed(TokenScope::kAdmin)) return refusal;
    return PatchTraffic(r, service);
  }
  return ErrorResponse(404, "not_found", "no such route");
}

Response Api::NoSuchService(const std::string& name) {
  std::vector<std::string> names;
  if (auto all = ThreadStore().services().List(); all.ok())
    for (const store::ServiceState& s : *all) names.push_back(s.name);
  std::string known = names.empty() ? "there are none" : "services: " + Join(names, ", ");
  return ErrorResponse(404, "not_found", "no service named " + Quote(name) + " (" + known + ")" + DidYouMean(name, names));
}

Response Api::ListServices() {
  store::Store& st = ThreadStore();
  int64_t now = NowMs();
  auto views = serving::ReadServiceViews(st.services(), st.gateway(), now);
  if (!views.ok()) return ErrorResponse(500, "internal", views.status().message());
  auto gateway = st.gateway().Read();
  if (!gateway.ok()) return ErrorResponse(500, "internal", gateway.status().message());
  json services = json::array();
  for (const serving::ServiceView& v : *views) services.push_back(serving::ServiceViewJson(v, false));
  return Json(200, {{"services", services}, {"gateway", serving::GatewayJson(*gateway, now)}});
}

Response Api::GetService(const std::string& name) {
  store::Store& st = ThreadStore();
  int64_t now = NowMs();
  auto view = serving::ReadServiceView(st.services(), st.gateway(), name, now);
  if (!view.ok() && view.status().code() == Code::kNotFound) return NoSuchService(name);
  if (!view.ok()) return ErrorResponse(500, "internal", view.status().message());
  auto gateway = st.gateway().Read();
  if (!gateway.ok()) return ErrorResponse(500, "internal", gateway.status().message());
  json j = serving::ServiceViewJson(*view, true);
  j["gateway"] = serving::GatewayJson(*gateway, now);
  return Json(200, j);
}

Response Api::ServiceHistory(const Request& r, const std::string& name) {
  int64_t before = 0, limit = kHistoryDefault;
  if (auto b = r.Query("before"); b && !internal::ParseId(*b, &before))
    return ErrorResponse(400, "bad_request", "before must be a change id (1, 2, ...), not " + Quote(*b));
  if (auto l = r.Query("limit"); l && (!internal::ParseId(*l, &limit) || limit > kHistoryMax))
    return ErrorResponse(400, "bad_request",
                         "limit must be from 1 to " + std::to_string(kHistoryMax) + ", not " + Quote(*l));
  auto rows = ThreadStore().services().History(name, before, static_cast<int>(limit));
  if (!rows.ok()) return ErrorResponse(500, "internal", rows.status().message());
  if (rows->empty() && before == 0) return NoSuchService(name);  // a deleted service keeps its rows
  json changes = json::array();
  for (const store::ServiceChange& c : *rows) {
    auto parsed = [](const std::string& text) -> json {
      if (text.empty()) return nullptr;
      json j = json::parse(text, nullptr, false);
      return j.is_discarded() ? json(text) : j;
    };
    changes.push_back({{"id", c.id},
                       {"at_ms", c.at_ms},
                       {"at", IsoTime(c.at_ms)},
                       {"kind", c.kind},
                       {"actor", c.actor},
                       {"reason", c.reason},
                       {"before", parsed(c.before)},
                       {"after", parsed(c.after)}});
  }
  bool more = static_cast<int64_t>(rows->size()) == limit;
  return Json(200, {{"changes", changes}, {"next_before", more ? json(rows->back().id) : json(nullptr)}});
}

Response Api::ServiceWindows(const Request& r, const std::string& name) {
  int64_t to = NowMs(), from = 0;
  if (auto t = r.Query("to"); t && !ParseCount(*t, &to))
    return ErrorResponse(400, "bad_request", "to must be milliseconds since the epoch, not " + Quote(*t));
  from = to - kWindowsDefaultSpanMs;
  if (auto f = r.Query("from"); f && !ParseCount(*f, &from))
    return ErrorResponse(400, "bad_request", "from must be milliseconds since the epoch, not " + Quote(*f));
  if (from >= to) return ErrorResponse(400, "bad_request", "from must be before to");
  std::string version = r.Query("version").value_or(""), role = r.Query("role").value_or("");
  if (!role.empty() && role != "live" && role != "mirror" && role != "pinned")
    return ErrorResponse(400, "bad_request", "role must be live, mirror or pinned, not " + Quote(role));
  store::Store& st = ThreadStore();
  if (auto s = st.services().Get(name); !s.ok()) {
    if (s.status().code() == Code::kNotFound) return NoSuchService(name);
    return ErrorResponse(500, "internal", s.status().message());
  }
  auto rows = st.gateway().Windows(name, version, role, from, to);
  if (!rows.ok()) return ErrorResponse(500, "internal", rows.status().message());
  if (rows->size() > kWindowsMax)
    return ErrorResponse(400, "bad_request",
                         "[" + std::to_string(from) + ", " + std::to_string(to) + ") holds " +
                             std::to_string(rows->size()) + " windows, more than " + std::to_string(kWindowsMax) +
                             "; narrow it with from, to, version or role");
  json windows = json::array();
  for (const store::WindowRow& w : *rows) {
    auto parsed = [](const std::string& text) {
      json j = json::parse(text, nullptr, false);
      return j.is_discarded() ? json(text) : j;
    };
    windows.push_back({{"version", w.version},
                       {"role", w.role},
                       {"start_ms", w.start_ms},
                       {"requests", w.requests},
                       {"errors", w.errors},
                       {"codes", parsed(w.codes)},
                       {"latency_bounds", w.latency_bounds},
                       {"latency", parsed(w.latency)},
                       {"latency_sum_us", w.latency_sum_us},
                       {"latency_max_us", w.latency_max_us},
                       {"retried", w.retried},
                       {"rerouted", w.rerouted},
                       {"cache_hits", w.cache_hits},
                       {"mirror_dropped", w.mirror_dropped},
                       {"mirror_compared", w.mirror_compared},
                       {"mirror_agreed", w.mirror_agreed}});
  }
  return Json(200, {{"from_ms", from}, {"to_ms", to}, {"windows", windows}});
}

Response Api::ServiceSeries(const Request& r, const std::string& name) {
  int64_t to = NowMs(), from = 0;
  if (auto t = r.Query("to_ms"); t && !ParseCount(*t, &to))
    return ErrorResponse(400, "bad_request", "to_ms must be milliseconds since the epoch, not " + Quote(*t));
  from = to - kSeriesDefaultSpanMs;
  if (auto f = r.Query("from_ms"); f && !ParseCount(*f, &from))
    return ErrorResponse(400, "bad_request", "from_ms must be milliseconds since the epoch, not " + Quote(*f));
  if (from >= to) return ErrorResponse(400, "bad_request", "from_ms must be before to_ms");
  if (to - from > kSeriesMaxSpanMs)
    return ErrorResponse(400, "bad_request",
                         "[from_ms, to_ms) spans " + std::to_string(to - from) + " ms, more than 24 h (" +
                             std::to_string(kSeriesMaxSpanMs) + " ms); ask for a shorter span");
  store::Store& st = ThreadStore();
  if (auto s = st.services().Get(name); !s.ok()) {
    if (s.status().code() == Code::kNotFound) return NoSuchService(name);
    return ErrorResponse(500, "internal", s.status().message());
  }
  auto rows = st.gateway().Windows(name, "", "", from, to);
  if (!rows.ok()) return ErrorResponse(500, "internal", rows.status().message());
  // One series per version and role, in the order they first appear; each
  // point one flushed window (a window the gateway did not flush is absent).
  json series = json::array();
  std::map<std::pair<std::string, std::string>, size_t> index;
  for (const store::WindowRow& row : *rows) {
    auto key = std::make_pair(row.version, row.role);
    auto it = index.find(key);
    if (it == index.end()) {
      it = index.emplace(key, series.size()).first;
      series.push_back({{"version", row.version}, {"role", row.role}, {"points", json::array()}});
    }
    serving::Window w = serving::WindowFromRow(row);
    std::optional<double> error_rate;
    if (w.requests > 0) error_rate = static_cast<double>(w.errors) / static_cast<double>(w.requests);
    series[it->second]["points"].push_back(
        {{"start_ms", w.start_ms},
         {"requests", w.requests},
         {"errors", w.errors},
         {"requests_per_s", static_cast<double>(w.requests) * 1000.0 / static_cast<double>(serving::kWindowMs)},
         {"error_rate", Nullable(error_rate)},
         {"p50_ms", Nullable(serving::LatencyQuantileMs(w, 0.5))},
         {"p99_ms", Nullable(serving::LatencyQuantileMs(w, 0.99))}});
  }
  return Json(200, {{"from_ms", from}, {"to_ms", to}, {"window_ms", serving::kWindowMs}, {"series", series}});
}

Response Api::ServiceRollouts(const Request& r, const std::string& name) {
  int64_t limit = kRolloutsDefault;
  if (auto l = r.Query("limit"); l && (!internal::ParseId(*l, &limit) || limit > kRolloutsMax))
    return ErrorResponse(400, "bad_request",
                         "limit must be from 1 to " + std::to_string(kRolloutsMax) + ", not " + Quote(*l));
  store::Store& st = ThreadStore();
  auto rows = st.rollouts().OfService(name, static_cast<int>(limit));
  if (!rows.ok()) return ErrorResponse(500, "internal", rows.status().message());
  if (rows->empty()) {  // a deleted service keeps its rollouts
    auto s = st.services().Get(name);
    if (!s.ok() && s.status().code() == Code::kNotFound) return NoSuchService(name);
    if (!s.ok()) return ErrorResponse(500, "internal", s.status().message());
  }
  json rollouts = json::array();
  for (const store::RolloutRecord& rec : *rows) rollouts.push_back(serving::RolloutJson(rec));
  return Json(200, {{"rollouts", rollouts}});
}

Response Api::GetRollout(const Request& r, int64_t id) {
  int64_t after = 0;
  if (auto a = r.Query("after"); a && !ParseCount(*a, &after))
    return ErrorResponse(400, "bad_request", "after must be an event id (0, 1, 2, ...), not " + Quote(*a));
  store::Store& st = ThreadStore();
  auto rec = st.rollouts().Get(id);
  if (!rec.ok() && rec.status().code() == Code::kNotFound)
    return ErrorResponse(404, "not_found", "no rollout " + std::to_string(id));
  if (!rec.ok()) return ErrorResponse(500, "internal", rec.status().message());
  auto events = st.rollouts().Events(id, after);
  if (!events.ok()) return ErrorResponse(500, "internal", events.status().message());
  json j = serving::RolloutJson(*rec);
  json list = json::array();
  for (const store::RolloutEvent& e : *events) list.push_back(serving::RolloutEventJson(e));
  j["events"] = list;
  return Json(200, j);
}

Response Api::RequestOfRollout(const std::string& name, const std::string& what) {
  auto id = ThreadStore().rollouts().Request(name, what, Actor(), NowMs());
  if (!id.ok() && id.status().code() == Code::kNotFound) return ErrorResponse(404, "not_found", id.status().message());
  if (!id.ok()) return ErrorResponse(500, "internal", id.status().message());
  return Json(202, {{"rollout", *id}, {"request", what}});
}

Response Api::PutService(const Request& r, const std::string& name) {
  json body = json::parse(r.body, nullptr, false);
  if (!body.is_object())
    return ErrorResponse(400, "bad_request", "expected the service document as a JSON object (as service.yaml)");
  // The YAML parser reads the JSON text itself, so errors carry its line
  // and column and name the key ("service.json:1:40: versions.blue.replicas: ...").
  auto spec = serving::ParseServiceSpec("service.json", r.body);
  if (!spec.ok()) {
    if (spec.status().code() == Code::kInvalidSpec) return Problems(400, "invalid_spec", spec.status().message());
    return ErrorResponse(400, "bad_request", spec.status().message());
  }
  if (spec->name != name)
    return ErrorResponse(400, "bad_request",
                         "the document is service " + Quote(spec->name) + ", not " + Quote(name) + " as in the path");
  store::Store& st = ThreadStore();
  auto live = st.services().Get(name);
  if (!live.ok() && live.status().code() != Code::kNotFound)
    return ErrorResponse(500, "internal", live.status().message());
  auto desired = serving::ResolveService(*spec, st.registry(), live.ok() ? &*live : nullptr);
  if (!desired.ok()) {
    if (desired.status().code() == Code::kInvalidSpec) return Problems(400, "invalid_spec", desired.status().message());
    return ErrorResponse(500, "internal", desired.status().message());
  }
  std::string reason = r.Query("reason").value_or("");
  auto outcome = st.services().Apply(*desired, Actor(), reason.empty() ? "PUT /api/services/" + name : reason, NowMs());
  if (!outcome.ok()) return ErrorResponse(500, "internal", outcome.status().message());
  if (!outcome->changed) return Json(200, {{"unchanged", true}, {"generation", outcome->generation}});
  return Json(200, {{"change", outcome->change_id}, {"generation", outcome->generation}});
}

Response Api::PatchTraffic(const Request& r, const std::string& name) {
  json body = json::parse(r.body, nullptr, false);
  if (!body.is_object())
    return ErrorResponse(400, "bad_request",
                         "expected {\"traffic\": {\"blue\": 90, \"green\": 10}, \"mirror\": ..., \"reason\": ..., "
                         "\"expected_generation\": N}");
  std::vector<std::string> problems;
  store::TrafficChange change;
  std::string reason;
  bool have_traffic = false;
  // A weight or percent as the spec writes it: a number or its text, with
  // at most two decimals.
  auto basis_points = [](const json& v) -> std::optional<int> {
    if (v.is_string()) return serving::ParseBasisPoints(v.get<std::string>());
    if (v.is_number()) return serving::ParseBasisPoints(v.dump());
    return std::nullopt;
  };
  for (const auto& [key, value] : body.items()) {
    if (key == "traffic") {
      have_traffic = true;
      if (!value.is_object() || value.empty()) {
        problems.push_back("/traffic: must be an object of version: weight, e.g. {\"blue\": 90, \"green\": 10}");
        continue;
      }
      for (const auto& [version, weight] : value.items()) {
        auto bp = basis_points(weight);
        if (!bp || *bp > 10'000)
          problems.push_back("/traffic/" + version + ": weight " + weight.dump() +
                             " must be a number from 0 to 100 with at most two decimals");
        else change.weights_bp.emplace_back(version, *bp);
      }
    } else if (key == "mirror") {
      change.set_mirror = true;
      if (value.is_null()) continue;
      if (!value.is_object() || !value.contains("version") || !value["version"].is_string() || value.size() > 2 ||
          (value.size() == 2 && !value.contains("percent"))) {
        problems.push_back("/mirror: must be null or {\"version\": \"...\", \"percent\": 10}");
        continue;
      }
      change.mirror_version = value["version"].get<std::string>();
      change.mirror_bp = 10'000;
      if (value.contains("percent")) {
        auto bp = basis_points(value["percent"]);
        if (!bp || *bp == 0 || *bp > 10'000)
          problems.push_back("/mirror/percent: " + value["percent"].dump() +
                             " must be more than 0 and at most 100, with at most two decimals");
        else change.mirror_bp = *bp;
      }
    } else if (key == "reason") {
      if (!value.is_string()) problems.push_back("/reason: must be a string");
      else reason = value.get<std::string>();
    } else if (key == "expected_generation") {
      if (!value.is_number_integer() || value.get<int64_t>() < 1)
        problems.push_back("/expected_generation: must be a whole number from 1 (the generation you read)");
      else change.expected_generation = value.get<int64_t>();
    } else {
      problems.push_back("/" + key + ": unknown key (keys: traffic, mirror, reason, expected_generation)");
    }
  }
  if (!have_traffic) problems.push_back("/traffic: missing; give every version's weight, e.g. {\"blue\": 90, \"green\": 10}");
  if (!problems.empty()) return Problems(400, "bad_request", Join(problems, "\n"));
  auto outcome = ThreadStore().services().SetTraffic(
      name, change, Actor(), reason.empty() ? "PATCH /api/services/" + name + "/traffic" : reason, NowMs());
  if (!outcome.ok()) {
    switch (outcome.status().code()) {
      case Code::kNotFound: return NoSuchService(name);
      case Code::kIncompatible: return ErrorResponse(409, "conflict", outcome.status().message());
      case Code::kInvalidSpec: return Problems(400, "invalid_spec", outcome.status().message());
      default: return ErrorResponse(500, "internal", outcome.status().message());
    }
  }
  return Json(200, {{"change", outcome->change_id}, {"generation", outcome->generation}});
}

Response Api::DeleteService(const Request& r, const std::string& name) {
  std::string reason = r.Query("reason").value_or("");
  Status st = ThreadStore().services().Delete(name, Actor(), reason.empty() ? "DELETE /api/services/" + name : reason,
                                               NowMs());
  if (st.code() == Code::kNotFound) return NoSuchService(name);
  if (!st.ok()) return ErrorResponse(500, "internal", st.message());
  return Json(202, {{"deleted", name}});
}

}  // namespace sluice::server
