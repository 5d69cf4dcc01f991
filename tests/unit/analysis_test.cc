// AnalysisTest: the canary analysis's spec, verdicts and tally
// (deploy/analysis.h).
#include "deploy/analysis.h"

#include <gtest/gtest.h>

namespace sluice::deploy {
namespace {

// An interval's counts: `requests` answers, `errors` of them 500, all with
// the given latency.
Counts Interval(int64_t requests, int64_t errors, double latency_ms = 4) {
  Counts c;
  if (requests > errors) c.codes["200"] = requests - errors;
  if (errors > 0) c.codes["500"] = errors;
  c.requests = requests;
  c.errors = errors;
  c.latency[serving::LatencyBucket(latency_ms)] = requests;
  return c;
}

AnalysisSpec Spec(const nlohmann::json& j) {
  auto spec = ParseAnalysisSpec(j);
  EXPECT_TRUE(spec.ok()) << spec.status().message();
  return spec.ok() ? *spec : AnalysisSpec{};
}

std::string ParseError(const nlohmann::json& j) {
  auto spec = ParseAnalysisSpec(j);
  EXPECT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), Code::kInvalidSpec);
  return spec.status().message();
}

const nlohmann::json kIssueExample = {{"interval", "10s"},     {"min_requests", 200}, {"max_error_rate", 0.01},
                                      {"max_p99_ms", 50},       {"failure_limit", 0},  {"inconclusive", "pause"}};

TEST(AnalysisTest, ParsesTheIssuesExample) {
  AnalysisSpec s = Spec(kIssueExample);
  EXPECT_EQ(s.interval, Millis(10000));
  EXPECT_EQ(s.min_requests, 200);
  EXPECT_EQ(s.max_error_rate, 0.01);
  EXPECT_EQ(s.max_p99_ms, 50);
  EXPECT_FALSE(s.max_p50_ms);
  EXPECT_EQ(s.failure_limit, 0);
  EXPECT_EQ(s.inconclusive, InconclusiveAction::kPause);
}

TEST(AnalysisTest, DefaultsAreTenSecondsNoFailureAllowedAndPause) {
  AnalysisSpec s = Spec({{"min_requests", 1}, {"max_p50_ms", 10}});
  EXPECT_EQ(s.interval, Millis(10000));
  EXPECT_EQ(s.failure_limit, 0);
  EXPECT_EQ(s.inconclusive, InconclusiveAction::kPause);
}

TEST(AnalysisTest, EachSpecErrorNamesItsKey) {
  nlohmann::json j = kIssueExample;
  j["max_error_rate"] = 1.5;
  EXPECT_EQ(ParseError(j), "analysis.max_error_rate: 1.5 is not a rate between 0 and 1");
  j = kIssueExample;
  j["max_error_rate"] = "1%";
  EXPECT_EQ(ParseError(j), "analysis.max_error_rate: expected a number, got \"1%\"");
  j = kIssueExample;
  j["max_eror_rate"] = 0.1;
  EXPECT_EQ(ParseError(j), "analysis.max_eror_rate: unknown key (did you mean 'max_error_rate'?)");
  j = kIssueExample;
  j.erase("min_requests");
  EXPECT_EQ(ParseError(j), "analysis.min_requests: required (the fewest answers in an interval that can be judged)");
  j["min_requests"] = 0;
  EXPECT_EQ(ParseError(j), "analysis.min_requests: 0 is less than 1");
  j["min_requests"] = 2.5;
  EXPECT_EQ(ParseError(j), "analysis.min_requests: expected a whole number, got 2.5");
  j = kIssueExample;
  j["interval"] = "10";
  EXPECT_EQ(ParseError(j), "analysis.interval: expected a duration such as \"10s\", got \"10\"");
  j["interval"] = "500ms";
  EXPECT_EQ(ParseError(j), "analysis.interval: \"500ms\" is shorter than 1s");
  j = kIssueExample;
  j["max_p99_ms"] = 0;
  EXPECT_EQ(ParseError(j), "analysis.max_p99_ms: 0 is not a latency above 0 ms");
  j["max_p99_ms"] = 60000;
  EXPECT_EQ(ParseError(j),
            "analysis.max_p99_ms: 60000 is above 30000 ms, the gateway's largest latency bucket: it cannot be judged");
  j = kIssueExample;
  j["failure_limit"] = -1;
  EXPECT_EQ(ParseError(j), "analysis.failure_limit: -1 is less than 0");
  j = kIssueExample;
  j["inconclusive"] = "retry";
  EXPECT_EQ(ParseError(j), "analysis.inconclusive: expected pause, fail or extend, got \"retry\"");
  EXPECT_EQ(ParseError({{"min_requests", 10}}),
            "analysis: needs at least one of max_error_rate, max_p99_ms, max_p50_ms, max_class_distance");
  EXPECT_EQ(ParseError(nlohmann::json::array()), "analysis: expected an object of settings, got []");
}

TEST(AnalysisTest, AMaxErrorRateOfExactlyZeroOrOneIsARate) {
  EXPECT_EQ(Spec({{"min_requests", 1}, {"max_error_rate", 0}}).max_error_rate, 0);
  EXPECT_EQ(Spec({{"min_requests", 1}, {"max_error_rate", 1}}).max_error_rate, 1);
}

TEST(AnalysisTest, AnErrorRateExactlyAtTheLimitPassesAndOneErrorMoreFails) {
  AnalysisSpec s = Spec(kIssueExample);
  Measurement at = Judge(s, Interval(200, 2));
  EXPECT_EQ(at.verdict, Verdict::kPass);
  EXPECT_EQ(at.reason, "error rate 0.01 <= 0.01, p99 <= 5 ms <= 50 ms over 200 requests");
  Measurement over = Judge(s, Interval(200, 3));
  EXPECT_EQ(over.verdict, Verdict::kFail);
  EXPECT_EQ(over.reason, "error rate 0.015 > 0.01 over 200 requests");
}

TEST(AnalysisTest, ExactlyMinRequestsIsConclusiveAndOneFewerIsInconclusive) {
  AnalysisSpec s = Spec(kIssueExample);
  EXPECT_EQ(Judge(s, Interval(200, 0)).verdict, Verdict::kPass);
  Measurement few = Judge(s, Interval(199, 199));
  EXPECT_EQ(few.verdict, Verdict::kInconclusive);  // never "failed", however many errors
  EXPECT_EQ(few.reason, "199 requests < min_requests 200");
  EXPECT_EQ(Judge(s, Interval(12, 0)).reason, "12 requests < min_requests 200");
}

TEST(AnalysisTest, TheReasonStatesEachComparisonLikeArgo) {
  AnalysisSpec s = Spec(kIssueExample);
  Measurement fail = Judge(s, Interval(412, 14));
  EXPECT_EQ(fail.verdict, Verdict::kFail);
  EXPECT_EQ(fail.reason, "error rate 0.034 > 0.01 over 412 requests");
  EXPECT_EQ(fail.requests, 412);
  EXPECT_EQ(fail.errors, 14);
  EXPECT_DOUBLE_EQ(fail.error_rate, 14.0 / 412);
  Measurement pass = Judge(s, Interval(1000, 2, 25));
  EXPECT_EQ(pass.verdict, Verdict::kPass);
  EXPECT_EQ(pass.reason, "error rate 0.002 <= 0.01, p99 <= 25 ms <= 50 ms over 1000 requests");
  Measurement both = Judge(s, Interval(412, 14, 60));
  EXPECT_EQ(both.reason, "error rate 0.034 > 0.01, p99 <= 75 ms > 50 ms over 412 requests");
}

TEST(AnalysisTest, AP99ExactlyAtTheLimitBoundPassesAndTheNextBucketFails) {
  AnalysisSpec s = Spec({{"min_requests", 100}, {"max_p99_ms", 50}});
  Counts c = Interval(100, 0, 50);
  c.latency[serving::LatencyBucket(50)] = 99;  // 99 of 100 <= 50 ms
  c.latency[serving::LatencyBucket(50.001)] = 1;
  EXPECT_EQ(Judge(s, c).verdict, Verdict::kPass);
  EXPECT_EQ(Judge(s, c).reason, "p99 <= 50 ms <= 50 ms over 100 requests");
  c.latency[serving::LatencyBucket(50)] = 98;  // 98 of 100
  c.latency[serving::LatencyBucket(50.001)] = 2;
  Measurement m = Judge(s, c);
  EXPECT_EQ(m.verdict, Verdict::kFail);
  EXPECT_EQ(m.p99_ms, 75);
  EXPECT_EQ(m.reason, "p99 <= 75 ms > 50 ms over 100 requests");
}

TEST(AnalysisTest, AP99AboveTheLastBoundFailsAndSaysSo) {
  Measurement m = Judge(Spec({{"min_requests", 1}, {"max_p99_ms", 30000}, {"max_p50_ms", 30000}}),
                        Interval(10, 0, 45000));
  EXPECT_EQ(m.verdict, Verdict::kFail);
  EXPECT_EQ(m.reason, "p99 > 30000 ms > 30000 ms, p50 > 30000 ms > 30000 ms over 10 requests");
}

TEST(AnalysisTest, ARateThatRoundsToTheLimitShowsEnoughDigits) {
  Measurement m = Judge(Spec({{"min_requests", 1}, {"max_error_rate", 0.01}}), Interval(1000000, 10001));
  EXPECT_EQ(m.reason, "error rate 0.010001 > 0.01 over 1000000 requests");
}

TEST(AnalysisTest, FailureLimitOneToleratesOneFailedIntervalAndFailsAtTheSecond) {
  nlohmann::json j = kIssueExample;
  j["failure_limit"] = 1;
  AnalysisTally tally(Spec(j));
  EXPECT_EQ(tally.Add(Interval(300, 30)).verdict, Verdict::kFail);
  EXPECT_FALSE(tally.failed());
  EXPECT_EQ(tally.next(), AnalysisTally::Next::kContinue);
  EXPECT_EQ(tally.Summary(), "failed (1) <= failure_limit (1)");
  EXPECT_EQ(tally.Add(Interval(300, 0)).verdict, Verdict::kPass);
  EXPECT_FALSE(tally.failed());
  tally.Add(Interval(300, 30));
  EXPECT_TRUE(tally.failed());
  EXPECT_EQ(tally.next(), AnalysisTally::Next::kFail);
  EXPECT_EQ(tally.Summary(), "failed (2) > failure_limit (1)");
  EXPECT_EQ(tally.intervals(), 3);
  EXPECT_EQ(tally.passed(), 1);
}

TEST(AnalysisTest, FailureLimitZeroFailsAtTheFirstFailedInterval) {
  AnalysisTally tally(Spec(kIssueExample));
  tally.Add(Interval(300, 30));
  EXPECT_TRUE(tally.failed());
  EXPECT_EQ(tally.next(), AnalysisTally::Next::kFail);
}

TEST(AnalysisTest, AnInconclusiveIntervalPausesWhenTheSpecSaysPause) {
  AnalysisTally tally(Spec(kIssueExample));
  tally.Add(Interval(50, 0));
  EXPECT_EQ(tally.next(), AnalysisTally::Next::kPause);
  EXPECT_FALSE(tally.failed());
  EXPECT_EQ(tally.inconclusive(), 1);
  tally.Add(Interval(250, 0));  // resumed: the next interval is judged on its own
  EXPECT_EQ(tally.next(), AnalysisTally::Next::kContinue);
  EXPECT_EQ(tally.passed(), 1);
}

TEST(AnalysisTest, AnInconclusiveIntervalCountsAsAFailureWhenTheSpecSaysFail) {
  nlohmann::json j = kIssueExample;
  j["inconclusive"] = "fail";
  j["failure_limit"] = 1;
  AnalysisTally tally(Spec(j));
  EXPECT_EQ(tally.Add(Interval(50, 0)).verdict, Verdict::kInconclusive);
  EXPECT_EQ(tally.failures(), 1);
  EXPECT_EQ(tally.next(), AnalysisTally::Next::kContinue);
  tally.Add(Interval(10, 0));
  EXPECT_EQ(tally.next(), AnalysisTally::Next::kFail);
  EXPECT_EQ(tally.inconclusive(), 0);
}

TEST(AnalysisTest, AnInconclusiveIntervalIsExtendedIntoTheNextWhenTheSpecSaysExtend) {
  nlohmann::json j = kIssueExample;
  j["inconclusive"] = "extend";
  AnalysisTally tally(Spec(j));
  tally.Add(Interval(120, 3));
  EXPECT_EQ(tally.next(), AnalysisTally::Next::kContinue);
  EXPECT_EQ(tally.carried().requests, 120);
  Measurement m = tally.Add(Interval(100, 0));  // 220 requests, 3 errors: 0.0136 > 0.01
  EXPECT_EQ(m.requests, 220);
  EXPECT_EQ(m.verdict, Verdict::kFail);
  EXPECT_EQ(m.reason, "error rate 0.0136 > 0.01 over 220 requests");
  EXPECT_EQ(tally.carried().requests, 0);
  EXPECT_TRUE(tally.failed());
}

}  // namespace
}  // namespace sluice::deploy

TEST(AnalysisTest, ClassDistanceIsHalfTheSumOfTheShareDifferences) {
  EXPECT_DOUBLE_EQ(sluice::deploy::ClassDistance({{"cat", 5}, {"dog", 5}}, {{"cat", 50}, {"dog", 50}}), 0.0);
  EXPECT_DOUBLE_EQ(sluice::deploy::ClassDistance({{"cat", 10}}, {{"dog", 3}}), 1.0);
  EXPECT_DOUBLE_EQ(sluice::deploy::ClassDistance({{"cat", 3}, {"dog", 1}}, {{"cat", 1}, {"dog", 1}}), 0.25);
  EXPECT_DOUBLE_EQ(sluice::deploy::ClassDistance({}, {{"dog", 3}}), 0.0);
}

TEST(AnalysisTest, AClassDistanceExactlyAtItsLimitPassesAndAboveItFails) {
  auto spec = sluice::deploy::ParseAnalysisSpec({{"min_requests", 4}, {"max_class_distance", 0.25}});
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  auto at = sluice::deploy::JudgeClasses(*spec, {{"cat", 3}, {"dog", 1}}, {{"cat", 1}, {"dog", 1}});
  EXPECT_EQ(at.verdict, sluice::deploy::Verdict::kPass) << at.reason;
  auto above = sluice::deploy::JudgeClasses(*spec, {{"cat", 4}}, {{"cat", 1}, {"dog", 1}});
  EXPECT_EQ(above.verdict, sluice::deploy::Verdict::kFail);
  EXPECT_EQ(above.reason, "predicted classes differ from the stable version's by 0.5 > 0.25 over 4 and 2 classified answers");
  auto few = sluice::deploy::JudgeClasses(*spec, {{"cat", 3}}, {{"cat", 1}});
  EXPECT_EQ(few.verdict, sluice::deploy::Verdict::kInconclusive);
  EXPECT_EQ(few.reason, "3 classified answers < min_requests 4");
}

TEST(AnalysisTest, MaxClassDistanceMustBeBetweenZeroAndOne) {
  auto bad = sluice::deploy::ParseAnalysisSpec({{"min_requests", 4}, {"max_class_distance", 1.5}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "analysis.max_class_distance: 1.5 is not a distance between 0 and 1");
}
