// FeedbackStore (store/feedback.h): callers' rewards and labels of the
// gateway's answers in the `feedback` table, schema version 12.
#include <gtest/gtest.h>

#include <cmath>

#include "store/open.h"
#include "../common/temp_store.h"

using namespace sluice;

namespace {

using sluice::testing::OpenStore;
using sluice::testing::TempDb;

store::FeedbackRow Reward(const std::string& version, double reward, int64_t at_ms, const std::string& id = "r") {
  store::FeedbackRow r;
  r.service = "fashion";
  r.version = version;
  r.request_id = id;
  r.reward = reward;
  r.at_ms = at_ms;
  return r;
}

store::FeedbackRow Label(const std::string& version, const std::string& label, int64_t at_ms) {
  store::FeedbackRow r;
  r.service = "fashion";
  r.version = version;
  r.key = "user-7";
  r.label = label;
  r.at_ms = at_ms;
  return r;
}

}  // namespace

TEST(FeedbackStoreTest, RowsAppendedInABatchAreReadBackWithTheirColumns) {
  auto s = OpenStore(TempDb("feedback-rows"));
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->feedback().Append({Reward("blue", 1.5, 100, "abc"), Label("green", "clicked", 200)}).ok());
  auto rows = s->feedback().Rows("fashion", 0, 1000);
  ASSERT_TRUE(rows.ok()) << rows.status().message();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].version, "blue");
  EXPECT_EQ((*rows)[0].request_id, "abc");
  EXPECT_EQ((*rows)[0].key, "");
  EXPECT_EQ((*rows)[0].reward, 1.5);
  EXPECT_FALSE((*rows)[0].label.has_value());
  EXPECT_EQ((*rows)[0].at_ms, 100);
  EXPECT_EQ((*rows)[1].version, "green");
  EXPECT_EQ((*rows)[1].request_id, "");
  EXPECT_EQ((*rows)[1].key, "user-7");
  EXPECT_FALSE((*rows)[1].reward.has_value());
  EXPECT_EQ((*rows)[1].label, "clicked");
}

TEST(FeedbackStoreTest, TheSummaryCountsRewardsAndLabelsPerVersion) {
  auto s = OpenStore(TempDb("feedback-summary"));
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->feedback()
                  .Append({Reward("blue", 1, 10), Reward("blue", 0, 11), Reward("blue", 3, 12), Label("blue", "yes", 13),
                           Label("green", "yes", 14), Label("green", "no", 15), Label("green", "yes", 16)})
                  .ok());
  auto sum = s->feedback().Summary("fashion", 0, 100);
  ASSERT_TRUE(sum.ok()) << sum.status().message();
  ASSERT_EQ(sum->size(), 2u);
  const store::FeedbackSummary& blue = sum->at("blue");
  EXPECT_EQ(blue.count, 4);
  EXPECT_EQ(blue.rewards, 3);
  EXPECT_DOUBLE_EQ(blue.reward_sum, 4);
  EXPECT_DOUBLE_EQ(blue.reward_sq_sum, 10);
  EXPECT_EQ(blue.positive_rewards, 2) << "1 and 3 are above 0; 0 is not";
  EXPECT_EQ(blue.labels, (std::map<std::string, int64_t>{{"yes", 1}}));
  const store::FeedbackSummary& green = sum->at("green");
  EXPECT_EQ(green.count, 3);
  EXPECT_EQ(green.rewards, 0);
  EXPECT_EQ(green.positive_rewards, 0);
  EXPECT_DOUBLE_EQ(green.reward_sum, 0);
  EXPECT_EQ(green.labels, (std::map<std::string, int64_t>{{"no", 1}, {"yes", 2}}));
}

TEST(FeedbackStoreTest, TheSummaryTakesRowsFromItsStartUpToButNotItsEnd) {
  auto s = OpenStore(TempDb("feedback-interval"));
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->feedback().Append({Reward("blue", 1, 99), Reward("blue", 2, 100), Reward("blue", 4, 199),
                                    Reward("blue", 8, 200)}).ok());
  auto sum = s->feedback().Summary("fashion", 100, 200);
  ASSERT_TRUE(sum.ok());
  EXPECT_EQ(sum->at("blue").count, 2);
  EXPECT_DOUBLE_EQ(sum->at("blue").reward_sum, 6);
}

TEST(FeedbackStoreTest, TheSummaryOfAnotherServiceLeavesThisOnesRowsOut) {
  auto s = OpenStore(TempDb("feedback-other"));
  ASSERT_TRUE(s);
  store::FeedbackRow other = Reward("blue", 1, 10);
  other.service = "shoes";
  ASSERT_TRUE(s->feedback().Append({Reward("blue", 1, 10), other}).ok());
  auto sum = s->feedback().Summary("shoes", 0, 100);
  ASSERT_TRUE(sum.ok());
  EXPECT_EQ(sum->at("blue").count, 1);
  auto none = s->feedback().Summary("hats", 0, 100);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(FeedbackStoreTest, AppendInsideAnOpenJournalBatchIsRefusedAndWritesNothing) {
  auto s = OpenStore(TempDb("feedback-batch"));
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->db().JoinBatch().ok());
  Status st = s->feedback().Append({Reward("blue", 1, 10)});
  EXPECT_EQ(st.code(), Code::kInternal) << st.message();
  ASSERT_TRUE(s->db().Flush().ok());
  EXPECT_TRUE(s->feedback().Rows("fashion", 0, 100)->empty());
}
