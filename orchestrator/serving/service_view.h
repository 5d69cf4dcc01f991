// ServiceView: what `sluice services [show]` and the admin API's
// `GET /api/services[/{s}]` say of a service, read and shaped once so both
// say the same: its desired state, the gateway's replica rows, and each
// version's last minute from the flushed `live` windows (requests/s, error
// rate, p50 and p99 from the latency buckets, serving/stats.h). The JSON is
// specs/services-design.md's "as built" shape, also specs/api.yaml's Service.
//
// "The last minute" is the six windows [t1 - 60 s, t1) with t1 the newest
// window boundary at least kFlushLagMs behind now: the windows a running
// gateway has flushed. No gateway, no windows: zero requests, null rates.
//
// Reads only; one thread at a time, like its store.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "serving/stats.h"
#include "store/gateway.h"
#include "store/services.h"
#include "util/status.h"

namespace sluice::serving {

inline constexpr int64_t kLastMinuteMs = 60'000;

// One version's last minute (role live).
struct VersionFigures {
  int64_t requests = 0, errors = 0;
  double requests_per_s = 0;
  std::optional<double> error_rate;  // errors / requests; none without requests
  std::optional<double> p50_ms, p99_ms;
};

struct ServiceView {
  store::ServiceState state;
  std::vector<store::ReplicaRow> replicas;            // by version, slot
  std::map<std::string, VersionFigures> last_minute;  // by version; every version of state
  int64_t from_ms = 0, to_ms = 0;                     // the span of last_minute
};

// A flushed window row as a Window (codes to status slots, the latency
// array to buckets). A row whose latency_bounds is not "v1" keeps its
// counts but no latencies.
Window WindowFromRow(const store::WindowRow& row);

// The span of the last minute at `now_ms`: [from, to).
void LastMinuteSpan(int64_t now_ms, int64_t* from_ms, int64_t* to_ms);

// Reads one service's view (NotFound if there is no such service, or it
// is deleted).
Result<ServiceView> ReadServiceView(store::ServicesStore& services, store::GatewayStore& gateway,
                                    const std::string& name, int64_t now_ms);
// Every service that is not deleted, by name.
Result<std::vector<ServiceView>> ReadServiceViews(store::ServicesStore& services, store::GatewayStore& gateway,
                                                  int64_t now_ms);

// The JSON of a view; with_spec adds `spec` and `spec_hash`.
nlohmann::json ServiceViewJson(const ServiceView& view, bool with_spec);
// The gateway row as JSON (pid, url, mode, started_ms, heartbeat_ms,
// heartbeat_age_ms), or null when none is recorded.
nlohmann::json GatewayJson(const std::optional<store::GatewayRecord>& gateway, int64_t now_ms);

// What a version runs, in a few words: fashion@2, the model file, or
// "command: python3 srv.py".
std::string WhatRuns(const store::ServiceVersionState& v);

// A figure for people: "12.5" requests/s, "0.3%" errors, "42 ms"; "-" for none.
std::string FormatRate(double per_s);
std::string FormatErrorRate(const std::optional<double>& rate);
std::string FormatMs(const std::optional<double>& ms);

}  // namespace sluice::serving
