// Internal to the gateway's two files (gateway.cc: the control thread and
// the public methods; gateway_routes.cc: the data plane on the I/O
// threads): what both see of Gateway::Impl. Nothing else includes it.
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/http.h"
#include "server/upstream.h"
#include "serving/feedback.h"
#include "serving/gateway.h"
#include "serving/mirror.h"
#include "serving/prediction_cache.h"
#include "serving/profiler.h"
#include "serving/routing.h"
#include "serving/service_spec.h"
#include "serving/stats.h"
#include "store/open.h"

namespace sluice::serving {
namespace gateway_internal {

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

int64_t WallMs();
// One structured line on stdout (the gateway's log): "TIME event=... k=v".
void Log(const std::string& line);
// {"error": message}, the OIP error shape.
server::Response JsonError(int status, const std::string& message);
server::Response JsonAnswer(int status, const json& body);
// The calling I/O thread's random source.
RandomSource& ThreadRandom();

// Counters of one service that outlive its routing tables.
struct ServiceCounters {
  std::map<std::string, std::shared_ptr<WindowStats>> versions;  // by version name
  std::atomic<int64_t> rerouted{0}, retried{0}, sticky_missing{0};
  std::atomic<int> mirror_inflight{0};
  // Which version gave each of the last kRememberedAnswers live answers, by
  // request id: what feedback by request id resolves against.
  std::shared_ptr<RecentAnswers> answers = std::make_shared<RecentAnswers>(kRememberedAnswers);
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

}  // namespace gateway_internal

using namespace gateway_internal;

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

  // Holds a request in flight while it is handled, unless the gateway is
  // stopping. The count is taken before `draining` is read, and Stop sets
  // `draining` before it reads the count (both sequentially consistent): Stop
  // waits for the request, or the request sees that Stop began. An upstream
  // send holds a count of its own until its answer.
  class Admission {
   public:
    explicit Admission(Impl& g) : g_(g) {
      g_.in_flight.fetch_add(1);
      admitted_ = !g_.draining.load();
    }
    ~Admission() { g_.in_flight.fetch_sub(1); }
    Admission(const Admission&) = delete;
    Admission& operator=(const Admission&) = delete;
    explicit operator bool() const { return admitted_; }

   private:
    Impl& g_;
    bool admitted_;
  };

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
  // Sends the request to a replica of `version` and relays its answer, with
  // x-sluice-version and x-request-id. `pair`: the request is mirrored; the
  // live side of the pair is set exactly once, whatever the outcome.
  void Forward(std::shared_ptr<const ServiceRoute> route, int version, Role role,
               std::shared_ptr<server::UpstreamRequest> up, const Replica* excluded, bool retry,
               server::Responder responder, SteadyClock::time_point began, std::string cache_key = "",
               std::shared_ptr<MirrorPair> pair = nullptr);
  // Answers from the service's prediction cache when it holds `key` (a 200
  // with x-sluice-cache: hit, counted as a cache hit of `version`); false
  // when it does not (and `pair` is left alone). `role`: live or pinned;
  // mirror copies never use it.
  bool AnswerFromCache(const std::shared_ptr<const ServiceRoute>& route, int version, Role role,
                       const server::UpstreamRequest& up, const std::string& key, const server::Responder& responder, SteadyClock::time_point began,
                       const std::shared_ptr<MirrorPair>& pair);
  // A live answer of `version` to the request `up` went out: feedback may name its request id.
  void RememberAnswer(const ServiceRoute& route, int version, const server::UpstreamRequest& up);
  // POST /v2/models/{s}/feedback (specs/services.md "Feedback").
  void Feedback(const std::shared_ptr<const ServiceRoute>& route, const server::Request& request,
                const server::Responder& responder);
  FeedbackQueue feedback_queue;
  std::atomic<int64_t> feedback_lost{0};  // rows the control thread could not write
  // Writes the queued feedback rows in one transaction (the control thread; Stop at the end).
  void WriteFeedback();
  int64_t next_feedback_write = 0;
  // Compares mirrored answers with the live ones off the I/O threads.
  MirrorComparer comparer;
  // A failure the gateway saw (connect refused, reset, timeout, a
  // replica's 502/503/504). At kEjectAfter in a row the replica is ejected
  // for kEjectionMs times its ejections (kMaxEjectionMs at most), unless it
  // is its version's last one in rotation.
  void CountFailure(const ServiceRoute& route, int version, Replica& replica);
  std::atomic<int64_t> ejections_total{0};
  // Ejections the I/O threads made, (service, reason), for the control
  // thread to write into the services' history.
  std::mutex ejections_mu;
  std::vector<std::pair<std::string, std::string>> ejections_to_record;
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
  // Sends a copy of `up` to the mirror `version` (chosen by the caller's
  // draw) unless its in-flight limit is reached (dropped, counted); the
  // copy's answer sets the mirror side of `pair`.
  void Mirror(const std::shared_ptr<const ServiceRoute>& route, int version,
              const std::shared_ptr<server::UpstreamRequest>& up, const std::shared_ptr<MirrorPair>& pair);
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

}  // namespace sluice::serving
