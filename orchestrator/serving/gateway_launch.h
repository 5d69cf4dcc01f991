// Starting the store's gateway in the background, and waiting for a
// service's replicas: what `sluice services apply [--wait]` and the deploy/*
// step types both need before traffic can move (specs/services.md).
//
// EnsureGateway spawns `sluice gateway --background` (the running binary
// again; its own process group, output to HOME/gateway.log) unless the
// store's gateway row names a live process, and waits until the new one has
// claimed the row, which it does once it listens. The child is not waited
// for: it outlives its starter (init inherits it).
//
// Any thread; each call uses the store objects it is given (one thread's).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "store/gateway.h"
#include "store/services.h"
#include "util/status.h"

namespace sluice::serving {

struct GatewayLaunch {
  store::GatewayRecord gateway;      // the row of the gateway that serves the store now
  bool started = false;              // false: it was running already
  std::string log_path;              // HOME/gateway.log
};

// `home`: the store's folder (absolute); `port`: for a new gateway (0: any
// free one). IoError naming the log when the child exits or does not listen
// within `listen_timeout`.
Result<GatewayLaunch> EnsureGateway(store::GatewayStore& gateway, const std::string& home, int port,
                                    std::chrono::milliseconds listen_timeout = std::chrono::seconds(10));

// The active replicas of `service` (of its version `version`; empty: every
// version) that are not ready at their version's revision, one line each:
// "replica 0 of green: starting; log /h/replicas/fashion-green-0.log".
// Empty when all are ready. NotFound for no such service.
Result<std::vector<std::string>> ReplicasNotReady(store::ServicesStore& services, const std::string& service,
                                                  const std::string& version);

}  // namespace sluice::serving
