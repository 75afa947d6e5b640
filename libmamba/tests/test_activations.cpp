// SiLU, softplus and sigmoid: values, extreme inputs, gradients.
#include "mambakit/ops/activations.h"

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
