#include "serving/routing.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "util/hash.h"

namespace sluice::serving {
namespace {

uint64_t SplitMix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

std::string PercentText(double percent) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", percent);
  return buf;
}

}  // namespace

Xoshiro256::Xoshiro256(uint64_t seed) {
  for (auto& word : s_) word = SplitMix64(seed);
}

uint64_t Xoshiro256::Next() {
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

uint32_t UniformBelow(RandomSource& random, uint32_t n) {
  // Lemire, "Fast Random Integer Generation in an Interval" (2019), on the
  // high 32 bits of each draw.
  uint64_t m = (random.Next() >> 32) * n;
  uint32_t low = static_cast<uint32_t>(m);
  if (low < n) {
    const uint32_t threshold = static_cast<uint32_t>(-n) % n;
    while (low < threshold) {
      m = (random.Next() >> 32) * n;
      low = static_cast<uint32_t>(m);
    }
  }
  return static_cast<uint32_t>(m >> 32);
}

uint32_t StickyBucket(std::string_view salt, std::string_view key) {
  std::string input;
  input.reserve(salt.size() + 1 + key.size());
  input.append(salt);
  input.push_back('\0');
  input.append(key);
  const std::string hex = Sha256Hex(input);
  const uint64_t first8 = std::stoull(hex.substr(0, 16), nullptr, 16);
  return static_cast<uint32_t>(first8 % kBuckets);
}

Result<uint32_t> PercentToBasisPoints(double percent, const std::string& what) {
  if (!std::isfinite(percent) || percent < 0 || percent > 100) {
    return Status::InvalidSpec(what + ": " + PercentText(percent) + " is not between 0 and 100");
  }
  const double scaled = percent * 100;
  const double rounded = std::round(scaled);
  if (std::fabs(scaled - rounded) > 1e-6) {
    return Status::InvalidSpec(what + ": " + PercentText(percent) + " has more than two decimals");
  }
  return static_cast<uint32_t>(rounded);
}

ReplicaPick PickReplica(const std::vector<std::shared_ptr<Replica>>& replicas, int max_inflight,
                        RandomSource& random) {
  std::vector<int> eligible;
  eligible.reserve(replicas.size());
  bool any_in_rotation = false;
  for (size_t i = 0; i < replicas.size(); ++i) {
    const Replica& r = *replicas[i];
    if (!r.in_rotation.load(std::memory_order_relaxed)) continue;
    any_in_rotation = true;
    if (max_inflight > 0 && r.outstanding.load(std::memory_order_relaxed) >= max_inflight) continue;
    eligible.push_back(static_cast<int>(i));
  }
  if (eligible.empty()) {
    return {-1, any_in_rotation ? PickFailure::kEveryReplicaBusy : PickFailure::kNoReplicaInRotation};
  }
  if (eligible.size() == 1) return {eligible[0], PickFailure::kNone};
  const uint32_t n = static_cast<uint32_t>(eligible.size());
  const uint32_t a = UniformBelow(random, n);
  uint32_t b = UniformBelow(random, n - 1);
  if (b >= a) ++b;  // distinct from the first
  const int first = eligible[a];
  const int second = eligible[b];
  const int first_load = replicas[first]->outstanding.load(std::memory_order_relaxed);
  const int second_load = replicas[second]->outstanding.load(std::memory_order_relaxed);
  return {second_load < first_load ? second : first, PickFailure::kNone};
}

Result<RoutingTable> RoutingTable::Build(RouteSpec spec) {
  const std::string context = "service '" + spec.service + "'";
  if (spec.versions.empty()) return Status::InvalidSpec(context + ": no versions to route to");
  RoutingTable table;
  table.service_ = spec.service;
  uint32_t end = 0;
  for (auto& v : spec.versions) {
    auto bp = PercentToBasisPoints(v.weight_percent, context + ": traffic." + v.name);
    if (!bp.ok()) return bp.status();
    end += *bp;
    table.versions_.push_back(Version{v.name, *bp, end, std::move(v.replicas)});
  }
  if (end != kBuckets) {
    return Status::InvalidSpec(context + ": weights add up to " + PercentText(end / 100.0) + ", not 100");
  }
  table.sticky_ = spec.sticky;
  table.sticky_salt_ = spec.sticky_salt.empty() ? spec.service : spec.sticky_salt;
  if (spec.mirror_version) {
    table.mirror_version_ = table.FindVersion(*spec.mirror_version);
    if (table.mirror_version_ < 0) {
      return Status::InvalidSpec(context + ": mirror.version: '" + *spec.mirror_version +
                                 "' is not a version of this service");
    }
    auto bp = PercentToBasisPoints(spec.mirror_percent, context + ": mirror.percent");
    if (!bp.ok()) return bp.status();
    if (*bp == 0) return Status::InvalidSpec(context + ": mirror.percent: 0 is not above 0");
    table.mirror_bp_ = *bp;
  }
  return table;
}

int RoutingTable::FindVersion(std::string_view name) const {
  for (size_t i = 0; i < versions_.size(); ++i) {
    if (versions_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

int RoutingTable::VersionForBucket(uint32_t bucket) const {
  // The first version whose range ends past the bucket; a version of weight 0
  // has an empty range and is never found.
  auto it = std::upper_bound(versions_.begin(), versions_.end(), bucket,
                             [](uint32_t b, const Version& v) { return b < v.end; });
  return static_cast<int>(it - versions_.begin());
}

VersionChoice RoutingTable::ChooseVersion(const std::optional<std::string_view>& sticky_key,
                                          RandomSource& random) const {
  VersionChoice choice;
  if (sticky_ && sticky_key) {
    choice.bucket = StickyBucket(sticky_salt_, *sticky_key);
  } else {
    choice.sticky_missing = sticky_;
    choice.bucket = UniformBelow(random, kBuckets);
  }
  choice.version = VersionForBucket(choice.bucket);
  return choice;
}

bool RoutingTable::ShouldMirror(RandomSource& random) const {
  if (mirror_version_ < 0) return false;
  return UniformBelow(random, kBuckets) < mirror_bp_;
}

}  // namespace sluice::serving
