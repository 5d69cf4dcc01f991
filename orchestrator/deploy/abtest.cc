#include "deploy/abtest.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "util/json.h"
#include "util/strings.h"

namespace sluice::deploy {
namespace {

double Horner(const double (&c)[8], double x) {
  double v = c[7];
  for (int i = 6; i >= 0; --i) v = v * x + c[i];
  return v;
}

// Series of P(a, x), for x < a + 1.
double GammaPSeries(double a, double x) {
  double term = 1.0 / a, sum = term;
  for (int n = 1; n < 1000; ++n) {
    term *= x / (a + n);
    sum += term;
    if (std::fabs(term) < std::fabs(sum) * 1e-16) break;
  }
  return sum * std::exp(-x + a * std::log(x) - std::lgamma(a));
}

// Continued fraction of Q(a, x) (modified Lentz), for x >= a + 1.
double GammaQFraction(double a, double x) {
  constexpr double kTiny = 1e-300;
  double b = x + 1 - a, c = 1 / kTiny, d = 1 / b, h = d;
  for (int i = 1; i < 1000; ++i) {
    const double an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = b + an / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    const double delta = d * c;
    h *= delta;
    if (std::fabs(delta - 1) < 1e-16) break;
  }
  return std::exp(-x + a * std::log(x) - std::lgamma(a)) * h;
}

std::string Fixed(double v, int decimals) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string General(double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

}  // namespace

double NormalCdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

double NormalQuantile(double p) {
  // Wichura, AS241 PPND16.
  static constexpr double a[8] = {3.3871328727963666080e0, 1.3314166789178437745e+2, 1.9715909503065514427e+3,
                                  1.3731693765509461125e+4, 4.5921953931549871457e+4, 6.7265770927008700853e+4,
                                  3.3430575583588128105e+4, 2.5090809287301226727e+3};
  static constexpr double b[8] = {1.0,
                                  4.2313330701600911252e+1,
                                  6.8718700749205790830e+2,
                                  5.3941960214247511077e+3,
                                  2.1213794301586595867e+4,
                                  3.9307895800092710610e+4,
                                  2.8729085735721942674e+4,
                                  5.2264952788528545610e+3};
  static constexpr double c[8] = {1.42343711074968357734e0, 4.63033784615654529590e0, 5.76949722146069140550e0,
                                  3.64784832476320460504e0, 1.27045825245236838258e0, 2.41780725177450611770e-1,
                                  2.27238449892691845833e-2, 7.74545014278341407640e-4};
  static constexpr double d[8] = {1.0,
                                  2.05319162663775882187e0,
                                  1.67638483018380384940e0,
                                  6.89767334985100004550e-1,
                                  1.48103976427480074590e-1,
                                  1.51986665636164571966e-2,
                                  5.47593808499534494600e-4,
                                  1.05075007164441684324e-9};
  static constexpr double e[8] = {6.65790464350110377720e0, 5.46378491116411436990e0, 1.78482653991729133580e0,
                                  2.96560571828504891230e-1, 2.65321895265761230930e-2, 1.24266094738807843860e-3,
                                  2.71155556874348757815e-5, 2.01033439929228813265e-7};
  static constexpr double f[8] = {1.0,
                                  5.99832206555887937690e-1,
                                  1.36929880922735805310e-1,
                                  1.48753612908506148525e-2,
                                  7.86869131145613259100e-4,
                                  1.84631831751005468180e-5,
                                  1.42151175831644588870e-7,
                                  2.04426310338993978564e-15};
  if (!(p > 0)) return -std::numeric_limits<double>::infinity();
  if (!(p < 1)) return std::numeric_limits<double>::infinity();
  const double q = p - 0.5;
  if (std::fabs(q) <= 0.425) {
    const double r = 0.180625 - q * q;
    return q * Horner(a, r) / Horner(b, r);
  }
  double r = std::sqrt(-std::log(q < 0 ? p : 1 - p));
  double value;
  if (r <= 5) {
    r -= 1.6;
    value = Horner(c, r) / Horner(d, r);
  } else {
    r -= 5;
    value = Horner(e, r) / Horner(f, r);
  }
  return q < 0 ? -value : value;
}

double RegularizedGammaQ(double a, double x) {
  if (x <= 0) return 1;
  if (x < a + 1) return std::max(0.0, 1 - GammaPSeries(a, x));
  return GammaQFraction(a, x);
}

double ChiSquareSurvival(double x, double df) { return RegularizedGammaQ(df / 2, x / 2); }

SampleRatio SampleRatioMismatch(const std::vector<int64_t>& observed, const std::vector<double>& weights) {
  SampleRatio out;
  out.df = static_cast<int>(observed.size()) - 1;
  double total = 0, weight_sum = 0;
  for (int64_t n : observed) total += static_cast<double>(n);
  for (double w : weights) weight_sum += w;
  if (total == 0) return out;
  for (size_t i = 0; i < observed.size(); ++i) {
    const double expected = total * weights[i] / weight_sum;
    const double diff = static_cast<double>(observed[i]) - expected;
    out.chi_square += diff * diff / expected;
  }
  out.p_value = ChiSquareSurvival(out.chi_square, out.df);
  out.mismatch = out.p_value < kSrmAlpha;
  return out;
}

ProportionTest TwoProportionZTest(int64_t successes_a, int64_t n_a, int64_t successes_b, int64_t n_b, double alpha) {
  ProportionTest t;
  const double na = static_cast<double>(n_a), nb = static_cast<double>(n_b);
  t.p_a = static_cast<double>(successes_a) / na;
  t.p_b = static_cast<double>(successes_b) / nb;
  t.effect = t.p_b - t.p_a;
  const double pooled = static_cast<double>(successes_a + successes_b) / (na + nb);
  const double se_pooled = std::sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb));
  if (se_pooled > 0) {
    t.z = t.effect / se_pooled;
    t.p_value = std::min(1.0, 2 * NormalCdf(-std::fabs(t.z)));
  }
  const double se = std::sqrt(t.p_a * (1 - t.p_a) / na + t.p_b * (1 - t.p_b) / nb);
  const double half = NormalQuantile(1 - alpha / 2) * se;
  t.ci_low = t.effect - half;
  t.ci_high = t.effect + half;
  return t;
}

int64_t RequiredSampleSizePerArm(double baseline, double mde, double alpha, double power) {
  const double p1 = baseline;
  const double p2 = baseline + mde <= 1 ? baseline + mde : baseline - mde;
  const double pbar = (p1 + p2) / 2;
  const double za = NormalQuantile(1 - alpha / 2), zb = NormalQuantile(power);
  const double root = za * std::sqrt(2 * pbar * (1 - pbar)) + zb * std::sqrt(p1 * (1 - p1) + p2 * (1 - p2));
  const double n = root * root / (mde * mde);
  // 1e-9: a size that is a whole number up to rounding is not one more.
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(n - 1e-9)));
}

double MixtureLikelihoodRatio(int64_t successes_a, int64_t n_a, int64_t successes_b, int64_t n_b, double tau2) {
  if (n_a <= 0 || n_b <= 0) return 1;
  const double na = static_cast<double>(n_a), nb = static_cast<double>(n_b);
  const double pooled = static_cast<double>(successes_a + successes_b) / (na + nb);
  const double v = pooled * (1 - pooled) * (1 / na + 1 / nb);
  if (!(v > 0)) return 1;
  const double theta = static_cast<double>(successes_b) / nb - static_cast<double>(successes_a) / na;
  // In logs: the exponent grows without bound as evidence accumulates.
  const double log_lambda = 0.5 * std::log(v / (v + tau2)) + tau2 * theta * theta / (2 * v * (v + tau2));
  return std::exp(std::min(log_lambda, 700.0));
}

double AlwaysValidPValue(double previous, int64_t successes_a, int64_t n_a, int64_t successes_b, int64_t n_b,
                         double tau2) {
  return std::min(previous, 1 / MixtureLikelihoodRatio(successes_a, n_a, successes_b, n_b, tau2));
}

Result<ABConfig> ParseABConfig(const nlohmann::json& test) {
  static const std::vector<std::string> kKeys = {"alpha", "power", "mde", "baseline", "test", "tau2", "max_per_arm"};
  auto error = [](const std::string& key, const std::string& what) {
    return Status::InvalidSpec("test." + key + ": " + what);
  };
  if (!test.is_object()) return Status::InvalidSpec("test: expected an object of settings, got " + JsonText(test));
  for (const auto& [key, value] : test.items()) {
    if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) {
      return error(key, "unknown key" + DidYouMean(key, kKeys));
    }
  }
  ABConfig config;
  // A number strictly between lo and hi (inclusive ends where said).
  auto number = [&](const char* key, double lo, double hi, bool lo_inclusive, bool hi_inclusive,
                    const char* what) -> Result<std::optional<double>> {
    if (!test.contains(key)) return std::optional<double>();
    const nlohmann::json& v = test[key];
    if (!v.is_number()) return error(key, "expected a number, got " + JsonText(v));
    const double x = v.get<double>();
    const bool ok = (lo_inclusive ? x >= lo : x > lo) && (hi_inclusive ? x <= hi : x < hi);
    if (!ok) return error(key, JsonText(v) + " is not " + what);
    return std::optional<double>(x);
  };
  auto alpha = number("alpha", 0, 0.5, false, true, "a probability between 0 and 0.5");
  if (!alpha.ok()) return alpha.status();
  if (*alpha) config.alpha = **alpha;
  auto power = number("power", 0.5, 1, true, false, "a probability between 0.5 and 1");
  if (!power.ok()) return power.status();
  if (*power) config.power = **power;
  if (!test.contains("mde")) return error("mde", "required (the smallest absolute difference worth finding, 0.02)");
  auto mde = number("mde", 0, 0.5, false, true, "an absolute difference of rates above 0 and at most 0.5");
  if (!mde.ok()) return mde.status();
  config.mde = **mde;
  auto baseline = number("baseline", 0, 1, false, false, "a rate between 0 and 1");
  if (!baseline.ok()) return baseline.status();
  config.baseline = *baseline;
  auto tau2 = number("tau2", 0, std::numeric_limits<double>::infinity(), false, false, "a variance above 0");
  if (!tau2.ok()) return tau2.status();
  config.tau2 = *tau2;
  if (test.contains("test")) {
    const nlohmann::json& v = test["test"];
    const std::string t = v.is_string() ? v.get<std::string>() : "";
    if (t == "fixed") config.test = ABConfig::Test::kFixed;
    else if (t == "sequential") config.test = ABConfig::Test::kSequential;
    else return error("test", "expected fixed or sequential, got " + JsonText(v));
  }
  if (test.contains("max_per_arm")) {
    const nlohmann::json& v = test["max_per_arm"];
    if (!v.is_number_integer() || v.get<int64_t>() < 1) {
      return error("max_per_arm", "expected a whole number >= 1, got " + JsonText(v));
    }
    config.max_per_arm = v.get<int64_t>();
  }
  return config;
}

const char* ABStateName(ABDecision::State s) {
  switch (s) {
    case ABDecision::State::kWaiting: return "waiting";
    case ABDecision::State::kInvalid: return "invalid";
    case ABDecision::State::kNoDifference: return "no_difference";
    case ABDecision::State::kWinner: return "winner";
  }
  return "waiting";
}

ABDecision DecideAB(const ABConfig& config, const std::vector<ArmCounts>& arms, SequentialState* state) {
  const ArmCounts& a = arms[0];
  const ArmCounts& b = arms[1];
  ABDecision d;
  d.samples = {a.samples, b.samples};
  d.srm = SampleRatioMismatch(d.samples, {a.weight, b.weight});
  const std::string counts = a.name + " " + std::to_string(a.successes) + "/" + std::to_string(a.samples) + ", " +
                             b.name + " " + std::to_string(b.successes) + "/" + std::to_string(b.samples);
  if (d.srm.mismatch) {
    d.state = ABDecision::State::kInvalid;
    d.reason = "sample ratio mismatch: chi-square " + Fixed(d.srm.chi_square, 2) + ", p " + General(d.srm.p_value) +
               " < " + General(kSrmAlpha) + " (" + counts + ")";
    return d;
  }
  const double baseline = config.baseline.value_or(
      a.samples > 0 ? static_cast<double>(a.successes) / static_cast<double>(a.samples) : 0.0);
  const int64_t fixed_n = RequiredSampleSizePerArm(baseline, config.mde, config.alpha, config.power);
  const bool sequential = config.test == ABConfig::Test::kSequential;
  d.needed_per_arm = sequential ? config.max_per_arm.value_or(2 * fixed_n) : fixed_n;
  const bool full = a.samples >= d.needed_per_arm && b.samples >= d.needed_per_arm;
  auto winner_name = [&](double effect) { return effect > 0 ? b.name : a.name; };

  if (!sequential) {
    if (!full) {
      d.state = ABDecision::State::kWaiting;
      d.reason = "waiting for " + std::to_string(d.needed_per_arm) + " samples per arm (" + counts + ")";
      return d;
    }
    const ProportionTest t = TwoProportionZTest(a.successes, a.samples, b.successes, b.samples, config.alpha);
    d.effect = t.effect;
    d.ci_low = t.ci_low;
    d.ci_high = t.ci_high;
    d.p_value = t.p_value;
  } else {
    const double tau2 = config.tau2.value_or(config.mde * config.mde);
    state->p_value = AlwaysValidPValue(state->p_value, a.successes, a.samples, b.successes, b.samples, tau2);
    ++state->looks;
    d.p_value = state->p_value;
    if (a.samples > 0 && b.samples > 0) {
      const double pa = static_cast<double>(a.successes) / static_cast<double>(a.samples);
      const double pb = static_cast<double>(b.successes) / static_cast<double>(b.samples);
      d.effect = pb - pa;
      // The always-valid interval: the effects theta0 whose Lambda(theta0) < 1/alpha.
      const double v = pa * (1 - pa) / static_cast<double>(a.samples) + pb * (1 - pb) / static_cast<double>(b.samples);
      if (v > 0) {
        const double half =
            std::sqrt(v * (v + tau2) / tau2 * (2 * std::log(1 / config.alpha) + std::log((v + tau2) / v)));
        d.ci_low = d.effect - half;
        d.ci_high = d.effect + half;
      }
    }
    if (d.p_value > config.alpha && !full) {
      d.state = ABDecision::State::kWaiting;
      d.reason = "always-valid p " + General(d.p_value) + " > alpha " + General(config.alpha) + " after look " +
                 std::to_string(state->looks) + " (" + counts + ")";
      return d;
    }
  }
  const std::string stats = "effect " + Fixed(d.effect, 4) + " [" + Fixed(d.ci_low, 4) + ", " + Fixed(d.ci_high, 4) +
                            "], p " + General(d.p_value) + " (" + counts + ")";
  // Fixed: p < alpha; sequential: p <= alpha (Johari et al.'s rule).
  const bool significant = sequential ? d.p_value <= config.alpha : d.p_value < config.alpha;
  if (significant && d.effect != 0) {
    d.state = ABDecision::State::kWinner;
    d.winner = winner_name(d.effect);
    d.reason = d.winner + " wins: " + stats;
  } else {
    d.state = ABDecision::State::kNoDifference;
    d.reason = "no difference at alpha " + General(config.alpha) + ": " + stats;
  }
  return d;
}

}  // namespace sluice::deploy
