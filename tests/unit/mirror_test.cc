// Mirror agreement (serving/mirror.h): the rule that decides whether a
// mirror's answer agrees with the live one, and the comparer that counts it
// into the mirror version's windows.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include <nlohmann/json.hpp>

#include "serving/mirror.h"

using namespace sluice::serving;
using json = nlohmann::json;

namespace {

std::string Answer(const json& outputs, int request = 1) {
  return json{{"model_name", "m"}, {"id", std::to_string(request)}, {"outputs", outputs}}.dump();
}

json Scores(const json& data, const json& shape, const std::string& type = "FP32") {
  return json::array({{{"name", "probabilities"}, {"datatype", type}, {"shape", shape}, {"data", data}}});
}

}  // namespace

TEST(AnswersAgreeTest, ClassScoresAgreeWhenTheirLargestIsTheSameClass) {
  EXPECT_TRUE(AnswersAgree(Answer(Scores({0.1, 0.7, 0.2}, {1, 3}), 1), Answer(Scores({0.3, 0.4, 0.3}, {1, 3}), 2)));
  EXPECT_TRUE(AnswersAgree(Answer(Scores({0.1, 0.9}, {2}, "FP64")), Answer(Scores({0.4, 0.6}, {2}, "FP64"))));
  EXPECT_TRUE(AnswersAgree(Answer(Scores({{0.1, 0.9}}, {1, 2})), Answer(Scores({0.2, 0.8}, {1, 2}))));
}

TEST(AnswersAgreeTest, ClassScoresDisagreeWhenTheirLargestIsAnotherClass) {
  EXPECT_FALSE(AnswersAgree(Answer(Scores({0.1, 0.7, 0.2}, {1, 3})), Answer(Scores({0.5, 0.4, 0.1}, {1, 3}))));
}

TEST(AnswersAgreeTest, OneFloatValueIsNotClassScoresAndIsComparedExactly) {
  EXPECT_TRUE(AnswersAgree(Answer(Scores({0.5}, {1, 1})), Answer(Scores({0.5}, {1, 1}))));
  EXPECT_FALSE(AnswersAgree(Answer(Scores({0.5}, {1, 1})), Answer(Scores({0.50001}, {1, 1}))));
}

TEST(AnswersAgreeTest, ScoresOfSeveralRowsAreComparedExactly) {
  EXPECT_FALSE(AnswersAgree(Answer(Scores({0.1, 0.9, 0.2, 0.8}, {2, 2})), Answer(Scores({0.2, 0.8, 0.1, 0.9}, {2, 2}))));
}

TEST(AnswersAgreeTest, IntegerAndStringOutputsAreComparedExactly) {
  auto label = [](const json& data) {
    return json::array({{{"name", "label"}, {"datatype", "INT64"}, {"shape", {1}}, {"data", data}}});
  };
  EXPECT_TRUE(AnswersAgree(Answer(label({3})), Answer(label({3}))));
  EXPECT_FALSE(AnswersAgree(Answer(label({3})), Answer(label({4}))));
  auto cls = [](const std::string& c) {
    return json::array({{{"name", "class"}, {"datatype", "BYTES"}, {"shape", {1}}, {"data", {c}}}});
  };
  EXPECT_TRUE(AnswersAgree(Answer(cls("boot")), Answer(cls("boot"))));
  EXPECT_FALSE(AnswersAgree(Answer(cls("boot")), Answer(cls("bag"))));
}

TEST(AnswersAgreeTest, OutputsAreMatchedByNameAndAMissingOneDisagrees) {
  json a = json::array({{{"name", "x"}, {"data", {1}}}, {{"name", "y"}, {"data", {2}}}});
  json b = json::array({{{"name", "y"}, {"data", {2}}}, {{"name", "x"}, {"data", {1}}}});
  json c = json::array({{{"name", "y"}, {"data", {2}}}, {{"name", "z"}, {"data", {1}}}});
  EXPECT_TRUE(AnswersAgree(Answer(a), Answer(b)));
  EXPECT_FALSE(AnswersAgree(Answer(a), Answer(c)));
  EXPECT_FALSE(AnswersAgree(Answer(a), Answer(json::array({{{"name", "x"}, {"data", {1}}}}))));
}

TEST(AnswersAgreeTest, AnswersThatAreNotInferenceJsonAgreeOnlyByteForByte) {
  EXPECT_TRUE(AnswersAgree("plain text", "plain text"));
  EXPECT_FALSE(AnswersAgree("plain text", "plain text "));
  EXPECT_FALSE(AnswersAgree(R"({"a": 1})", R"({"a":1})"));
}

TEST(MirrorComparerTest, APairCountsItsOutcomeInTheMirrorWindowOnceBothSidesArrived) {
  std::atomic<int64_t> now{1'000'000};
  auto stats = std::make_shared<WindowStats>([&] { return now.load(); });
  MirrorComparer comparer;
  const std::string same = Answer(Scores({0.1, 0.9}, {2}));
  const std::string other = Answer(Scores({0.9, 0.1}, {2}));
  auto agree = std::make_shared<MirrorPair>(stats, &comparer);
  agree->SetMirror(200, std::make_shared<const std::string>(same));
  agree->SetLive(200, std::make_shared<const std::string>(same));
  auto disagree = std::make_shared<MirrorPair>(stats, &comparer);
  disagree->SetLive(200, std::make_shared<const std::string>(same));
  disagree->SetMirror(200, std::make_shared<const std::string>(other));
  auto failed_live = std::make_shared<MirrorPair>(stats, &comparer);  // a live 500: not compared
  failed_live->SetLive(500, nullptr);
  failed_live->SetMirror(200, std::make_shared<const std::string>(same));
  comparer.Stop();  // compares what is queued first
  Window total = stats->Total(Role::kMirror);
  EXPECT_EQ(total.mirror_compared, 2);
  EXPECT_EQ(total.mirror_agreed, 1);
  EXPECT_EQ(total.requests, 0);
  now += kWindowMs + kFlushLagMs;
  auto closed = stats->TakeClosed();
  ASSERT_EQ(closed.size(), 1u);  // a window of outcomes alone is flushed
  EXPECT_EQ(closed[0].role, Role::kMirror);
  EXPECT_EQ(closed[0].mirror_compared, 2);
  EXPECT_EQ(closed[0].mirror_agreed, 1);
}

TEST(MirrorComparerTest, AFullQueueSkipsTheComparisonAndCountsIt) {
  auto stats = std::make_shared<WindowStats>([] { return int64_t{0}; });
  MirrorComparer comparer(/*capacity=*/0);
  auto body = std::make_shared<const std::string>("x");
  EXPECT_FALSE(comparer.Offer(stats, body, body));
  EXPECT_EQ(comparer.skipped(), 1);
  comparer.Stop();
  EXPECT_EQ(stats->Total(Role::kMirror).mirror_compared, 0);
}
