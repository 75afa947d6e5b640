// SwiGLU MLP mixer: the forward against its formula, step() against
// forward(), the default width, and finite-difference gradients in double.
#include <gtest/gtest.h>

#include <cmath>

#include "mambakit/layers/mlp_mixer.h"
#include "mixer_test_util.h"
#include "test_util.h"

namespace mk {
namespace {

ModelConfig mlp_config(int hidden = 0) {
  ModelConfig c;
  c.d_model = 6;
  c.mlp_hidden = hidden;
  return c;
}

TEST(MLP, DefaultWidthIsEightThirdsRoundedToEight) {
  ModelConfig c;
  c.d_model = 64;
  EXPECT_EQ(c.mlp_hidden_resolved(), 176);  // 170.67 -> 176
  c.d_model = 6;
  EXPECT_EQ(c.mlp_hidden_resolved(), 16);   // 16 exactly
  c.d_model = 768;
  EXPECT_EQ(c.mlp_hidden_resolved(), 2048);
  c.mlp_hidden = 10;
  EXPECT_EQ(c.mlp_hidden_resolved(), 10);
  test::MixerUnderTest<float> m("mlp", mlp_config(10));
  EXPECT_EQ(m.ps.entry("mixer.gate_proj.weight").shape, (Shape{10, 6}));
  EXPECT_EQ(m.ps.entry("mixer.up_proj.weight").shape, (Shape{10, 6}));
  EXPECT_EQ(m.ps.entry("mixer.down_proj.weight").shape, (Shape{6, 10}));
  EXPECT_EQ(m.ps.entries().size(), 3u);
}

TEST(MLP, ForwardIsSwiGLU) {
  const int F = 10, Dm = 6, rows = 5;
  test::MixerUnderTest<double> m("mlp", mlp_config(F), 1);
  auto x = test::randn<double>(rows * Dm, 2);
  std::vector<double> out(rows * Dm), want(rows * Dm, 0.0);
  m.mixer->forward(m.ps, x.data(), out.data(), 1, rows);
  const double* Wg = m.param("gate_proj.weight");
  const double* Wu = m.param("up_proj.weight");
  const double* Wd = m.param("down_proj.weight");
  for (int r = 0; r < rows; ++r)
    for (int f = 0; f < F; ++f) {
      double g = 0, u = 0;
      for (int d = 0; d < Dm; ++d) {
        g += Wg[f * Dm + d] * x[r * Dm + d];
        u += Wu[f * Dm + d] * x[r * Dm + d];
      }
      const double h = g / (1 + std::exp(-g)) * u;
      for (int d = 0; d < Dm; ++d) want[r * Dm + d] += Wd[d * F + f] * h;
    }
  EXPECT_TRUE(test::all_close(out, want, 1e-13));
}

TEST(MLP, StepEqualsForward) {
  test::MixerUnderTest<float> m("mlp", mlp_config(), 3);
  auto x = test::randn<float>(2 * 7 * 6, 4);
  auto [full, stepped] = test::forward_and_steps(*m.mixer, m.ps, x, 6, 2, 7);
  EXPECT_TRUE(test::all_close(stepped, full, 1e-6));
}

TEST(MLP, GradientsMatchFiniteDifferences) {
  test::MixerUnderTest<double> m("mlp", mlp_config(12), 5);
  test::check_mixer_gradients(*m.mixer, m.ps, 6, 2, 5, 6);
}

}  // namespace
}  // namespace mk
