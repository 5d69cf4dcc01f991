#include "serving/stats.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace sluice::serving {
namespace {

int64_t WindowStart(int64_t now_ms) {
  int64_t q = now_ms / kWindowMs;
  if (now_ms % kWindowMs < 0) --q;  // floor for times before the epoch
  return q * kWindowMs;
}

int SlotIndex(int64_t start_ms) {
  int64_t i = (start_ms / kWindowMs) % 3;
  return static_cast<int>(i < 0 ? i + 3 : i);
}

void AtomicMax(std::atomic<int64_t>& target, int64_t value) {
  int64_t seen = target.load(std::memory_order_relaxed);
  while (seen < value && !target.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
  }
}

int64_t LatencyCount(const Window& w) {
  int64_t n = 0;
  for (int64_t c : w.latency) n += c;
  return n;
}

}  // namespace

int LatencyBucket(double latency_ms) {
  auto it = std::lower_bound(kLatencyBoundsMs.begin(), kLatencyBoundsMs.end(), latency_ms);
  return static_cast<int>(it - kLatencyBoundsMs.begin());
}

int StatusSlot(int status) {
  for (int i = 0; i < static_cast<int>(kStatusSlots.size()); ++i) {
    if (kStatusSlots[i] == status) return i;
  }
  return kStatusSlotCount - 1;
}

const char* RoleName(Role role) {
  switch (role) {
    case Role::kLive: return "live";
    case Role::kMirror: return "mirror";
    case Role::kPinned: return "pinned";
  }
  return "live";
}

void Window::Merge(const Window& other) {
  if (start_ms == end_ms) {  // an empty span takes the other's
    start_ms = other.start_ms;
    end_ms = other.end_ms;
  } else {
    start_ms = std::min(start_ms, other.start_ms);
    end_ms = std::max(end_ms, other.end_ms);
  }
  requests += other.requests;
  errors += other.errors;
  upstream_failures += other.upstream_failures;
  cache_hits += other.cache_hits;
  mirror_dropped += other.mirror_dropped;
  mirror_compared += other.mirror_compared;
  mirror_agreed += other.mirror_agreed;
  for (int i = 0; i < kStatusSlotCount; ++i) status[i] += other.status[i];
  for (int i = 0; i < kLatencyBuckets; ++i) latency[i] += other.latency[i];
  latency_sum_us += other.latency_sum_us;
  latency_max_us = std::max(latency_max_us, other.latency_max_us);
}

Window SumWindows(const std::vector<Window>& windows, Role role, int64_t t0_ms, int64_t t1_ms) {
  Window sum;
  sum.role = role;
  for (const Window& w : windows) {
    if (w.role != role || w.start_ms < t0_ms || w.end_ms > t1_ms) continue;
    sum.Merge(w);
  }
  sum.start_ms = t0_ms;
  sum.end_ms = t1_ms;
  return sum;
}

std::optional<double> LatencyQuantileMs(const Window& window, double q) {
  const int64_t n = LatencyCount(window);
  if (n == 0) return std::nullopt;
  // The rank of the quantile: ceil(q * n), at least 1; the epsilon keeps
  // 0.99 * 100 (98.99999...) at 99.
  int64_t rank = static_cast<int64_t>(std::ceil(q * static_cast<double>(n) - 1e-9));
  rank = std::clamp<int64_t>(rank, 1, n);
  int64_t cumulative = 0;
  for (int i = 0; i < kLatencyBuckets; ++i) {
    cumulative += window.latency[i];
    if (cumulative >= rank) {
      if (i < static_cast<int>(kLatencyBoundsMs.size())) return kLatencyBoundsMs[i];
      return static_cast<double>(window.latency_max_us) / 1000.0;  // +Inf: the largest seen
    }
  }
  return static_cast<double>(window.latency_max_us) / 1000.0;  // unreachable: rank <= n
}

std::optional<Fraction> FractionAtMostMs(const Window& window, double threshold_ms) {
  const int64_t n = LatencyCount(window);
  if (n == 0) return std::nullopt;
  const int bucket = LatencyBucket(threshold_ms);
  int64_t below = 0;  // latencies in the buckets wholly <= the threshold
  for (int i = 0; i < bucket; ++i) below += window.latency[i];
  Fraction f;
  const bool on_bound = bucket < static_cast<int>(kLatencyBoundsMs.size()) && kLatencyBoundsMs[bucket] == threshold_ms;
  if (on_bound) {
    f.value = static_cast<double>(below + window.latency[bucket]) / static_cast<double>(n);
    f.exact = true;
    return f;
  }
  // Between two bounds: a linear share of the bucket (the +Inf bucket runs
  // to the largest latency seen).
  const double low = bucket == 0 ? 0.0 : kLatencyBoundsMs[bucket - 1];
  const double high = bucket < static_cast<int>(kLatencyBoundsMs.size())
                          ? kLatencyBoundsMs[bucket]
                          : std::max(low, static_cast<double>(window.latency_max_us) / 1000.0);
  const double share = high > low ? std::clamp((threshold_ms - low) / (high - low), 0.0, 1.0) : 1.0;
  f.value = (static_cast<double>(below) + share * static_cast<double>(window.latency[bucket])) / static_cast<double>(n);
  f.exact = false;
  return f;
}

WindowStats::WindowStats(WallClockMs clock) : clock_(std::move(clock)) {}

WindowStats::Slot* WindowStats::CurrentSlot(Role role) {
  const int64_t start = WindowStart(clock_());
  Slot& slot = slots_[static_cast<int>(role)][SlotIndex(start)];
  int64_t held = slot.start_ms.load(std::memory_order_acquire);
  if (held == kFree) {
    // Claim the emptied slot; losing the race to a writer of the same window is fine.
    slot.start_ms.compare_exchange_strong(held, start, std::memory_order_acq_rel);
    held = slot.start_ms.load(std::memory_order_acquire);
  }
  if (held != start) {  // still holds an unflushed window, or (clock went back) a newer one
    late_samples_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  return &slot;
}

void WindowStats::Record(Role role, int status, double latency_ms, bool upstream_failed, bool cache_hit) {
  CountInto(totals_[static_cast<int>(role)], status, latency_ms, upstream_failed, cache_hit);
  if (Slot* slot = CurrentSlot(role)) CountInto(*slot, status, latency_ms, upstream_failed, cache_hit);
}

void WindowStats::RecordMirror(MirrorOutcome outcome) {
  constexpr auto relaxed = std::memory_order_relaxed;
  auto count = [&](Slot& s) {
    if (outcome == MirrorOutcome::kDropped) {
      s.mirror_dropped.fetch_add(1, relaxed);
      return;
    }
    s.mirror_compared.fetch_add(1, relaxed);
    if (outcome == MirrorOutcome::kAgreed) s.mirror_agreed.fetch_add(1, relaxed);
  };
  count(totals_[static_cast<int>(Role::kMirror)]);
  if (Slot* slot = CurrentSlot(Role::kMirror)) count(*slot);
}

void WindowStats::CountInto(Slot& slot, int status, double latency_ms, bool upstream_failed, bool cache_hit) {
  constexpr auto relaxed = std::memory_order_relaxed;
  slot.requests.fetch_add(1, relaxed);
  if (status >= 500 || upstream_failed) slot.errors.fetch_add(1, relaxed);
  if (upstream_failed) slot.upstream_failures.fetch_add(1, relaxed);
  if (cache_hit) slot.cache_hits.fetch_add(1, relaxed);
  slot.status[StatusSlot(status)].fetch_add(1, relaxed);
  slot.latency[LatencyBucket(latency_ms)].fetch_add(1, relaxed);
  const int64_t us = static_cast<int64_t>(std::llround(std::max(0.0, latency_ms) * 1000.0));
  slot.latency_sum_us.fetch_add(us, relaxed);
  AtomicMax(slot.latency_max_us, us);
}

std::vector<Window> WindowStats::TakeClosed() { return Take(false); }

std::vector<Window> WindowStats::TakeAll() { return Take(true); }

std::vector<Window> WindowStats::Take(bool open_ones_too) {
  const int64_t now = clock_();
  std::vector<Window> closed;
  for (int r = 0; r < kRoles; ++r) {
    for (Slot& slot : slots_[r]) {
      const int64_t start = slot.start_ms.load(std::memory_order_acquire);
      if (start == kFree || (!open_ones_too && start + kWindowMs + kFlushLagMs > now)) continue;
      constexpr auto relaxed = std::memory_order_relaxed;
      Window w;
      w.role = static_cast<Role>(r);
      w.start_ms = start;
      w.end_ms = start + kWindowMs;
      w.requests = slot.requests.exchange(0, relaxed);
      w.errors = slot.errors.exchange(0, relaxed);
      w.upstream_failures = slot.upstream_failures.exchange(0, relaxed);
      w.cache_hits = slot.cache_hits.exchange(0, relaxed);
      w.mirror_dropped = slot.mirror_dropped.exchange(0, relaxed);
      w.mirror_compared = slot.mirror_compared.exchange(0, relaxed);
      w.mirror_agreed = slot.mirror_agreed.exchange(0, relaxed);
      for (int i = 0; i < kStatusSlotCount; ++i) w.status[i] = slot.status[i].exchange(0, relaxed);
      for (int i = 0; i < kLatencyBuckets; ++i) w.latency[i] = slot.latency[i].exchange(0, relaxed);
      w.latency_sum_us = slot.latency_sum_us.exchange(0, relaxed);
      w.latency_max_us = slot.latency_max_us.exchange(0, relaxed);
      slot.start_ms.store(kFree, std::memory_order_release);
      if (w.requests > 0 || w.mirror_dropped > 0 || w.mirror_compared > 0) closed.push_back(w);
    }
  }
  std::sort(closed.begin(), closed.end(), [](const Window& a, const Window& b) {
    return a.start_ms != b.start_ms ? a.start_ms < b.start_ms : a.role < b.role;
  });
  return closed;
}

Window WindowStats::Total(Role role) const {
  constexpr auto relaxed = std::memory_order_relaxed;
  const Slot& t = totals_[static_cast<int>(role)];
  Window w;
  w.role = role;
  w.start_ms = 0;
  w.end_ms = clock_();
  w.requests = t.requests.load(relaxed);
  w.errors = t.errors.load(relaxed);
  w.upstream_failures = t.upstream_failures.load(relaxed);
  w.cache_hits = t.cache_hits.load(relaxed);
  w.mirror_dropped = t.mirror_dropped.load(relaxed);
  w.mirror_compared = t.mirror_compared.load(relaxed);
  w.mirror_agreed = t.mirror_agreed.load(relaxed);
  for (int i = 0; i < kStatusSlotCount; ++i) w.status[i] = t.status[i].load(relaxed);
  for (int i = 0; i < kLatencyBuckets; ++i) w.latency[i] = t.latency[i].load(relaxed);
  w.latency_sum_us = t.latency_sum_us.load(relaxed);
  w.latency_max_us = t.latency_max_us.load(relaxed);
  return w;
}

std::string PrometheusLabel(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

void AppendRequestMetrics(const std::vector<MetricSeries>& series, std::string* out) {
  auto labels = [](const MetricSeries& m) {
    return "service=\"" + PrometheusLabel(m.service) + "\",version=\"" + PrometheusLabel(m.version) +
           "\",role=\"" + RoleName(m.role) + "\"";
  };
  *out += "# HELP sluice_requests_total Requests answered, by service, version, role and status code.\n";
  *out += "# TYPE sluice_requests_total counter\n";
  for (const MetricSeries& m : series) {
    if (m.total.requests == 0) continue;
    for (int i = 0; i < kStatusSlotCount; ++i) {
      if (m.total.status[i] == 0) continue;
      const std::string code = i < static_cast<int>(kStatusSlots.size()) ? std::to_string(kStatusSlots[i]) : "other";
      *out += "sluice_requests_total{" + labels(m) + ",code=\"" + code + "\"} " + std::to_string(m.total.status[i]) +
              "\n";
    }
  }
  *out += "# HELP sluice_request_duration_seconds Time from a request's arrival to its answer's hand-off.\n";
  *out += "# TYPE sluice_request_duration_seconds histogram\n";
  for (const MetricSeries& m : series) {
    if (m.total.requests == 0) continue;
    int64_t cumulative = 0;
    for (int i = 0; i < kLatencyBuckets; ++i) {
      cumulative += m.total.latency[i];
      std::string le = "+Inf";
      if (i < static_cast<int>(kLatencyBoundsMs.size())) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", kLatencyBoundsMs[i] / 1000.0);
        le = buf;
      }
      *out += "sluice_request_duration_seconds_bucket{" + labels(m) + ",le=\"" + le + "\"} " +
              std::to_string(cumulative) + "\n";
    }
    char sum[32];
    std::snprintf(sum, sizeof sum, "%.6f", static_cast<double>(m.total.latency_sum_us) / 1e6);
    *out += "sluice_request_duration_seconds_sum{" + labels(m) + "} " + sum + "\n";
    *out += "sluice_request_duration_seconds_count{" + labels(m) + "} " + std::to_string(cumulative) + "\n";
  }
}

}  // namespace sluice::serving
