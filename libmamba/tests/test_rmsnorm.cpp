// RMSNorm forward against a loop; backward (x and w) by finite differences.
#include "mambakit/ops/rmsnorm.h"

#include <omp.h>

#include "test_util.h"

using namespace mk;
using namespace mk::test;

class RMSNormSizes : public ::testing::TestWithParam<std::pair<int, int>> {};

// Small, and big enough for the threaded path.
INSTANTIATE_TEST_SUITE_P(Sizes, RMSNormSizes,
                         ::testing::Values(std::make_pair(5, 12), std::make_pair(64, 600)));

TEST_P(RMSNormSizes, ForwardMatchesLoop) {
  const int rows = GetParam().first, dim = GetParam().second;
  const double eps = 1e-5;
  auto x = randn<double>(rows * dim, 1), w = randn<double>(dim, 2);
  std::vector<double> y(rows * dim), rstd(rows), want(rows * dim), want_rstd(rows);
  for (int r = 0; r < rows; ++r) {
    double ms = 0;
    for (int j = 0; j < dim; ++j) ms += x[r * dim + j] * x[r * dim + j] / dim;
    want_rstd[r] = 1 / std::sqrt(ms + eps);
    for (int j = 0; j < dim; ++j) want[r * dim + j] = x[r * dim + j] * want_rstd[r] * w[j];
  }
  ops::rmsnorm_forward<double>(x.data(), w.data(), y.data(), rstd.data(), rows, dim, eps);
  EXPECT_TRUE(all_close(y, want, 1e-13, 1e-13));
  EXPECT_TRUE(all_close(rstd, want_rstd, 0, 1e-13));

  // float agrees with the double reference.
  std::vector<float> xf(x.begin(), x.end()), wf(w.begin(), w.end()), yf(rows * dim), rf(rows);
  ops::rmsnorm_forward<float>(xf.data(), wf.data(), yf.data(), rf.data(), rows, dim, float(eps));
  EXPECT_TRUE(all_close(yf, want, 1e-5, 1e-5));
}

TEST_P(RMSNormSizes, BackwardFiniteDifferences) {
  const int rows = GetParam().first, dim = GetParam().second;
  const double eps = 1e-5;
  auto x = randn<double>(rows * dim, 3), w = randn<double>(dim, 4), r = randn<double>(rows * dim, 5);
  auto loss = [&]() {
    std::vector<double> y(rows * dim), rs(rows);
    ops::rmsnorm_forward<double>(x.data(), w.data(), y.data(), rs.data(), rows, dim, eps);
    double s = 0;
    for (size_t i = 0; i < y.size(); ++i) s += y[i] * r[i];
    return s;
  };
  std::vector<double> y(rows * dim), rstd(rows), dx(rows * dim, NAN), dw(dim, 0.0);
  ops::rmsnorm_forward<double>(x.data(), w.data(), y.data(), rstd.data(), rows, dim, eps);
  ops::rmsnorm_backward<double>(r.data(), x.data(), w.data(), rstd.data(), dx.data(), dw.data(),
                                rows, dim);
  EXPECT_TRUE(grad_check("dx", x, dx, loss));
  EXPECT_TRUE(grad_check("dw", w, dw, loss));

  // dw accumulates.
  std::vector<double> dw2 = dw;
  ops::rmsnorm_backward<double>(r.data(), x.data(), w.data(), rstd.data(), dx.data(), dw2.data(),
                                rows, dim);
  for (int j = 0; j < dim; ++j) EXPECT_NEAR(dw2[j], 2 * dw[j], 1e-12);
}

// The threaded backward splits the rows in fixed blocks, for dx and for dw's
// partial sums, which are added block by block in order: dx and dw are the
// same bits on any thread count. 301 rows: not a multiple of a block.
TEST(RMSNorm, BackwardSameOnAnyThreadCount) {
  const int rows = 301, dim = 200;
  const auto x = randn<float>(size_t(rows) * dim, 61), w = randn<float>(dim, 62),
             dy = randn<float>(size_t(rows) * dim, 63), dw0 = randn<float>(dim, 64);
  std::vector<float> y(x.size()), rstd(rows);
  ops::rmsnorm_forward<float>(x.data(), w.data(), y.data(), rstd.data(), rows, dim, 1e-5f);
  std::vector<float> want_dw = dw0;
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < dim; ++j)
      want_dw[j] += dy[size_t(r) * dim + j] * x[size_t(r) * dim + j] * rstd[r];
  const int saved = omp_get_max_threads();
  std::vector<float> dx1, dw1;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    std::vector<float> dx(x.size(), NAN), dw = dw0;
    ops::rmsnorm_backward<float>(dy.data(), x.data(), w.data(), rstd.data(), dx.data(), dw.data(),
                                 rows, dim);
    // (Not bit-compared with the loop above: with -march set, either may
    // contract a multiply-add into an FMA.)
    EXPECT_TRUE(all_close(dw, want_dw, 1e-4, 1e-5)) << "threads=" << threads;
    if (threads == 1) dx1 = dx, dw1 = dw;
    EXPECT_TRUE(all_close(dx, dx1, 0)) << "threads=" << threads;
    EXPECT_TRUE(all_close(dw, dw1, 0)) << "threads=" << threads;
  }
  omp_set_num_threads(saved);
}
