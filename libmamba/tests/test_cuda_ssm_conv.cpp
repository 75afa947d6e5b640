// The S4/S4D convolution-mode ops on CUDA (ops/cuda/ssm_conv.h) against the
// CPU reference run in double on the values the GPU sees, in the style of
// test_cuda_backend.cpp: one table row per op, awkward and random shapes,
// outputs poisoned with NaN before each GPU run (an unwritten element
// fails), accumulated gradients starting from random values on both sides.
// Parameters are drawn from the ranges the layers use: dt log-uniform in
// [1e-3, 1e-1], S4D-Lin A = -1/2 + i pi n, HiPPO-LegS NPLR (Lambda, P, B)
// for S4.
//
// Without a GPU every table row is skipped with the reason the CUDA runtime
// gives; the refusals of unsupported shapes run everywhere. Without CUDA in
// the build the file is one skipped test.
#include <gtest/gtest.h>

#ifndef MAMBAKIT_HAVE_CUDA

TEST(CudaSsmConv, NotBuilt) {
  GTEST_SKIP() << "this build has no CUDA (configure with -DMAMBAKIT_CUDA=ON, or AUTO where "
                  "nvcc is installed, to build and test the CUDA kernels)";
}

#else

#include <chrono>
#include <cmath>
#include <complex>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "mambakit/cuda/device.h"
#include "mambakit/error.h"
#include "mambakit/layers/hippo.h"
#include "mambakit/ops/cuda/ssm_conv.h"
#include "mambakit/ops/dplr_kernel.h"
#include "mambakit/ops/fft_conv.h"
#include "mambakit/ops/s4d_kernel.h"
#include "mambakit/ops/ssm_prepare.h"

namespace {

using namespace cuda_test;
namespace cu = mk::ops::cuda;
using cd = std::complex<double>;

// A Vec of interleaved (re, im) pairs seen as complex doubles.
const cd* cplx(const Vec& v) { return reinterpret_cast<const cd*>(v.data()); }
cd* cplx(Vec& v) { return reinterpret_cast<cd*>(v.data()); }

// dt (H): log-uniform in [1e-3, 1e-1], as the layers initialise it.
Vec draw_dt(std::mt19937& rng, int H) {
  Vec dt = uniform(rng, H, std::log(1e-3), std::log(1e-1));
  for (double& x : dt) x = std::exp(x);
  return rounded<float>(dt);
}

// S4D-Lin: A[h, n] = -1/2 + i pi n, interleaved.
Vec s4d_lin_A(int H, int N2) {
  Vec A(size_t(2) * H * N2);
  for (int h = 0; h < H; ++h)
    for (int n = 0; n < N2; ++n) {
      A[2 * (size_t(h) * N2 + n)] = -0.5;
      A[2 * (size_t(h) * N2 + n) + 1] = M_PI * n;
    }
  return rounded<float>(A);
}

// Complex normal with unit variance, interleaved.
Vec complex_normal(std::mt19937& rng, size_t n) { return rounded<float>(randn(rng, 2 * n, std::sqrt(0.5))); }

// ---------------------------------------------------------------------------
// fft_conv
// ---------------------------------------------------------------------------

void test_fft_conv(std::mt19937& rng, Checker& c) {
  c.tol = 2e-5;
  struct S { int B, L, H; };
  // L: 1, odd, prime (1009: 2L = 2018 has a large factor, so n = 2058 > 2L),
  // not powers of two; H not multiples of 32.
  std::vector<S> shapes = {{1, 1, 1},   {2, 5, 3},     {3, 100, 7},  {2, 257, 33},
                           {1, 1000, 5}, {2, 1009, 3}, {5, 64, 70}, {1, 3, 130}};
  shapes.push_back({randint(rng, 1, 4), randint(rng, 1, 1500), randint(rng, 1, 80)});
  for (const S& s : shapes)
    for (int bidir = 0; bidir < 2; ++bidir) {
      c.shape = "B" + std::to_string(s.B) + " L" + std::to_string(s.L) + " H" +
                std::to_string(s.H) + (bidir ? " bidirectional" : " causal");
      const mk::ops::FftConvShape shp{s.B, s.L, s.H};
      const size_t n = size_t(s.B) * s.L * s.H, hl = size_t(s.H) * s.L;
      const Vec u = rounded<float>(randn(rng, n)), dy = rounded<float>(randn(rng, n));
      const Vec K = rounded<float>(randn(rng, hl, 1.0 / std::sqrt(double(s.L))));
      const Vec Kr = rounded<float>(randn(rng, hl, 1.0 / std::sqrt(double(s.L))));
      Vec y_ref(n), du_ref(n), dK_ref(hl), dKr_ref(hl);
      mk::ops::fft_conv_forward<double>(shp, u.data(), K.data(), bidir ? Kr.data() : nullptr,
                                        y_ref.data());
      mk::ops::fft_conv_backward<double>(shp, dy.data(), u.data(), K.data(),
                                         bidir ? Kr.data() : nullptr, du_ref.data(),
                                         dK_ref.data(), bidir ? dKr_ref.data() : nullptr);
      auto u_d = upload<float>(u), dy_d = upload<float>(dy), K_d = upload<float>(K),
           Kr_d = upload<float>(Kr);
      auto y_d = poisoned<float>(n), du_d = poisoned<float>(n), dK_d = poisoned<float>(hl),
           dKr_d = poisoned<float>(hl);
      cu::fft_conv_forward(shp, u_d.data(), K_d.data(), bidir ? Kr_d.data() : nullptr, y_d.data());
      cu::fft_conv_backward(shp, dy_d.data(), u_d.data(), K_d.data(),
                            bidir ? Kr_d.data() : nullptr, du_d.data(), dK_d.data(),
                            bidir ? dKr_d.data() : nullptr);
      c.compare("y", download(y_d), y_ref);
      c.compare("du", download(du_d), du_ref);
      c.compare("dK", download(dK_d), dK_ref);
      if (bidir) c.compare("dKrev", download(dKr_d), dKr_ref);
    }
}

// ---------------------------------------------------------------------------
// S4D kernel and step
// ---------------------------------------------------------------------------

void test_s4d_kernel(std::mt19937& rng, Checker& c) {
  c.tol = 1e-5;
  // H, N/2, L, copies: N/2 odd and above a warp, L over several blocks of 1024.
  std::vector<mk::ops::S4DKernelShape> shapes = {{1, 1, 1, 1},     {3, 4, 64, 1},
                                                 {5, 32, 1000, 2}, {2, 33, 1500, 1},
                                                 {4, 64, 4100, 2}, {2, 300, 50, 1},
                                                 {1, 16, 3000, 2}};
  shapes.push_back({randint(rng, 1, 8), randint(rng, 1, 64), randint(rng, 1, 2000),
                    randint(rng, 1, 2)});
  for (const auto& s : shapes) {
    c.shape = "H" + std::to_string(s.channels) + " N/2=" + std::to_string(s.half_state) + " L" +
              std::to_string(s.len) + " copies" + std::to_string(s.copies);
    const int H = s.channels, N2 = s.half_state, L = s.len;
    const size_t hn = size_t(H) * N2, khl = size_t(s.copies) * H * L;
    const Vec dt = draw_dt(rng, H), A = s4d_lin_A(H, N2);
    const Vec C = complex_normal(rng, s.copies * hn);
    const Vec dK = rounded<float>(randn(rng, khl));
    Vec K_ref(khl), ddt_ref(H), dA_ref(2 * hn), dC_ref(2 * s.copies * hn);
    mk::ops::s4d_kernel_forward<double>(s, dt.data(), cplx(A), cplx(C), K_ref.data());
    mk::ops::s4d_kernel_backward<double>(s, dt.data(), cplx(A), cplx(C), dK.data(),
                                         ddt_ref.data(), cplx(dA_ref), cplx(dC_ref));
    auto dt_d = upload<float>(dt), A_d = upload<float>(A), C_d = upload<float>(C),
         dK_d = upload<float>(dK);
    auto K_d = poisoned<float>(khl), ddt_d = poisoned<float>(H), dA_d = poisoned<float>(2 * hn),
         dC_d = poisoned<float>(2 * s.copies * hn);
    cu::s4d_kernel_forward(s, dt_d.data(), A_d.data(), C_d.data(), K_d.data());
    cu::s4d_kernel_backward(s, dt_d.data(), A_d.data(), C_d.data(), dK_d.data(), ddt_d.data(),
                            dA_d.data(), dC_d.data());
    c.compare("K", download(K_d), K_ref);
    c.compare("ddt", download(ddt_d), ddt_ref, 1e-4);
    c.compare("dA", download(dA_d), dA_ref, 1e-4);
    c.compare("dC", download(dC_d), dC_ref, 1e-4);
  }
}

void test_s4d_step(std::mt19937& rng, Checker& c) {
  c.tol = 1e-5;
  struct S { int B, H, N2; };
  std::vector<S> shapes = {{1, 1, 1}, {2, 3, 4}, {3, 17, 32}, {1, 5, 33}, {4, 64, 64}, {2, 2, 100}};
  shapes.push_back({randint(rng, 1, 8), randint(rng, 1, 100), randint(rng, 1, 80)});
  for (const S& s : shapes) {
    c.shape = "B" + std::to_string(s.B) + " H" + std::to_string(s.H) + " N/2=" +
              std::to_string(s.N2);
    const mk::ops::S4DKernelShape shp{s.H, s.N2, 1, 1};
    const size_t hn = size_t(s.H) * s.N2, bh = size_t(s.B) * s.H;
    const Vec dt = draw_dt(rng, s.H), A = s4d_lin_A(s.H, s.N2), C = complex_normal(rng, hn);
    const Vec u = rounded<float>(randn(rng, bh)), st0 = complex_normal(rng, bh * s.N2);
    Vec st_ref = st0, y_ref(bh);
    mk::ops::s4d_step<double>(shp, s.B, dt.data(), cplx(A), cplx(C), u.data(), cplx(st_ref),
                              y_ref.data());
    auto dt_d = upload<float>(dt), A_d = upload<float>(A), C_d = upload<float>(C),
         u_d = upload<float>(u), st_d = upload<float>(st0);
    auto y_d = poisoned<float>(bh);
    cu::s4d_step(shp, s.B, dt_d.data(), A_d.data(), C_d.data(), u_d.data(), st_d.data(),
                 y_d.data());
    c.compare("y", download(y_d), y_ref);
    c.compare("state", download(st_d), st_ref);
  }
}

// ---------------------------------------------------------------------------
// S4 (DPLR) kernel and step
// ---------------------------------------------------------------------------

struct DplrParams {
  Vec dt, Lambda, P, B;
};

// HiPPO-LegS NPLR for every channel (the S4 layer's init), dt per channel.
DplrParams hippo_params(std::mt19937& rng, int H, int N2) {
  const mk::HippoNplr nplr = mk::hippo_legs_nplr(2 * N2);
  DplrParams p;
  p.dt = draw_dt(rng, H);
  p.Lambda.resize(size_t(2) * H * N2);
  p.P.resize(p.Lambda.size());
  p.B.resize(p.Lambda.size());
  for (int h = 0; h < H; ++h)
    for (int n = 0; n < N2; ++n) {
      const size_t i = 2 * (size_t(h) * N2 + n);
      p.Lambda[i] = nplr.Lambda[n].real();
      p.Lambda[i + 1] = nplr.Lambda[n].imag();
      p.P[i] = nplr.P[n].real();
      p.P[i + 1] = nplr.P[n].imag();
      p.B[i] = nplr.B[n].real();
      p.B[i + 1] = nplr.B[n].imag();
    }
  p.Lambda = rounded<float>(p.Lambda);
  p.P = rounded<float>(p.P);
  p.B = rounded<float>(p.B);
  return p;
}

void test_dplr_kernel(std::mt19937& rng, Checker& c) {
  c.tol = 1e-5;
  // H, N/2, L, copies: L 1, odd and even; N/2 above a warp (lanes own two states).
  std::vector<mk::ops::DplrKernelShape> shapes = {{1, 1, 1, 1},    {2, 4, 16, 1},
                                                  {3, 8, 33, 2},   {2, 32, 200, 1},
                                                  {2, 40, 257, 2}, {1, 64, 1024, 1},
                                                  {1, 2, 2, 2}};
  shapes.push_back({randint(rng, 1, 4), randint(rng, 1, 40), randint(rng, 1, 600),
                    randint(rng, 1, 2)});
  for (const auto& s : shapes) {
    c.shape = "H" + std::to_string(s.channels) + " N/2=" + std::to_string(s.half_state) + " L" +
              std::to_string(s.len) + " copies" + std::to_string(s.copies);
    const int H = s.channels, N2 = s.half_state, L = s.len;
    const size_t hn = size_t(H) * N2, khl = size_t(s.copies) * H * L;
    const DplrParams p = hippo_params(rng, H, N2);
    const Vec C = complex_normal(rng, s.copies * hn);
    const Vec dK = rounded<float>(randn(rng, khl));
    Vec K_ref(khl), ddt_ref(H), dL_ref(2 * hn), dP_ref(2 * hn), dB_ref(2 * hn),
        dC_ref(2 * s.copies * hn);
    mk::ops::dplr_kernel_forward<double>(s, p.dt.data(), cplx(p.Lambda), cplx(p.P), cplx(p.B),
                                         cplx(C), K_ref.data());
    mk::ops::dplr_kernel_backward<double>(s, p.dt.data(), cplx(p.Lambda), cplx(p.P), cplx(p.B),
                                          cplx(C), dK.data(), ddt_ref.data(), cplx(dL_ref),
                                          cplx(dP_ref), cplx(dB_ref), cplx(dC_ref));
    auto dt_d = upload<float>(p.dt), L_d = upload<float>(p.Lambda), P_d = upload<float>(p.P),
         B_d = upload<float>(p.B), C_d = upload<float>(C), dK_d = upload<float>(dK);
    auto K_d = poisoned<float>(khl), ddt_d = poisoned<float>(H), dL_d = poisoned<float>(2 * hn),
         dP_d = poisoned<float>(2 * hn), dB_d = poisoned<float>(2 * hn),
         dC_d = poisoned<float>(2 * s.copies * hn);
    cu::dplr_kernel_forward(s, dt_d.data(), L_d.data(), P_d.data(), B_d.data(), C_d.data(),
                            K_d.data());
    cu::dplr_kernel_backward(s, dt_d.data(), L_d.data(), P_d.data(), B_d.data(), C_d.data(),
                             dK_d.data(), ddt_d.data(), dL_d.data(), dP_d.data(), dB_d.data(),
                             dC_d.data());
    c.compare("K", download(K_d), K_ref);
    c.compare("ddt", download(ddt_d), ddt_ref, 2e-5);
    c.compare("dLambda", download(dL_d), dL_ref, 2e-5);
    c.compare("dP", download(dP_d), dP_ref, 2e-5);
    c.compare("dB", download(dB_d), dB_ref, 2e-5);
    c.compare("dC", download(dC_d), dC_ref, 2e-5);
  }
}

void test_dplr_step(std::mt19937& rng, Checker& c) {
  c.tol = 1e-5;
  struct S { int B, H, N2; };
  std::vector<S> shapes = {{1, 1, 1}, {2, 3, 4}, {3, 17, 32}, {1, 5, 33}, {4, 16, 64}};
  shapes.push_back({randint(rng, 1, 8), randint(rng, 1, 40), randint(rng, 1, 70)});
  for (const S& s : shapes) {
    c.shape = "B" + std::to_string(s.B) + " H" + std::to_string(s.H) + " N/2=" +
              std::to_string(s.N2);
    const mk::ops::DplrKernelShape shp{s.H, s.N2, 1, 1};
    const size_t hn = size_t(s.H) * s.N2, bh = size_t(s.B) * s.H;
    const DplrParams p = hippo_params(rng, s.H, s.N2);
    const Vec C = complex_normal(rng, hn);
    const Vec u = rounded<float>(randn(rng, bh)), st0 = complex_normal(rng, bh * s.N2);
    Vec st_ref = st0, y_ref(bh);
    mk::ops::dplr_step<double>(shp, s.B, p.dt.data(), cplx(p.Lambda), cplx(p.P), cplx(p.B),
                               cplx(C), u.data(), cplx(st_ref), y_ref.data());
    auto dt_d = upload<float>(p.dt), L_d = upload<float>(p.Lambda), P_d = upload<float>(p.P),
         B_d = upload<float>(p.B), C_d = upload<float>(C), u_d = upload<float>(u),
         st_d = upload<float>(st0);
    auto y_d = poisoned<float>(bh);
    cu::dplr_step(shp, s.B, dt_d.data(), L_d.data(), P_d.data(), B_d.data(), C_d.data(),
                  u_d.data(), st_d.data(), y_d.data());
    c.compare("y", download(y_d), y_ref);
    c.compare("state", download(st_d), st_ref);
  }
}

// ---------------------------------------------------------------------------
// Parameter preparation
// ---------------------------------------------------------------------------

void test_ssm_prepare(std::mt19937& rng, Checker& c) {
  c.tol = 1e-6;
  struct S { int H, N2; };
  std::vector<S> shapes = {{1, 1}, {3, 4}, {64, 32}, {5, 300}, {1000, 3}};
  shapes.push_back({randint(rng, 1, 200), randint(rng, 1, 64)});
  for (const S& s : shapes) {
    c.shape = "H" + std::to_string(s.H) + " N/2=" + std::to_string(s.N2);
    const size_t hn = size_t(s.H) * s.N2;
    const Vec log_dt = rounded<float>(uniform(rng, s.H, std::log(1e-3), std::log(1e-1)));
    const Vec log_A_real = rounded<float>(uniform(rng, hn, std::log(0.1), std::log(2.0)));
    const Vec A_imag = rounded<float>(uniform(rng, hn, -100, 100));
    Vec dt_ref(s.H), A_ref(2 * hn);
    mk::ops::ssm_diag_prepare<double>(s.H, s.N2, log_dt.data(), log_A_real.data(), A_imag.data(),
                                      dt_ref.data(), A_ref.data());
    auto ld_d = upload<float>(log_dt), lar_d = upload<float>(log_A_real),
         ai_d = upload<float>(A_imag);
    auto dt_d = poisoned<float>(s.H), A_d = poisoned<float>(2 * hn);
    cu::ssm_diag_prepare(s.H, s.N2, ld_d.data(), lar_d.data(), ai_d.data(), dt_d.data(), A_d.data());
    c.compare("dt", download(dt_d), dt_ref);
    c.compare("A", download(A_d), A_ref);

    // Backward from the GPU's dt and A (exactly what a float layer holds);
    // the gradients accumulate onto random values.
    const Vec dt = download(dt_d), A = download(A_d);
    const Vec ddt = rounded<float>(randn(rng, s.H)), dA = rounded<float>(randn(rng, 2 * hn));
    const Vec g0 = rounded<float>(randn(rng, s.H)), g1 = rounded<float>(randn(rng, hn)),
              g2 = rounded<float>(randn(rng, hn));
    Vec g0_ref = g0, g1_ref = g1, g2_ref = g2;
    mk::ops::ssm_diag_prepare_backward<double>(s.H, s.N2, dt.data(), A.data(), ddt.data(),
                                               dA.data(), g0_ref.data(), g1_ref.data(),
                                               g2_ref.data());
    auto dtg_d = upload<float>(dt), Ag_d = upload<float>(A), ddt_d = upload<float>(ddt),
         dA_d = upload<float>(dA), g0_d = upload<float>(g0), g1_d = upload<float>(g1),
         g2_d = upload<float>(g2);
    cu::ssm_diag_prepare_backward(s.H, s.N2, dtg_d.data(), Ag_d.data(), ddt_d.data(), dA_d.data(),
                                  g0_d.data(), g1_d.data(), g2_d.data());
    c.compare("g_log_dt", download(g0_d), g0_ref);
    c.compare("g_log_A_real", download(g1_d), g1_ref);
    c.compare("g_A_imag", download(g2_d), g2_ref);
  }
}

// ---------------------------------------------------------------------------
// The table.
// ---------------------------------------------------------------------------

const std::vector<OpCase>& op_table() {
  static const std::vector<OpCase> ops = {
      {"fft_conv_f32", test_fft_conv},
      {"s4d_kernel_f32", test_s4d_kernel},
      {"s4d_step_f32", test_s4d_step},
      {"dplr_kernel_f32", test_dplr_kernel},
      {"dplr_step_f32", test_dplr_step},
      {"ssm_diag_prepare_f32", test_ssm_prepare},
  };
  return ops;
}

class CudaSsmConv : public ::testing::TestWithParam<OpCase> {};

TEST_P(CudaSsmConv, MatchesCpuReference) { run_op_case(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Ops, CudaSsmConv, ::testing::ValuesIn(op_table()),
                         [](const ::testing::TestParamInfo<OpCase>& info) {
                           return std::string(info.param.name);
                         });

// ---------------------------------------------------------------------------
// Host-side behaviour, checked with or without a device: unsupported shapes
// are refused before anything touches the GPU.
// ---------------------------------------------------------------------------

TEST(CudaSsmConvHost, RefusesUnsupportedShapes) {
  float f = 0;
  auto refused = [](const char* why, auto&& call) {
    try {
      call();
      ADD_FAILURE() << "accepted: " << why;
    } catch (const mk::Error& e) {
      std::printf("refused (%s): %s\n", why, e.what());
    }
  };
  refused("fft_conv L 0", [&] { cu::fft_conv_forward({1, 0, 1}, &f, &f, nullptr, &f); });
  refused("fft_conv bidirectional without dKrev", [&] {
    cu::fft_conv_backward({1, 4, 1}, &f, &f, &f, &f, &f, &f, nullptr);
  });
  refused("s4d copies 3", [&] { cu::s4d_kernel_forward({1, 4, 8, 3}, &f, &f, &f, &f); });
  refused("s4d N/2 above the limit", [&] {
    cu::s4d_kernel_backward({1, cu::kS4DMaxHalfState + 1, 8, 1}, &f, &f, &f, &f, &f, &f, &f);
  });
  refused("s4d step bidirectional", [&] { cu::s4d_step({1, 4, 1, 2}, 1, &f, &f, &f, &f, &f, &f); });
  refused("dplr N/2 above the limit", [&] {
    cu::dplr_kernel_forward({1, cu::kDplrMaxHalfState + 1, 8, 1}, &f, &f, &f, &f, &f, &f);
  });
  refused("dplr L 0", [&] {
    cu::dplr_kernel_backward({1, 4, 0, 1}, &f, &f, &f, &f, &f, &f, &f, &f, &f, &f, &f);
  });
  refused("dplr step bidirectional",
          [&] { cu::dplr_step({1, 4, 1, 2}, 1, &f, &f, &f, &f, &f, &f, &f, &f); });
  refused("prepare H 0", [&] { cu::ssm_diag_prepare(0, 4, &f, &f, &f, &f, &f); });
}

// Wall-clock per call at a layer-sized shape (not a check; run with
// --gtest_also_run_disabled_tests on a GPU machine).
TEST(CudaSsmConvTiming, DISABLED_LayerSizes) {
  if (!mk::cuda::device_available()) GTEST_SKIP() << "no CUDA device";
  const int B = 8, H = 256, N2 = 32, L = 4096;
  std::mt19937 rng(1);
  const size_t n = size_t(B) * L * H, hl = size_t(H) * L, hn = size_t(H) * N2;
  auto u = upload<float>(randn(rng, n)), y = upload<float>(randn(rng, n)),
       du = upload<float>(randn(rng, n));
  auto K = upload<float>(randn(rng, 2 * hl, 0.01)), dK = upload<float>(randn(rng, 2 * hl));
  auto dt = upload<float>(draw_dt(rng, H)), A = upload<float>(s4d_lin_A(H, N2));
  auto C = upload<float>(complex_normal(rng, 2 * hn));
  const DplrParams p = hippo_params(rng, H, N2);
  auto Lam = upload<float>(p.Lambda), P = upload<float>(p.P), Bm = upload<float>(p.B);
  // g2 and g4 take dC of two copies (2, H, N/2) complex.
  auto g1 = upload<float>(randn(rng, 2 * hn)), g2 = upload<float>(randn(rng, 4 * hn)),
       g3 = upload<float>(randn(rng, 2 * hn)), g4 = upload<float>(randn(rng, 4 * hn)),
       gdt = upload<float>(randn(rng, H));
  auto st = upload<float>(randn(rng, 2 * size_t(B) * hn, 0.1));
  auto time = [](const char* what, auto&& f) {
    f();
    mk::cuda::synchronize();
    const int reps = 5;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) f();
    mk::cuda::synchronize();
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
    std::printf("[timing] %-44s %9.3f ms\n", what, ms);
  };
  const mk::ops::FftConvShape fs{B, L, H};
  time("fft_conv_forward B8 L4096 H256", [&] { cu::fft_conv_forward(fs, u.data(), K.data(), nullptr, y.data()); });
  time("fft_conv_backward B8 L4096 H256", [&] {
    cu::fft_conv_backward(fs, y.data(), u.data(), K.data(), nullptr, du.data(), dK.data(), nullptr);
  });
  for (int copies = 1; copies <= 2; ++copies) {
    const mk::ops::S4DKernelShape ss{H, N2, L, copies};
    const std::string tag = " H256 N/2=32 L4096 copies" + std::to_string(copies);
    time(("s4d_kernel_forward" + tag).c_str(),
         [&] { cu::s4d_kernel_forward(ss, dt.data(), A.data(), C.data(), K.data()); });
    time(("s4d_kernel_backward" + tag).c_str(), [&] {
      cu::s4d_kernel_backward(ss, dt.data(), A.data(), C.data(), dK.data(), gdt.data(), g1.data(),
                              g2.data());
    });
    const mk::ops::DplrKernelShape ds{H, N2, L, copies};
    time(("dplr_kernel_forward" + tag).c_str(), [&] {
      cu::dplr_kernel_forward(ds, dt.data(), Lam.data(), P.data(), Bm.data(), C.data(), K.data());
    });
    time(("dplr_kernel_backward" + tag).c_str(), [&] {
      cu::dplr_kernel_backward(ds, dt.data(), Lam.data(), P.data(), Bm.data(), C.data(), dK.data(),
                               gdt.data(), g1.data(), g2.data(), g3.data(), g4.data());
    });
  }
  const mk::ops::S4DKernelShape s1{H, N2, 1, 1};
  time("s4d_step B8 H256 N/2=32",
       [&] { cu::s4d_step(s1, B, dt.data(), A.data(), C.data(), u.data(), st.data(), y.data()); });
  const mk::ops::DplrKernelShape d1{H, N2, 1, 1};
  time("dplr_step B8 H256 N/2=32", [&] {
    cu::dplr_step(d1, B, dt.data(), Lam.data(), P.data(), Bm.data(), C.data(), u.data(), st.data(),
                  y.data());
  });
}

}  // namespace

#endif  // MAMBAKIT_HAVE_CUDA
