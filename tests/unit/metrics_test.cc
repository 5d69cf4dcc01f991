// MetricsTest: the gateway's /metrics text read into counts, and the
// increase between two scrapes (deploy/metrics.h).
#include "deploy/metrics.h"

#include <gtest/gtest.h>

#include <cmath>

namespace sluice::deploy {
namespace {

using serving::LatencyBucket;

// A window as the gateway's WindowStats::Total would hold it.
serving::Window Total(const std::vector<std::tuple<int, double, int>>& answers) {  // status, ms, count
  serving::Window w;
  for (auto [status, ms, n] : answers) {
    w.requests += n;
    if (status >= 500) w.errors += n;
    w.status[serving::StatusSlot(status)] += n;
    w.latency[LatencyBucket(ms)] += n;
    w.latency_sum_us += static_cast<int64_t>(ms * 1000) * n;
  }
  return w;
}

// The gateway's own text: AppendRequestMetrics, then families of the
// gateway's kind that the analysis does not read.
std::string GatewayText(const std::vector<serving::MetricSeries>& series) {
  std::string text;
  serving::AppendRequestMetrics(series, &text);
  text +=
      "# HELP sluice_mirror_dropped_total Mirror copies dropped.\n"
      "# TYPE sluice_mirror_dropped_total counter\n"
      "sluice_mirror_dropped_total{service=\"fashion\",version=\"v2\"} 3\n"
      "# TYPE sluice_replica_ready gauge\n"
      "sluice_replica_ready{service=\"fashion\",version=\"v2\",slot=\"0\"} 1\n"
      "sluice_ejections_total 0\n";
  return text;
}

const SeriesKey kStableLive{"fashion", "v1", "live"};
const SeriesKey kCanaryLive{"fashion", "v2", "live"};

TEST(MetricsTest, ReadsTheGatewaysOwnTextIntoCountsPerVersionAndRole) {
  std::string text = GatewayText({
      {"fashion", "v1", serving::Role::kLive, Total({{200, 4, 90}, {503, 120, 10}})},
      {"fashion", "v2", serving::Role::kLive, Total({{200, 50, 7}})},
      {"fashion", "v2", serving::Role::kMirror, Total({{200, 3, 2}})},
  });
  auto snapshot = ParseMetrics(text);
  ASSERT_TRUE(snapshot.ok()) << snapshot.status().message();
  ASSERT_EQ(snapshot->size(), 3u);
  const Counts v1 = CountsOf(*snapshot, kStableLive);
  EXPECT_EQ(v1.requests, 100);
  EXPECT_EQ(v1.errors, 10);
  EXPECT_EQ(v1.codes.at("200"), 90);
  EXPECT_EQ(v1.codes.at("503"), 10);
  EXPECT_EQ(v1.latency[LatencyBucket(4)], 90);  // not cumulative
  EXPECT_EQ(v1.latency[LatencyBucket(120)], 10);
  int64_t total = 0;
  for (int64_t n : v1.latency) total += n;
  EXPECT_EQ(total, 100);
  EXPECT_EQ(CountsOf(*snapshot, kCanaryLive).latency[LatencyBucket(50)], 7);
  EXPECT_EQ(CountsOf(*snapshot, {"fashion", "v2", "mirror"}).requests, 2);
  EXPECT_EQ(CountsOf(*snapshot, {"fashion", "v2", "mirror"}).mirror_dropped, 3);
}

TEST(MetricsTest, FiveHundredsAndOtherAreErrorsAndFourHundredsAreNot) {
  std::string text = GatewayText({{"s", "v", serving::Role::kLive,
                                   Total({{200, 1, 5}, {404, 1, 4}, {429, 1, 3}, {500, 1, 2}, {504, 1, 1}, {201, 1, 6}})}});
  auto snapshot = ParseMetrics(text);
  ASSERT_TRUE(snapshot.ok()) << snapshot.status().message();
  const Counts c = CountsOf(*snapshot, {"s", "v", "live"});
  EXPECT_EQ(c.requests, 21);
  EXPECT_EQ(c.codes.at("other"), 6);  // 201 is not one of the gateway's slots
  EXPECT_EQ(c.errors, 2 + 1 + 6);
  EXPECT_TRUE(IsErrorCode("599"));
  EXPECT_FALSE(IsErrorCode("499"));
  EXPECT_FALSE(IsErrorCode("5000"));
}

TEST(MetricsTest, LabelValuesAreUnescaped) {
  std::string text = GatewayText({{"a\"b\\c", "v\n1", serving::Role::kLive, Total({{200, 1, 1}})}});
  auto snapshot = ParseMetrics(text);
  ASSERT_TRUE(snapshot.ok()) << snapshot.status().message();
  EXPECT_EQ(CountsOf(*snapshot, {"a\"b\\c", "v\n1", "live"}).requests, 1);
}

TEST(MetricsTest, AnEmptyTextIsAnEmptySnapshot) {
  auto snapshot = ParseMetrics("");
  ASSERT_TRUE(snapshot.ok());
  EXPECT_TRUE(snapshot->empty());
}

TEST(MetricsTest, AMalformedLineIsAnErrorNamingItsLineNumber) {
  auto bad = [](const std::string& text) { return ParseMetrics(text).status().message(); };
  EXPECT_EQ(bad("# TYPE x counter\nx 1\nsluice_requests_total{service=\"s\" 3\n"),
            "metrics line 3: expected ',' or '}' after the value of label service");
  EXPECT_EQ(bad("x{a=\"1\"} one\n"), "metrics line 1: 'one' is not a number");
  EXPECT_EQ(bad("\n\nx{a=\"1\n"), "metrics line 3: unterminated value of label a");
  EXPECT_EQ(bad("x\n"), "metrics line 1: expected a blank and a value after x");
  EXPECT_EQ(bad("{a=\"1\"} 2\n"), "metrics line 1: expected a metric name");
  EXPECT_EQ(bad("x 1 ab\n"), "metrics line 1: 'ab' is not a timestamp");
  EXPECT_EQ(bad("x 1 12 ab\n"), "metrics line 1: unexpected 'ab' after the timestamp");
  EXPECT_EQ(ParseMetrics("x 1 1700000000000\n  \n# comment\n").status().ok(), true);
}

TEST(MetricsTest, ASampleOfTheRequestFamiliesWithoutALabelOrWithAFractionIsAnError) {
  auto bad = [](const std::string& text) { return ParseMetrics(text).status().message(); };
  EXPECT_EQ(bad("sluice_requests_total{service=\"s\",version=\"v\",role=\"live\"} 3\n"),
            "metrics line 1: sluice_requests_total without the label code");
  EXPECT_EQ(bad("sluice_requests_total{service=\"s\",version=\"v\",role=\"live\",code=\"200\"} 2.5\n"),
            "metrics line 1: sluice_requests_total of s/v/live is not a whole number of answers");
  EXPECT_EQ(bad("sluice_requests_total{service=\"s\",version=\"v\",role=\"live\",code=\"200\"} 2\n"
                "sluice_requests_total{service=\"s\",version=\"v\",role=\"live\",code=\"200\"} 3\n"),
            "metrics line 2: sluice_requests_total of s/v/live code 200 repeated");
}

TEST(MetricsTest, ABucketBoundThatIsNotTheGatewaysIsAnError) {
  EXPECT_EQ(ParseMetrics("sluice_request_duration_seconds_bucket{service=\"s\",version=\"v\",role=\"live\",le=\"0.06\"} 1\n")
                .status()
                .message(),
            "metrics line 1: le=\"0.06\" is not a bucket bound of the gateway");
}

// The gateway's text of one series with its buckets edited.
std::string EditedBuckets(const std::string& from, const std::string& to) {
  std::string text = GatewayText({{"s", "v", serving::Role::kLive, Total({{200, 4, 10}})}});
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  text.replace(at, from.size(), to);
  return text;
}

int LineOf(const std::string& text, const std::string& needle) {
  size_t at = text.find(needle);
  int line = 1;
  for (size_t i = 0; i < at; ++i) line += text[i] == '\n';
  return line;
}

TEST(MetricsTest, ACumulativeBucketSmallerThanTheOneBeforeIsAnError) {
  const std::string text = EditedBuckets("le=\"0.01\"} 10", "le=\"0.01\"} 9");
  EXPECT_EQ(ParseMetrics(text).status().message(),
            "metrics line " + std::to_string(LineOf(text, "le=\"0.01\"")) +
                ": bucket le=\"0.01\" of s/v/live holds 9, fewer than the 10 of the bucket before it (buckets are "
                "cumulative)");
}

TEST(MetricsTest, ASeriesMissingABucketIsAnError) {
  std::string missing = GatewayText({{"s", "v", serving::Role::kLive, Total({{200, 4, 10}})}});
  size_t at = missing.find("sluice_request_duration_seconds_bucket{service=\"s\",version=\"v\",role=\"live\",le=\"0.05\"}");
  missing.erase(at, missing.find('\n', at) - at + 1);
  EXPECT_EQ(ParseMetrics(missing).status().message(), "metrics: series s/v/live: bucket le=\"0.05\" missing");
}

Snapshot Parse(const std::vector<serving::MetricSeries>& series) {
  auto s = ParseMetrics(GatewayText(series));
  EXPECT_TRUE(s.ok()) << s.status().message();
  return s.ok() ? *s : Snapshot{};
}

TEST(MetricsTest, TheIncreaseIsTheDifferenceOfTwoScrapes) {
  Snapshot before = Parse({{"f", "v2", serving::Role::kLive, Total({{200, 4, 100}, {500, 4, 1}})}});
  Snapshot after = Parse({{"f", "v2", serving::Role::kLive, Total({{200, 4, 130}, {500, 4, 1}, {503, 80, 5}})}});
  Snapshot inc = Increase(before, after);
  const Counts c = CountsOf(inc, {"f", "v2", "live"});
  EXPECT_EQ(c.requests, 35);
  EXPECT_EQ(c.errors, 5);
  EXPECT_EQ(c.codes.count("500"), 0u);  // no increase: left out
  EXPECT_EQ(c.codes.at("200"), 30);
  EXPECT_EQ(c.latency[LatencyBucket(4)], 30);
  EXPECT_EQ(c.latency[LatencyBucket(80)], 5);
}

TEST(MetricsTest, ASeriesWhoseCounterWentDownWasResetAndItsIncreaseIsTheAfterValue) {
  // The gateway restarted: more 200s than before, but fewer 500s.
  Snapshot before = Parse({{"f", "v2", serving::Role::kLive, Total({{200, 4, 10}, {500, 4, 8}})}});
  Snapshot after = Parse({{"f", "v2", serving::Role::kLive, Total({{200, 4, 12}, {500, 4, 1}})}});
  const Counts c = CountsOf(Increase(before, after), {"f", "v2", "live"});
  EXPECT_EQ(c.requests, 13);
  EXPECT_EQ(c.errors, 1);
  EXPECT_EQ(c.codes.at("200"), 12);
}

TEST(MetricsTest, ACodeThatDisappearedMeansAReset) {
  Snapshot before = Parse({{"f", "v2", serving::Role::kLive, Total({{200, 4, 10}, {500, 4, 8}})}});
  Snapshot after = Parse({{"f", "v2", serving::Role::kLive, Total({{200, 4, 30}})}});
  EXPECT_EQ(CountsOf(Increase(before, after), {"f", "v2", "live"}).requests, 30);
}

TEST(MetricsTest, ANewSeriesIsAllIncreaseAndAnUnchangedOneIsLeftOut) {
  Snapshot before = Parse({{"f", "v1", serving::Role::kLive, Total({{200, 4, 10}})}});
  Snapshot after = Parse({{"f", "v1", serving::Role::kLive, Total({{200, 4, 10}})},
                          {"f", "v2", serving::Role::kLive, Total({{200, 4, 3}})}});
  Snapshot inc = Increase(before, after);
  EXPECT_EQ(inc.size(), 1u);
  EXPECT_EQ(CountsOf(inc, {"f", "v2", "live"}).requests, 3);
  EXPECT_EQ(CountsOf(inc, {"f", "v1", "live"}).requests, 0);
}

TEST(MetricsTest, AQuantileIsTheUpperBoundOfItsBucket) {
  Counts c;
  c.latency[LatencyBucket(50)] = 99;
  c.latency[LatencyBucket(60)] = 1;
  EXPECT_EQ(LatencyQuantileMs(c, 0.99), 50);
  c.latency[LatencyBucket(50)] = 98;
  c.latency[LatencyBucket(60)] = 2;
  EXPECT_EQ(LatencyQuantileMs(c, 0.99), 75);
  EXPECT_EQ(LatencyQuantileMs(c, 0.5), 50);
  EXPECT_FALSE(LatencyQuantileMs(Counts{}, 0.99));
}

TEST(MetricsTest, AQuantileInTheInfBucketIsInfinity) {
  Counts c;
  c.latency[LatencyBucket(1)] = 1;
  c.latency[LatencyBucket(45000)] = 1;
  auto p99 = LatencyQuantileMs(c, 0.99);
  ASSERT_TRUE(p99);
  EXPECT_TRUE(std::isinf(*p99));
  EXPECT_EQ(LatencyQuantileMs(c, 0.5), 1);
}

TEST(MetricsTest, MirrorAgreementCountersLandInTheMirrorSeriesOfTheirVersion) {
  auto s = ParseMetrics(
      "# TYPE sluice_mirror_compared_total counter\n"
      "sluice_mirror_compared_total{service=\"f\",version=\"v2\"} 40\n"
      "sluice_mirror_agreed_total{service=\"f\",version=\"v2\"} 31\n"
      "sluice_mirror_dropped_total{service=\"f\",version=\"v2\"} 3\n"
      "sluice_mirror_compare_skipped_total 7\n");
  ASSERT_TRUE(s.ok()) << s.status().message();
  const Counts c = CountsOf(*s, {"f", "v2", "mirror"});
  EXPECT_EQ(c.mirror_compared, 40);
  EXPECT_EQ(c.mirror_agreed, 31);
  EXPECT_EQ(c.mirror_dropped, 3);
  EXPECT_EQ(c.requests, 0);
}

TEST(MetricsTest, AMirrorCounterWithoutItsVersionLabelIsAnError) {
  EXPECT_EQ(ParseMetrics("sluice_mirror_agreed_total{service=\"f\"} 1\n").status().message(),
            "metrics line 1: sluice_mirror_agreed_total without the label version");
}

TEST(MetricsTest, TheIncreaseOfMirrorCountersIsTheirGrowthAndARestartTakesTheLaterScrape) {
  auto text = [](int compared, int agreed, int dropped) {
    return "sluice_mirror_compared_total{service=\"f\",version=\"v2\"} " + std::to_string(compared) +
           "\nsluice_mirror_agreed_total{service=\"f\",version=\"v2\"} " + std::to_string(agreed) +
           "\nsluice_mirror_dropped_total{service=\"f\",version=\"v2\"} " + std::to_string(dropped) + "\n";
  };
  const Snapshot a = *ParseMetrics(text(10, 9, 1)), b = *ParseMetrics(text(50, 40, 1)), c = *ParseMetrics(text(5, 5, 0));
  const Counts grew = CountsOf(Increase(a, b), {"f", "v2", "mirror"});
  EXPECT_EQ(grew.mirror_compared, 40);
  EXPECT_EQ(grew.mirror_agreed, 31);
  EXPECT_EQ(grew.mirror_dropped, 0);
  const Counts reset = CountsOf(Increase(b, c), {"f", "v2", "mirror"});
  EXPECT_EQ(reset.mirror_compared, 5);
  EXPECT_EQ(reset.mirror_agreed, 5);
  EXPECT_TRUE(Increase(a, a).empty()) << "no growth, no series";
}

}  // namespace
}  // namespace sluice::deploy
