// Softmax cross-entropy: known values, stability at large logits, ignored
// rows, aliasing, gradient by finite differences; log-softmax.
#include "mambakit/ops/softmax_xent.h"

#include <omp.h>

#include "mambakit/error.h"
#include "test_util.h"

using namespace mk;
using namespace mk::test;

namespace {

// -log softmax(x)[t] in long double, straight from the definition (x shifted
// by its max only so that exp does not overflow).
double xent_ref(const double* x, int V, int t) {
  long double m = x[0];
  for (int j = 1; j < V; ++j) m = std::max<long double>(m, x[j]);
  long double s = 0;
  for (int j = 0; j < V; ++j) s += std::exp((long double)x[j] - m);
  return double(std::log(s) + m - x[t]);
}

}  // namespace

TEST(SoftmaxXent, UniformLogitsGiveLogV) {
  const int rows = 3, V = 50;
  std::vector<float> logits(rows * V, 3.25f), losses(rows);
  std::vector<int32_t> tgt = {0, 17, 49};
  double total = ops::softmax_xent<float>(logits.data(), tgt.data(), losses.data(), nullptr, rows,
                                          V, 1.f);
  for (int r = 0; r < rows; ++r) EXPECT_NEAR(losses[r], std::log(double(V)), 1e-6);
  EXPECT_NEAR(total, rows * std::log(double(V)), 1e-5);
}

TEST(SoftmaxXent, MatchesDefinition) {
  const int rows = 40, V = 513;  // big enough for the threaded path
  auto logits = randn<double>(rows * V, 1, 3.0);
  std::vector<int32_t> tgt(rows);
  for (int r = 0; r < rows; ++r) tgt[r] = (r * 97) % V;
  std::vector<double> losses(rows);
  double total = ops::softmax_xent<double>(logits.data(), tgt.data(), losses.data(), nullptr, rows,
                                           V, 1.0);
  double sum = 0;
  for (int r = 0; r < rows; ++r) {
    double want = xent_ref(&logits[r * V], V, tgt[r]);
    EXPECT_NEAR(losses[r], want, 1e-13);
    sum += want;
  }
  EXPECT_NEAR(total, sum, 1e-12);
}

TEST(SoftmaxXent, StableAtLargeLogits) {
  // Logits of magnitude 1e4: exp would overflow without the max subtraction.
  // The loss is shift invariant, so it must equal the loss of the small logits.
  const int rows = 4, V = 64;
  auto small = randn<double>(rows * V, 2, 2.0);
  std::vector<int32_t> tgt = {3, 0, 63, 10};
  for (double shift : {1e4, -1e4}) {
    std::vector<float> big(rows * V), small_f(small.begin(), small.end());
    for (size_t i = 0; i < big.size(); ++i) big[i] = float(small[i] + shift);
    // The reference uses the float-rounded logits actually passed in.
    std::vector<double> big_d(big.begin(), big.end());
    std::vector<float> losses(rows), grad(rows * V);
    double total = ops::softmax_xent<float>(big.data(), tgt.data(), losses.data(), grad.data(),
                                            rows, V, 1.f);
    EXPECT_TRUE(std::isfinite(total));
    for (int r = 0; r < rows; ++r) {
      EXPECT_NEAR(losses[r], xent_ref(&big_d[r * V], V, tgt[r]), 1e-4) << "shift " << shift;
      double gsum = 0;
      for (int j = 0; j < V; ++j) {
        EXPECT_TRUE(std::isfinite(grad[r * V + j]));
        gsum += grad[r * V + j];
      }
      EXPECT_NEAR(gsum, 0.0, 1e-5);  // softmax sums to 1, minus the one-hot
    }
  }
}

TEST(SoftmaxXent, IgnoredRows) {
  const int rows = 5, V = 8;
  auto logits = randn<double>(rows * V, 3);
  std::vector<int32_t> tgt = {2, -1, 5, -100, 0};
  std::vector<double> losses(rows, NAN), grad(rows * V, NAN);
  double total = ops::softmax_xent<double>(logits.data(), tgt.data(), losses.data(), grad.data(),
                                           rows, V, 0.5);
  double want = 0;
  for (int r = 0; r < rows; ++r) {
    if (tgt[r] < 0) {
      EXPECT_EQ(losses[r], 0.0);
      for (int j = 0; j < V; ++j) EXPECT_EQ(grad[r * V + j], 0.0);
    } else {
      want += xent_ref(&logits[r * V], V, tgt[r]);
    }
  }
  EXPECT_NEAR(total, want, 1e-12);
}

TEST(SoftmaxXent, GradientFiniteDifferencesAndAliasing) {
  const int rows = 4, V = 11;
  auto logits = randn<double>(rows * V, 4, 2.0);
  std::vector<int32_t> tgt = {1, -1, 10, 4};
  const double scale = 1.0 / 3;  // mean over the non-ignored rows
  auto loss = [&]() {
    std::vector<double> l(rows);
    return scale * ops::softmax_xent<double>(logits.data(), tgt.data(), l.data(), nullptr, rows, V,
                                             1.0);
  };
  std::vector<double> losses(rows), grad(rows * V);
  ops::softmax_xent<double>(logits.data(), tgt.data(), losses.data(), grad.data(), rows, V, scale);
  EXPECT_TRUE(grad_check("dlogits", logits, grad, loss));

  // dlogits aliasing logits gives the same losses and gradient.
  std::vector<double> inplace = logits, losses2(rows);
  ops::softmax_xent<double>(inplace.data(), tgt.data(), losses2.data(), inplace.data(), rows, V,
                            scale);
  EXPECT_TRUE(all_close(inplace, grad, 0));
  EXPECT_TRUE(all_close(losses2, losses, 0));
}

TEST(SoftmaxXent, TargetOutOfRangeThrows) {
  std::vector<float> logits(2 * 4), losses(2);
  std::vector<int32_t> tgt = {1, 4};
  try {
    ops::softmax_xent<float>(logits.data(), tgt.data(), losses.data(), nullptr, 2, 4, 1.f);
    FAIL() << "no exception";
  } catch (const mk::Error& e) {
    EXPECT_NE(std::string(e.what()).find("row 1"), std::string::npos) << e.what();
  }
}

TEST(LogSoftmax, MatchesDefinitionAndAliases) {
  const int rows = 3, V = 17;
  auto x = randn<double>(rows * V, 5, 3.0);
  x[4] = 1e4;  // one huge logit must not overflow
  std::vector<double> out(rows * V);
  ops::log_softmax<double>(x.data(), out.data(), rows, V);
  for (int r = 0; r < rows; ++r) {
    double psum = 0;
    for (int j = 0; j < V; ++j) {
      EXPECT_NEAR(out[r * V + j], -xent_ref(&x[r * V], V, j), 1e-11);
      psum += std::exp(out[r * V + j]);
    }
    EXPECT_NEAR(psum, 1.0, 1e-12);
  }
  std::vector<double> inplace = x;
  ops::log_softmax<double>(inplace.data(), inplace.data(), rows, V);
  EXPECT_TRUE(all_close(inplace, out, 0));
}

// float (its own vectorised exp and SIMD-lane reductions): losses and
// gradients against the long-double definition, the same bits on one thread
// or two, and in place the same as out of place. Rows x V above the parallel
// threshold, V odd (not a multiple of the SIMD width).
TEST(SoftmaxXent, FloatMatchesReferenceOnAnyThreadCount) {
  const int rows = 67, V = 259;
  const auto x = randn<double>(size_t(rows) * V, 31, 3.0);
  std::vector<int32_t> tgt(rows);
  for (int r = 0; r < rows; ++r) tgt[r] = (r * 37) % V;
  tgt[5] = -1;  // ignored
  const std::vector<float> xf(x.begin(), x.end());
  const float scale = 1.f / rows;
  const int saved = omp_get_max_threads();
  std::vector<std::vector<float>> grads, losses;
  std::vector<double> totals;
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    std::vector<float> g(xf.size()), l(rows);
    totals.push_back(ops::softmax_xent<float>(xf.data(), tgt.data(), l.data(), g.data(), rows, V,
                                              scale));
    grads.push_back(g);
    losses.push_back(l);
  }
  omp_set_num_threads(saved);
  std::vector<float> inplace = xf, l_inplace(rows);
  ops::softmax_xent<float>(inplace.data(), tgt.data(), l_inplace.data(), inplace.data(), rows, V,
                           scale);

  const std::vector<double> xd(xf.begin(), xf.end());  // the float inputs, exactly
  double want_total = 0;
  for (int r = 0; r < rows; ++r) {
    const double* xr = &xd[size_t(r) * V];
    const double want = tgt[r] < 0 ? 0.0 : xent_ref(xr, V, tgt[r]);
    want_total += want;
    EXPECT_NEAR(losses[0][r], want, 1e-5 * (1 + want)) << "row " << r;
    const double lse = xent_ref(xr, V, 0) + xr[0];
    for (int j = 0; j < V && tgt[r] >= 0; ++j) {
      const double p = std::exp(xr[j] - lse);
      const double gj = (p - (j == tgt[r])) * scale;
      ASSERT_NEAR(grads[0][size_t(r) * V + j], gj, 1e-6 * scale) << "row " << r << " j " << j;
    }
  }
  EXPECT_NEAR(totals[0], want_total, 1e-5 * want_total);
  EXPECT_EQ(totals[1], totals[0]);
  EXPECT_TRUE(all_close(grads[1], grads[0], 0));
  EXPECT_TRUE(all_close(losses[1], losses[0], 0));
  EXPECT_TRUE(all_close(inplace, grads[0], 0));
  EXPECT_TRUE(all_close(l_inplace, losses[0], 0));
}
