// The small elementwise and layout ops of ops/elementwise.h (the CPU
// reference of the CUDA versions): hand-computed small cases, hand-written
// loops on awkward sizes, a finite-difference check of channel_scale's
// backward, and the adjoint identity of the pooling pair.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "mambakit/error.h"
#include "mambakit/ops/elementwise.h"
#include "test_util.h"

namespace {

namespace ops = mk::ops;
using mk::test::randn;

TEST(Elementwise, FlatOpsByHand) {
  const double a[5] = {1, -2, 3.5, 0, 10}, b[5] = {0.5, 2, -1, 4, -3};
  double y[5];
  ops::add(a, b, y, 5);
  const double add_want[5] = {1.5, 0, 2.5, 4, 7};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(y[i], add_want[i]) << i;

  double acc[5] = {1, 1, 1, 1, 1};
  ops::axpy(2.0, a, acc, 5);  // 1 + 2a
  const double axpy_want[5] = {3, -3, 8, 1, 21};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(acc[i], axpy_want[i]) << i;

  ops::scale(-0.5, acc, 5);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(acc[i], -0.5 * axpy_want[i]) << i;

  double m[5] = {1, 2, 3, 4, 5};
  ops::mul_acc(a, b, m, 5);  // m += a b
  const double mul_want[5] = {1.5, -2, -0.5, 4, -25};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(m[i], mul_want[i]) << i;

  const float lg[3] = {0.f, std::log(2.f), std::log(16.f)};
  float A[3];
  ops::neg_exp(lg, A, 3);
  EXPECT_FLOAT_EQ(A[0], -1.f);
  EXPECT_FLOAT_EQ(A[1], -2.f);
  EXPECT_FLOAT_EQ(A[2], -16.f);
}

TEST(Elementwise, AddInPlaceAndAgainstLoops) {
  const size_t n = 100003;  // above the OpenMP threshold, odd
  const auto a = randn<float>(n, 1), b = randn<float>(n, 2), y0 = randn<float>(n, 3);
  std::vector<float> y = a;
  ops::add(y.data(), b.data(), y.data(), n);  // y aliases a
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(y[i], a[i] + b[i]) << i;
  y = b;
  ops::add(a.data(), y.data(), y.data(), n);  // y aliases b
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(y[i], a[i] + b[i]) << i;
  y = y0;
  ops::axpy(0.25f, a.data(), y.data(), n);
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(y[i], y0[i] + 0.25f * a[i]) << i;
  y = y0;
  ops::mul_acc(a.data(), b.data(), y.data(), n);
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(y[i], y0[i] + a[i] * b[i]) << i;
}

TEST(Elementwise, CopyColsByHand) {
  // src (2, 4), columns [1, 3) -> dst (2, 5) columns [2, 4); the rest kept.
  const double src[8] = {0, 1, 2, 3, 10, 11, 12, 13};
  double dst[10];
  for (int i = 0; i < 10; ++i) dst[i] = -1;
  ops::copy_cols(src, 2, 4, 1, 2, dst, 5, 2);
  const double want[10] = {-1, -1, 1, 2, -1, -1, -1, 11, 12, -1};
  for (int i = 0; i < 10; ++i) EXPECT_EQ(dst[i], want[i]) << i;
  // Out of range: refused.
  EXPECT_THROW(ops::copy_cols(src, 2, 4, 3, 2, dst, 5, 0), mk::Error);
  EXPECT_THROW(ops::copy_cols(src, 2, 4, 0, 2, dst, 5, 4), mk::Error);
  // Zero rows or width: nothing to do, nothing checked.
  EXPECT_NO_THROW(ops::copy_cols(src, 0, 4, 3, 2, dst, 5, 0));
}

TEST(Elementwise, Transpose2x3) {
  const float x[6] = {1, 2, 3, 4, 5, 6};  // (2, 3)
  float y[6];
  ops::transpose(x, y, 1, 2, 3);
  const float want[6] = {1, 4, 2, 5, 3, 6};  // (3, 2)
  for (int i = 0; i < 6; ++i) EXPECT_EQ(y[i], want[i]) << i;
}

TEST(Elementwise, TransposeBatchedAcrossTiles) {
  const size_t B = 3, R = 70, C = 45;  // not multiples of the 32 tile
  const auto x = randn<double>(B * R * C, 4);
  std::vector<double> y(x.size(), NAN);
  ops::transpose(x.data(), y.data(), B, R, C);
  for (size_t b = 0; b < B; ++b)
    for (size_t r = 0; r < R; ++r)
      for (size_t c = 0; c < C; ++c)
        ASSERT_EQ(y[(b * C + c) * R + r], x[(b * R + r) * C + c]) << b << " " << r << " " << c;
}

TEST(Elementwise, ReverseTimeByHand) {
  // (batch 2, len 3, width 2): each sequence's steps in reverse order.
  const float x[12] = {0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15};
  float y[12], back[12];
  ops::reverse_time(x, y, 2, 3, 2);
  const float want[12] = {4, 5, 2, 3, 0, 1, 14, 15, 12, 13, 10, 11};
  for (int i = 0; i < 12; ++i) EXPECT_EQ(y[i], want[i]) << i;
  ops::reverse_time(y, back, 2, 3, 2);  // its own inverse
  for (int i = 0; i < 12; ++i) EXPECT_EQ(back[i], x[i]) << i;
  EXPECT_THROW(ops::reverse_time(x, const_cast<float*>(x) + 1, 2, 3, 2), mk::Error);
  EXPECT_NO_THROW(ops::reverse_time(x, y, 0, 3, 2));
}

TEST(Elementwise, ChannelScaleForwardByHand) {
  // x (2, 3), D (3): y += D x.
  const double x[6] = {1, 2, 3, 4, 5, 6}, D[3] = {10, -1, 0.5};
  double y[6] = {1, 1, 1, 0, 0, 0};
  ops::channel_scale_forward(x, D, y, 2, 3);
  const double want[6] = {11, -1, 2.5, 40, -5, 3};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(y[i], want[i]) << i;
}

// L = sum_{r,h} w[r,h] y[r,h], y = y0 + D x: the backward from dy = w must
// equal central differences in x and D, added to the starting gradients.
TEST(Elementwise, ChannelScaleBackwardFiniteDifference) {
  const size_t rows = 7, H = 5, n = rows * H;
  auto x = randn<double>(n, 5), D = randn<double>(H, 6);
  const auto w = randn<double>(n, 7), y0 = randn<double>(n, 8);
  const auto dx0 = randn<double>(n, 9), dD0 = randn<double>(H, 10);
  auto loss = [&]() {
    std::vector<double> y = y0;
    ops::channel_scale_forward(x.data(), D.data(), y.data(), rows, H);
    double s = 0;
    for (size_t i = 0; i < n; ++i) s += w[i] * y[i];
    return s;
  };
  std::vector<double> dx = dx0, dD = dD0;
  ops::channel_scale_backward(w.data(), x.data(), D.data(), dx.data(), dD.data(), rows, H);
  const double eps = 1e-6;
  for (size_t i = 0; i < n; ++i) {
    const double keep = x[i];
    x[i] = keep + eps;
    const double lp = loss();
    x[i] = keep - eps;
    const double lm = loss();
    x[i] = keep;
    EXPECT_NEAR(dx[i] - dx0[i], (lp - lm) / (2 * eps), 1e-7) << "dx " << i;
  }
  for (size_t h = 0; h < H; ++h) {
    const double keep = D[h];
    D[h] = keep + eps;
    const double lp = loss();
    D[h] = keep - eps;
    const double lm = loss();
    D[h] = keep;
    EXPECT_NEAR(dD[h] - dD0[h], (lp - lm) / (2 * eps), 1e-7) << "dD " << h;
  }
}

TEST(Elementwise, SequencePoolByHand) {
  // B = 2, L = 3, D = 2; lengths {2, 3}.
  const double h[12] = {1, 2, 3, 4, 100, 200,   // sequence 0: t = 0, 1, 2 (t = 2 is padding)
                        -1, 0, 2, 6, 5, 3};     // sequence 1
  const int32_t len[2] = {2, 3};
  double pooled[4];
  ops::sequence_pool_forward(h, len, pooled, 2, 3, 2, /*last=*/false);
  EXPECT_EQ(pooled[0], 2);  // (1 + 3) / 2
  EXPECT_EQ(pooled[1], 3);  // (2 + 4) / 2
  EXPECT_EQ(pooled[2], 2);  // (-1 + 2 + 5) / 3
  EXPECT_EQ(pooled[3], 3);  // (0 + 6 + 3) / 3
  ops::sequence_pool_forward(h, len, pooled, 2, 3, 2, /*last=*/true);
  const double last_want[4] = {3, 4, 5, 3};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(pooled[i], last_want[i]) << i;
  // No lengths: every sequence is L long.
  ops::sequence_pool_forward(h, nullptr, pooled, 2, 3, 2, /*last=*/true);
  const double full_want[4] = {100, 200, 5, 3};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(pooled[i], full_want[i]) << i;

  const double g[4] = {6, -3, 9, 12};
  double dh[12];
  for (double& v : dh) v = NAN;  // written entirely
  ops::sequence_pool_backward(g, len, dh, 2, 3, 2, /*last=*/false);
  const double mean_dh[12] = {3, -1.5, 3, -1.5, 0, 0, 3, 4, 3, 4, 3, 4};
  for (int i = 0; i < 12; ++i) EXPECT_DOUBLE_EQ(dh[i], mean_dh[i]) << i;
  for (double& v : dh) v = NAN;
  ops::sequence_pool_backward(g, len, dh, 2, 3, 2, /*last=*/true);
  const double last_dh[12] = {0, 0, 6, -3, 0, 0, 0, 0, 0, 0, 9, 12};
  for (int i = 0; i < 12; ++i) EXPECT_EQ(dh[i], last_dh[i]) << i;
}

// Pooling is linear, so <g, pool(h)> = <pool_backward(g), h> exactly (up to
// rounding) for both modes, on random lengths.
TEST(Elementwise, SequencePoolBackwardIsTheAdjoint) {
  const int B = 5, L = 37, D = 6;
  const auto h = randn<double>(size_t(B) * L * D, 11), g = randn<double>(size_t(B) * D, 12);
  const int32_t len[B] = {1, 37, 20, 2, 36};
  for (bool last : {false, true}) {
    std::vector<double> pooled(size_t(B) * D), dh(h.size(), NAN);
    ops::sequence_pool_forward(h.data(), len, pooled.data(), B, L, D, last);
    ops::sequence_pool_backward(g.data(), len, dh.data(), B, L, D, last);
    double lhs = 0, rhs = 0;
    for (size_t i = 0; i < pooled.size(); ++i) lhs += g[i] * pooled[i];
    for (size_t i = 0; i < h.size(); ++i) rhs += dh[i] * h[i];
    EXPECT_NEAR(lhs, rhs, 1e-12 * (1 + std::fabs(lhs))) << (last ? "last" : "mean");
  }
}

TEST(Elementwise, SequencePoolRefusesBadLengths) {
  const float h[6] = {0}, g[2] = {0};
  float pooled[2], dh[6];
  const int32_t zero[1] = {0}, long_[1] = {4};
  EXPECT_THROW(ops::sequence_pool_forward(h, zero, pooled, 1, 3, 2, false), mk::Error);
  EXPECT_THROW(ops::sequence_pool_forward(h, long_, pooled, 1, 3, 2, true), mk::Error);
  EXPECT_THROW(ops::sequence_pool_backward(g, zero, dh, 1, 3, 2, true), mk::Error);
  EXPECT_THROW(ops::sequence_pool_backward(g, long_, dh, 1, 3, 2, false), mk::Error);
}

}  // namespace
