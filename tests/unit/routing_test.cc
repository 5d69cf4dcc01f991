// RoutingTest: the serving gateway's pure routing decisions (serving/routing.h,
// specs/services-design.md section 5).
#include "serving/routing.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>

namespace sluice::serving {
namespace {

// Answers draws in [0, n) chosen by the test: each queued (index, n) becomes
// the 64-bit word that UniformBelow maps to that index without rejection.
class ScriptedRandom : public RandomSource {
 public:
  void Queue(uint32_t index, uint32_t n) {
    const uint64_t high = ((2 * static_cast<uint64_t>(index) + 1) << 32) / (2 * static_cast<uint64_t>(n));
    words_.push_back(high << 32);
  }
  uint64_t Next() override {
    EXPECT_FALSE(words_.empty()) << "more draws than the test scripted";
    if (words_.empty()) return 0;
    uint64_t w = words_.front();
    words_.pop_front();
    return w;
  }

 private:
  std::deque<uint64_t> words_;
};

RouteSpec TwoVersions(double blue, double green) {
  RouteSpec spec;
  spec.service = "fashion";
  spec.sticky = true;
  spec.versions.push_back({"blue", blue, {}});
  spec.versions.push_back({"green", green, {}});
  return spec;
}

RoutingTable Table(RouteSpec spec) {
  auto table = RoutingTable::Build(std::move(spec));
  EXPECT_TRUE(table.ok()) << table.status().message();
  return std::move(table).value();
}

std::string Key(int i) { return "user-" + std::to_string(i); }

std::vector<std::shared_ptr<Replica>> Replicas(std::vector<int> outstanding) {
  std::vector<std::shared_ptr<Replica>> replicas;
  for (size_t i = 0; i < outstanding.size(); ++i) {
    auto r = std::make_shared<Replica>(static_cast<int>(i));
    r->in_rotation = true;
    r->outstanding = outstanding[i];
    replicas.push_back(r);
  }
  return replicas;
}

TEST(RoutingTest, StickyBucketsMatchThePinnedGoldenValues) {
  // sluice-bucket-v1, computed apart from this code (Python hashlib):
  // int.from_bytes(sha256(salt + b"\0" + key).digest()[:8], "big") % 10000.
  EXPECT_EQ(StickyBucket("fashion", "user-1"), 8571u);
  EXPECT_EQ(StickyBucket("fashion", "user-2"), 702u);
  EXPECT_EQ(StickyBucket("fashion", ""), 9560u);
  EXPECT_EQ(StickyBucket("other", "user-1"), 9913u);
  EXPECT_EQ(StickyBucket("fashion", "42"), 7388u);
}

TEST(RoutingTest, NinetyTenOverTenThousandStickyKeysLandsWithinFiveStandardDeviations) {
  // Binomial(10,000, 0.1): mean 1,000, standard deviation 30; tolerance 150.
  RoutingTable table = Table(TwoVersions(90, 10));
  Xoshiro256 random(1);
  int green = 0;
  for (int i = 0; i < 10000; ++i) green += table.ChooseVersion(Key(i), random).version == 1;
  EXPECT_NEAR(green, 1000, 150);
}

TEST(RoutingTest, NinetyTenOverTenThousandRandomDrawsLandsWithinFiveStandardDeviations) {
  RouteSpec spec = TwoVersions(90, 10);
  spec.sticky = false;
  RoutingTable table = Table(spec);
  Xoshiro256 random(7);
  int green = 0;
  for (int i = 0; i < 10000; ++i) green += table.ChooseVersion(std::nullopt, random).version == 1;
  EXPECT_NEAR(green, 1000, 150);
}

TEST(RoutingTest, TheSameKeyGoesToTheSameVersionAcrossRebuildsOfTheTable) {
  // A rebuild stands for a gateway restart: nothing but the spec carries over.
  Xoshiro256 random(3);
  std::vector<int> first;
  {
    RoutingTable table = Table(TwoVersions(50, 50));
    for (int i = 0; i < 1000; ++i) first.push_back(table.ChooseVersion(Key(i), random).version);
  }
  RoutingTable again = Table(TwoVersions(50, 50));
  Xoshiro256 other_random(99);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(again.ChooseVersion(Key(i), other_random).version, first[i]) << Key(i);
}

TEST(RoutingTest, MovingTenPointsFromBlueToGreenMovesOnlyKeysInBuckets8000To8999AndNoneBack) {
  RoutingTable before = Table(TwoVersions(90, 10));
  RoutingTable after = Table(TwoVersions(80, 20));
  Xoshiro256 random(5);
  int moved = 0;
  for (int i = 0; i < 10000; ++i) {
    VersionChoice a = before.ChooseVersion(Key(i), random);
    VersionChoice b = after.ChooseVersion(Key(i), random);
    ASSERT_EQ(a.bucket, b.bucket);
    if (a.version == b.version) continue;
    ++moved;
    EXPECT_EQ(a.version, 0) << "a key moved from green to blue: " << Key(i);
    EXPECT_GE(a.bucket, 8000u);
    EXPECT_LT(a.bucket, 9000u);
  }
  EXPECT_NEAR(moved, 1000, 150);  // 10 % of 10,000, five standard deviations
}

TEST(RoutingTest, AWeightOf0GetsNothingAndAWeightOf100GetsAll) {
  RoutingTable table = Table(TwoVersions(0, 100));
  Xoshiro256 random(11);
  for (int i = 0; i < 2000; ++i) EXPECT_EQ(table.ChooseVersion(Key(i), random).version, 1);
  for (uint32_t b = 0; b < kBuckets; ++b) ASSERT_EQ(table.VersionForBucket(b), 1) << b;
}

TEST(RoutingTest, Bucket0And9999GoToTheFirstAndLastWeightedVersions) {
  RouteSpec spec = TwoVersions(60, 40);
  spec.versions.insert(spec.versions.begin(), {"idle", 0, {}});
  spec.versions.push_back({"shadow", 0, {}});
  RoutingTable table = Table(spec);
  EXPECT_EQ(table.version_name(table.VersionForBucket(0)), "blue");
  EXPECT_EQ(table.version_name(table.VersionForBucket(5999)), "blue");
  EXPECT_EQ(table.version_name(table.VersionForBucket(6000)), "green");
  EXPECT_EQ(table.version_name(table.VersionForBucket(9999)), "green");
}

TEST(RoutingTest, Weight0Point01OwnsExactlyOneBucket) {
  RoutingTable table = Table(TwoVersions(99.99, 0.01));
  EXPECT_EQ(table.weight_bp(1), 1u);
  int green = 0;
  for (uint32_t b = 0; b < kBuckets; ++b) green += table.VersionForBucket(b) == 1;
  EXPECT_EQ(green, 1);
  EXPECT_EQ(table.VersionForBucket(9999), 1);
}

TEST(RoutingTest, AThirdDecimalIsRefusedAtConstruction) {
  auto table = RoutingTable::Build(TwoVersions(89.995, 10.005));
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.status().code(), Code::kInvalidSpec);
  EXPECT_EQ(table.status().message(), "service 'fashion': traffic.blue: 89.995 has more than two decimals");
}

TEST(RoutingTest, WeightsThatDoNotAddUpTo100AreRefused) {
  auto table = RoutingTable::Build(TwoVersions(90, 5));
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.status().message(), "service 'fashion': weights add up to 95, not 100");
  EXPECT_FALSE(RoutingTable::Build(TwoVersions(-10, 110)).ok());
}

TEST(RoutingTest, ARequestWithoutItsStickyKeyIsDrawnByWeightAndMarkedMissing) {
  RoutingTable table = Table(TwoVersions(90, 10));
  ScriptedRandom random;
  random.Queue(9500, kBuckets);
  VersionChoice choice = table.ChooseVersion(std::nullopt, random);
  EXPECT_TRUE(choice.sticky_missing);
  EXPECT_EQ(choice.bucket, 9500u);
  EXPECT_EQ(choice.version, 1);
}

TEST(RoutingTest, TwoChoicesPicksTheLessBusy) {
  auto replicas = Replicas({5, 1, 9});
  ScriptedRandom random;
  random.Queue(2, 3);  // first draw: replica 2 (9 outstanding)
  random.Queue(0, 2);  // second among the other two: replica 0 (5 outstanding)
  EXPECT_EQ(PickReplica(replicas, 0, random).replica, 0);
  random.Queue(0, 3);  // replica 0 (5)
  random.Queue(0, 2);  // 0 is skipped: replica 1 (1)
  EXPECT_EQ(PickReplica(replicas, 0, random).replica, 1);
}

TEST(RoutingTest, TwoChoicesTieGoesToTheFirstDrawn) {
  auto replicas = Replicas({3, 3});
  ScriptedRandom random;
  random.Queue(1, 2);
  random.Queue(0, 1);
  EXPECT_EQ(PickReplica(replicas, 0, random).replica, 1);
}

TEST(RoutingTest, AReplicaOutOfRotationIsNeverPicked) {
  auto replicas = Replicas({50, 0, 50});
  replicas[1]->in_rotation = false;  // ejected or not ready, and idle
  Xoshiro256 random(13);
  for (int i = 0; i < 1000; ++i) EXPECT_NE(PickReplica(replicas, 0, random).replica, 1);
}

TEST(RoutingTest, TheOneReadyReplicaIsAlwaysPickedWhateverItsLoad) {
  auto replicas = Replicas({0, 1000, 0});
  replicas[0]->in_rotation = false;
  replicas[2]->in_rotation = false;
  Xoshiro256 random(17);
  for (int i = 0; i < 100; ++i) {
    ReplicaPick pick = PickReplica(replicas, 0, random);
    EXPECT_EQ(pick.replica, 1);
    EXPECT_EQ(pick.failure, PickFailure::kNone);
  }
}

TEST(RoutingTest, OneBelowMaxInflightIsPickedAndOneAtItIsNot) {
  auto replicas = Replicas({64, 63});
  Xoshiro256 random(19);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(PickReplica(replicas, 64, random).replica, 1);
}

TEST(RoutingTest, AllFullIsEveryReplicaBusyAndNoneInRotationSaysSo) {
  auto replicas = Replicas({64, 64});
  Xoshiro256 random(23);
  ReplicaPick pick = PickReplica(replicas, 64, random);
  EXPECT_EQ(pick.replica, -1);
  EXPECT_EQ(pick.failure, PickFailure::kEveryReplicaBusy);
  for (auto& r : replicas) r->in_rotation = false;
  EXPECT_EQ(PickReplica(replicas, 64, random).failure, PickFailure::kNoReplicaInRotation);
  EXPECT_EQ(PickReplica({}, 64, random).failure, PickFailure::kNoReplicaInRotation);
}

TEST(RoutingTest, AMirrorAt100PercentCopiesEveryRequest) {
  RouteSpec spec = TwoVersions(100, 0);
  spec.mirror_version = "green";
  spec.mirror_percent = 100;
  RoutingTable table = Table(spec);
  EXPECT_EQ(table.mirror_version(), 1);
  Xoshiro256 random(29);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(table.ShouldMirror(random));
}

TEST(RoutingTest, AMirrorAt0PercentIsRefusedAndATableWithoutAMirrorNeverCopies) {
  RouteSpec spec = TwoVersions(100, 0);
  spec.mirror_version = "green";
  spec.mirror_percent = 0;
  auto refused = RoutingTable::Build(spec);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(), "service 'fashion': mirror.percent: 0 is not above 0");
  RoutingTable table = Table(TwoVersions(100, 0));
  Xoshiro256 random(31);
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(table.ShouldMirror(random));
}

TEST(RoutingTest, AMirrorAt0Point01PercentCopiesOnlyTheLowestBucket) {
  RouteSpec spec = TwoVersions(100, 0);
  spec.mirror_version = "green";
  spec.mirror_percent = 0.01;
  RoutingTable table = Table(spec);
  ScriptedRandom random;
  random.Queue(0, kBuckets);
  random.Queue(1, kBuckets);
  EXPECT_TRUE(table.ShouldMirror(random));
  EXPECT_FALSE(table.ShouldMirror(random));
}

TEST(RoutingTest, UniformBelowOver1000DrawsOf3StaysInRangeAndHitsEachValue) {
  Xoshiro256 random(37);
  std::map<uint32_t, int> seen;
  for (int i = 0; i < 1000; ++i) ++seen[UniformBelow(random, 3)];
  ASSERT_EQ(seen.size(), 3u);
  for (auto& [value, count] : seen) EXPECT_NEAR(count, 333, 75) << value;
}

}  // namespace
}  // namespace sluice::serving
