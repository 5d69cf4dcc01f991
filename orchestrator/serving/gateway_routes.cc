// The gateway's data plane (gateway_impl.h): the /v2 routes and /metrics,
// run on the HTTP server's I/O threads. Nothing here touches SQLite or
// blocks: a request is routed, forwarded through the upstream client and
// counted; its answer comes back on the same thread.
#include <algorithm>
#include <cstdio>

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
  if (draining.load()) {
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
  std::string cache_key;
  if (route->cache) {
    cache_key = PredictionCache::Key(route->table.version_name(version), route->revisions[version], *up->body);
    if (AnswerFromCache(route, version, role, cache_key, responder, began)) {
      if (pinned < 0) Mirror(route, up);  // the mirror sees its share of requests, hits too
      return;
    }
  }
  Forward(route, version, role, up, nullptr, true, std::move(responder), began, std::move(cache_key));
  if (pinned < 0) Mirror(route, up);
}

void Gateway::Impl::Forward(std::shared_ptr<const ServiceRoute> route, int version, Role role,
                            std::shared_ptr<server::UpstreamRequest> up, const Replica* excluded, bool retry,
                            server::Responder responder, SteadyClock::time_point began, std::string cache_key) {
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
    record(503, false);
    responder.Send(std::move(r));
    return;
  }
  std::shared_ptr<Replica> replica = replicas[pick.replica];
  replica->outstanding.fetch_add(1, std::memory_order_relaxed);
  in_flight.fetch_add(1, std::memory_order_relaxed);
  const int port = replica->port.load(std::memory_order_relaxed);
  upstream->Send(
      port, *up, route->timeout,
      [this, route, version, role, up, replica, retry, responder, began, record,
       cache_key = std::move(cache_key)](server::UpstreamResult result) {
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
          if (std::string after = result.response.Header("retry-after"); !after.empty())
            r.headers.emplace_back("retry-after", after);
          record(s, false);
          if (s == 200) Profile(*route, version, role, up->body, r.body);
          responder.Send(std::move(r));
          return;
        }
        CountFailure(*route, version, *replica);
        if (result.error == server::UpstreamError::kConnect && !result.wrote_any && retry) {
          route->counters->retried.fetch_add(1, std::memory_order_relaxed);
          Forward(route, version, role, up, replica.get(), false, responder, began, cache_key);
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
        record(r.status, true);
        responder.Send(std::move(r));
      });
}

bool Gateway::Impl::AnswerFromCache(const std::shared_ptr<const ServiceRoute>& route, int version, Role role,
                                    const std::string& key, const server::Responder& responder,
                                    SteadyClock::time_point began) {
  std::optional<CachedAnswer> hit = route->cache->Get(key, SteadyMs());
  if (!hit) return false;
  server::Response r;
  r.content_type = std::move(hit->content_type);
  r.body = std::move(hit->body);
  r.headers.emplace_back("x-sluice-version", route->table.version_name(version));
  r.headers.emplace_back("x-sluice-cache", "hit");
  double ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - began).count();
  route->stats[version]->Record(role, 200, ms, false, /*cache_hit=*/true);
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

void Gateway::Impl::Mirror(const std::shared_ptr<const ServiceRoute>& route,
                           const std::shared_ptr<server::UpstreamRequest>& up) {
  const int version = route->table.mirror_version();
  if (version < 0 || !route->table.ShouldMirror(ThreadRandom())) return;
  ServiceCounters& c = *route->counters;
  const auto& replicas = route->table.replicas(version);
  // Copies have their own in-flight limit: half the mirror's capacity, at least one.
  const int limit = std::max(1, static_cast<int>(replicas.size()) * route->max_inflight / 2);
  ReplicaPick pick = PickReplica(replicas, route->max_inflight, ThreadRandom());
  if (pick.replica < 0 || c.mirror_inflight.load(std::memory_order_relaxed) >= limit) {
    c.mirror_dropped.fetch_add(1, std::memory_order_relaxed);
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
                 [this, route, version, replica, began, body = copy->body](server::UpstreamResult result) {
                   replica->outstanding.fetch_sub(1, std::memory_order_relaxed);
                   route->counters->mirror_inflight.fetch_sub(1, std::memory_order_relaxed);
                   in_flight.fetch_sub(1, std::memory_order_relaxed);
                   double ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - began).count();
                   bool failed = result.error != server::UpstreamError::kNone;
                   route->stats[version]->Record(Role::kMirror, failed ? 502 : result.response.status, ms, failed);
                   if (!failed && result.response.status == 200)
                     Profile(*route, version, Role::kMirror, body, result.response.body);
                 });
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
  counter("sluice_mirror_dropped_total", "Mirror copies dropped because the mirror was full or had no replica.",
          [](const ServiceCounters& c) { return c.mirror_dropped.load(); });
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
