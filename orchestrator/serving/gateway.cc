#include "serving/gateway.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "exec/process.h"
#include "server/http.h"
#include "server/upstream.h"
#include "serving/prediction_cache.h"
#include "serving/profiler.h"
#include "serving/routing.h"
#include "serving/service_spec.h"
#include "serving/service_state.h"
#include "serving/stats.h"
#include "store/open.h"
#include "util/hash.h"
#include "util/strings.h"

namespace sluice::serving {

namespace {

using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

constexpr size_t kStickyFieldScan = 64 << 10;  // a sticky field is looked for in the body's first 64 KiB
constexpr int kMaxJsonDepth = 64;
constexpr int64_t kFlushEveryMs = 1000;
constexpr int64_t kPruneEveryMs = 3600 * 1000;
constexpr int64_t kKeepWindowsMs = 48 * 3600 * 1000;
constexpr int64_t kStopCheckEveryMs = 250;
// Passive health (services-design.md section 6).
constexpr int kEjectAfter = 5;
constexpr int64_t kEjectionMs = 5000;
constexpr int64_t kMaxEjectionMs = 60000;

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void Log(const std::string& line) {
  std::string text = IsoTime(WallMs()) + " " + line + "\n";
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

server::Response JsonError(int status, const std::string& message) {
  server::Response r;
  r.status = status;
  r.body = json{{"error", message}}.dump();
  return r;
}

server::Response JsonAnswer(int status, const json& body) {
  server::Response r;
  r.status = status;
  r.body = body.dump();
  return r;
}

// Counters of one service that outlive its routing tables.
struct ServiceCounters {
  std::map<std::string, std::shared_ptr<WindowStats>> versions;  // by version name
  std::atomic<int64_t> rerouted{0}, retried{0}, mirror_dropped{0}, sticky_missing{0};
  std::atomic<int> mirror_inflight{0};
  // The prediction cache, kept across routing tables while its limits stay;
  // set by the control thread only (under counters_mu).
  std::shared_ptr<PredictionCache> cache;
};

// One service as the I/O threads see it in one generation.
struct ServiceRoute {
  explicit ServiceRoute(RoutingTable t) : table(std::move(t)) {}
  RoutingTable table;
  std::string sticky_header;                 // lower case; or
  std::vector<std::string> sticky_field;     // a dot path into the JSON body
  std::string token_hash;                    // SHA-256 hex of the infer token; empty: open
  std::chrono::milliseconds timeout{30000};
  int max_inflight = 64;
  double profile_sample = 1.0;               // stats.sample
  std::vector<std::shared_ptr<WindowStats>> stats;  // by version index
  std::vector<int> revisions;                       // by version index: part of a cache key
  std::shared_ptr<PredictionCache> cache;           // null: no prediction cache
  std::shared_ptr<ServiceCounters> counters;
  bool HasReadyReplica(int version) const {
    for (const auto& r : table.replicas(version))
      if (r->in_rotation.load(std::memory_order_relaxed)) return true;
    return false;
  }
};

struct Routes {
  int64_t generation = 0;  // unique in the process
  std::map<std::string, std::shared_ptr<const ServiceRoute>> services;
};

std::atomic<int64_t> next_generation{1};

// The I/O thread's random source.
RandomSource& ThreadRandom() {
  thread_local Xoshiro256 random(std::random_device{}() ^
                                 (static_cast<uint64_t>(std::hash<std::thread::id>{}(std::this_thread::get_id())) << 1));
  return random;
}

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

store::WindowRow ToRow(const std::string& service, const std::string& version, const Window& w) {
  store::WindowRow row;
  row.service = service;
  row.version = version;
  row.role = RoleName(w.role);
  row.start_ms = w.start_ms;
  row.requests = w.requests;
  row.errors = w.errors;
  json codes = json::object();
  for (int i = 0; i < kStatusSlotCount; ++i) {
    if (w.status[i] == 0) continue;
    codes[i < static_cast<int>(kStatusSlots.size()) ? std::to_string(kStatusSlots[i]) : "other"] = w.status[i];
  }
  row.codes = codes.dump();
  row.latency_bounds = "v1";
  row.latency = json(std::vector<int64_t>(w.latency.begin(), w.latency.end())).dump();
  row.latency_sum_us = w.latency_sum_us;
  row.latency_max_us = w.latency_max_us;
  row.cache_hits = w.cache_hits;
  return row;
}

}  // namespace

struct Gateway::Impl {
  GatewayOptions options;
  std::unique_ptr<store::Store> store;   // the control thread's, once it runs
  std::unique_ptr<server::HttpServer> http;
  std::shared_ptr<server::UpstreamClient> upstream;
  std::unique_ptr<Supervisor> supervisor;
  int64_t pid = ::getpid();

  // Published routes.
  std::mutex routes_mu;
  std::shared_ptr<const Routes> routes = std::make_shared<Routes>();
  std::atomic<int64_t> routes_generation{0};

  // Counters by service; the control thread adds, /metrics and the flusher read.
  std::mutex counters_mu;
  std::map<std::string, std::shared_ptr<ServiceCounters>> counters;

  std::atomic<bool> draining{false};
  std::atomic<int> in_flight{0};  // requests between Handle and their answer

  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stop_asked = false;
  std::atomic<bool> control_running{true};
  std::thread control;
  bool stopped = false;

  std::shared_ptr<const Routes> CurrentRoutes() {
    // One cache per thread, keyed by the gateway too: generations are unique
    // in the process once published, but every gateway starts at 0.
    struct Cache {
      const Impl* owner = nullptr;
      int64_t generation = -1;
      std::shared_ptr<const Routes> routes;
    };
    thread_local Cache cache;
    int64_t g = routes_generation.load(std::memory_order_acquire);
    if (cache.owner != this || cache.generation != g) {
      std::lock_guard<std::mutex> lock(routes_mu);
      cache.owner = this;
      cache.routes = routes;
      cache.generation = cache.routes->generation;
    }
    return cache.routes;
  }

  void Handle(server::Request request, server::Responder responder);
  void Infer(const std::shared_ptr<const ServiceRoute>& route, int pinned, server::Request request,
             server::Responder responder, SteadyClock::time_point began);
  void Forward(std::shared_ptr<const ServiceRoute> route, int version, Role role,
               std::shared_ptr<server::UpstreamRequest> up, const Replica* excluded, bool retry,
               server::Responder responder, SteadyClock::time_point began, std::string cache_key = "");
  // Answers from the service's prediction cache when it holds `key` (a 200
  // with x-sluice-cache: hit, counted as a cache hit of `version`); false
  // when it does not. `role`: live or pinned; mirror copies never use it.
  bool AnswerFromCache(const std::shared_ptr<const ServiceRoute>& route, int version, Role role,
                       const std::string& key, const server::Responder& responder, SteadyClock::time_point began);
  // A failure the gateway saw (connect refused, reset, timeout, a
  // replica's 502/503/504). At kEjectAfter in a row the replica is ejected
  // for kEjectionMs times its ejections (kMaxEjectionMs at most), unless it
  // is its version's last one in rotation.
  void CountFailure(const ServiceRoute& route, int version, Replica& replica);
  std::atomic<int64_t> ejections_total{0};
  // The payload profile: a sampled 200 answer and its request go to the
  // profiler's queue (a copy of the answer; the request body is shared).
  std::unique_ptr<Profiler> profiler = std::make_unique<Profiler>();
  void Profile(const ServiceRoute& route, int version, Role role, std::shared_ptr<const std::string> request,
               const std::string& answer) {
    const double share = route.profile_sample;
    if (share <= 0 || (share < 1 && static_cast<double>(ThreadRandom().Next() >> 11) * 0x1p-53 >= share)) return;
    ProfileSample sample{route.table.service(), route.table.version_name(version), role, WallMs(), nullptr, nullptr};
    // Bodies the profiler would not read are not queued (it counts the sample as unparsed).
    if (request && request->size() <= kMaxProfiledBody && answer.size() <= kMaxProfiledBody) {
      sample.request = std::move(request);
      sample.answer = std::make_shared<const std::string>(answer);
    }
    profiler->Offer(std::move(sample));
  }
  void Mirror(const std::shared_ptr<const ServiceRoute>& route, const std::shared_ptr<server::UpstreamRequest>& up);
  void Metadata(const std::shared_ptr<const ServiceRoute>& route, int pinned, server::Responder responder);
  std::string MetricsText();

  // One round of the control thread: the store's changes, supervision,
  // publication, the flush, the stop check. ControlLoop repeats it.
  void ControlStep();
  void ControlLoop();
  int64_t seen_data_version = -1, seen_replica_generation = -1;
  int64_t next_flush = 0, next_prune = 0, next_stop_check = 0;
  std::vector<store::ServiceState> desired;
  void Rebuild(const std::vector<store::ServiceState>& services);
  // The service's prediction cache for its applied document: the one it
  // has while `cache` is unchanged, a new empty one when it changed, null
  // without `cache`. REQUIRES: counters_mu is held (the control thread).
  static std::shared_ptr<PredictionCache> CacheFor(ServiceCounters& counters, const std::optional<CacheSpec>& want);
  // Writes the closed windows (`last`: every window, no writer left) and the heartbeat.
  void Flush(int64_t now_ms, bool last);
  void AskStop() {
    std::lock_guard<std::mutex> lock(stop_mu);
    stop_asked = true;
    stop_cv.notify_all();
  }
};

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

// ---- the control thread ----

void Gateway::Impl::Rebuild(const std::vector<store::ServiceState>& services) {
  auto next = std::make_shared<Routes>();
  next->generation = next_generation.fetch_add(1);
  std::lock_guard<std::mutex> counters_lock(counters_mu);
  for (const store::ServiceState& s : services) {
    RouteSpec spec;
    spec.service = s.name;
    spec.sticky = !s.sticky_header.empty() || !s.sticky_field.empty();
    spec.sticky_salt = s.sticky_salt.empty() ? s.name : s.sticky_salt;
    if (!s.mirror_version.empty()) {
      spec.mirror_version = s.mirror_version;
      spec.mirror_percent = s.mirror_bp / 100.0;
    }
    for (const store::ServiceVersionState& v : s.versions) {
      if (v.state != "active") continue;
      VersionRoute vr;
      vr.name = v.name;
      vr.weight_percent = v.weight_bp / 100.0;
      vr.replicas = supervisor->Replicas(s.name, v.name);
      spec.versions.push_back(std::move(vr));
    }
    auto table = RoutingTable::Build(std::move(spec));
    if (!table.ok()) {
      Log("event=service-skipped service=" + s.name + " reason=" + Quote(table.status().message()));
      continue;
    }
    auto route = std::make_shared<ServiceRoute>(std::move(*table));
    route->sticky_header = s.sticky_header;
    if (!s.sticky_field.empty()) route->sticky_field = Split(s.sticky_field, '.');
    route->token_hash = s.infer_token_hash;
    // Per-request limits and the cache are in the applied document's canonical JSON.
    const RouteSettings settings = RouteSettingsOfSpecJson(s.spec);
    route->timeout = settings.timeout;
    route->max_inflight = settings.max_inflight;
    route->profile_sample = settings.stats_sample;
    auto& c = counters[s.name];
    if (!c) c = std::make_shared<ServiceCounters>();
    route->counters = c;
    route->cache = CacheFor(*c, settings.cache);
    for (const store::ServiceVersionState& v : s.versions) {
      if (v.state != "active") continue;
      auto& stats = c->versions[v.name];
      if (!stats) stats = std::make_shared<WindowStats>(WallMs);
      route->stats.push_back(stats);
      route->revisions.push_back(v.revision);
    }
    next->services[s.name] = std::move(route);
  }
  std::lock_guard<std::mutex> lock(routes_mu);
  routes = std::move(next);
  routes_generation.store(routes->generation, std::memory_order_release);
}

std::shared_ptr<PredictionCache> Gateway::Impl::CacheFor(ServiceCounters& c, const std::optional<CacheSpec>& want) {
  if (!want) c.cache.reset();
  else if (!c.cache || c.cache->entries() != want->entries || c.cache->ttl() != want->ttl)
    c.cache = std::make_shared<PredictionCache>(want->entries, want->ttl);
  return c.cache;
}

void Gateway::Impl::Flush(int64_t now_ms, bool last) {
  std::vector<store::WindowRow> rows;
  {
    std::lock_guard<std::mutex> lock(counters_mu);
    for (const auto& [service, c] : counters)
      for (const auto& [version, stats] : c->versions)
        for (const Window& w : last ? stats->TakeAll() : stats->TakeClosed()) rows.push_back(ToRow(service, version, w));
  }
  // The profile of each window joins its row (a window profiled but not
  // counted, the flusher being ahead of the profiler, gets a row of its own).
  for (WindowProfile& p : last ? profiler->StopAndTakeAll() : profiler->TakeClosed(now_ms)) {
    const std::string role = RoleName(p.role);
    auto row = std::find_if(rows.begin(), rows.end(), [&](const store::WindowRow& r) {
      return r.service == p.service && r.version == p.version && r.role == role && r.start_ms == p.start_ms;
    });
    if (row == rows.end()) {
      Window empty;
      empty.role = p.role;
      empty.start_ms = p.start_ms;
      rows.push_back(ToRow(p.service, p.version, empty));
      row = rows.end() - 1;
    }
    row->classes = std::move(p.classes);
    row->payload = std::move(p.payload);
  }
  Status st = store->gateway().AppendWindows(rows, pid, now_ms);
  if (!st.ok()) Log("event=flush-failed reason=" + Quote(st.message()));
}

void Gateway::Impl::ControlStep() {
  const int64_t now = WallMs();
  bool changed = false;
  auto dv = store->db().DataVersion();
  if (dv.ok() && *dv != seen_data_version) {
    auto list = store->services().List();
    if (list.ok()) {
      seen_data_version = *dv;
      desired = std::move(*list);
      supervisor->Reconcile(desired, now);
      changed = true;
    } else {
      Log("event=read-services-failed reason=" + Quote(list.status().message()));
    }
  }
  supervisor->Tick(now);
  if (changed || supervisor->replica_set_generation() != seen_replica_generation) {
    seen_replica_generation = supervisor->replica_set_generation();
    Rebuild(desired);
    // A removing version whose replicas are all gone is removed.
    for (const store::ServiceState& s : desired)
      for (const store::ServiceVersionState& v : s.versions)
        if (v.state == "removing" && !supervisor->HasReplicas(s.name, v.name))
          if (Status st = store->gateway().MarkRemoved(s.name, v.name, now); !st.ok())
            Log("event=mark-removed-failed service=" + s.name + " version=" + v.name + " reason=" +
                Quote(st.message()));
  }
  if (now >= next_flush) {
    Flush(now, false);
    next_flush = now + kFlushEveryMs;
  }
  if (now >= next_prune) {
    if (Status st = store->gateway().PruneWindows(now - kKeepWindowsMs); !st.ok())
      Log("event=prune-failed reason=" + Quote(st.message()));
    next_prune = now + kPruneEveryMs;
  }
  if (now >= next_stop_check) {
    auto row = store->gateway().Read();
    if (row.ok() && (!*row || (*row)->pid != pid || (*row)->stop_requested)) {
      Log(std::string("event=gateway-stop-requested by=") + (*row && (*row)->pid == pid ? "store" : "claim-lost"));
      AskStop();
    }
    next_stop_check = now + kStopCheckEveryMs;
  }
}

void Gateway::Impl::ControlLoop() {
  while (control_running.load()) {
    ControlStep();
    std::this_thread::sleep_for(options.poll_interval);
  }
}

// ---- Gateway ----

Gateway::Gateway(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Gateway::~Gateway() { Stop(); }

int Gateway::port() const { return impl_->http ? impl_->http->port() : impl_->options.port; }

void Gateway::Handle(server::Request request, server::Responder responder) {
  impl_->Handle(std::move(request), std::move(responder));
}

Result<std::unique_ptr<Gateway>> Gateway::Start(GatewayOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  const GatewayOptions& o = impl->options;
  auto opened = store::Store::Open(o.store_path);
  if (!opened.ok()) return opened.status();
  impl->store = std::move(*opened);
  auto describe = [](const store::GatewayRecord& g) {
    return "a gateway already serves this store: pid " + std::to_string(g.pid) + " on " + g.listen + ":" +
           std::to_string(g.port) + " (" + (g.mode == "background" ? "started by services apply; " : "") +
           "sluice gateway stop stops it)";
  };
  auto alive = [](int64_t pid, int64_t start) { return exec::SameProcessAlive(static_cast<int>(pid), start); };
  auto holder = impl->store->gateway().Read();
  if (!holder.ok()) return holder.status();
  if (*holder && alive((*holder)->pid, (*holder)->start_time))
    return Status::Incompatible(describe(**holder));

  Impl* raw = impl.get();
  if (o.own_listener) {
    server::ServerOptions so;
    so.listen = o.listen;
    so.port = o.port;
    so.threads = o.threads;
    so.max_body = o.max_body;
    so.error_body = [](int, const std::string&, const std::string& message) {
      return json{{"error", message}}.dump();
    };
    impl->http = std::make_unique<server::HttpServer>(
        so, [raw](server::Request r, server::Responder responder) { raw->Handle(std::move(r), std::move(responder)); });
    if (Status st = impl->http->Start(); !st.ok()) return st.WithContext("gateway on " + o.listen);
    impl->upstream = impl->http->MakeUpstreamClient();
  } else {
    if (!o.upstream) return Status::Internal("a gateway without its own listener needs the host server's upstream client");
    impl->upstream = o.upstream;
  }

  store::GatewayRecord me;
  me.pid = impl->pid;
  me.start_time = exec::ProcessStartTime(static_cast<int>(impl->pid));
  me.listen = o.listen;
  me.port = impl->http ? impl->http->port() : o.port;
  me.mode = o.mode;
  me.log_path = o.log_path;
  me.started_ms = WallMs();
  me.heartbeat_ms = me.started_ms;
  auto claimed = impl->store->gateway().Claim(me, alive);
  if (!claimed.ok() || *claimed) {
    if (impl->http) impl->http->Stop();
    if (!claimed.ok()) return claimed.status();
    return Status::Incompatible(describe(**claimed));
  }
  if (auto services = impl->store->services().List(); services.ok()) {
    int ended = EndLeftoverReplicas(impl->store->services(), *services, o.supervisor.sluice_home);
    if (ended > 0) Log("event=leftover-replicas-ended count=" + std::to_string(ended));
  }
  impl->supervisor = std::make_unique<Supervisor>(o.supervisor, impl->store->services());
  Log("event=gateway-started pid=" + std::to_string(impl->pid) + " url=http://" + o.listen + ":" +
      std::to_string(me.port) + " mode=" + o.mode);
  impl->ControlStep();  // the first routes, before Start returns
  impl->control = std::thread([raw] { raw->ControlLoop(); });
  return std::unique_ptr<Gateway>(new Gateway(std::move(impl)));
}

void Gateway::WaitForStopRequest() {
  std::unique_lock<std::mutex> lock(impl_->stop_mu);
  impl_->stop_cv.wait(lock, [&] { return impl_->stop_asked; });
}

void Gateway::StopSoon() { impl_->AskStop(); }

void Gateway::Stop() {
  Impl& g = *impl_;
  if (g.stopped) return;
  g.stopped = true;
  g.draining.store(true);
  const auto deadline = SteadyClock::now() + g.options.drain_timeout;
  while (g.in_flight.load() > 0 && SteadyClock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  g.control_running.store(false);
  if (g.control.joinable()) g.control.join();
  if (g.http) g.http->Stop();  // a host server stays up: its owner stops it
  // Every replica drains (nothing is outstanding now), gets SIGTERM, and SIGKILL after the grace.
  g.supervisor->StopAll(WallMs());
  const auto replicas_deadline = SteadyClock::now() +
                                 std::chrono::milliseconds(g.options.supervisor.drain_timeout_ms +
                                                           g.options.supervisor.grace_ms + 5000);
  while (!g.supervisor->stopped() && SteadyClock::now() < replicas_deadline) {
    g.supervisor->Tick(WallMs());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  g.Flush(WallMs(), true);  // the open windows too: the gateway is going away
  if (Status st = g.store->gateway().Release(g.pid); !st.ok()) Log("event=release-failed reason=" + Quote(st.message()));
  Log("event=gateway-stopped pid=" + std::to_string(g.pid));
  g.AskStop();
}

}  // namespace sluice::serving
