// Per-version statistics of the serving gateway in 10-second windows
// (specs/services-design.md section 7): requests, errors, answer codes and a
// fixed latency histogram, per role (live, mirror, pinned). Issue 16's
// analysis sums the flushed windows of an interval and reads p50/p99 here.
//
// Pure code: no I/O and no threads of its own; time comes from an injected
// wall clock. WindowStats may be written from any number of threads (relaxed
// atomics, no lock) while one flusher thread calls TakeClosed.
//
// Reading a quantile from buckets. The histogram keeps, per bucket, how many
// latencies fell in (previous bound, bound]. LatencyQuantileMs(w, q) answers
// the smallest bucket bound b such that at least ceil(q * n) of the n
// latencies were <= b (the +Inf bucket answers the largest latency seen).
// So the answer is an upper bound of the true quantile, too high by less
// than the width of its bucket (its bound minus the previous bound: 0.25 ms
// in the first, 25 ms at 50 -> 75 ms, 20 s at 10 -> 30 s); and for a
// threshold T that is a bound, "pq <= T" is decided
// exactly: LatencyQuantileMs(w, q) <= T if and only if at least q of the
// latencies were <= T. A threshold between bounds cannot be decided exactly:
// FractionAtMostMs interpolates linearly within the bucket and says so.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::serving {

inline constexpr int64_t kWindowMs = 10000;  // windows start at multiples of 10 s
inline constexpr int64_t kFlushLagMs = 1000;  // a window is taken 1 s after it closed

// Latency bucket upper bounds `v1`, in milliseconds; a last bucket is +Inf.
inline constexpr std::array<double, 29> kLatencyBoundsMs = {
    0.25, 0.5, 1,   2,   2.5, 5,   10,  15,   20,   25,   30,   40,   50,    75,   100,
    150,  200, 250, 300, 400, 500, 750, 1000, 1500, 2000, 2500, 5000, 10000, 30000};
inline constexpr int kLatencyBuckets = static_cast<int>(kLatencyBoundsMs.size()) + 1;

// The bucket of a latency: the first whose bound is >= it (50 ms is in
// le=50, 50.001 ms in le=75); above 30 s, the +Inf bucket.
int LatencyBucket(double latency_ms);

// Answer codes kept apart; everything else counts as `other`.
inline constexpr std::array<int, 10> kStatusSlots = {200, 400, 401, 404, 413, 429, 500, 502, 503, 504};
inline constexpr int kStatusSlotCount = static_cast<int>(kStatusSlots.size()) + 1;
int StatusSlot(int status);  // index into Window::status; the last is `other`

// live: routed by weight or key; mirror: a shadow copy; pinned: a request
// that named its version (never in the live windows).
enum class Role { kLive = 0, kMirror = 1, kPinned = 2 };
inline constexpr int kRoles = 3;
const char* RoleName(Role role);

// What became of a mirror copy, beyond its answer's count: dropped (not
// sent: the mirror's in-flight limit was reached or it had no replica; or
// its read failed), or compared with the live answer (both 200) and found
// to agree or not (serving/mirror.h).
enum class MirrorOutcome { kDropped, kAgreed, kDisagreed };

// The counts of one window, or of several merged. A plain value.
struct Window {
  Role role = Role::kLive;
  int64_t start_ms = 0;  // a multiple of kWindowMs
  int64_t end_ms = 0;    // exclusive; start_ms + kWindowMs for one window
  int64_t requests = 0;
  int64_t errors = 0;             // status >= 500, or the upstream read failed
  int64_t upstream_failures = 0;  // of which the read from the replica failed
  int64_t cache_hits = 0;         // of the requests, answered from the prediction cache
  // Role mirror only: copies dropped, and copies compared with the live
  // answer and of those agreeing (RecordMirror; not requests).
  int64_t mirror_dropped = 0, mirror_compared = 0, mirror_agreed = 0;
  std::array<int64_t, kStatusSlotCount> status{};
  std::array<int64_t, kLatencyBuckets> latency{};
  int64_t latency_sum_us = 0;
  int64_t latency_max_us = 0;

  // Adds other's counts; the span grows to cover both (an empty span,
  // start_ms == end_ms, takes other's).
  void Merge(const Window& other);
};

// The windows of one role that lie wholly within [t0_ms, t1_ms), merged; the
// result spans [t0_ms, t1_ms) even when no window fell in it.
Window SumWindows(const std::vector<Window>& windows, Role role, int64_t t0_ms, int64_t t1_ms);

// The q-quantile (0 < q <= 1) as described at the top; nullopt for a window
// without latencies, never 0.
std::optional<double> LatencyQuantileMs(const Window& window, double q);

struct Fraction {
  double value = 0;    // share of latencies <= the threshold
  bool exact = false;  // the threshold is a bucket bound; else interpolated
};
// nullopt for a window without latencies.
std::optional<Fraction> FractionAtMostMs(const Window& window, double threshold_ms);

// The live counters of one version: for each role a ring of three windows.
// A sample counts in the window (wall clock, aligned to 10 s) in which its
// answer was sent. TakeClosed, the flusher's call, reads and zeroes each
// window at least kFlushLagMs after it closed, so no writer shares a slot
// with it; if the flusher falls more than a window behind, a writer finds
// its slot still holding an unflushed window and counts the sample in
// late_samples() instead (never in the wrong window).
class WindowStats {
 public:
  using WallClockMs = std::function<int64_t()>;  // milliseconds since the epoch
  explicit WindowStats(WallClockMs clock);
  WindowStats(const WindowStats&) = delete;
  WindowStats& operator=(const WindowStats&) = delete;

  // One answer sent. upstream_failed: the read from the replica failed
  // (reset, timeout), whatever status the gateway answered with.
  // cache_hit: answered from the prediction cache. Thread-safe.
  void Record(Role role, int status, double latency_ms, bool upstream_failed = false, bool cache_hit = false);
  // One mirror copy's outcome, counted in the role-mirror window of now.
  // Thread-safe.
  void RecordMirror(MirrorOutcome outcome);

  // Every window, of every role, that closed at least kFlushLagMs ago and
  // holds samples (requests or mirror outcomes), oldest first; their slots
  // are emptied. One caller at a time.
  std::vector<Window> TakeClosed();
  // Every window that holds samples, open ones included, emptied: the last
  // flush of a gateway going away. REQUIRES: no Record runs meanwhile.
  std::vector<Window> TakeAll();

  int64_t late_samples() const { return late_samples_.load(std::memory_order_relaxed); }

  // Every sample of a role since construction, late ones included, as one
  // window spanning [0, now): what /metrics shows (cumulative counters).
  // Thread-safe; a snapshot of counters read one by one, not atomically as
  // a whole.
  Window Total(Role role) const;

 private:
  static constexpr int64_t kFree = -1;
  struct Slot {
    std::atomic<int64_t> start_ms{kFree};
    std::atomic<int64_t> requests{0}, errors{0}, upstream_failures{0}, cache_hits{0};
    std::atomic<int64_t> mirror_dropped{0}, mirror_compared{0}, mirror_agreed{0};
    std::array<std::atomic<int64_t>, kStatusSlotCount> status{};
    std::array<std::atomic<int64_t>, kLatencyBuckets> latency{};
    std::atomic<int64_t> latency_sum_us{0}, latency_max_us{0};
  };

  std::vector<Window> Take(bool open_ones_too);
  // The slot of role's window holding now; nullptr (counted in
  // late_samples_) when it still holds an unflushed or newer window.
  Slot* CurrentSlot(Role role);
  static void CountInto(Slot& slot, int status, double latency_ms, bool upstream_failed, bool cache_hit);

  WallClockMs clock_;
  std::array<std::array<Slot, 3>, kRoles> slots_;
  std::array<Slot, kRoles> totals_;  // start_ms unused
  std::atomic<int64_t> late_samples_{0};
};

// The request metrics of one version and role, for /metrics.
struct MetricSeries {
  std::string service, version;
  Role role = Role::kLive;
  Window total;  // WindowStats::Total
};
// Appends, in the Prometheus text format 0.0.4, `sluice_requests_total`
// {service,version,role,code} (code: the answer's status, or "other") and
// the histogram `sluice_request_duration_seconds` (buckets `v1` in seconds,
// cumulative, +Inf, _sum, _count), each with its HELP and TYPE once.
// Series without requests are left out.
void AppendRequestMetrics(const std::vector<MetricSeries>& series, std::string* out);

// A label value escaped for the text format (backslash, quote, newline).
std::string PrometheusLabel(std::string_view value);

}  // namespace sluice::serving
