// The gateway's data plane (gateway_impl.h): the /v2 routes (feedback
// included) and /metrics, run on the HTTP server's I/O threads. Nothing
// here touches SQLite or blocks: a request is routed, forwarded through the
// upstream client and counted; its answer comes back on the same thread.
// Feedback rows are queued for the control thread; mirror comparisons go
// to the comparer thread.
#include <algorithm>
#include <cstdio>
#include <tuple>

#include "serving/gateway_impl.h"
#include "util/hash.h"
#include "util/strings.h"

namespace sluice::serving {

namespace {

// The sticky key of a request: the header's value, or the JSON field's
// string or integer text; nullopt when the request has none.
std::optional<std::string> StickyKey(const ServiceRoute& route, const server::Request& request) {
  if (!route.sticky_header.empty()) {
    for (const auto& [name, value] : request.headers)
      if (name == route.sticky_header) return value;
    return std::nullopt;
  }
  if (route.sticky_field.empty() || request.body.size() > kStickyFieldScan) return std::nullopt;
  json::parser_callback_t bounded = [](int depth, json::parse_event_t, json&) { return depth <= kMaxJsonDepth; };
  json doc = json::parse(request.body, bounded, false);
  const json* at = &doc;
  for (const std::string& key : route.sticky_field) {
    if (!at->is_object() || !at->contains(key)) return std::nullopt;
    at = &(*at)[key];
  }
  if (at->is_string()) return at->get<std::string>();
  if (at->is_number_integer()) return at->dump();
  return std::nullopt;
}

std::string RandomRequestId() {
  uint64_t a = ThreadRandom().Next(), b = ThreadRandom().Next();
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(a),
                static_cast<unsigned long long>(b));
  return buf;
}

// The replicas of a version without one (a retry goes elsewhere).
std::vector<std::shared_ptr<Replica>> Without(const std::vector<std::shared_ptr<Replica>>& all, const Replica* r) {
  std::vector<std::shared_ptr<Replica>> out;
  for (const auto& x : all)
    if (x.get() != r) out.push_back(x);
  return out;
}

std::string BearerToken(const server::Request& request) {
  std::string h = request.Header("authorization");
  if (h.size() > 7 && (h.compare(0, 7, "Bearer ") == 0 || h.compare(0, 7, "bearer ") == 0)) return h.substr(7);
  return "";
}

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// Whether a request may use a service's infer and metadata routes: the
// service has no token, or the request's bearer token hashes to it
// (compared in constant time). Readiness and health stay open.
bool Authorized(const ServiceRoute& route, const server::Request& request) {
  return route.token_hash.empty() || ConstantTimeEquals(Sha256Hex(BearerToken(request)), route.token_hash);
}

server::Response Unauthorized(const std::string& service) {
  server::Response r = JsonError(401, "service " + Quote(service) + " needs its bearer token");
  r.headers.emplace_back("www-authenticate", "Bearer");
  return r;
}

// The request id the gateway forwards (Infer sets one on every request).
const std::string& RequestIdOf(const server::UpstreamRequest& up) {
  static const std::string kNone;
  for (const auto& [name, value] : up.headers)
    if (name == "x-request-id") return value;
  return kNone;
}

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now().time_since_epoch()).count();
}

}  // namespace

// ---- the data plane (I/O threads) ----

void Gateway::Impl::Handle(server::Request request, server::Responder responder) {
  const auto began = SteadyClock::now();
  const auto& seg = request.segments;
  auto answer = [&](server::Response r) { responder.Send(std::move(r)); };
  if (seg.size() >= 1 && seg[0] == "metrics" && seg.size() == 1) {
    if (request.method != "GET") return answer(JsonError(405, "use GET for /metrics"));
    server::Response r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = MetricsText();
    return answer(std::move(r));
  }
  if (seg.empty() || seg[0] != "v2") return answer(JsonError(404, "no route " + request.target));
  auto routes = CurrentRoutes();
  if (routes->generation == 0 && !(seg.size() == 3 && seg[1] == "health" && seg[2] == "live")) {
    server::Response r = JsonError(503, "the gateway is starting");
    r.headers.emplace_back("retry-after", "1");
    return answer(std::move(r));
  }
  if (seg.size() == 1) {
    return answer(JsonAnswer(200, {{"name", "sluice-gateway"}, {"version", "1"}, {"extensions", json::array()}}));
  }
  if (seg[1] == "health" && seg.size() == 3) {
    if (seg[2] == "live") return answer(JsonAnswer(200, {{"live", true}}));
    if (seg[2] == "ready") {
      bool ready = !draining.load();
      for (const auto& [name, route] : routes->services)
        for (int v = 0; v < route->table.version_count(); ++v)
          if (route->table.weight_bp(v) > 0 && !route->HasReadyReplica(v)) ready = false;
      return answer(JsonAnswer(ready ? 200 : 503, {{"ready", ready}}));
    }
  }
  if (seg[1] != "models" || seg.size() < 3) return answer(JsonError(404, "no route " + request.target));
  auto found = routes->services.find(seg[2]);
  if (found == routes->services.end()) {
    std::vector<std::string> names;
    for (const auto& [name, r] : routes->services) names.push_back(name);
    return answer(JsonError(404, "no service named " + Quote(seg[2]) + " (services: " +
                                     (names.empty() ? std::string("none") : Join(names, ", ")) + ")"));
  }
  const auto& route = found->second;
  if (seg.size() == 4 && seg[3] == "feedback") return Feedback(route, request, responder);
  // /v2/models/{s}[/versions/{v}][/ready | /infer]
  size_t at = 3;
  int pinned = -1;
  if (seg.size() > at + 1 && seg[at] == "versions") {
    pinned = route->table.FindVersion(seg[at + 1]);
    if (pinned < 0)
      return answer(JsonError(404, "service " + Quote(seg[2]) + " has no version " + Quote(seg[at + 1])));
    at += 2;
  }
  if (pinned < 0) {
    std::string header = request.Header("x-sluice-version");
    if (!header.empty()) {
      pinned = route->table.FindVersion(header);
      if (pinned < 0) return answer(JsonError(404, "service " + Quote(seg[2]) + " has no version " + Quote(header)));
    }
  }
  const std::string action = seg.size() > at ? seg[at] : "";
  if (seg.size() > at + 1) return answer(JsonError(404, "no route " + request.target));
  if (action.empty()) {
    if (request.method != "GET") return answer(JsonError(405, "use GET for model metadata"));
    if (!Authorized(*route, request)) return answer(Unauthorized(seg[2]));
    return Metadata(route, pinned, std::move(responder));
  }
  if (action == "ready") {
    bool ready = false;
    for (int v = 0; v < route->table.version_count(); ++v)
      if ((pinned >= 0 ? v == pinned : route->table.weight_bp(v) > 0) && route->HasReadyReplica(v)) ready = true;
    return answer(JsonAnswer(ready ? 200 : 503, {{"name", seg[2]}, {"ready", ready}}));
  }
  if (action != "infer") return answer(JsonError(404, "no route " + request.target));
  if (request.method != "POST") return answer(JsonError(405, "use POST for infer"));
  if (!Authorized(*route, request)) return answer(Unauthorized(seg[2]));
  Admission admitted(*this);
  if (!admitted) {
    server::Response r = JsonError(503, "the gateway is stopping");
    r.headers.emplace_back("retry-after", "1");
    return answer(std::move(r));
  }
  Infer(route, pinned, std::move(request), std::move(responder), began);
}

void Gateway::Impl::Infer(const std::shared_ptr<const ServiceRoute>& route, int pinned, server::Request request,
                          server::Responder responder, SteadyClock::time_point began) {
  RandomSource& random = ThreadRandom();
  int version = pinned;
  if (version < 0) {
    std::optional<std::string> key = StickyKey(*route, request);
    std::optional<std::string_view> key_view;
    if (key) key_view = *key;
    VersionChoice choice = route->table.ChooseVersion(key_view, random);
    if (choice.sticky_missing) route->counters->sticky_missing.fetch_add(1, std::memory_order_relaxed);
    version = choice.version;
    // Fallback: a version without a replica in rotation gives its share to
    // the weighted versions that have one, in proportion to their weights.
    if (!route->HasReadyReplica(version)) {
      uint32_t total = 0;
      for (int v = 0; v < route->table.version_count(); ++v)
        if (route->table.weight_bp(v) > 0 && route->HasReadyReplica(v)) total += route->table.weight_bp(v);
      if (total > 0) {
        uint32_t draw = UniformBelow(random, total);
        for (int v = 0; v < route->table.version_count(); ++v) {
          if (route->table.weight_bp(v) == 0 || !route->HasReadyReplica(v)) continue;
          if (draw < route->table.weight_bp(v)) {
            version = v;
            break;
          }
          draw -= route->table.weight_bp(v);
        }
        route->counters->rerouted.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
  auto up = std::make_shared<server::UpstreamRequest>();
  up->method = "POST";
  up->target = "/v2/models/" + route->table.service() + "/infer";
  std::string request_id = request.Header("x-request-id");
  if (request_id.empty()) request_id = RandomRequestId();
  up->headers.emplace_back("content-type", request.Header("content-type").empty() ? std::string("application/json")
                                                                                   : request.Header("content-type"));
  up->headers.emplace_back("x-request-id", request_id);
  if (std::string tp = request.Header("traceparent"); !tp.empty()) up->headers.emplace_back("traceparent", tp);
  up->body = std::make_shared<const std::string>(std::move(request.body));
  const Role role = pinned >= 0 ? Role::kPinned : Role::kLive;
  // The mirror draw comes first so the live answer knows it has a pair; the copy goes after the primary.
  const int mirror = pinned < 0 ? route->table.mirror_version() : -1;
  std::shared_ptr<MirrorPair> pair;
  if (mirror >= 0 && route->table.ShouldMirror(random))
    pair = std::make_shared<MirrorPair>(route->stats[mirror], &comparer);
  std::string cache_key;
  if (route->cache) {
    cache_key = PredictionCache::Key(route->table.version_name(version), route->revisions[version], *up->body);
    if (AnswerFromCache(route, version, role, *up, cache_key, responder, began, pair)) {
      if (pair) Mirror(route, mirror, up, pair);  // the mirror sees its share of requests, hits too
      return;
    }
  }
  Forward(route, version, role, up, nullptr, true, std::move(responder), began, std::move(cache_key), pair);
  if (pair) Mirror(route, mirror, up, pair);
}

void Gateway::Impl::RememberAnswer(const ServiceRoute& route, int version, const server::UpstreamRequest& up) {
  const std::string& id = RequestIdOf(up);
  if (!id.empty()) route.counters->answers->Remember(id, route.table.version_name(version));
}

void Gateway::Impl::Forward(std::shared_ptr<const ServiceRoute> route, int version, Role role,
                            std::shared_ptr<server::UpstreamRequest> up, const Replica* excluded, bool retry,
                            server::Responder responder, SteadyClock::time_point began, std::string cache_key,
                            std::shared_ptr<MirrorPair> pair) {
  const std::string& version_name = route->table.version_name(version);
  auto record = [route, version, role, began](int status, bool upstream_failed) {
    double ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - began).count();
    route->stats[version]->Record(role, status, ms, upstream_failed);
  };
  auto replicas = excluded ? Without(route->table.replicas(version), excluded) : route->table.replicas(version);
  ReplicaPick pick = PickReplica(replicas, route->max_inflight, ThreadRandom());
  if (pick.replica < 0) {
    server::Response r = JsonError(503, pick.failure == PickFailure::kEveryReplicaBusy
                                            ? "every replica of " + Quote(version_name) + " is busy"
                                            : "service " + Quote(route->table.service()) + " has no ready replica");
    r.headers.emplace_back("retry-after", "1");
    r.headers.emplace_back("x-sluice-version", version_name);
    r.headers.emplace_back("x-request-id", RequestIdOf(*up));
    record(503, false);
    if (pair) pair->SetLive(503, nullptr);
    responder.Send(std::move(r));
    return;
  }
  std::shared_ptr<Replica> replica = replicas[pick.replica];
  replica->outstanding.fetch_add(1, std::memory_order_relaxed);
  in_flight.fetch_add(1, std::memory_order_relaxed);
  const int port = replica->port.load(std::memory_order_relaxed);
  upstream->Send(
      port, *up, route->timeout,
      [this, route, version, role, up, replica, retry, responder, began, record, cache_key = std::move(cache_key),
       pair = std::move(pair)](server::UpstreamResult result) {
        replica->outstanding.fetch_sub(1, std::memory_order_relaxed);
        in_flight.fetch_sub(1, std::memory_order_relaxed);
        const std::string& name = route->table.version_name(version);
        if (result.error == server::UpstreamError::kNone) {
          int s = result.response.status;
          // A 502/503/504 of a replica counts against it; a model's 500 does not.
          if (s == 502 || s == 503 || s == 504) CountFailure(*route, version, *replica);
          else replica->consecutive_failures.store(0, std::memory_order_relaxed);
          server::Response r;
          r.status = s;
          std::string type = result.response.Header("content-type");
          r.content_type = type.empty() ? "application/json" : type;
          r.body = std::move(result.response.body);
          if (s == 200 && !cache_key.empty()) route->cache->Put(cache_key, {r.content_type, r.body}, SteadyMs());
          r.headers.emplace_back("x-sluice-version", name);
          r.headers.emplace_back("x-request-id", RequestIdOf(*up));
          if (std::string after = result.response.Header("retry-after"); !after.empty())
            r.headers.emplace_back("retry-after", after);
          record(s, false);
          if (role == Role::kLive) RememberAnswer(*route, version, *up);
          if (s == 200) Profile(*route, version, role, up->body, r.body);
          if (pair) pair->SetLive(s, s == 200 ? std::make_shared<const std::string>(r.body) : nullptr);
          responder.Send(std::move(r));
          return;
        }
        CountFailure(*route, version, *replica);
        if (result.error == server::UpstreamError::kConnect && !result.wrote_any && retry) {
          route->counters->retried.fetch_add(1, std::memory_order_relaxed);
          Forward(route, version, role, up, replica.get(), false, responder, began, cache_key, pair);
          return;
        }
        const std::string which = "replica " + std::to_string(replica->slot) + " of " + Quote(name);
        server::Response r;
        if (result.error == server::UpstreamError::kTimeout) {
          r = JsonError(504, which + " did not answer within " + std::to_string(route->timeout.count()) + " ms");
        } else if (result.error == server::UpstreamError::kClosed) {
          r = JsonError(502, which + " closed the connection");
        } else {
          r = JsonError(502, which + ": " + result.message);
        }
        r.headers.emplace_back("x-sluice-version", name);
        r.headers.emplace_back("x-request-id", RequestIdOf(*up));
        record(r.status, true);
        if (pair) pair->SetLive(r.status, nullptr);
        responder.Send(std::move(r));
      });
}

bool Gateway::Impl::AnswerFromCache(const std::shared_ptr<const ServiceRoute>& route, int version, Role role,
                                    const server::UpstreamRequest& up, const std::string& key, const server::Responder& responder,
                                    SteadyClock::time_point began, const std::shared_ptr<MirrorPair>& pair) {
  std::optional<CachedAnswer> hit = route->cache->Get(key, SteadyMs());
  if (!hit) return false;
  server::Response r;
  r.content_type = std::move(hit->content_type);
  r.body = std::move(hit->body);
  r.headers.emplace_back("x-sluice-version", route->table.version_name(version));
  r.headers.emplace_back("x-sluice-cache", "hit");
  r.headers.emplace_back("x-request-id", RequestIdOf(up));
  double ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - began).count();
  route->stats[version]->Record(role, 200, ms, false, /*cache_hit=*/true);
  if (role == Role::kLive) RememberAnswer(*route, version, up);
  if (pair) pair->SetLive(200, std::make_shared<const std::string>(r.body));
  responder.Send(std::move(r));
  return true;
}

void Gateway::Impl::CountFailure(const ServiceRoute& route, int version, Replica& replica) {
  if (replica.consecutive_failures.fetch_add(1, std::memory_order_relaxed) + 1 < kEjectAfter) return;
  int in_rotation = 0;
  for (const auto& r : route.table.replicas(version)) in_rotation += r->in_rotation.load() ? 1 : 0;
  if (in_rotation <= 1 || !replica.in_rotation.load()) return;  // never the last one
  const int times = replica.ejections.fetch_add(1) + 1;
  const int64_t for_ms = std::min<int64_t>(kEjectionMs * times, kMaxEjectionMs);
  replica.ejected_until_ms.store(WallMs() + for_ms);
  replica.in_rotation.store(false);
  replica.consecutive_failures.store(0, std::memory_order_relaxed);
  ejections_total.fetch_add(1, std::memory_order_relaxed);
  Log("event=replica-ejected service=" + route.table.service() + " version=" + route.table.version_name(version) +
      " slot=" + std::to_string(replica.slot) + " for_ms=" + std::to_string(for_ms));
  std::lock_guard<std::mutex> lock(ejections_mu);
  ejections_to_record.emplace_back(route.table.service(),
                                   "replica " + std::to_string(replica.slot) + " of " + route.table.version_name(version) +
                                       " ejected for " + std::to_string(for_ms / 1000) + " s after " +
                                       std::to_string(kEjectAfter) + " failures in a row");
}

void Gateway::Impl::Mirror(const std::shared_ptr<const ServiceRoute>& route, int version,
                           const std::shared_ptr<server::UpstreamRequest>& up,
                           const std::shared_ptr<MirrorPair>& pair) {
  ServiceCounters& c = *route->counters;
  const auto& replicas = route->table.replicas(version);
  // Copies have their own in-flight limit: half the mirror's capacity, at least one.
  const int limit = std::max(1, static_cast<int>(replicas.size()) * route->max_inflight / 2);
  ReplicaPick pick = PickReplica(replicas, route->max_inflight, ThreadRandom());
  if (pick.replica < 0 || c.mirror_inflight.load(std::memory_order_relaxed) >= limit) {
    route->stats[version]->RecordMirror(MirrorOutcome::kDropped);
    pair->SetMirror(0, nullptr);
    return;
  }
  auto copy = std::make_shared<server::UpstreamRequest>(*up);  // the body pointer is shared, not copied
  copy->headers.emplace_back("x-sluice-shadow", "1");
  std::shared_ptr<Replica> replica = replicas[pick.replica];
  replica->outstanding.fetch_add(1, std::memory_order_relaxed);
  c.mirror_inflight.fetch_add(1, std::memory_order_relaxed);
  in_flight.fetch_add(1, std::memory_order_relaxed);
  const auto began = SteadyClock::now();
  upstream->Send(replica->port.load(std::memory_order_relaxed), *copy, route->timeout,
                 [this, route, version, replica, began, pair, body = copy->body](server::UpstreamResult result) {
                   replica->outstanding.fetch_sub(1, std::memory_order_relaxed);
                   route->counters->mirror_inflight.fetch_sub(1, std::memory_order_relaxed);
                   double ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - began).count();
                   const bool failed = result.error != server::UpstreamError::kNone;
                   const int status = failed ? 502 : result.response.status;
                   WindowStats& stats = *route->stats[version];
                   stats.Record(Role::kMirror, status, ms, failed);
                   if (failed) stats.RecordMirror(MirrorOutcome::kDropped);
                   if (status == 200) Profile(*route, version, Role::kMirror, body, result.response.body);
                   // Before in_flight drops: Stop stops the comparer only once nothing is in flight.
                   pair->SetMirror(failed ? 0 : status,
                                   status == 200 ? std::make_shared<const std::string>(std::move(result.response.body))
                                                 : nullptr);
                   in_flight.fetch_sub(1, std::memory_order_relaxed);
                 });
}

void Gateway::Impl::Feedback(const std::shared_ptr<const ServiceRoute>& route, const server::Request& request,
                             const server::Responder& responder) {
  const std::string& service = route->table.service();
  if (request.method != "POST") return responder.Send(JsonError(405, "use POST for feedback"));
  if (!Authorized(*route, request)) return responder.Send(Unauthorized(service));
  Admission admitted(*this);
  if (!admitted) {  // Stop writes what is queued once; a row queued after would be lost
    server::Response r = JsonError(503, "the gateway is stopping");
    r.headers.emplace_back("retry-after", "1");
    return responder.Send(std::move(r));
  }
  auto parsed = ParseFeedback(request.body);
  if (!parsed.ok()) return responder.Send(JsonError(400, parsed.status().message()));
  FeedbackRequest& f = *parsed;
  store::FeedbackRow row;
  row.service = service;
  if (!f.request_id.empty()) {
    std::optional<std::string> version = route->counters->answers->Find(f.request_id);
    if (!version)
      return responder.Send(JsonError(409, "unknown request id " + Quote(f.request_id) +
                                               " (the gateway remembers the last " +
                                               std::to_string(route->counters->answers->capacity()) +
                                               " answers of a service)"));
    row.version = std::move(*version);
    row.request_id = std::move(f.request_id);
  } else {
    if (!route->table.sticky())
      return responder.Send(JsonError(400, "key: service " + Quote(service) +
                                               " is not sticky, so a key names no version; give request_id"));
    row.version = route->table.version_name(route->table.ChooseVersion(std::string_view(f.key), ThreadRandom()).version);
    row.key = std::move(f.key);
  }
  row.reward = f.reward;
  row.label = std::move(f.label);
  row.at_ms = f.at_ms.value_or(WallMs());
  std::string version = row.version;
  if (!feedback_queue.Offer(std::move(row))) {
    server::Response r = JsonError(503, "the gateway's feedback queue is full (" +
                                            std::to_string(kFeedbackQueueRows) + " rows waiting to be written)");
    r.headers.emplace_back("retry-after", "1");
    return responder.Send(std::move(r));
  }
  responder.Send(JsonAnswer(202, {{"service", service}, {"version", version}}));
}

void Gateway::Impl::Metadata(const std::shared_ptr<const ServiceRoute>& route, int pinned,
                             server::Responder responder) {
  int version = pinned;
  for (int v = 0; version < 0 && v < route->table.version_count(); ++v)
    if (route->table.weight_bp(v) > 0 && route->HasReadyReplica(v)) version = v;
  if (version < 0) {
    for (int v = 0; version < 0 && v < route->table.version_count(); ++v)
      if (route->HasReadyReplica(v)) version = v;
  }
  ReplicaPick pick;
  if (version >= 0) pick = PickReplica(route->table.replicas(version), 0, ThreadRandom());
  if (version < 0 || pick.replica < 0) {
    server::Response r = JsonError(503, "service " + Quote(route->table.service()) + " has no ready replica");
    r.headers.emplace_back("retry-after", "1");
    responder.Send(std::move(r));
    return;
  }
  server::UpstreamRequest up;
  up.method = "GET";
  up.target = "/v2/models/" + route->table.service();
  auto replica = route->table.replicas(version)[pick.replica];
  upstream->Send(replica->port.load(std::memory_order_relaxed), up, route->timeout,
                 [route, version, responder](server::UpstreamResult result) {
                   if (result.error != server::UpstreamError::kNone || result.response.status != 200) {
                     responder.Send(JsonError(502, "the metadata of " + Quote(route->table.version_name(version)) +
                                                       " could not be read: " +
                                                       (result.message.empty() ? "status " +
                                                        std::to_string(result.response.status) : result.message)));
                     return;
                   }
                   json meta = json::parse(result.response.body, nullptr, false);
                   if (!meta.is_object()) meta = json::object();
                   json versions = json::array();
                   for (int v = 0; v < route->table.version_count(); ++v) versions.push_back(route->table.version_name(v));
                   meta["name"] = route->table.service();
                   meta["versions"] = versions;
                   server::Response r = JsonAnswer(200, meta);
                   r.headers.emplace_back("x-sluice-version", route->table.version_name(version));
                   responder.Send(std::move(r));
                 });
}

std::string Gateway::Impl::MetricsText() {
  std::vector<MetricSeries> series;
  std::string text;
  std::map<std::string, std::shared_ptr<ServiceCounters>> snapshot;
  {
    std::lock_guard<std::mutex> lock(counters_mu);
    snapshot = counters;
  }
  for (const auto& [service, c] : snapshot)
    for (const auto& [version, stats] : c->versions)
      for (Role role : {Role::kLive, Role::kMirror, Role::kPinned})
        series.push_back({service, version, role, stats->Total(role)});
  AppendRequestMetrics(series, &text);
  auto counter = [&](const char* name, const char* help, auto value_of) {
    text += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n";
    for (const auto& [service, c] : snapshot)
      text += std::string(name) + "{service=\"" + PrometheusLabel(service) + "\"} " + std::to_string(value_of(*c)) +
              "\n";
  };
  {
    // Per (service, version) of a mirror target: its current one, and any
    // that has counts from an earlier mirror setting.
    auto routes = CurrentRoutes();
    std::vector<std::tuple<std::string, std::string, Window>> mirrors;
    for (const auto& [service, c] : snapshot) {
      auto route = routes->services.find(service);
      const std::string current = route != routes->services.end() && route->second->table.mirror_version() >= 0
                                      ? route->second->table.version_name(route->second->table.mirror_version())
                                      : std::string();
      for (const auto& [version, stats] : c->versions) {
        Window w = stats->Total(Role::kMirror);
        if (version == current || w.requests > 0 || w.mirror_dropped > 0 || w.mirror_compared > 0)
          mirrors.emplace_back(service, version, w);
      }
    }
    auto mirror_counter = [&](const char* name, const char* help, int64_t Window::*field) {
      text += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n";
      for (const auto& [service, version, w] : mirrors)
        text += std::string(name) + "{service=\"" + PrometheusLabel(service) + "\",version=\"" +
                PrometheusLabel(version) + "\"} " + std::to_string(w.*field) + "\n";
    };
    mirror_counter("sluice_mirror_dropped_total",
                   "Mirror copies not sent (the mirror's in-flight limit, no replica) or whose read failed.",
                   &Window::mirror_dropped);
    mirror_counter("sluice_mirror_compared_total", "Mirror answers compared with the live answer (both 200).",
                   &Window::mirror_compared);
    mirror_counter("sluice_mirror_agreed_total", "Compared mirror answers that agreed with the live answer.",
                   &Window::mirror_agreed);
    text += "# HELP sluice_mirror_compare_skipped_total Mirror comparisons skipped because the comparer's queue was "
            "full.\n# TYPE sluice_mirror_compare_skipped_total counter\nsluice_mirror_compare_skipped_total " +
            std::to_string(comparer.skipped()) + "\n";
    text += "# HELP sluice_feedback_lost_total Feedback rows accepted but not written (the store failed).\n"
            "# TYPE sluice_feedback_lost_total counter\nsluice_feedback_lost_total " +
            std::to_string(feedback_lost.load()) + "\n";
  }
  counter("sluice_sticky_missing_total", "Requests to a sticky service without its key (routed by weight).",
          [](const ServiceCounters& c) { return c.sticky_missing.load(); });
  counter("sluice_rerouted_total", "Requests whose version had no ready replica, sent to another by weight.",
          [](const ServiceCounters& c) { return c.rerouted.load(); });
  text += "# HELP sluice_cache_hits_total Requests answered from the prediction cache.\n"
          "# TYPE sluice_cache_hits_total counter\n";
  for (const auto& [service, c] : snapshot)
    for (const auto& [version, stats] : c->versions) {
      int64_t hits = 0;
      for (Role role : {Role::kLive, Role::kPinned}) hits += stats->Total(role).cache_hits;
      text += "sluice_cache_hits_total{service=\"" + PrometheusLabel(service) + "\",version=\"" +
              PrometheusLabel(version) + "\"} " + std::to_string(hits) + "\n";
    }
  counter("sluice_retried_total", "Requests sent again to another replica after a failed connect.",
          [](const ServiceCounters& c) { return c.retried.load(); });
  text += "# HELP sluice_profile_dropped_total Sampled answers the payload profile dropped (its queue was full).\n"
          "# TYPE sluice_profile_dropped_total counter\nsluice_profile_dropped_total " +
          std::to_string(profiler->dropped()) + "\n";
  text += "# HELP sluice_ejections_total Replicas taken out of rotation after consecutive failures.\n"
          "# TYPE sluice_ejections_total counter\nsluice_ejections_total " +
          std::to_string(ejections_total.load()) + "\n";
  auto routes = CurrentRoutes();
  text += "# HELP sluice_replica_ready Whether a replica is in rotation (1) or not (0).\n"
          "# TYPE sluice_replica_ready gauge\n";
  std::string outstanding = "# HELP sluice_replica_outstanding Requests a replica is answering now.\n"
                            "# TYPE sluice_replica_outstanding gauge\n";
  for (const auto& [service, route] : routes->services) {
    for (int v = 0; v < route->table.version_count(); ++v) {
      for (const auto& r : route->table.replicas(v)) {
        std::string labels = "{service=\"" + PrometheusLabel(service) + "\",version=\"" +
                             PrometheusLabel(route->table.version_name(v)) + "\",slot=\"" + std::to_string(r->slot) +
                             "\"}";
        text += "sluice_replica_ready" + labels + (r->in_rotation.load() ? " 1\n" : " 0\n");
        outstanding += "sluice_replica_outstanding" + labels + " " + std::to_string(r->outstanding.load()) + "\n";
      }
    }
  }
  text += outstanding;
  text += "# HELP sluice_routing_generation The generation of the routes in use.\n"
          "# TYPE sluice_routing_generation gauge\nsluice_routing_generation " +
          std::to_string(routes->generation) + "\n";
  return text;
}

}  // namespace sluice::serving
