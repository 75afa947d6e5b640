// The S4D/S4 parameter preparation (ops/ssm_prepare.h): hand-checked values,
// the backward against central finite differences in double, and that the
// backward accumulates.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "mambakit/error.h"
#include "mambakit/ops/ssm_prepare.h"

namespace {

using mk::ops::ssm_diag_prepare;
using mk::ops::ssm_diag_prepare_backward;

TEST(SsmPrepare, ValuesByHand) {
  // H = 2, N2 = 2.
  const float log_dt[2] = {0.f, std::log(0.01f)};
  const float log_A_real[4] = {std::log(0.5f), 0.f, std::log(2.f), std::log(3.f)};
  const float A_imag[4] = {0.f, 3.f, -1.5f, 7.f};
  float dt[2], A[8];
  ssm_diag_prepare(2, 2, log_dt, log_A_real, A_imag, dt, A);
  EXPECT_FLOAT_EQ(dt[0], 1.f);
  EXPECT_FLOAT_EQ(dt[1], 0.01f);
  const float want[8] = {-0.5f, 0.f, -1.f, 3.f, -2.f, -1.5f, -3.f, 7.f};
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(A[i], want[i]) << i;
}

TEST(SsmPrepare, BackwardByHandAccumulates) {
  // H = 1, N2 = 1: dt = 2, A = (-3, 5); ddt = 10, dA = (7, -4).
  const double dt[1] = {2}, A[2] = {-3, 5}, ddt[1] = {10}, dA[2] = {7, -4};
  double g_log_dt[1] = {1}, g_log_A_real[1] = {2}, g_A_imag[1] = {3};
  ssm_diag_prepare_backward(1, 1, dt, A, ddt, dA, g_log_dt, g_log_A_real, g_A_imag);
  EXPECT_EQ(g_log_dt[0], 1 + 10 * 2);
  EXPECT_EQ(g_log_A_real[0], 2 + 7 * -3);
  EXPECT_EQ(g_A_imag[0], 3 + -4);
}

// loss = sum_h wdt[h] dt[h] + sum_i (wre[i] Re A[i] + wim[i] Im A[i]); its
// gradient through the backward (ddt = wdt, dA = wre + i wim) against
// central differences of the forward.
TEST(SsmPrepare, BackwardMatchesFiniteDifferences) {
  const int H = 3, N2 = 4, n = H * N2;
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> ulog_dt(std::log(1e-3), std::log(1e-1)), un(-1, 1);
  std::vector<double> log_dt(H), log_A_real(n), A_imag(n), wdt(H), wA(2 * n);
  for (double& x : log_dt) x = ulog_dt(rng);
  for (int i = 0; i < n; ++i) {
    log_A_real[i] = std::log(0.5) + 0.3 * un(rng);
    A_imag[i] = M_PI * (i % N2) + un(rng);
  }
  for (double& x : wdt) x = un(rng);
  for (double& x : wA) x = un(rng);

  auto loss = [&]() {
    std::vector<double> dt(H), A(2 * n);
    ssm_diag_prepare(H, N2, log_dt.data(), log_A_real.data(), A_imag.data(), dt.data(), A.data());
    double l = 0;
    for (int h = 0; h < H; ++h) l += wdt[h] * dt[h];
    for (int i = 0; i < 2 * n; ++i) l += wA[i] * A[i];
    return l;
  };
  std::vector<double> dt(H), A(2 * n), g_log_dt(H, 0.0), g_log_A_real(n, 0.0), g_A_imag(n, 0.0);
  ssm_diag_prepare(H, N2, log_dt.data(), log_A_real.data(), A_imag.data(), dt.data(), A.data());
  ssm_diag_prepare_backward(H, N2, dt.data(), A.data(), wdt.data(), wA.data(), g_log_dt.data(),
                            g_log_A_real.data(), g_A_imag.data());

  const double eps = 1e-6;
  auto fd = [&](double& x) {
    const double x0 = x;
    x = x0 + eps;
    const double lp = loss();
    x = x0 - eps;
    const double lm = loss();
    x = x0;
    return (lp - lm) / (2 * eps);
  };
  for (int h = 0; h < H; ++h) EXPECT_NEAR(g_log_dt[h], fd(log_dt[h]), 1e-8) << "log_dt " << h;
  for (int i = 0; i < n; ++i) {
    EXPECT_NEAR(g_log_A_real[i], fd(log_A_real[i]), 1e-8) << "log_A_real " << i;
    EXPECT_NEAR(g_A_imag[i], fd(A_imag[i]), 1e-8) << "A_imag " << i;
  }
}

TEST(SsmPrepare, RefusesEmptySizes) {
  float x = 0;
  EXPECT_THROW(ssm_diag_prepare(0, 2, &x, &x, &x, &x, &x), mk::Error);
  EXPECT_THROW(ssm_diag_prepare_backward(2, 0, &x, &x, &x, &x, &x, &x, &x), mk::Error);
}

}  // namespace
