// The gateway's side of feedback (serving/feedback.h): the request ids it
// remembers per service, the body's checks, the queue to the control thread.
#include <gtest/gtest.h>

#include <string>

#include "serving/feedback.h"

using namespace sluice;
using namespace sluice::serving;

namespace {

std::string Id(size_t i) { return "req-" + std::to_string(i); }

void RememberMany(RecentAnswers& answers, size_t n) {
  for (size_t i = 1; i <= n; ++i) answers.Remember(Id(i), i % 2 ? "blue" : "green");
}

std::string ErrorOf(const std::string& body) {
  auto f = ParseFeedback(body);
  return f.ok() ? "ok" : f.status().message();
}

}  // namespace

TEST(RecentAnswersTest, TheVersionThatAnsweredARequestIdIsFound) {
  RecentAnswers answers(4);
  answers.Remember("a", "blue");
  answers.Remember("b", "green");
  EXPECT_EQ(answers.Find("a"), "blue");
  EXPECT_EQ(answers.Find("b"), "green");
  EXPECT_FALSE(answers.Find("c").has_value());
}

TEST(RecentAnswersTest, AtCapacityEveryIdIsStillKnown) {
  RecentAnswers answers(kRememberedAnswers);
  RememberMany(answers, kRememberedAnswers);
  EXPECT_EQ(answers.Find(Id(1)), "blue");
  EXPECT_EQ(answers.Find(Id(kRememberedAnswers)), "green");
}

TEST(RecentAnswersTest, OnePastCapacityTheOldestIsForgottenAndTheNextStillKnown) {
  RecentAnswers answers(kRememberedAnswers);
  RememberMany(answers, kRememberedAnswers + 1);
  EXPECT_FALSE(answers.Find(Id(1)).has_value());
  EXPECT_EQ(answers.Find(Id(2)), "green");
  EXPECT_EQ(answers.Find(Id(kRememberedAnswers + 1)), "blue");
}

TEST(RecentAnswersTest, AnIdRememberedAgainKeepsItsLatestVersionPastItsFirstEviction) {
  RecentAnswers answers(3);
  answers.Remember("a", "blue");
  answers.Remember("b", "blue");
  answers.Remember("a", "green");  // the ring: a b a
  answers.Remember("c", "blue");   // evicts the first "a"; the second stays
  EXPECT_EQ(answers.Find("a"), "green");
  EXPECT_EQ(answers.Find("b"), "blue");
  answers.Remember("d", "blue");  // evicts "b"
  answers.Remember("e", "blue");  // evicts the second "a"
  EXPECT_FALSE(answers.Find("a").has_value());
  EXPECT_FALSE(answers.Find("b").has_value());
}

TEST(ParseFeedbackTest, ARequestIdWithARewardIsAccepted) {
  auto f = ParseFeedback(R"({"request_id": "abc", "reward": 0.5, "at_ms": 1700000000000})");
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->request_id, "abc");
  EXPECT_EQ(f->reward, 0.5);
  EXPECT_FALSE(f->label.has_value());
  EXPECT_EQ(f->at_ms, 1700000000000);
}

TEST(ParseFeedbackTest, AnIntegerKeyWithALabelIsAcceptedAsItsText) {
  auto f = ParseFeedback(R"({"key": 42, "label": "clicked"})");
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->key, "42");
  EXPECT_EQ(f->label, "clicked");
  EXPECT_FALSE(f->at_ms.has_value());
}

TEST(ParseFeedbackTest, EachBadBodyIsRefusedNamingItsField) {
  EXPECT_EQ(ErrorOf("not json"), "body: not a JSON object (give request_id or key, and reward or label)");
  EXPECT_EQ(ErrorOf(R"({"request_id": "a", "key": "k", "reward": 1})"), "request_id and key: give one, not both");
  EXPECT_EQ(ErrorOf(R"({"reward": 1})"), "request_id or key: one is required");
  EXPECT_EQ(ErrorOf(R"({"request_id": "a", "reward": 1, "label": "x"})"), "reward and label: give one, not both");
  EXPECT_EQ(ErrorOf(R"({"request_id": "a"})"), "reward or label: one is required");
  EXPECT_EQ(ErrorOf(R"({"request_id": "a", "reward": 1e999})"), "reward: not a finite number");
  EXPECT_EQ(ErrorOf(R"({"request_id": "a", "reward": "1"})"), "reward: not a finite number");
  EXPECT_EQ(ErrorOf(R"({"request_id": "", "reward": 1})"), "request_id: not a non-empty string");
  EXPECT_EQ(ErrorOf(R"({"key": [1], "reward": 1})"), "key: not a non-empty string or an integer");
  EXPECT_EQ(ErrorOf(R"({"request_id": "a", "reward": 1, "at_ms": -1})"),
            "at_ms: not a non-negative integer (milliseconds since the epoch)");
  EXPECT_EQ(ErrorOf(R"({"request_id": "a", "reward": 1, "score": 2})"),
            "unknown field 'score' (fields: request_id, key, reward, label, at_ms)");
}

TEST(ParseFeedbackTest, ALabelOf256BytesIsAcceptedAnd257AreNot) {
  EXPECT_EQ(ErrorOf(R"({"request_id": "a", "label": ")" + std::string(kMaxFeedbackLabel, 'x') + R"("})"), "ok");
  EXPECT_EQ(ErrorOf(R"({"request_id": "a", "label": ")" + std::string(kMaxFeedbackLabel + 1, 'x') + R"("})"),
            "label: 257 bytes, more than 256");
}

TEST(ParseFeedbackTest, ABodyOf64KiBIsReadAndOneByteMoreIsRefused) {
  const std::string head = R"({"request_id": "a", "reward": 1})";
  std::string at_limit = head + std::string(kMaxFeedbackBody - head.size(), ' ');
  ASSERT_EQ(at_limit.size(), kMaxFeedbackBody);
  EXPECT_EQ(ErrorOf(at_limit), "ok");
  EXPECT_EQ(ErrorOf(at_limit + " "), "body: 65537 bytes, more than the 65536 a feedback may have");
}

TEST(FeedbackQueueTest, AFullQueueRefusesTheNextRowAndTakingEmptiesIt) {
  FeedbackQueue queue(2);
  store::FeedbackRow row;
  row.service = "fashion";
  EXPECT_TRUE(queue.Offer(row));
  EXPECT_TRUE(queue.Offer(row));
  EXPECT_FALSE(queue.Offer(row));
  EXPECT_EQ(queue.TakeAll().size(), 2u);
  EXPECT_TRUE(queue.Offer(row));
}
