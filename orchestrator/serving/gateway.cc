#include "serving/gateway.h"

#include <algorithm>
#include <cstdio>
#include <random>

#include "exec/process.h"
#include "serving/gateway_impl.h"
#include "serving/service_state.h"
#include "util/strings.h"

namespace sluice::serving {

namespace gateway_internal {

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

// The I/O thread's random source.
RandomSource& ThreadRandom() {
  thread_local Xoshiro256 random(std::random_device{}() ^
                                 (static_cast<uint64_t>(std::hash<std::thread::id>{}(std::this_thread::get_id())) << 1));
  return random;
}

}  // namespace gateway_internal

namespace {

std::atomic<int64_t> next_generation{1};

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
  row.mirror_dropped = w.mirror_dropped;
  row.mirror_compared = w.mirror_compared;
  row.mirror_agreed = w.mirror_agreed;
  return row;
}

}  // namespace

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

void Gateway::Impl::WriteFeedback() {
  std::vector<store::FeedbackRow> rows = feedback_queue.TakeAll();
  if (rows.empty()) return;
  if (Status st = store->feedback().Append(rows); !st.ok()) {
    feedback_lost.fetch_add(static_cast<int64_t>(rows.size()), std::memory_order_relaxed);
    Log("event=feedback-write-failed rows=" + std::to_string(rows.size()) + " reason=" + Quote(st.message()));
  }
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
  }
  // A removing version whose replicas are all gone is removed. Looked at on
  // every step: the last replica may leave (reaped) without a new replica
  // set generation. Our own write does not change the data version we
  // watch, so the version is marked here too.
  for (store::ServiceState& s : desired)
    for (store::ServiceVersionState& v : s.versions)
      if (v.state == "removing" && !supervisor->HasReplicas(s.name, v.name)) {
        if (Status st = store->gateway().MarkRemoved(s.name, v.name, now); st.ok())
          v.state = "removed";
        else
          Log("event=mark-removed-failed service=" + s.name + " version=" + v.name + " reason=" +
              Quote(st.message()));
      }
  std::vector<std::pair<std::string, std::string>> ejections;
  {
    std::lock_guard<std::mutex> lock(ejections_mu);
    ejections.swap(ejections_to_record);
  }
  for (const auto& [service, reason] : ejections)
    if (auto recorded = store->services().RecordEvent(service, "ejection", reason, now); !recorded.ok())
      Log("event=record-ejection-failed service=" + service + " reason=" + Quote(recorded.status().message()));
  if (now >= next_feedback_write) {
    WriteFeedback();
    next_feedback_write = now + kFeedbackWriteEveryMs;
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
  g.comparer.Stop();       // the comparisons queued are counted; none runs past here
  g.WriteFeedback();       // the control thread has stopped: what it had not written yet
  g.Flush(WallMs(), true);  // the open windows too: the gateway is going away
  if (Status st = g.store->gateway().Release(g.pid); !st.ok()) Log("event=release-failed reason=" + Quote(st.message()));
  Log("event=gateway-stopped pid=" + std::to_string(g.pid));
  g.AskStop();
}

}  // namespace sluice::serving
