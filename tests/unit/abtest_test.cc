// ABTest: the A/B statistics and decision (deploy/abtest.h): known values of
// each function, and seeded simulations of whole tests.
#include "deploy/abtest.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>

namespace sluice::deploy {
namespace {

TEST(ABTest, NormalQuantileMatchesKnownValues) {
  EXPECT_NEAR(NormalQuantile(0.975), 1.959963984540054, 1e-12);
  EXPECT_NEAR(NormalQuantile(0.8), 0.8416212335729143, 1e-12);
  EXPECT_EQ(NormalQuantile(0.5), 0);
  EXPECT_NEAR(NormalQuantile(0.025), -1.959963984540054, 1e-12);
  EXPECT_NEAR(NormalQuantile(1e-10), -6.361340902404056, 1e-9);  // the tail branch (r > 5)
}

TEST(ABTest, NormalCdfMatchesKnownValuesAndInvertsTheQuantile) {
  EXPECT_EQ(NormalCdf(0), 0.5);
  EXPECT_NEAR(NormalCdf(-1), 0.15865525393145707, 1e-15);
  EXPECT_NEAR(NormalCdf(1.959963984540054), 0.975, 1e-15);
  for (double p : {1e-8, 0.001, 0.1, 0.3, 0.7, 0.95, 0.999999}) {
    EXPECT_NEAR(NormalCdf(NormalQuantile(p)), p, p * 1e-12) << p;
  }
}

TEST(ABTest, ChiSquareSurvivalMatchesKnownValues) {
  EXPECT_NEAR(ChiSquareSurvival(3.841459, 1), 0.05, 1e-7);
  EXPECT_NEAR(ChiSquareSurvival(10.827566, 1), 0.001, 1e-8);
  EXPECT_NEAR(ChiSquareSurvival(5.991465, 2), 0.05, 1e-7);  // df 2: exp(-x/2)
  EXPECT_NEAR(ChiSquareSurvival(18.307038, 10), 0.05, 1e-7);
  EXPECT_NEAR(ChiSquareSurvival(0.5, 3), 0.9188914116, 1e-9);  // the series branch
  EXPECT_EQ(ChiSquareSurvival(0, 1), 1);
  // Far in the tail (the continued fraction): erfc(sqrt(50)).
  EXPECT_NEAR(ChiSquareSurvival(100, 1) / 1.5239706048320995e-23, 1, 1e-9);
}

TEST(ABTest, ASixtyFortySplitExpectedFiftyFiftyAtTwoThousandRequestsIsAMismatch) {
  SampleRatio r = SampleRatioMismatch({1200, 800}, {50, 50});
  EXPECT_DOUBLE_EQ(r.chi_square, 80);
  EXPECT_EQ(r.df, 1);
  EXPECT_LT(r.p_value, 1e-15);
  EXPECT_TRUE(r.mismatch);
}

TEST(ABTest, TheMismatchBoundaryIsPBelowOneInAThousand) {
  // chi2 = d^2 / 500; the 0.001 critical value of chi2(1) is 10.8276.
  SampleRatio within = SampleRatioMismatch({1073, 927}, {1, 1});  // chi2 10.658, p 0.0011
  EXPECT_GT(within.p_value, kSrmAlpha);
  EXPECT_FALSE(within.mismatch);
  SampleRatio past = SampleRatioMismatch({1074, 926}, {1, 1});  // chi2 10.952, p 0.00094
  EXPECT_LT(past.p_value, kSrmAlpha);
  EXPECT_TRUE(past.mismatch);
}

TEST(ABTest, UnequalWeightsAreTheExpectedSplit) {
  EXPECT_FALSE(SampleRatioMismatch({900, 100}, {0.9, 0.1}).mismatch);
  EXPECT_TRUE(SampleRatioMismatch({500, 500}, {0.9, 0.1}).mismatch);
  EXPECT_FALSE(SampleRatioMismatch({0, 0}, {1, 1}).mismatch);
}

TEST(ABTest, TwoProportionZTestMatchesAWorkedExample) {
  // 200/1000 against 250/1000: pooled p 0.225.
  ProportionTest t = TwoProportionZTest(200, 1000, 250, 1000, 0.05);
  EXPECT_DOUBLE_EQ(t.effect, 0.05);
  EXPECT_NEAR(t.z, 2.6773977630083294, 1e-9);
  EXPECT_NEAR(t.p_value, 0.007419649261025679, 1e-9);
  EXPECT_NEAR(t.ci_low, 0.013463621687539853, 1e-9);  // unpooled SE
  EXPECT_NEAR(t.ci_high, 0.08653637831246015, 1e-9);
}

TEST(ABTest, RequiredSampleSizeMatchesTheTextbookValue) {
  // R: power.prop.test(p1 = 0.10, p2 = 0.12, power = 0.8) gives n = 3840.847.
  EXPECT_EQ(RequiredSampleSizePerArm(0.10, 0.02, 0.05, 0.8), 3841);
  // power.prop.test(p1 = 0.10, p2 = 0.15, power = 0.8): n = 685.6.
  EXPECT_EQ(RequiredSampleSizePerArm(0.10, 0.05, 0.05, 0.8), 686);
  // A baseline near 1 is tested downwards: 0.99 - 0.02, the same size as 0.01 + 0.02.
  EXPECT_EQ(RequiredSampleSizePerArm(0.99, 0.02, 0.05, 0.8), RequiredSampleSizePerArm(0.01, 0.02, 0.05, 0.8));
}

TEST(ABTest, MixtureLikelihoodRatioMatchesItsFormula) {
  // 100/1000 against 130/1000, tau2 = 0.0004: V = 0.115 * 0.885 * 0.002.
  EXPECT_NEAR(MixtureLikelihoodRatio(100, 1000, 130, 1000, 0.0004), 2.513589523007774, 1e-9);
  EXPECT_EQ(MixtureLikelihoodRatio(0, 0, 0, 0, 0.0004), 1);
  EXPECT_EQ(MixtureLikelihoodRatio(0, 100, 0, 100, 0.0004), 1);
}

TEST(ABTest, TheAlwaysValidPValueNeverIncreases) {
  double p = 1;
  p = AlwaysValidPValue(p, 100, 1000, 130, 1000, 0.0004);
  EXPECT_NEAR(p, 0.39783743162781604, 1e-9);
  // The data move back towards no difference: 1/Lambda grows, p does not.
  EXPECT_GT(1 / MixtureLikelihoodRatio(200, 2000, 205, 2000, 0.0004), p);
  EXPECT_EQ(AlwaysValidPValue(p, 200, 2000, 205, 2000, 0.0004), p);
}

TEST(ABTest, ParsesTheTestConfigAndNamesTheKeyOfAnError) {
  auto c = ParseABConfig({{"mde", 0.02}, {"test", "sequential"}, {"alpha", 0.01}});
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->mde, 0.02);
  EXPECT_EQ(c->alpha, 0.01);
  EXPECT_EQ(c->power, 0.8);
  EXPECT_FALSE(c->baseline);
  EXPECT_EQ(c->test, ABConfig::Test::kSequential);
  EXPECT_EQ(ParseABConfig({{"mde", 0.02}, {"alpha", 1.5}}).status().message(),
            "test.alpha: 1.5 is not a probability between 0 and 0.5");
  EXPECT_EQ(ParseABConfig({{"alpha", 0.05}}).status().message(),
            "test.mde: required (the smallest absolute difference worth finding, 0.02)");
  EXPECT_EQ(ParseABConfig({{"mde", 0.02}, {"test", "bayes"}}).status().message(),
            "test.test: expected fixed or sequential, got \"bayes\"");
  EXPECT_EQ(ParseABConfig({{"mde", 0.02}, {"powr", 0.9}}).status().message(),
            "test.powr: unknown key (did you mean 'power'?)");
}

// Simulated traffic: Bernoulli outcomes per arm, a fixed number per window.
struct Simulation {
  std::mt19937_64 rng;
  double rate_a, rate_b;
  std::vector<ArmCounts> arms{{"control"}, {"candidate"}};
  Simulation(uint64_t seed, double a, double b) : rng(seed), rate_a(a), rate_b(b) {}
  void Window(int per_arm) {
    std::bernoulli_distribution da(rate_a), db(rate_b);
    for (int i = 0; i < per_arm; ++i) {
      arms[0].samples++;
      arms[0].successes += da(rng);
      arms[1].samples++;
      arms[1].successes += db(rng);
    }
  }
};

// Runs a fixed-horizon test window by window until it decides.
ABDecision RunFixed(uint64_t seed, double a, double b, const ABConfig& config, int* windows = nullptr) {
  Simulation sim(seed, a, b);
  for (int w = 1;; ++w) {
    sim.Window(500);
    ABDecision d = DecideAB(config, sim.arms);
    if (d.state != ABDecision::State::kWaiting) {
      if (windows) *windows = w;
      return d;
    }
  }
}

TEST(ABTest, AFixedTestWaitsForTheSampleSizeAndSaysWhatItNeeds) {
  ABConfig config;
  config.mde = 0.02;
  config.baseline = 0.10;
  std::vector<ArmCounts> arms = {{"control", 3840, 384}, {"candidate", 3841, 600}};
  ABDecision d = DecideAB(config, arms);
  EXPECT_EQ(d.state, ABDecision::State::kWaiting);  // one arm one short: however large the difference
  EXPECT_EQ(d.needed_per_arm, 3841);
  EXPECT_EQ(d.samples, (std::vector<int64_t>{3840, 3841}));
  EXPECT_EQ(d.reason, "waiting for 3841 samples per arm (control 384/3840, candidate 600/3841)");
  arms[0].samples = 3841;
  d = DecideAB(config, arms);
  EXPECT_EQ(d.state, ABDecision::State::kWinner);
  EXPECT_EQ(d.winner, "candidate");
}

TEST(ABTest, EqualVariantsDeclareAWinnerInAtMostTwoOfTwentySeededTests) {
  ABConfig config;
  config.mde = 0.02;
  config.baseline = 0.10;
  int winners = 0;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    int windows = 0;
    ABDecision d = RunFixed(seed, 0.10, 0.10, config, &windows);
    EXPECT_EQ(windows, 8) << "3841 per arm is reached in the 8th window of 500";
    EXPECT_NE(d.state, ABDecision::State::kInvalid);
    winners += d.state == ABDecision::State::kWinner;
  }
  EXPECT_LE(winners, 2);
}

TEST(ABTest, AVariantFivePointsBetterIsTheWinner) {
  ABConfig config;
  config.mde = 0.02;  // the baseline is the control's observed rate
  int covered = 0;  // the 95% interval holds the true 0.05
  for (uint64_t seed = 100; seed < 120; ++seed) {
    ABDecision d = RunFixed(seed, 0.10, 0.15, config);
    ASSERT_EQ(d.state, ABDecision::State::kWinner) << d.reason;
    EXPECT_EQ(d.winner, "candidate");
    EXPECT_GT(d.ci_low, 0);
    EXPECT_LT(d.p_value, 0.05);
    covered += d.ci_low <= 0.05 && 0.05 <= d.ci_high;
  }
  EXPECT_GE(covered, 17);
}

TEST(ABTest, ASkewedSplitIsInvalidBeforeAnyTest) {
  ABConfig config;
  config.mde = 0.02;
  std::vector<ArmCounts> arms = {{"control", 1200, 120}, {"candidate", 800, 80}};
  ABDecision d = DecideAB(config, arms);
  EXPECT_EQ(d.state, ABDecision::State::kInvalid);
  EXPECT_TRUE(d.srm.mismatch);
  EXPECT_EQ(d.reason.rfind("sample ratio mismatch: chi-square 80.00, p ", 0), 0u) << d.reason;
  arms[0].weight = 0.6;
  arms[1].weight = 0.4;
  EXPECT_NE(DecideAB(config, arms).state, ABDecision::State::kInvalid);
}

// A sequential test peeked at every 100 samples per arm up to 10,000.
struct Peeked {
  bool sequential_winner = false;  // the always-valid p went <= alpha at some look
  bool naive_winner = false;       // a plain z-test p went < alpha at some look
};
Peeked PeekEveryHundred(uint64_t seed, double a, double b, const ABConfig& config) {
  Simulation sim(seed, a, b);
  SequentialState state;
  Peeked out;
  for (int look = 0; look < 100; ++look) {
    sim.Window(100);
    ABDecision d = DecideAB(config, sim.arms, &state);
    out.sequential_winner = out.sequential_winner || d.state == ABDecision::State::kWinner;
    const auto& s = sim.arms;
    out.naive_winner = out.naive_winner ||
                       TwoProportionZTest(s[0].successes, s[0].samples, s[1].successes, s[1].samples, 0.05).p_value <
                           0.05;
  }
  return out;
}

TEST(ABTest, PeekingAtASequentialTestKeepsTheFalsePositiveRateNearAlpha) {
  ABConfig config;
  config.mde = 0.02;
  config.test = ABConfig::Test::kSequential;
  config.max_per_arm = 1'000'000;  // never stop for the budget here
  int sequential = 0, naive = 0;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    Peeked p = PeekEveryHundred(seed, 0.10, 0.10, config);
    sequential += p.sequential_winner;
    naive += p.naive_winner;
  }
  EXPECT_LE(sequential, 16) << "over 200: alpha 0.05 is 10, plus a margin";
  std::printf("false positives over 200 peeked tests: sequential %d, plain p-value %d\n", sequential, naive);
  // The same data peeked with a plain p-value: what the sequential test prevents.
  EXPECT_GE(naive, 40) << naive;
}

TEST(ABTest, ASequentialTestFindsAFivePointDifference) {
  ABConfig config;
  config.mde = 0.02;
  config.test = ABConfig::Test::kSequential;
  Simulation sim(7, 0.10, 0.15);
  SequentialState state;
  ABDecision d;
  for (int look = 0; look < 100 && d.state != ABDecision::State::kWinner; ++look) {
    sim.Window(100);
    d = DecideAB(config, sim.arms, &state);
  }
  ASSERT_EQ(d.state, ABDecision::State::kWinner) << d.reason;
  EXPECT_EQ(d.winner, "candidate");
  EXPECT_LE(d.p_value, 0.05);
  EXPECT_LT(d.ci_low, d.effect);
  EXPECT_GT(d.ci_low, 0);  // the always-valid interval excludes no difference
}

TEST(ABTest, ASequentialTestStopsWithNoDifferenceAtItsBudget) {
  ABConfig config;
  config.mde = 0.02;
  config.baseline = 0.10;
  config.test = ABConfig::Test::kSequential;
  SequentialState state;
  std::vector<ArmCounts> arms = {{"control", 7681, 768}, {"candidate", 7682, 768}};
  ABDecision d = DecideAB(config, arms, &state);
  EXPECT_EQ(d.needed_per_arm, 2 * 3841);
  EXPECT_EQ(d.state, ABDecision::State::kWaiting);
  arms[0].samples = 7682;
  d = DecideAB(config, arms, &state);
  EXPECT_EQ(d.state, ABDecision::State::kNoDifference);
  EXPECT_EQ(state.looks, 2);
}

}  // namespace
}  // namespace sluice::deploy
