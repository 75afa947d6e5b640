// S4D mixer: init values against the S4D-Lin / S4D-Inv formulas, the
// Vandermonde kernel against its definition, the FFT convolution against a
// direct sum (causal and bidirectional), CNN mode against RNN mode at
// L = 1024 in fp32, and finite-difference gradients in double.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>

#include "mambakit/error.h"
#include "mambakit/layers/s4d_mixer.h"
#include "mambakit/ops/fft_conv.h"
#include "mambakit/ops/s4d_kernel.h"
#include "mixer_test_util.h"
#include "test_util.h"

namespace mk {
namespace {

ModelConfig s4d_config(int dm, int N, const std::string& init = "lin", bool bidir = false) {
  ModelConfig c;
  c.d_model = dm;
  c.s4_d_state = N;
  c.s4d_init = init;
  c.bidirectional = bidir;
  return c;
}

TEST(S4D, InitFollowsLinAndInvFormulas) {
  for (const std::string init : {"lin", "inv"}) {
    const int H = 16, N = 64, N2 = N / 2;
    ModelConfig cfg = s4d_config(H, N, init);
    test::MixerUnderTest<double> m("s4d", cfg);
    const double* lar = m.param("log_A_real");
    const double* aim = m.param("A_imag");
    const double* ldt = m.param("log_dt");
    for (int h = 0; h < H; ++h) {
      EXPECT_GE(ldt[h], std::log(cfg.dt_min));
      EXPECT_LE(ldt[h], std::log(cfg.dt_max));
      for (int n = 0; n < N2; ++n) {
        EXPECT_DOUBLE_EQ(-std::exp(lar[h * N2 + n]), -0.5);
        const double want = init == "lin" ? M_PI * n : N / M_PI * (double(N) / (2 * n + 1) - 1);
        EXPECT_NEAR(aim[h * N2 + n], want, 1e-12 * (1 + std::fabs(want))) << init << " n=" << n;
      }
    }
    // C ~ complex N(0, 1/2) per part: sample moments of H*N2*2 = 1024 draws.
    const auto& e = m.ps.entry("mixer.C");
    EXPECT_EQ(e.shape, (Shape{H, N2, 2}));
    double mean = 0, var = 0;
    for (size_t i = 0; i < e.numel; ++i) mean += m.ps.data()[e.offset + i];
    mean /= e.numel;
    for (size_t i = 0; i < e.numel; ++i) var += std::pow(m.ps.data()[e.offset + i] - mean, 2);
    var /= e.numel;
    EXPECT_NEAR(mean, 0.0, 0.1);
    EXPECT_NEAR(var, 0.5, 0.1);
  }
}

TEST(S4D, ParameterNamesShapesAndDecay) {
  ModelConfig cfg = s4d_config(6, 8, "lin", true);
  test::MixerUnderTest<float> m("s4d", cfg);
  const auto& ps = m.ps;
  EXPECT_EQ(ps.entry("mixer.log_dt").shape, (Shape{6}));
  EXPECT_EQ(ps.entry("mixer.log_A_real").shape, (Shape{6, 4}));
  EXPECT_EQ(ps.entry("mixer.A_imag").shape, (Shape{6, 4}));
  EXPECT_EQ(ps.entry("mixer.C").shape, (Shape{2, 6, 4, 2}));
  EXPECT_EQ(ps.entry("mixer.D").shape, (Shape{6}));
  EXPECT_EQ(ps.entry("mixer.output_linear.weight").shape, (Shape{12, 6}));
  EXPECT_EQ(ps.entry("mixer.output_linear.bias").shape, (Shape{12}));
  for (const char* n : {"log_dt", "log_A_real", "A_imag", "C", "D", "output_linear.bias"})
    EXPECT_FALSE(ps.entry(std::string("mixer.") + n).decay) << n;
  EXPECT_TRUE(ps.entry("mixer.output_linear.weight").decay);
}

TEST(S4D, VandermondeKernelMatchesDefinition) {
  const int H = 3, N2 = 5, L = 37;
  auto dt = test::uniform<double>(H, 1, 0.01, 0.5);
  auto ar = test::uniform<double>(H * N2, 2, 0.1, 1.0);
  auto ai = test::randn<double>(H * N2, 3, 3.0);
  auto cr = test::randn<double>(2 * H * N2 * 2, 4);
  std::vector<std::complex<double>> A(H * N2), C(2 * H * N2);
  for (int i = 0; i < H * N2; ++i) A[i] = {-ar[i], ai[i]};
  for (int i = 0; i < 2 * H * N2; ++i) C[i] = {cr[2 * i], cr[2 * i + 1]};
  std::vector<double> K(2 * H * L), want(2 * H * L, 0.0);
  ops::s4d_kernel_forward(ops::S4DKernelShape{H, N2, L, 2}, dt.data(), A.data(), C.data(), K.data());
  for (int c = 0; c < 2; ++c)
    for (int h = 0; h < H; ++h)
      for (int l = 0; l < L; ++l) {
        std::complex<double> s = 0;
        for (int n = 0; n < N2; ++n) {
          const auto a = A[h * N2 + n];
          s += C[(c * H + h) * N2 + n] * (std::exp(dt[h] * a) - 1.0) / a * std::exp(double(l) * dt[h] * a);
        }
        want[(c * H + h) * L + l] = 2 * s.real();
      }
  EXPECT_TRUE(test::all_close(K, want, 1e-12, 1e-10));
}

// Direct O(L^2) convolution, causal plus optional anti-causal kernel.
template <typename T>
std::vector<T> direct_conv(const std::vector<T>& u, const std::vector<T>& K, const T* Krev, int B, int L,
                           int H) {
  std::vector<T> y(u.size(), T(0));
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      for (int t = 0; t < L; ++t) {
        double s = 0;
        for (int j = 0; j <= t; ++j) s += double(K[h * L + t - j]) * u[(size_t(b) * L + j) * H + h];
        if (Krev)
          for (int j = t; j < L; ++j) s += double(Krev[h * L + j - t]) * u[(size_t(b) * L + j) * H + h];
        y[(size_t(b) * L + t) * H + h] = T(s);
      }
  return y;
}

TEST(FftConv, MatchesDirectConvolutionCausalAndBidirectional) {
  const int B = 2, L = 45, H = 3;
  auto u = test::randn<double>(size_t(B) * L * H, 5);
  auto K = test::randn<double>(size_t(2) * H * L, 6);
  std::vector<double> y(u.size());
  const double* none = nullptr;
  ops::fft_conv_forward(ops::FftConvShape{B, L, H}, u.data(), K.data(), none, y.data());
  EXPECT_TRUE(test::all_close(y, direct_conv(u, K, none, B, L, H), 1e-11));
  ops::fft_conv_forward(ops::FftConvShape{B, L, H}, u.data(), K.data(), K.data() + H * L, y.data());
  EXPECT_TRUE(test::all_close(y, direct_conv(u, K, K.data() + H * L, B, L, H), 1e-11));
  // float through fftw3f
  std::vector<float> uf(u.begin(), u.end()), Kf(K.begin(), K.end()), yf(u.size());
  ops::fft_conv_forward(ops::FftConvShape{B, L, H}, uf.data(), Kf.data(), Kf.data() + H * L, yf.data());
  EXPECT_TRUE(test::all_close(yf, direct_conv(u, K, K.data() + H * L, B, L, H), 2e-4));
}

TEST(FftConv, BackwardIsTheAdjoint) {
  // <dy, conv(u, K)> is bilinear: its gradients are checked by finite differences.
  const int B = 2, L = 9, H = 2;
  auto u = test::randn<double>(size_t(B) * L * H, 7);
  auto K = test::randn<double>(size_t(2) * H * L, 8);
  auto dy = test::randn<double>(u.size(), 9);
  std::vector<double> y(u.size()), du(u.size()), dK(K.size());
  for (bool bidir : {false, true}) {
    const double* Kr = bidir ? K.data() + H * L : nullptr;
    auto loss = [&] {
      const double* kr = bidir ? K.data() + H * L : nullptr;
      ops::fft_conv_forward(ops::FftConvShape{B, L, H}, u.data(), K.data(), kr, y.data());
      double s = 0;
      for (size_t i = 0; i < y.size(); ++i) s += y[i] * dy[i];
      return s;
    };
    std::fill(dK.begin(), dK.end(), 0.0);
    ops::fft_conv_backward(ops::FftConvShape{B, L, H}, dy.data(), u.data(), K.data(), Kr, du.data(),
                           dK.data(), bidir ? dK.data() + H * L : static_cast<double*>(nullptr));
    EXPECT_TRUE(test::grad_check("du", u, du, loss, 1e-8));
    std::vector<double> gk(dK.begin(), dK.begin() + (bidir ? 2 : 1) * H * L);
    std::vector<double> kk(K.begin(), K.begin() + gk.size());
    auto lk = [&] {
      std::copy(kk.begin(), kk.end(), K.begin());
      return loss();
    };
    EXPECT_TRUE(test::grad_check(bidir ? "dK bidirectional" : "dK", kk, gk, lk, 1e-8));
    std::copy(kk.begin(), kk.end(), K.begin());
  }
}

TEST(S4D, CnnModeEqualsRnnModeAtLength1024) {
  for (const std::string init : {"lin", "inv"}) {
    ModelConfig cfg = s4d_config(8, 64, init);
    test::MixerUnderTest<float> m("s4d", cfg, 21);
    const int B = 2, L = 1024;
    auto x = test::randn<float>(size_t(B) * L * cfg.d_model, 22);
    auto [full, stepped] = test::forward_and_steps(*m.mixer, m.ps, x, cfg.d_model, B, L);
    const double rel = test::max_rel_error(stepped, full);
    EXPECT_LT(rel, 1e-4) << init;
    std::printf("S4D-%s fp32 L=1024: max |RNN - CNN| / max |CNN| = %.3g\n", init.c_str(), rel);
  }
}

// Raises dt to 0.05..0.5 so that A and dt move the loss well above round-off.
void strong_dt(ParamStore<double>& ps) {
  auto u = test::uniform<double>(64, 31, std::log(0.05), std::log(0.5));
  double* p = ps.param("mixer.log_dt");
  for (size_t i = 0; i < ps.entry("mixer.log_dt").numel; ++i) p[i] = u[i % 64];
}

TEST(S4D, GradientsMatchFiniteDifferences) {
  for (const std::string init : {"lin", "inv"})
    for (bool bidir : {false, true}) {
      SCOPED_TRACE(init + (bidir ? " bidirectional" : " causal"));
      ModelConfig cfg = s4d_config(4, 8, init, bidir);
      test::MixerUnderTest<double> m("s4d", cfg, 41);
      test::perturb_params(m.ps, 42, 0.1);
      strong_dt(m.ps);
      test::check_mixer_gradients(*m.mixer, m.ps, cfg.d_model, 2, 11, 43);
    }
}

TEST(S4D, BidirectionalHasNoStep) {
  ModelConfig cfg = s4d_config(4, 8, "lin", true);
  test::MixerUnderTest<float> m("s4d", cfg);
  auto st = m.mixer->make_state(1);
  std::vector<float> x(4, 0.5f), o(4);
  EXPECT_THROW(m.mixer->step(m.ps, x.data(), o.data(), st, 1), Error);
}

}  // namespace
}  // namespace mk
