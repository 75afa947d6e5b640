// S4 (DPLR) mixer: the HiPPO-LegS NPLR decomposition (eigen-decomposition
// correctness), the Cauchy/Woodbury kernel against the naive kernel
// C Abar^k Bbar from dense matrix powers (random parameters, and the init
// against the real LegS system), CNN mode against RNN mode at L = 1024 in
// fp32, and finite-difference gradients in double.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>

#include "mambakit/layers/hippo.h"
#include "mambakit/layers/s4_mixer.h"
#include "mambakit/ops/dplr_kernel.h"
#include "mixer_test_util.h"
#include "test_util.h"

namespace mk {
namespace {

using cd = std::complex<double>;
using CMat = std::vector<cd>;  // (n, n) row-major

// Solves M X = R (n x m) by Gaussian elimination with partial pivoting.
CMat solve(CMat M, CMat R, int n, int m) {
  for (int c = 0; c < n; ++c) {
    int piv = c;
    for (int r = c + 1; r < n; ++r)
      if (std::abs(M[r * n + c]) > std::abs(M[piv * n + c])) piv = r;
    for (int j = 0; j < n; ++j) std::swap(M[c * n + j], M[piv * n + j]);
    for (int j = 0; j < m; ++j) std::swap(R[c * m + j], R[piv * m + j]);
    for (int r = 0; r < n; ++r) {
      if (r == c) continue;
      const cd f = M[r * n + c] / M[c * n + c];
      for (int j = 0; j < n; ++j) M[r * n + j] -= f * M[c * n + j];
      for (int j = 0; j < m; ++j) R[r * m + j] -= f * R[c * m + j];
    }
  }
  for (int r = 0; r < n; ++r)
    for (int j = 0; j < m; ++j) R[r * m + j] /= M[r * n + r];
  return R;
}

// Naive kernel of a (complex) state space system: K[l] = C Abar^l Bbar with
// the bilinear Abar = (I - dt/2 A)^-1 (I + dt/2 A), Bbar = (I - dt/2 A)^-1 dt B.
std::vector<cd> naive_kernel(const CMat& A, const std::vector<cd>& B, const std::vector<cd>& C, double dt,
                             int n, int L) {
  CMat M1(size_t(n) * n), M2(size_t(n) * n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const cd id = i == j ? 1.0 : 0.0;
      M1[i * n + j] = id - 0.5 * dt * A[i * n + j];
      M2[i * n + j] = id + 0.5 * dt * A[i * n + j];
    }
  const CMat Ab = solve(M1, M2, n, n);
  CMat x(n);
  for (int i = 0; i < n; ++i) x[i] = dt * B[i];
  x = solve(M1, x, n, 1);  // Bbar
  std::vector<cd> K(L);
  for (int l = 0; l < L; ++l) {  // K[l] = C x_l, x_{l+1} = Abar x_l
    cd s = 0;
    for (int i = 0; i < n; ++i) s += C[i] * x[i];
    K[l] = s;
    CMat y(n, 0.0);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) y[i] += Ab[i * n + j] * x[j];
    x.swap(y);
  }
  return K;
}

// The full-N system of one channel from its half parameters (conjugate completion):
// A = diag(Lambda, conj Lambda) - [P; conj P][P; conj P]^*.
void full_system(const std::vector<cd>& lam, const std::vector<cd>& P, const std::vector<cd>& B,
                 const std::vector<cd>& C, CMat& A, std::vector<cd>& Bf, std::vector<cd>& Cf) {
  const int N2 = int(lam.size()), n = 2 * N2;
  std::vector<cd> Pf(n), Lf(n);
  Bf.resize(n);
  Cf.resize(n);
  for (int i = 0; i < N2; ++i) {
    Lf[i] = lam[i]; Lf[N2 + i] = std::conj(lam[i]);
    Pf[i] = P[i]; Pf[N2 + i] = std::conj(P[i]);
    Bf[i] = B[i]; Bf[N2 + i] = std::conj(B[i]);
    Cf[i] = C[i]; Cf[N2 + i] = std::conj(C[i]);
  }
  A.assign(size_t(n) * n, 0.0);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) A[i * n + j] = (i == j ? Lf[i] : 0.0) - Pf[i] * std::conj(Pf[j]);
}

TEST(Hippo, HermitianEigReconstructs) {
  const int n = 12;
  auto re = test::randn<double>(n * n, 1), im = test::randn<double>(n * n, 2);
  CMat H(n * n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const cd a(re[i * n + j], im[i * n + j]), b(re[j * n + i], im[j * n + i]);
      H[i * n + j] = 0.5 * (a + std::conj(b));
    }
  std::vector<double> w;
  CMat V;
  hermitian_eig(n, H, w, V);
  for (int i = 1; i < n; ++i) EXPECT_LE(w[i - 1], w[i]);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      cd rec = 0, gram = 0;
      for (int k = 0; k < n; ++k) {
        rec += V[i * n + k] * w[k] * std::conj(V[j * n + k]);
        gram += std::conj(V[k * n + i]) * V[k * n + j];
      }
      EXPECT_NEAR(std::abs(rec - H[i * n + j]), 0.0, 1e-12);
      EXPECT_NEAR(std::abs(gram - (i == j ? 1.0 : 0.0)), 0.0, 1e-12);
    }
}

TEST(Hippo, LegSNplrReconstructsLegS) {
  for (int N : {8, 64}) {
    SCOPED_TRACE("N=" + std::to_string(N));
    std::vector<double> A, B;
    hippo_legs(N, A, B);
    EXPECT_DOUBLE_EQ(A[0], -1.0);
    EXPECT_DOUBLE_EQ(A[1 * N + 0], -std::sqrt(3.0));
    EXPECT_DOUBLE_EQ(A[0 * N + 1], 0.0);
    const HippoNplr r = hippo_legs_nplr(N);
    const int N2 = N / 2;
    // Full basis W = [V, conj V] (N x N) must be unitary.
    CMat W(N * N);
    std::vector<cd> Lf(N), Pf(N);
    for (int i = 0; i < N; ++i)
      for (int j = 0; j < N2; ++j) {
        W[i * N + j] = r.V[i * N2 + j];
        W[i * N + N2 + j] = std::conj(r.V[i * N2 + j]);
      }
    for (int j = 0; j < N2; ++j) {
      EXPECT_DOUBLE_EQ(r.Lambda[j].real(), -0.5);
      EXPECT_GT(r.Lambda[j].imag(), 0.0);
      Lf[j] = r.Lambda[j]; Lf[N2 + j] = std::conj(r.Lambda[j]);
      Pf[j] = r.P[j]; Pf[N2 + j] = std::conj(r.P[j]);
    }
    double worst_unitary = 0, worst_A = 0, worst_B = 0;
    for (int i = 0; i < N; ++i)
      for (int j = 0; j < N; ++j) {
        cd g = 0;
        for (int k = 0; k < N; ++k) g += std::conj(W[k * N + i]) * W[k * N + j];
        worst_unitary = std::max(worst_unitary, std::abs(g - (i == j ? 1.0 : 0.0)));
      }
    // W (Lambda - P P^*) W^* == A_LegS
    CMat M(N * N);
    for (int i = 0; i < N; ++i)
      for (int j = 0; j < N; ++j) M[i * N + j] = (i == j ? Lf[i] : 0.0) - Pf[i] * std::conj(Pf[j]);
    for (int i = 0; i < N; ++i)
      for (int j = 0; j < N; ++j) {
        cd s = 0;
        for (int k = 0; k < N; ++k)
          for (int l = 0; l < N; ++l) s += W[i * N + k] * M[k * N + l] * std::conj(W[j * N + l]);
        worst_A = std::max(worst_A, std::abs(s - A[i * N + j]) / (1 + std::fabs(A[i * N + j])));
      }
    // W [B~; conj B~] == B_LegS
    for (int i = 0; i < N; ++i) {
      cd s = 0;
      for (int j = 0; j < N2; ++j) s += W[i * N + j] * r.B[j] + W[i * N + N2 + j] * std::conj(r.B[j]);
      worst_B = std::max(worst_B, std::abs(s - B[i]));
    }
    EXPECT_LT(worst_unitary, 1e-12);
    EXPECT_LT(worst_A, 1e-10);
    EXPECT_LT(worst_B, 1e-10);
  }
}

TEST(S4Kernel, CauchyWoodburyEqualsDenseMatrixPowers) {
  const int H = 2, N2 = 4, N = 2 * N2;
  for (int L : {16, 15, 1, 2}) {
    for (int copies : {1, 2}) {
      SCOPED_TRACE("L=" + std::to_string(L) + " copies=" + std::to_string(copies));
      auto dt = test::uniform<double>(H, 1, 0.05, 0.8);
      auto lr = test::uniform<double>(H * N2, 2, 0.1, 1.0);
      auto rnd = test::randn<double>(2 * H * N2 * (3 + copies), 3);
      std::vector<cd> lam(H * N2), P(H * N2), B(H * N2), C(copies * H * N2);
      for (int i = 0; i < H * N2; ++i) {
        lam[i] = {-lr[i], 3 * rnd[i]};
        P[i] = {rnd[H * N2 + 2 * i], rnd[H * N2 + 2 * i + 1]};
        B[i] = {rnd[3 * H * N2 + 2 * i], rnd[3 * H * N2 + 2 * i + 1]};
      }
      for (int i = 0; i < copies * H * N2; ++i) C[i] = {rnd[5 * H * N2 + 2 * i], rnd[5 * H * N2 + 2 * i + 1]};
      std::vector<double> K(copies * H * L), want(copies * H * L);
      ops::dplr_kernel_forward(ops::DplrKernelShape{H, N2, L, copies}, dt.data(), lam.data(), P.data(),
                               B.data(), C.data(), K.data());
      double imag = 0;
      for (int c = 0; c < copies; ++c)
        for (int h = 0; h < H; ++h) {
          auto sl = [&](const std::vector<cd>& v, int off) {
            return std::vector<cd>(v.begin() + off * N2, v.begin() + (off + 1) * N2);
          };
          CMat A;
          std::vector<cd> Bf, Cf;
          full_system(sl(lam, h), sl(P, h), sl(B, h), sl(C, c * H + h), A, Bf, Cf);
          auto k = naive_kernel(A, Bf, Cf, dt[h], N, L);
          for (int l = 0; l < L; ++l) {
            want[(c * H + h) * L + l] = k[l].real();
            imag = std::max(imag, std::fabs(k[l].imag()));
          }
        }
      EXPECT_LT(imag, 1e-10);  // the conjugate-completed system is real
      EXPECT_LT(test::max_rel_error(K, want), 1e-10);
      EXPECT_TRUE(test::all_close(K, want, 1e-10, 1e-8));
    }
  }
}

TEST(S4Kernel, InitIsTheLegSSystem) {
  // At init every channel's SSM is HiPPO-LegS in another basis: its kernel
  // equals the real LegS system's with C_real = [C, conj C] W^*.
  ModelConfig cfg;
  cfg.d_model = 2;
  cfg.s4_d_state = 8;
  test::MixerUnderTest<double> m("s4", cfg, 5);
  auto* s4 = dynamic_cast<S4Mixer<double>*>(m.mixer.get());
  ASSERT_NE(s4, nullptr);
  const int N = 8, N2 = 4, L = 20;
  std::vector<double> K(2 * L);
  s4->kernel(m.ps, L, K.data());
  std::vector<double> A, B;
  hippo_legs(N, A, B);
  const HippoNplr r = hippo_legs_nplr(N);
  for (int h = 0; h < 2; ++h) {
    const double dt = std::exp(m.param("log_dt")[h]);
    const double* C = m.param("C") + h * N2 * 2;
    CMat Ac(N * N);
    std::vector<cd> Bc(N), Cr(N, 0.0);
    for (int i = 0; i < N * N; ++i) Ac[i] = A[i];
    for (int i = 0; i < N; ++i) Bc[i] = B[i];
    for (int j = 0; j < N; ++j)
      for (int n = 0; n < N2; ++n) {
        const cd c(C[2 * n], C[2 * n + 1]);
        Cr[j] += c * std::conj(r.V[j * N2 + n]) + std::conj(c) * r.V[j * N2 + n];
      }
    auto k = naive_kernel(Ac, Bc, Cr, dt, N, L);
    std::vector<double> want(L), got(K.begin() + h * L, K.begin() + (h + 1) * L);
    for (int l = 0; l < L; ++l) want[l] = k[l].real();
    EXPECT_TRUE(test::all_close(got, want, 1e-9, 1e-7));
  }
}

TEST(S4, ParameterNamesShapesAndDecay) {
  ModelConfig cfg;
  cfg.d_model = 6;
  cfg.s4_d_state = 8;
  test::MixerUnderTest<float> m("s4", cfg);
  for (const char* n : {"P", "B", "C"}) EXPECT_EQ(m.ps.entry(std::string("mixer.") + n).shape, (Shape{6, 4, 2}));
  EXPECT_EQ(m.ps.entry("mixer.log_dt").shape, (Shape{6}));
  EXPECT_EQ(m.ps.entry("mixer.log_A_real").shape, (Shape{6, 4}));
  for (const char* n : {"log_dt", "log_A_real", "A_imag", "P", "B", "C", "D", "output_linear.bias"})
    EXPECT_FALSE(m.ps.entry(std::string("mixer.") + n).decay) << n;
  EXPECT_TRUE(m.ps.entry("mixer.output_linear.weight").decay);
}

TEST(S4, CnnModeEqualsRnnModeAtLength1024) {
  ModelConfig cfg;
  cfg.d_model = 8;
  cfg.s4_d_state = 64;
  test::MixerUnderTest<float> m("s4", cfg, 51);
  const int B = 2, L = 1024;
  auto x = test::randn<float>(size_t(B) * L * cfg.d_model, 52);
  auto [full, stepped] = test::forward_and_steps(*m.mixer, m.ps, x, cfg.d_model, B, L);
  const double rel = test::max_rel_error(stepped, full);
  EXPECT_LT(rel, 1e-4);
  std::printf("S4 fp32 L=1024: max |RNN - CNN| / max |CNN| = %.3g\n", rel);
}

TEST(S4, GradientsMatchFiniteDifferences) {
  for (bool bidir : {false, true})
    for (int L : {10, 7}) {
      SCOPED_TRACE(std::string(bidir ? "bidirectional" : "causal") + " L=" + std::to_string(L));
      ModelConfig cfg;
      cfg.d_model = 3;
      cfg.s4_d_state = 8;
      cfg.bidirectional = bidir;
      test::MixerUnderTest<double> m("s4", cfg, 61);
      test::perturb_params(m.ps, 62, 0.1);
      // dt ~ 0.05..0.5 so that Lambda, P, B and dt move the loss well above round-off.
      auto u = test::uniform<double>(3, 63, std::log(0.05), std::log(0.5));
      for (int h = 0; h < 3; ++h) m.param("log_dt")[h] = u[h];
      test::check_mixer_gradients(*m.mixer, m.ps, cfg.d_model, 2, L, 64);
    }
}

}  // namespace
}  // namespace mk
