// The two-tower feature combination [u, v, u*v, u-v] and its backward, on
// hand-computed values (the model-level gradient check is in
// test_mamba_mixer.cpp, PairClassifier.*).
#include <gtest/gtest.h>

#include "mambakit/ops/pair_features.h"

namespace {

TEST(PairFeatures, CombinationOfTwoPairs) {
  // Two pairs, d = 2: u rows {1, 2}, {0, -3}; v rows {3, -1}, {2, 5}.
  const float u[4] = {1, 2, 0, -3}, v[4] = {3, -1, 2, 5};
  float f[16];
  mk::ops::pair_features_forward(u, v, f, 2, 2);
  const float want[16] = {1, 2, 3, -1, 3, -2, -2, 3,   // [u, v, u*v, u-v] of pair 0
                          0, -3, 2, 5, 0, -15, -2, -8};  // of pair 1
  for (int i = 0; i < 16; ++i) EXPECT_EQ(f[i], want[i]) << i;
}

TEST(PairFeatures, BackwardByHand) {
  // d = 1: f = [u, v, uv, u - v]; du = g0 + g2 v + g3, dv = g1 + g2 u - g3.
  const double u[1] = {2}, v[1] = {-3}, g[4] = {1, 10, 100, 1000};
  double du[1], dv[1];
  mk::ops::pair_features_backward(g, u, v, du, dv, 1, 1);
  EXPECT_EQ(du[0], 1 + 100 * -3 + 1000);
  EXPECT_EQ(dv[0], 10 + 100 * 2 - 1000);
}

}  // namespace
