// SiLU, softplus and sigmoid: values, extreme inputs, gradients.
#include "mambakit/ops/activations.h"

#include <cstring>

#include <omp.h>

#include <limits>

#include "mambakit/cpu_isa.h"
#include "mambakit/ops/elementwise.h"
#include "test_util.h"

using namespace mk;
using namespace mk::test;

TEST(Activations, ForwardMatchesFormulas) {
  auto x = randn<double>(200, 1, 4.0);
  std::vector<double> y(x.size()), want(x.size());
  ops::silu_forward<double>(x.data(), y.data(), x.size());
  for (size_t i = 0; i < x.size(); ++i) want[i] = x[i] / (1 + std::exp(-x[i]));
  EXPECT_TRUE(all_close(y, want, 1e-14, 1e-14));
  ops::softplus_forward<double>(x.data(), y.data(), x.size());
  for (size_t i = 0; i < x.size(); ++i) want[i] = std::log(1 + std::exp(x[i]));
  EXPECT_TRUE(all_close(y, want, 1e-14, 1e-12));
  for (double v : x) {
    EXPECT_NEAR(ops::silu(v), v / (1 + std::exp(-v)), 1e-14 * (1 + std::fabs(v)));
    EXPECT_NEAR(ops::sigmoid(v), 1 / (1 + std::exp(-v)), 1e-16);
    EXPECT_NEAR(ops::softplus(v), std::log(1 + std::exp(v)), 1e-13);
  }
  // Scalar forms and array forms agree in float as well.
  // (large enough for the threaded path).
  auto xf = randn<float>(70000, 7, 4.0);
  std::vector<float> yf(xf.size()), zf(xf.size());
  ops::silu_forward<float>(xf.data(), yf.data(), xf.size());
  ops::softplus_forward<float>(xf.data(), zf.data(), xf.size());
  for (size_t i = 0; i < xf.size(); ++i) {
    ASSERT_EQ(yf[i], ops::silu(xf[i])) << i;
    ASSERT_EQ(zf[i], ops::softplus(xf[i])) << i;
  }
}

TEST(Activations, ExtremeInputsStayFinite) {
  std::vector<float> x = {-1e4f, -100.f, -30.f, 0.f, 19.9f, 20.f, 20.5f, 100.f, 1e4f};
  std::vector<float> sp(x.size()), si(x.size());
  ops::softplus_forward<float>(x.data(), sp.data(), x.size());
  ops::silu_forward<float>(x.data(), si.data(), x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_TRUE(std::isfinite(sp[i]) && std::isfinite(si[i])) << "x=" << x[i];
    EXPECT_GE(sp[i], 0.f);
    if (x[i] > 20) {  // PyTorch threshold: identity
      EXPECT_EQ(sp[i], x[i]);
      EXPECT_EQ(si[i], x[i]);
    }
  }
  EXPECT_NEAR(sp[2], std::exp(-30.0), 1e-18);  // log1p keeps tiny values accurate
  EXPECT_EQ(ops::softplus(0.0), std::log(2.0));
  EXPECT_EQ(ops::sigmoid(-1e4f), 0.f);
  EXPECT_EQ(ops::sigmoid(1e4f), 1.f);
  EXPECT_EQ(ops::silu(-1e4), -0.0);
}

TEST(Activations, BackwardFiniteDifferences) {
  // Avoid |x| near 20 so the central difference does not straddle the threshold.
  auto x = randn<double>(60, 2, 5.0);
  for (double& v : x)
    if (std::fabs(std::fabs(v) - 20) < 0.1) v = 0.5;
  x.push_back(25.0);  // above the threshold the softplus gradient is 1
  auto r = randn<double>(x.size(), 3);
  const size_t n = x.size();
  std::vector<double> dsilu(n, NAN), dsoftplus(n, NAN);
  ops::silu_backward<double>(r.data(), x.data(), dsilu.data(), n);
  ops::softplus_backward<double>(r.data(), x.data(), dsoftplus.data(), n);
  // Elementwise ops: check each element with a loss of that element alone,
  // so tiny gradients (x very negative) are not drowned by the other terms.
  for (size_t i = 0; i < n; ++i) {
    std::vector<double> xi = {x[i]};
    auto loss_of = [&](void (*fwd)(const double*, double*, size_t)) {
      return [&, fwd]() {
        double y;
        fwd(xi.data(), &y, 1);
        return y * r[i];
      };
    };
    EXPECT_TRUE(grad_check("silu x=" + std::to_string(x[i]), xi, {dsilu[i]},
                           loss_of(&ops::silu_forward<double>)));
    EXPECT_TRUE(grad_check("softplus x=" + std::to_string(x[i]), xi, {dsoftplus[i]},
                           loss_of(&ops::softplus_forward<double>)));
  }
  EXPECT_EQ(dsoftplus.back(), r.back());
}

namespace {

// Float inputs over the whole useful range: a sweep from -110 (softplus and
// SiLU results deep in the subnormals) to 30 (past the threshold 20), the
// exact threshold, and normal draws; 70001 of them, above the parallel
// threshold and not a multiple of the SIMD width or of the thread split.
std::vector<float> float_inputs() {
  std::vector<float> x = randn<float>(70001, 11, 6.0);
  for (size_t i = 0; i < 30000; ++i) x[i] = float(-110.0 + 140.0 * double(i) / 30000);
  x[30000] = 20.f;
  x[30001] = 0.f;
  x[30002] = -0.f;
  return x;
}

struct FloatActivations {
  std::vector<float> silu, softplus, dsilu, dsoftplus, negexp;
};

FloatActivations run_float(const std::vector<float>& x, const std::vector<float>& dy) {
  const size_t n = x.size();
  FloatActivations r{std::vector<float>(n), std::vector<float>(n), std::vector<float>(n),
                     std::vector<float>(n), std::vector<float>(n)};
  ops::silu_forward<float>(x.data(), r.silu.data(), n);
  ops::softplus_forward<float>(x.data(), r.softplus.data(), n);
  ops::silu_backward<float>(dy.data(), x.data(), r.dsilu.data(), n);
  ops::softplus_backward<float>(dy.data(), x.data(), r.dsoftplus.data(), n);
  ops::neg_exp<float>(x.data(), r.negexp.data(), n);  // the same per-ISA loops' exp
  return r;
}

}  // namespace

// The float kernels use their own vectorisable exp/log1p: against libm in
// double they stay within a few float ulps (relative), subnormal results
// included (absolute 1e-44, a few subnormal steps), and give the same bits
// on one thread or two.
TEST(Activations, FloatMatchesDoubleReferenceOnAnyThreadCount) {
  const std::vector<float> x = float_inputs();
  const std::vector<float> dy = randn<float>(x.size(), 12);
  const size_t n = x.size();
  std::vector<double> silu(n), softplus(n), dsilu(n), dsoftplus(n), negexp(n);
  for (size_t i = 0; i < n; ++i) {
    const double v = x[i], s = 1 / (1 + std::exp(-v));
    negexp[i] = -std::exp(v);
    silu[i] = v * s;
    softplus[i] = v > 20 ? v : std::log1p(std::exp(v));
    dsilu[i] = dy[i] * s * (1 + v * (1 - s));
    dsoftplus[i] = v > 20 ? dy[i] : dy[i] * s;
  }
  const int saved = omp_get_max_threads();
  std::vector<FloatActivations> runs;
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    runs.push_back(run_float(x, dy));
  }
  omp_set_num_threads(saved);
  const FloatActivations& r = runs[0];
  EXPECT_TRUE(all_close(r.softplus, softplus, 1e-44, 1e-6));
  for (size_t i = 0; i < n; ++i) {
    // -exp(x): inf beyond float's range, within a few ulps (relative) below.
    if (std::fabs(negexp[i]) > std::numeric_limits<float>::max())
      ASSERT_EQ(r.negexp[i], -std::numeric_limits<float>::infinity()) << "x=" << x[i];
    else
      ASSERT_NEAR(r.negexp[i], negexp[i], 1e-44 + 1e-6 * std::fabs(negexp[i])) << "x=" << x[i];
  }
  for (size_t i = 0; i < n; ++i) {
    const double v = x[i], s = 1 / (1 + std::exp(-v));
    // Below x = -87 exp(-x) passes float's largest value, so sigmoid (and
    // what is built on it) underflows to 0, as with libm's expf: only its
    // size is checked there.
    const double atol = v < -87 ? 1e-34 : 1e-44;
    ASSERT_NEAR(r.silu[i], silu[i], atol + 1e-6 * std::fabs(silu[i])) << "x=" << v;
    ASSERT_NEAR(r.dsoftplus[i], dsoftplus[i], atol + 1e-6 * std::fabs(dsoftplus[i])) << "x=" << v;
    // silu' = s (1 + x (1 - s)) cancels near x = -1.28: float rounding of
    // the terms is relative to |dy| s (1 + |x|), not to the result; and
    // dy s may be subnormal before it is multiplied by up to 111.
    ASSERT_NEAR(r.dsilu[i], dsilu[i],
                std::max(atol, 1e-42) + 1e-6 * std::fabs(dy[i]) * s * (1 + std::fabs(v)))
        << "x=" << v;
  }
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(runs[1].silu[i], r.silu[i]) << i;
    ASSERT_EQ(runs[1].softplus[i], r.softplus[i]) << i;
    ASSERT_EQ(runs[1].dsilu[i], r.dsilu[i]) << i;
    ASSERT_EQ(runs[1].dsoftplus[i], r.dsoftplus[i]) << i;
    ASSERT_EQ(runs[1].negexp[i], r.negexp[i]) << i;
  }
}

// The float loops run in a copy per ISA (activation_kernels.cpp): every copy
// this CPU runs gives the bits of the scalar copy, and of the exported scalar
// functions, on the sweep and on inf, NaN and huge inputs.
TEST(Activations, FloatSameBitsOnEveryIsa) {
  std::vector<float> x = float_inputs();
  const float inf = std::numeric_limits<float>::infinity();
  for (float v : {std::numeric_limits<float>::quiet_NaN(), inf, -inf, -200.f, 200.f, 1e30f})
    x.push_back(v);
  const std::vector<float> dy = randn<float>(x.size(), 13);
  // A NaN's sign and payload are not specified (x86 returns one operand's,
  // which one depends on the order the compiler chose): NaN matches NaN.
  auto same_bits = [](float a, float b) {
    return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof a) == 0;
  };
  FloatActivations ref;
  {
    ScopedIsa scalar(Isa::scalar);
    ref = run_float(x, dy);
  }
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_TRUE(same_bits(ref.silu[i], ops::silu(x[i]))) << "x=" << x[i];
    ASSERT_TRUE(same_bits(ref.softplus[i], ops::softplus(x[i]))) << "x=" << x[i];
  }
  for (Isa isa : supported_isas()) {
    ScopedIsa scoped(isa);
    const FloatActivations r = run_float(x, dy);
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_TRUE(same_bits(r.silu[i], ref.silu[i])) << isa_name(isa) << " x=" << x[i];
      ASSERT_TRUE(same_bits(r.softplus[i], ref.softplus[i])) << isa_name(isa) << " x=" << x[i];
      ASSERT_TRUE(same_bits(r.dsilu[i], ref.dsilu[i])) << isa_name(isa) << " x=" << x[i];
      ASSERT_TRUE(same_bits(r.dsoftplus[i], ref.dsoftplus[i])) << isa_name(isa) << " x=" << x[i];
      ASSERT_TRUE(same_bits(r.negexp[i], ref.negexp[i])) << isa_name(isa) << " x=" << x[i];
    }
  }
}

TEST(Activations, FloatSpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> x = {nan, inf, -inf, -200.f, 200.f}, y(x.size()), one(x.size(), 1.f),
                     g(x.size());
  ops::softplus_forward<float>(x.data(), y.data(), x.size());
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(y[1], inf);
  EXPECT_EQ(y[2], 0.f);
  EXPECT_EQ(y[3], 0.f);
  EXPECT_EQ(y[4], 200.f);
  ops::silu_forward<float>(x.data(), y.data(), x.size());
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(y[1], inf);
  EXPECT_EQ(y[3], -0.f);
  EXPECT_EQ(y[4], 200.f);
  ops::softplus_backward<float>(one.data(), x.data(), g.data(), x.size());
  EXPECT_TRUE(std::isnan(g[0]));
  EXPECT_EQ(g[1], 1.f);
  EXPECT_EQ(g[2], 0.f);
  EXPECT_EQ(g[3], 0.f);
  EXPECT_EQ(g[4], 1.f);
  EXPECT_EQ(ops::sigmoid(-inf), 0.f);
  EXPECT_EQ(ops::sigmoid(inf), 1.f);
  EXPECT_TRUE(std::isnan(ops::sigmoid(nan)));
}

// The per-ISA loops run a thread's share in blocks and prefetch ahead when
// the arrays outgrow L2: on a long array, with thread counts that split it
// unevenly and in place, every element gets the bits the same loop gives
// it alone (nothing skipped at a block or thread edge, nothing written
// twice).
TEST(Activations, LongArraysInBlocksMatchElementwiseOnAnyThreadCount) {
  const size_t n = 300007;  // past the prefetching threshold, not a multiple of 16
  const std::vector<float> x = randn<float>(n, 21, 4.0);
  const std::vector<float> dy = randn<float>(n, 22);
  std::vector<float> softplus(n), silu(n), dsilu(n);
  for (size_t i = 0; i < n; ++i) {
    ops::softplus_forward<float>(&x[i], &softplus[i], 1);
    ops::silu_forward<float>(&x[i], &silu[i], 1);
    ops::silu_backward<float>(&dy[i], &x[i], &dsilu[i], 1);
  }
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2, 3, 7}) {
    omp_set_num_threads(threads);
    std::vector<float> y(n, -1.f), g(n, -1.f), inplace = x;
    ops::softplus_forward<float>(x.data(), y.data(), n);
    ops::silu_backward<float>(dy.data(), x.data(), g.data(), n);
    ops::silu_forward<float>(inplace.data(), inplace.data(), n);
    for (size_t i = 0; i < n; ++i) {
      ASSERT_EQ(y[i], softplus[i]) << "threads " << threads << " i " << i;
      ASSERT_EQ(inplace[i], silu[i]) << "threads " << threads << " i " << i;
      ASSERT_EQ(g[i], dsilu[i]) << "threads " << threads << " i " << i;
    }
  }
  omp_set_num_threads(saved);
}
