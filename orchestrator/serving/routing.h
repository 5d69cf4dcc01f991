// Routing decisions of the serving gateway (specs/services-design.md section 5):
// which version of a service answers a request (weighted or sticky), whether
// a mirror copy goes out, and which replica of the version takes it.
//
// Pure code: no I/O, no threads of its own, no clock. Randomness comes in
// through a RandomSource the caller owns (the gateway keeps one per I/O
// thread; tests script it), so every decision is reproducible.
//
// A RoutingTable is immutable once built and may be read from any thread.
// It shares its Replicas (shared_ptr) with the tables before and after it:
// a Replica carries what changes without a new table (in rotation,
// outstanding requests, consecutive failures) as atomics, written by the
// I/O threads and the control thread and read here with relaxed loads.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace sluice::serving {

// Weights and the mirror share are kept in basis points: 10,000 buckets.
inline constexpr uint32_t kBuckets = 10000;

// A source of uniform 64-bit words. Not thread-safe: one per thread.
class RandomSource {
 public:
  virtual ~RandomSource() = default;
  virtual uint64_t Next() = 0;
};

// xoshiro256** (Blackman and Vigna), seeded through splitmix64.
class Xoshiro256 : public RandomSource {
 public:
  explicit Xoshiro256(uint64_t seed);
  uint64_t Next() override;

 private:
  std::array<uint64_t, 4> s_{};
};

// A uniform draw in [0, n) without modulo bias (Lemire's multiply-and-reject).
// REQUIRES: n > 0.
uint32_t UniformBelow(RandomSource& random, uint32_t n);

// The named, fixed hash `sluice-bucket-v1`: the first 8 bytes of
// SHA-256(salt || 0x00 || key), read big-endian, mod 10,000. Stable across
// builds, machines and restarts; golden values are pinned in RoutingTest.
uint32_t StickyBucket(std::string_view salt, std::string_view key);

// Converts a weight or mirror percent with at most two decimals (12.34) to
// basis points (1234). InvalidSpec names `what` for a negative value, one
// over 100, or a third decimal (12.345).
Result<uint32_t> PercentToBasisPoints(double percent, const std::string& what);

// One replica of a version, shared between successive tables. The control
// thread sets in_rotation (ready and not ejected); the I/O threads count
// outstanding requests and consecutive failures.
struct Replica {
  explicit Replica(int slot_number) : slot(slot_number) {}
  const int slot;  // the replica's number within its version, from 0
  std::atomic<bool> in_rotation{false};
  std::atomic<int> outstanding{0};
  std::atomic<int> consecutive_failures{0};
  // Passive health (services-design.md section 6): the gateway ejects a
  // replica after consecutive failures until this wall-clock time; the
  // supervisor puts it back once the time has passed and a readiness poll
  // succeeds. `ejections` counts them (the ejection time grows with it).
  std::atomic<int64_t> ejected_until_ms{0};
  std::atomic<int> ejections{0};
  // 127.0.0.1:port: set by the supervisor (serving/supervisor.h) before
  // in_rotation goes true; the gateway forwards to it. 0: not known yet.
  std::atomic<int> port{0};
};

// What a table is built from: one entry per version, in the service's
// version (ordinal) order.
struct VersionRoute {
  std::string name;
  double weight_percent = 0;  // >= 0, at most two decimals; the sum is 100
  std::vector<std::shared_ptr<Replica>> replicas;
};

struct RouteSpec {
  std::string service;
  std::vector<VersionRoute> versions;
  // Sticky routing: requests with a key go to the version owning the key's
  // bucket. The salt defaults to the service name (service.yaml `sticky.salt`).
  bool sticky = false;
  std::string sticky_salt;
  // Mirror: a copy of `mirror_percent` of the requests goes to this version.
  std::optional<std::string> mirror_version;
  double mirror_percent = 0;  // (0, 100], two decimals; ignored without a version
};

struct VersionChoice {
  int version = -1;      // index into the table's versions
  uint32_t bucket = 0;   // the bucket that chose it
  bool sticky_missing = false;  // sticky service, request without its key
};

enum class PickFailure { kNone, kNoReplicaInRotation, kEveryReplicaBusy };

struct ReplicaPick {
  int replica = -1;  // index into the version's replicas; -1 when none
  PickFailure failure = PickFailure::kNone;
};

// Least outstanding requests of two random choices among the replicas in
// rotation with fewer than max_inflight outstanding (max_inflight <= 0: no
// limit). Two distinct eligible replicas are drawn; the one with fewer
// outstanding wins, a tie goes to the first drawn. One eligible: that one.
// None: kNoReplicaInRotation if none is in rotation, else kEveryReplicaBusy.
// Never fails while an eligible replica exists.
ReplicaPick PickReplica(const std::vector<std::shared_ptr<Replica>>& replicas, int max_inflight,
                        RandomSource& random);

// One generation of a service's routing. Versions own consecutive bucket
// ranges in version order: version i owns [start_i, start_i + weight_bp_i).
// Moving weight between two neighbours therefore moves only the keys in the
// shifted buckets, and a key keeps its version across rebuilds and restarts
// while the weights stay the same.
class RoutingTable {
 public:
  // InvalidSpec, naming the service and version, when there is no version,
  // a weight is negative, above 100 or has a third decimal, the weights do
  // not add up to 100, or the mirror version is unknown or its percent is
  // outside (0, 100] or has a third decimal.
  static Result<RoutingTable> Build(RouteSpec spec);

  const std::string& service() const { return service_; }
  int version_count() const { return static_cast<int>(versions_.size()); }
  const std::string& version_name(int version) const { return versions_[version].name; }
  uint32_t weight_bp(int version) const { return versions_[version].weight_bp; }
  const std::vector<std::shared_ptr<Replica>>& replicas(int version) const {
    return versions_[version].replicas;
  }
  // The index of a version by name, or -1.
  int FindVersion(std::string_view name) const;

  // The version owning a bucket. REQUIRES: bucket < kBuckets.
  int VersionForBucket(uint32_t bucket) const;

  // The version for a request. Sticky with a key: the key's bucket. Otherwise
  // (not sticky, or sticky without the key: sticky_missing) a random bucket.
  VersionChoice ChooseVersion(const std::optional<std::string_view>& sticky_key, RandomSource& random) const;

  // Whether requests are routed by a key (ChooseVersion with one is sticky).
  bool sticky() const { return sticky_; }

  // Whether this request is copied to the mirror, drawn apart from the version.
  bool ShouldMirror(RandomSource& random) const;
  int mirror_version() const { return mirror_version_; }  // -1: none
  uint32_t mirror_bp() const { return mirror_bp_; }

 private:
  struct Version {
    std::string name;
    uint32_t weight_bp = 0;
    uint32_t end = 0;  // exclusive end of the version's bucket range
    std::vector<std::shared_ptr<Replica>> replicas;
  };
  RoutingTable() = default;

  std::string service_;
  std::vector<Version> versions_;
  bool sticky_ = false;
  std::string sticky_salt_;
  int mirror_version_ = -1;
  uint32_t mirror_bp_ = 0;
};

}  // namespace sluice::serving
