// GatewayStore: what the serving gateway writes of itself (specs/store.md,
// schema version 11; the design is specs/services-design.md sections 3 and
// 7): the one `gateway` row that says which process serves the store's
// services (its claim), and the statistics windows it flushes every 10 s,
// which `sluice services` shows and issue 16's analysis sums.
//
// A concern apart from ServicesStore (the desired state and its history):
// users and step types write that; only the gateway writes this, and the
// readers of this never change a service. The one desired-state write the
// gateway makes, a removed version's last step, is here too (MarkRemoved):
// it records that its replicas are gone.
//
// Writes: REQUIRES no journal batch is open (db.h; checked, an Internal
// error). One object per thread, like its Db.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "store/db.h"

namespace sluice::store {

// The `gateway` row: who serves, where, since when.
struct GatewayRecord {
  int64_t pid = 0;
  int64_t start_time = 0;            // of pid (exec::ProcessStartTime): a reused pid is not the gateway
  std::string listen;                // 127.0.0.1
  int port = 0;
  std::string mode;                  // background | foreground | serve
  std::string log_path;              // empty for a foreground gateway
  int64_t started_ms = 0;
  int64_t heartbeat_ms = 0;          // refreshed with each window flush
  bool stop_requested = false;       // `sluice gateway stop` asked it to stop
};

// One flushed window of one version and role (services-design.md section 7).
// codes and latency are JSON text: {"200": 412, "503": 3} and an array of
// the counts per latency bucket (bounds `latency_bounds`, e.g. "v1").
// classes and payload are the profile's JSON text (specs/services.md "The
// payload profile"); empty: none (NULL in the table).
struct WindowRow {
  std::string service, version, role;  // role: live | mirror | pinned
  int64_t start_ms = 0;              // a multiple of 10,000: [start, start + 10 s)
  int64_t requests = 0, errors = 0;
  std::string codes = "{}";
  std::string latency_bounds = "v1";
  std::string latency = "[]";
  int64_t latency_sum_us = 0, latency_max_us = 0;
  int64_t retried = 0, rerouted = 0, cache_hits = 0;
  int64_t mirror_dropped = 0, mirror_compared = 0, mirror_agreed = 0;
  std::string classes;               // {"cat": 12, "_other": 3}
  std::string payload;               // {"format": "sluice-profile-v1", ...}
};

// Adds the JSON counts `from` into `into` (classes and payload of the same
// window flushed twice): objects key by key, a number (or each element of
// a number array, the longer array's extra elements kept) under a key
// `min` takes the smaller, under `max` or `width` the larger, under any
// other key the sum; any other value keeps `into`'s (or takes `from`'s
// when `into` lacks the key). Pure.
void MergeCounts(const nlohmann::json& from, nlohmann::json* into);

class GatewayStore {
 public:
  explicit GatewayStore(Db& db) : db_(db) {}

  // The gateway row, or nullopt when none is recorded.
  Result<std::optional<GatewayRecord>> Read();

  // Claims the gateway role for `me`, in one transaction: if the row names
  // a process that `alive(pid, start_time)` says still runs, nothing is
  // written and that holder is returned; otherwise `me` is written (with
  // stop_requested cleared) and nullopt returned.
  // REQUIRES: no journal batch is open.
  Result<std::optional<GatewayRecord>> Claim(const GatewayRecord& me,
                                             const std::function<bool(int64_t pid, int64_t start_time)>& alive);
  // Removes the row if it still names `pid` (a later claimant's row stays).
  // REQUIRES: no journal batch is open.
  Status Release(int64_t pid);
  // Sets stop_requested on the row; NotFound when no gateway is recorded.
  // REQUIRES: no journal batch is open.
  Status RequestStop();

  // Writes `windows` (a row already there for the same service, version,
  // role and start is added to, its classes and payload by MergeCounts) and sets the heartbeat of the row naming
  // `pid` to now_ms, in one transaction.
  // REQUIRES: no journal batch is open.
  Status AppendWindows(const std::vector<WindowRow>& windows, int64_t pid, int64_t now_ms);
  // The windows of a service with from_ms <= start_ms < to_ms, oldest first;
  // an empty version or role matches every one.
  Result<std::vector<WindowRow>> Windows(const std::string& service, const std::string& version,
                                         const std::string& role, int64_t from_ms, int64_t to_ms);
  // Deletes every window that started before `before_ms`.
  // REQUIRES: no journal batch is open.
  Status PruneWindows(int64_t before_ms);

  // A removing version whose replicas have all stopped becomes removed.
  // REQUIRES: no journal batch is open.
  Status MarkRemoved(const std::string& service, const std::string& version, int64_t now_ms);

 private:
  Db& db_;
};

}  // namespace sluice::store
