// Gateway: the serving gateway of one store (specs/services-design.md
// sections 3, 5, 7 and 8). It claims the store's gateway role, serves the
// Open Inference Protocol v2 routes of every service on the project's HTTP
// server, routes each request to a replica of a version (by weight, sticky
// key or a pinned version), copies a share to a mirror version, counts
// every answer in 10-second windows, compares the mirror's answers with
// the live ones, takes callers' feedback on answers
// (POST /v2/models/{s}/feedback), and keeps the replicas the store desires
// running through its Supervisor.
//
// Threads:
//   - the HTTP server's I/O threads run Handle: they read the published
//     routes (one acquire load per request), forward through the upstream
//     client and count. They never touch SQLite or block.
//   - the control thread owns the Store connection and the Supervisor: it
//     watches the store (PRAGMA data_version every poll_interval), reconciles
//     the replicas, rebuilds and publishes the routes when the desired state
//     or a replica set changed, flushes closed windows and the heartbeat
//     every second, writes the queued feedback every 250 ms, and notices a
//     stop request in the gateway row.
//   - the comparer thread (serving/mirror.h) compares mirrored answers.
// Routes are immutable once published; an old set dies with its last
// in-flight request.
//
// Stopping (Stop, the destructor, `sluice gateway stop`, SIGTERM in the CLI):
// new requests are refused (503), in-flight ones finish (drain timeout at
// most), the HTTP server stops, every replica is drained and stopped by pid,
// the last windows are flushed and the claim released.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "server/http.h"
#include "serving/supervisor.h"
#include "util/status.h"

namespace sluice::serving {

struct GatewayOptions {
  std::string store_path;            // the SQLite file
  std::string listen = "127.0.0.1";
  int port = 8080;                   // 0 picks a free one (tests)
  int threads = 2;                   // I/O threads
  std::string mode = "foreground";   // background | foreground | serve (recorded in the gateway row)
  std::string log_path;              // recorded for `sluice services`; empty in the foreground
  size_t max_body = 64 << 20;        // an infer request's body
  std::chrono::milliseconds poll_interval{20};   // the control loop's period
  std::chrono::milliseconds drain_timeout{30000};  // in-flight requests at Stop
  SupervisorOptions supervisor;
  // false: the gateway has no listener of its own (sluice serve): another
  // HttpServer's AsyncHandler calls Handle, `listen` and `port` name that
  // server (recorded in the gateway row), and `upstream` (that server's
  // MakeUpstreamClient, made after its Start) forwards to the replicas;
  // `threads` and `max_body` are that server's business.
  bool own_listener = true;
  std::shared_ptr<server::UpstreamClient> upstream;  // REQUIRES: set iff !own_listener
};

class Gateway {
 public:
  // Claims the store's gateway role, binds (own_listener) and starts
  // serving. Incompatible
  // naming the holder ("a gateway already serves this store: pid 4242 on
  // 127.0.0.1:8080 ...") when a live gateway holds it; IoError naming the
  // address when the bind fails (the claim is then not kept).
  static Result<std::unique_ptr<Gateway>> Start(GatewayOptions options);
  ~Gateway();  // Stop()
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  int port() const;  // the listener's, or options.port without one of its own
  // Answers one request for /v2/... or /metrics (anything else is 404), on
  // the calling I/O thread, later through `responder` when forwarded. For a
  // gateway without its own listener, called by the host server's
  // AsyncHandler. REQUIRES: the host server is stopped before the Gateway
  // is destroyed (Stop first: it drains the gateway's requests in flight).
  void Handle(server::Request request, server::Responder responder);
  // Blocks until a stop is requested (StopSoon, or stop_requested in the
  // store's gateway row, or the claim lost), then returns; call Stop after.
  void WaitForStopRequest();
  // Asks WaitForStopRequest to return. Thread-safe; not async-signal-safe.
  void StopSoon();
  // Drains and stops everything (see the top). Idempotent.
  void Stop();

  struct Impl;

 private:
  explicit Gateway(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::serving
