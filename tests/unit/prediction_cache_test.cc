// serving::PredictionCache (serving/prediction_cache.h): the gateway's LRU of
// infer answers, with time handed in by the test (no clock, no sleeps).
#include <gtest/gtest.h>

#include "serving/prediction_cache.h"

using sluice::serving::CachedAnswer;
using sluice::serving::PredictionCache;
using namespace std::chrono_literals;

namespace {

CachedAnswer Answer(const std::string& body) { return {"application/json", body}; }

}  // namespace

TEST(PredictionCacheTest, AnAnswerIsKeptUntilItsTtlAndNotAMillisecondLonger) {
  PredictionCache cache(10, 1000ms);
  const std::string key = PredictionCache::Key("blue", 1, "{}");
  cache.Put(key, Answer("a"), 5000);
  auto hit = cache.Get(key, 5999);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->body, "a");
  EXPECT_EQ(hit->content_type, "application/json");
  EXPECT_FALSE(cache.Get(key, 6000));
  EXPECT_EQ(cache.size(), 0u);  // the expired one is dropped
}

TEST(PredictionCacheTest, TheKeyTellsVersionsRevisionsAndBodiesApart) {
  PredictionCache cache(10, 1000ms);
  cache.Put(PredictionCache::Key("blue", 1, "{\"x\":1}"), Answer("a"), 0);
  EXPECT_TRUE(cache.Get(PredictionCache::Key("blue", 1, "{\"x\":1}"), 1));
  EXPECT_FALSE(cache.Get(PredictionCache::Key("blue", 1, "{\"x\":2}"), 1));
  EXPECT_FALSE(cache.Get(PredictionCache::Key("blue", 2, "{\"x\":1}"), 1));
  EXPECT_FALSE(cache.Get(PredictionCache::Key("green", 1, "{\"x\":1}"), 1));
}

TEST(PredictionCacheTest, AtItsEntriesTheLeastRecentlyUsedGoesFirst) {
  PredictionCache cache(1, 1000ms);  // one shard of one entry: the order is exact
  cache.Put("a", Answer("1"), 0);
  EXPECT_TRUE(cache.Get("a", 1));
  cache.Put("b", Answer("2"), 2);
  EXPECT_FALSE(cache.Get("a", 3));
  EXPECT_TRUE(cache.Get("b", 3));
  EXPECT_EQ(cache.size(), 1u);
}

TEST(PredictionCacheTest, AUsedAnswerOutlivesAnOlderUnusedOne) {
  PredictionCache cache(2, 1000ms);  // two shards of one: keys that share a shard
  std::vector<std::string> same;
  for (int i = 0; same.size() < 3; ++i) {
    std::string k = std::to_string(i);  // not "k" + ...: GCC 12's -Wrestrict false positive
    k.insert(k.begin(), 'k');
    if (std::hash<std::string>{}(k) % 2 == std::hash<std::string>{}(std::string("k0")) % 2) same.push_back(k);
  }
  cache.Put(same[0], Answer("0"), 0);
  cache.Put(same[1], Answer("1"), 0);  // evicts same[0]: one entry a shard
  EXPECT_FALSE(cache.Get(same[0], 1));
  EXPECT_TRUE(cache.Get(same[1], 1));
}

TEST(PredictionCacheTest, NeverHoldsMoreThanItsEntries) {
  PredictionCache cache(100, 1000ms);
  for (int i = 0; i < 1000; ++i) cache.Put(std::to_string(i), Answer("x"), 0);
  EXPECT_LE(cache.size(), 100u);
  EXPECT_GT(cache.size(), 0u);
}

TEST(PredictionCacheTest, NeverHoldsMoreThanItsBytesAndSkipsAnAnswerTooLargeForAShard) {
  PredictionCache cache(16, 1000ms, 16 * 100);  // 100 bytes a shard
  for (int i = 0; i < 100; ++i) cache.Put(std::to_string(i), Answer(std::string(50, 'x')), 0);
  EXPECT_LE(cache.bytes(), 16u * 100u);
  cache.Put("big", Answer(std::string(100, 'x')), 0);  // 100 + key + type > 100
  EXPECT_FALSE(cache.Get("big", 1));
}

TEST(PredictionCacheTest, PuttingAKeyAgainReplacesItsAnswer) {
  PredictionCache cache(10, 1000ms);
  cache.Put("a", Answer("1"), 0);
  cache.Put("a", Answer("2"), 10);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.Get("a", 1005)->body, "2");  // the second put's ttl
}
