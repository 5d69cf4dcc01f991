// The statistics of deploy/ab-test (specs/deploy.md, section A/B decision):
// distributions, the sample-ratio-mismatch check, the fixed-horizon
// two-proportion z-test with the per-arm sample size it needs, the mSPRT
// always-valid p-value for peeking, and DecideAB, which puts them together.
//
// Pure code: no I/O, no threads, no clock; every function is safe to call
// from any thread. The one piece of state, SequentialState, is the caller's
// (the step keeps it with the rollout) and is passed in.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/status.h"

namespace sluice::deploy {

// ---- Distributions ---------------------------------------------------------

// Phi(x), the standard normal CDF (through erfc, accurate in both tails).
double NormalCdf(double x);
// Phi^-1(p), Wichura's AS241 (PPND16, Applied Statistics 37(3), 1988),
// about 16 significant digits. REQUIRES: 0 < p < 1.
double NormalQuantile(double p);
// Q(a, x) = Gamma(a, x) / Gamma(a), the regularized upper incomplete gamma:
// its series below x < a + 1, Lentz's continued fraction above (Numerical
// Recipes 6.2). REQUIRES: a > 0, x >= 0.
double RegularizedGammaQ(double a, double x);
// P(X > x) for X chi-square with df degrees of freedom: Q(df/2, x/2).
double ChiSquareSurvival(double x, double df);

// ---- Sample ratio mismatch -------------------------------------------------

inline constexpr double kSrmAlpha = 0.001;  // mismatch when p < this

struct SampleRatio {
  double chi_square = 0;
  int df = 0;
  double p_value = 1;
  bool mismatch = false;  // p_value < kSrmAlpha
};
// Pearson's goodness-of-fit test of the requests per arm against the
// expected shares (weights, normalized here). With no requests at all,
// no mismatch (p = 1). REQUIRES: observed.size() == weights.size() >= 2,
// every weight > 0, every count >= 0.
SampleRatio SampleRatioMismatch(const std::vector<int64_t>& observed, const std::vector<double>& weights);

// ---- Two proportions ---------------------------------------------------------

struct ProportionTest {
  double p_a = 0, p_b = 0;
  double effect = 0;  // p_b - p_a
  double z = 0;       // effect / pooled SE (0 when the pooled SE is 0)
  double p_value = 1;  // two-sided
  double ci_low = 0, ci_high = 0;  // effect -+ z_{1-alpha/2} * unpooled SE
};
// The two-proportion z-test: pooled SE sqrt(p(1-p)(1/n_a + 1/n_b)) for the
// test (the SE under "no difference"), unpooled SE sqrt(p_a(1-p_a)/n_a +
// p_b(1-p_b)/n_b) for the (1 - alpha) confidence interval of the effect.
// REQUIRES: n_a, n_b >= 1, 0 <= successes <= n, 0 < alpha < 1.
ProportionTest TwoProportionZTest(int64_t successes_a, int64_t n_a, int64_t successes_b, int64_t n_b, double alpha);

// The per-arm sample size of a two-sided two-proportion test of p1 =
// baseline against p2 = baseline + mde (baseline - mde when that passes 1):
//   n = (z_{1-alpha/2} sqrt(2 pbar (1 - pbar)) + z_{power} sqrt(p1 q1 + p2 q2))^2 / mde^2,
// pbar = (p1 + p2) / 2, rounded up; the formula of R's power.prop.test and of
// Fleiss, Levin & Paik, Statistical Methods for Rates and Proportions (3rd
// ed., 4.2, without continuity correction). p1 = 0.10, mde = 0.02, alpha 0.05,
// power 0.8 gives 3841 (power.prop.test: 3840.8).
// REQUIRES: 0 <= baseline <= 1, 0 < mde <= 0.5, 0 < alpha < 1, 0 < power < 1.
int64_t RequiredSampleSizePerArm(double baseline, double mde, double alpha, double power);

// ---- mSPRT -------------------------------------------------------------------

// The mixture likelihood ratio of Johari, Pekelis & Walsh, "Always valid
// inference: bringing sequential analysis to A/B testing" (2017; "Peeking at
// A/B tests", KDD 2017), for theta = p_b - p_a against theta = 0, with a
// normal mixing distribution N(0, tau2) and the normal approximation
// theta_hat ~ N(theta, V):
//   Lambda = sqrt(V / (V + tau2)) * exp(tau2 * theta_hat^2 / (2 V (V + tau2))),
// V the pooled variance p(1-p)(1/n_a + 1/n_b) (the variance under the null).
// 1 (no evidence) while V is 0 (no samples, or all outcomes alike).
double MixtureLikelihoodRatio(int64_t successes_a, int64_t n_a, int64_t successes_b, int64_t n_b, double tau2);

// The always-valid p-value after a look: min(previous, 1 / Lambda), so it
// never increases; p <= alpha at any look, however many, happens with
// probability at most alpha when there is no difference.
double AlwaysValidPValue(double previous, int64_t successes_a, int64_t n_a, int64_t successes_b, int64_t n_b,
                         double tau2);

// ---- The decision -------------------------------------------------------------

struct ABConfig {
  enum class Test { kFixed, kSequential };
  double alpha = 0.05;
  double power = 0.8;
  double mde = 0;                   // the minimum detectable effect, absolute (0.02: 2 points)
  std::optional<double> baseline;   // the control's rate; else its observed rate
  Test test = Test::kFixed;
  std::optional<double> tau2;       // sequential: mixing variance, default mde^2
  // sequential: the per-arm samples after which it stops with no_difference;
  // default twice the fixed-horizon size.
  std::optional<int64_t> max_per_arm;
};

// Parses the step's `with.test` object: {alpha, power, mde, baseline, test:
// fixed|sequential, tau2, max_per_arm}. Errors name the key: "test.alpha:
// 1.5 is not a probability between 0 and 1". mde is required.
Result<ABConfig> ParseABConfig(const nlohmann::json& test);

struct ArmCounts {
  std::string name;
  int64_t samples = 0;    // requests routed to the arm (with an outcome)
  int64_t successes = 0;  // of which converted / labelled a success
  double weight = 1;      // the arm's expected share of traffic (normalized)
};

// The caller's state of a sequential test, kept between looks.
struct SequentialState {
  double p_value = 1;
  int64_t looks = 0;
};

struct ABDecision {
  enum class State { kWaiting, kInvalid, kNoDifference, kWinner };
  State state = State::kWaiting;
  int64_t needed_per_arm = 0;  // the fixed-horizon size (sequential: its max_per_arm)
  std::vector<int64_t> samples;  // per arm, as given
  SampleRatio srm;
  std::string winner;       // kWinner: the arm's name
  double effect = 0;        // p_b - p_a (arm 1 minus arm 0)
  double ci_low = 0, ci_high = 0;  // at 1 - alpha; sequential: always valid
  double p_value = 1;
  std::string reason;       // one line for the step's log
};
const char* ABStateName(ABDecision::State s);  // "waiting", "invalid", "no_difference", "winner"

// Decides an A/B test of arms[0] (the control) against arms[1]:
//  1. invalid: the split does not match the weights (SampleRatioMismatch).
//  2. fixed: waiting until both arms hold RequiredSampleSizePerArm; then
//     one z-test: winner (the arm with the higher rate) if p < alpha, else
//     no_difference. The caller stops at the first decision that is not
//     waiting: evaluating again later would be peeking.
//  3. sequential: the always-valid p-value is updated in *state at every
//     call (a look); winner as soon as it is <= alpha, no_difference when
//     both arms reach max_per_arm, else waiting.
// REQUIRES: arms.size() == 2; state != nullptr for a sequential test.
ABDecision DecideAB(const ABConfig& config, const std::vector<ArmCounts>& arms, SequentialState* state = nullptr);

}  // namespace sluice::deploy
