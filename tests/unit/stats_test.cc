// StatsTest: the serving gateway's windows, histogram and quantiles
// (serving/stats.h, specs/services-design.md section 7).
#include "serving/stats.h"

#include <gtest/gtest.h>

namespace sluice::serving {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;  // a multiple of 10 s

struct Fixture {
  int64_t now = kT0;
  WindowStats stats{[this] { return now; }};
};

Window Latencies(const std::vector<std::pair<double, int>>& counts) {
  Window w;
  for (auto [ms, n] : counts) {
    w.latency[LatencyBucket(ms)] += n;
    w.requests += n;
    w.latency_max_us = std::max<int64_t>(w.latency_max_us, static_cast<int64_t>(ms * 1000));
  }
  return w;
}

TEST(StatsTest, Exactly50msFallsInLe50And50Point001msInTheNext) {
  EXPECT_EQ(kLatencyBoundsMs[LatencyBucket(50)], 50);
  EXPECT_EQ(kLatencyBoundsMs[LatencyBucket(50.001)], 75);
  EXPECT_EQ(LatencyBucket(0), 0);
  EXPECT_EQ(LatencyBucket(30000), kLatencyBuckets - 2);
  EXPECT_EQ(LatencyBucket(30000.5), kLatencyBuckets - 1);  // +Inf
}

TEST(StatsTest, AP99ThresholdThatIsABucketBoundIsDecidedExactly) {
  // 99 of 100 at <= 50 ms: p99 <= 50 holds.
  Window pass = Latencies({{50, 99}, {50.001, 1}});
  EXPECT_EQ(LatencyQuantileMs(pass, 0.99), 50);
  auto at_50 = FractionAtMostMs(pass, 50);
  ASSERT_TRUE(at_50);
  EXPECT_TRUE(at_50->exact);
  EXPECT_DOUBLE_EQ(at_50->value, 0.99);
  // 98 of 100: it does not, though the 99th is only 1 µs over.
  Window fail = Latencies({{50, 98}, {50.001, 2}});
  EXPECT_EQ(LatencyQuantileMs(fail, 0.99), 75);
  EXPECT_GT(*LatencyQuantileMs(fail, 0.99), 50);
}

TEST(StatsTest, P50IsTheBoundOfTheBucketHoldingTheMedianRank) {
  Window w = Latencies({{0.1, 3}, {4, 3}, {120, 4}});
  EXPECT_EQ(LatencyQuantileMs(w, 0.5), 5);    // rank 5 of 10 is in (2.5, 5]
  EXPECT_EQ(LatencyQuantileMs(w, 0.6), 5);    // rank 6
  EXPECT_EQ(LatencyQuantileMs(w, 0.61), 150);  // rank 7
}

TEST(StatsTest, AQuantileInTheInfBucketIsTheLargestLatencySeen) {
  Window w = Latencies({{1, 1}, {45000, 1}});
  EXPECT_EQ(LatencyQuantileMs(w, 0.99), 45000);
}

TEST(StatsTest, AnEmptyWindowReportsNoQuantileNotZero) {
  Window empty;
  EXPECT_FALSE(LatencyQuantileMs(empty, 0.5).has_value());
  EXPECT_FALSE(LatencyQuantileMs(empty, 0.99).has_value());
  EXPECT_FALSE(FractionAtMostMs(empty, 50).has_value());
}

TEST(StatsTest, AThresholdBetweenBoundsIsInterpolatedAndSaysSo) {
  Window w = Latencies({{10, 50}, {20, 50}});  // 50 in (5, 10], 50 in (15, 20]
  auto f = FractionAtMostMs(w, 17.5);
  ASSERT_TRUE(f);
  EXPECT_FALSE(f->exact);
  EXPECT_DOUBLE_EQ(f->value, 0.75);  // half of the (15, 20] bucket
}

TEST(StatsTest, ErrorsAreCountedFromStatus500NotAt499) {
  Fixture f;
  f.stats.Record(Role::kLive, 499, 1);
  f.stats.Record(Role::kLive, 500, 1);
  f.stats.Record(Role::kLive, 503, 1);
  f.stats.Record(Role::kLive, 200, 1);
  f.now = kT0 + kWindowMs + kFlushLagMs;
  auto windows = f.stats.TakeClosed();
  ASSERT_EQ(windows.size(), 1u);
  EXPECT_EQ(windows[0].requests, 4);
  EXPECT_EQ(windows[0].errors, 2);
  EXPECT_EQ(windows[0].status[StatusSlot(500)], 1);
  EXPECT_EQ(windows[0].status[StatusSlot(503)], 1);
  EXPECT_EQ(windows[0].status[kStatusSlotCount - 1], 1);  // 499 is `other`
}

TEST(StatsTest, AFailedUpstreamReadIsAnErrorWhateverTheStatus) {
  Fixture f;
  f.stats.Record(Role::kLive, 200, 1, /*upstream_failed=*/true);
  f.stats.Record(Role::kLive, 502, 1, /*upstream_failed=*/true);
  f.now = kT0 + kWindowMs + kFlushLagMs;
  auto windows = f.stats.TakeClosed();
  ASSERT_EQ(windows.size(), 1u);
  EXPECT_EQ(windows[0].errors, 2);
  EXPECT_EQ(windows[0].upstream_failures, 2);
}

TEST(StatsTest, TheWindowRollsAtExactly10s) {
  Fixture f;
  f.now = kT0 + kWindowMs - 1;  // 9.999 s: the first window
  f.stats.Record(Role::kLive, 200, 1);
  f.now = kT0 + kWindowMs;  // 10.000 s: the next
  f.stats.Record(Role::kLive, 200, 1);
  f.stats.Record(Role::kLive, 200, 1);
  f.now = kT0 + 2 * kWindowMs + kFlushLagMs;
  auto windows = f.stats.TakeClosed();
  ASSERT_EQ(windows.size(), 2u);
  EXPECT_EQ(windows[0].start_ms, kT0);
  EXPECT_EQ(windows[0].end_ms, kT0 + kWindowMs);
  EXPECT_EQ(windows[0].requests, 1);
  EXPECT_EQ(windows[1].start_ms, kT0 + kWindowMs);
  EXPECT_EQ(windows[1].requests, 2);
}

TEST(StatsTest, AWindowIsTakenOnly1sAfterItClosedAndThenOnce) {
  Fixture f;
  f.stats.Record(Role::kLive, 200, 1);
  f.now = kT0 + kWindowMs + kFlushLagMs - 1;
  EXPECT_TRUE(f.stats.TakeClosed().empty());
  f.now = kT0 + kWindowMs + kFlushLagMs;
  EXPECT_EQ(f.stats.TakeClosed().size(), 1u);
  EXPECT_TRUE(f.stats.TakeClosed().empty());
}

TEST(StatsTest, RolesAreKeptApart) {
  Fixture f;
  f.stats.Record(Role::kLive, 200, 1);
  f.stats.Record(Role::kMirror, 500, 1);
  f.stats.Record(Role::kPinned, 200, 1);
  f.stats.Record(Role::kPinned, 200, 1);
  f.now = kT0 + kWindowMs + kFlushLagMs;
  auto windows = f.stats.TakeClosed();
  ASSERT_EQ(windows.size(), 3u);
  Window live = SumWindows(windows, Role::kLive, kT0, kT0 + kWindowMs);
  Window mirror = SumWindows(windows, Role::kMirror, kT0, kT0 + kWindowMs);
  Window pinned = SumWindows(windows, Role::kPinned, kT0, kT0 + kWindowMs);
  EXPECT_EQ(live.requests, 1);
  EXPECT_EQ(live.errors, 0);
  EXPECT_EQ(mirror.errors, 1);
  EXPECT_EQ(pinned.requests, 2);
}

TEST(StatsTest, SumWindowsMergesTheWindowsWhollyInsideTheInterval) {
  Fixture f;
  for (int w = 0; w < 3; ++w) {
    f.now = kT0 + w * kWindowMs + 500;
    for (int i = 0; i <= w; ++i) f.stats.Record(Role::kLive, 200, 10.0 * (w + 1));
  }
  f.now = kT0 + 3 * kWindowMs + kFlushLagMs;
  auto windows = f.stats.TakeClosed();
  ASSERT_EQ(windows.size(), 3u);
  Window last_two = SumWindows(windows, Role::kLive, kT0 + kWindowMs, kT0 + 3 * kWindowMs);
  EXPECT_EQ(last_two.start_ms, kT0 + kWindowMs);
  EXPECT_EQ(last_two.end_ms, kT0 + 3 * kWindowMs);
  EXPECT_EQ(last_two.requests, 2 + 3);
  EXPECT_EQ(last_two.latency_sum_us, 2 * 20000 + 3 * 30000);
  EXPECT_EQ(last_two.latency_max_us, 30000);
  EXPECT_EQ(LatencyQuantileMs(last_two, 0.5), 30);
  Window none = SumWindows(windows, Role::kLive, kT0 + 3 * kWindowMs, kT0 + 4 * kWindowMs);
  EXPECT_EQ(none.requests, 0);
  EXPECT_FALSE(LatencyQuantileMs(none, 0.5).has_value());
}

TEST(StatsTest, AWriterFindingAnUnflushedWindowCountsTheSampleLate) {
  Fixture f;
  f.stats.Record(Role::kLive, 200, 1);  // window 0, slot 0
  f.now = kT0 + 3 * kWindowMs;          // window 3 maps to slot 0 again, never flushed
  f.stats.Record(Role::kLive, 200, 1);
  EXPECT_EQ(f.stats.late_samples(), 1);
  auto windows = f.stats.TakeClosed();
  ASSERT_EQ(windows.size(), 1u);
  EXPECT_EQ(windows[0].start_ms, kT0);
  EXPECT_EQ(windows[0].requests, 1);
}

TEST(StatsTest, TheTotalKeepsEverySampleTakenWindowsAndLateOnesIncluded) {
  Fixture f;
  f.stats.Record(Role::kLive, 200, 1);
  f.now = kT0 + 3 * kWindowMs;  // late: slot 0 still holds window 0
  f.stats.Record(Role::kLive, 503, 60);
  f.stats.Record(Role::kMirror, 200, 1);
  EXPECT_EQ(f.stats.TakeClosed().size(), 1u);
  Window live = f.stats.Total(Role::kLive);
  EXPECT_EQ(live.requests, 2);
  EXPECT_EQ(live.errors, 1);
  EXPECT_EQ(live.status[StatusSlot(503)], 1);
  EXPECT_EQ(live.latency[LatencyBucket(60)], 1);
  EXPECT_EQ(f.stats.Total(Role::kMirror).requests, 1);
  EXPECT_EQ(f.stats.Total(Role::kPinned).requests, 0);
}

TEST(StatsTest, RequestMetricsAreCumulativeBucketsInSecondsWithCodesAndOther) {
  Fixture f;
  f.stats.Record(Role::kLive, 200, 0.25);
  f.stats.Record(Role::kLive, 200, 50);
  f.stats.Record(Role::kLive, 418, 40000);
  std::string text;
  AppendRequestMetrics({{"fashion", "blue", Role::kLive, f.stats.Total(Role::kLive)},
                        {"fashion", "green", Role::kLive, f.stats.Total(Role::kPinned)}},
                       &text);
  const std::string labels = R"(service="fashion",version="blue",role="live")";
  EXPECT_NE(text.find("# TYPE sluice_requests_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("sluice_requests_total{" + labels + R"(,code="200"} 2)" "\n"), std::string::npos) << text;
  EXPECT_NE(text.find("sluice_requests_total{" + labels + R"(,code="other"} 1)" "\n"), std::string::npos);
  EXPECT_NE(text.find("sluice_request_duration_seconds_bucket{" + labels + R"(,le="0.00025"} 1)" "\n"),
            std::string::npos);
  EXPECT_NE(text.find("sluice_request_duration_seconds_bucket{" + labels + R"(,le="0.05"} 2)" "\n"),
            std::string::npos);
  EXPECT_NE(text.find("sluice_request_duration_seconds_bucket{" + labels + R"(,le="30"} 2)" "\n"), std::string::npos);
  EXPECT_NE(text.find("sluice_request_duration_seconds_bucket{" + labels + R"(,le="+Inf"} 3)" "\n"),
            std::string::npos);
  EXPECT_NE(text.find("sluice_request_duration_seconds_sum{" + labels + "} 40.050250\n"), std::string::npos);
  EXPECT_NE(text.find("sluice_request_duration_seconds_count{" + labels + "} 3\n"), std::string::npos);
  EXPECT_EQ(text.find("green"), std::string::npos);  // no requests: no series
}

TEST(StatsTest, ALabelValueEscapesBackslashQuoteAndNewline) {
  EXPECT_EQ(PrometheusLabel("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
}

TEST(StatsTest, TakeAllEmptiesTheOpenWindowsToo) {
  Fixture f;
  f.stats.Record(Role::kLive, 200, 1);
  EXPECT_TRUE(f.stats.TakeClosed().empty());
  auto all = f.stats.TakeAll();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].start_ms, kT0);
  EXPECT_TRUE(f.stats.TakeAll().empty());
}

}  // namespace
}  // namespace sluice::serving
