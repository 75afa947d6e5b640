// The CUDA backend against the CPU reference, op by op, in the spirit of
// ggml's test-backend-ops: a table of ops, each with a function that draws
// random inputs for awkward and random shapes, runs the CPU op (in double,
// on exactly the values the GPU sees: bf16 inputs are rounded first) and the
// CUDA op, and compares every forward output and gradient with a per-op,
// per-dtype tolerance on ||got - ref|| / ||ref|| (and on the worst element
// against the largest reference value). Outputs are poisoned with NaN before
// each GPU run, so an unwritten element fails; accumulated gradients start
// from random values on both sides, so += is checked too. Each op prints its
// largest errors.
//
// Without a GPU every table test is skipped with the reason the CUDA runtime
// gives; the host-side checks (refusals of unsupported shapes, device query)
// run everywhere. Without CUDA in the build the file is one skipped test.
#include <gtest/gtest.h>

#ifndef MAMBAKIT_HAVE_CUDA

TEST(CudaBackend, NotBuilt) {
  GTEST_SKIP() << "this build has no CUDA (configure with -DMAMBAKIT_CUDA=ON, or AUTO where "
                  "nvcc is installed, to build and test the CUDA kernels)";
}

#else

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "mambakit/cuda/device.h"
#include "cuda_test_util.h"
#include "mambakit/error.h"
#include "mambakit/ops/activations.h"
#include "mambakit/ops/conv1d.h"
#include "mambakit/ops/cuda/activations.h"
#include "mambakit/ops/cuda/conv1d.h"
#include "mambakit/ops/cuda/embedding.h"
#include "mambakit/ops/cuda/matmul.h"
#include "mambakit/ops/cuda/optim.h"
#include "mambakit/ops/cuda/rmsnorm.h"
#include "mambakit/ops/cuda/selective_scan.h"
#include "mambakit/ops/cuda/softmax_xent.h"
#include "mambakit/ops/embedding.h"
#include "mambakit/ops/matmul.h"
#include "mambakit/ops/optim.h"
#include "mambakit/ops/rmsnorm.h"
#include "mambakit/ops/selective_scan.h"
#include "mambakit/ops/softmax_xent.h"

namespace {

using namespace cuda_test;
namespace cu = mk::ops::cuda;

// ---------------------------------------------------------------------------
// Ops.
// ---------------------------------------------------------------------------

template <typename T>
void test_embedding(std::mt19937& rng, Checker& c) {
  c.tol = tol_for<T>(1e-6);
  struct S { int n, vocab, dim; };
  std::vector<S> shapes = {{1, 1, 1}, {7, 50, 33}, {100, 257, 64}, {64, 3, 100}};
  shapes.push_back({randint(rng, 1, 300), randint(rng, 1, 1000), randint(rng, 1, 200)});
  for (const S& s : shapes) {
    c.shape = "n" + std::to_string(s.n) + " vocab" + std::to_string(s.vocab) + " dim" +
              std::to_string(s.dim);
    std::vector<int32_t> ids(s.n);
    for (int32_t& id : ids) id = randint(rng, 0, s.vocab - 1);  // repeats when n > vocab
    const Vec table = rounded<T>(randn(rng, size_t(s.vocab) * s.dim));
    const Vec dout = rounded<T>(randn(rng, size_t(s.n) * s.dim));
    const Vec dtable0 = randn(rng, size_t(s.vocab) * s.dim);
    Vec out_ref(size_t(s.n) * s.dim), dtable_ref = dtable0;
    mk::ops::embedding_forward<double>(ids.data(), table.data(), out_ref.data(), s.n, s.vocab,
                                       s.dim);
    mk::ops::embedding_backward<double>(ids.data(), dout.data(), dtable_ref.data(), s.n, s.vocab,
                                        s.dim);

    DeviceBuffer<int32_t> ids_d(ids.size());
    ids_d.upload(ids.data());
    auto table_d = upload<T>(table), dout_d = upload<T>(dout);
    auto out_d = poisoned<T>(out_ref.size());
    auto dtable_d = upload<float>(dtable0);
    cu::embedding_forward<T>(ids_d.data(), table_d.data(), out_d.data(), s.n, s.vocab, s.dim);
    cu::embedding_backward<T>(ids_d.data(), dout_d.data(), dtable_d.data(), s.n, s.vocab, s.dim);
    c.compare("out", download(out_d), out_ref);
    c.compare("dtable", download(dtable_d), dtable_ref, tol_for<T>(1e-6, 1e-5));

    // An id outside the vocabulary is refused, naming its position.
    ids[s.n / 2] = s.vocab;
    ids_d.upload(ids.data());
    try {
      cu::embedding_forward<T>(ids_d.data(), table_d.data(), out_d.data(), s.n, s.vocab, s.dim);
      ADD_FAILURE() << "embedding_forward accepted id " << s.vocab;
    } catch (const mk::Error& e) {
      EXPECT_NE(std::string(e.what()).find("position " + std::to_string(s.n / 2)),
                std::string::npos)
          << e.what();
    }
  }
}

template <typename T>
void test_rmsnorm(std::mt19937& rng, Checker& c) {
  c.tol = tol_for<T>(1e-5);
  struct S { int rows, dim; };
  // dim >= 2: at dim 1 the output is constant (sign(x) w) and dx is pure
  // cancellation, r w dy (1 - x^2 / (x^2 + eps)), which no fp32 kernel resolves.
  std::vector<S> shapes = {{1, 2}, {3, 31}, {64, 64}, {130, 257}, {5, 1024}, {70, 96}};
  shapes.push_back({randint(rng, 1, 200), randint(rng, 2, 2000)});
  for (const S& s : shapes) {
    c.shape = "rows" + std::to_string(s.rows) + " dim" + std::to_string(s.dim);
    const size_t n = size_t(s.rows) * s.dim;
    const Vec x = rounded<T>(randn(rng, n, 2.0)), dy = rounded<T>(randn(rng, n));
    const Vec w = rounded<float>(uniform(rng, s.dim, 0.5, 1.5));
    const Vec dw0 = randn(rng, s.dim);
    const double eps = 1e-5;
    Vec y_ref(n), rstd_ref(s.rows), dx_ref(n), dw_ref = dw0;
    mk::ops::rmsnorm_forward<double>(x.data(), w.data(), y_ref.data(), rstd_ref.data(), s.rows,
                                     s.dim, eps);
    mk::ops::rmsnorm_backward<double>(dy.data(), x.data(), w.data(), rstd_ref.data(),
                                      dx_ref.data(), dw_ref.data(), s.rows, s.dim);
    auto x_d = upload<T>(x), dy_d = upload<T>(dy);
    auto w_d = upload<float>(w), dw_d = upload<float>(dw0);
    auto y_d = poisoned<T>(n), dx_d = poisoned<T>(n);
    auto rstd_d = poisoned<float>(s.rows);
    cu::rmsnorm_forward<T>(x_d.data(), w_d.data(), y_d.data(), rstd_d.data(), s.rows, s.dim,
                           float(eps));
    cu::rmsnorm_backward<T>(dy_d.data(), x_d.data(), w_d.data(), rstd_d.data(), dx_d.data(),
                            dw_d.data(), s.rows, s.dim);
    c.compare("y", download(y_d), y_ref);
    c.compare("rstd", download(rstd_d), rstd_ref, 1e-5);
    c.compare("dx", download(dx_d), dx_ref);
    c.compare("dw", download(dw_d), dw_ref, tol_for<T>(1e-5, 1e-4));
  }
}

template <typename T, bool kSilu>
void test_conv1d(std::mt19937& rng, Checker& c) {
  c.tol = tol_for<T>(1e-5);
  using mk::ops::Conv1dShape;
  std::vector<Conv1dShape> shapes = {{1, 1, 1, 1}, {2, 3, 5, 4},   {1, 65, 33, 4},
                                     {3, 300, 64, 4}, {2, 130, 130, 2}, {1, 7, 37, 8}};
  shapes.push_back({randint(rng, 1, 3), randint(rng, 1, 400), randint(rng, 1, 300),
                    randint(rng, 1, 8)});
  for (const Conv1dShape& s : shapes) {
    c.shape = "B" + std::to_string(s.B) + " L" + std::to_string(s.L) + " D" +
              std::to_string(s.D) + " K" + std::to_string(s.K);
    const size_t n = size_t(s.B) * s.L * s.D, dk = size_t(s.D) * s.K;
    const Vec x = rounded<T>(randn(rng, n)), dy = rounded<T>(randn(rng, n));
    const Vec w = rounded<float>(randn(rng, dk, 0.5)), bias = rounded<float>(randn(rng, s.D));
    const Vec dw0 = randn(rng, dk), db0 = randn(rng, s.D);
    // Reference: conv, then SiLU and its backward when fused.
    Vec pre(n), y_ref(n), g(n), dx_ref(n), dw_ref = dw0, db_ref = db0;
    mk::ops::conv1d_causal_forward<double>(s, x.data(), w.data(), bias.data(), pre.data());
    if (kSilu) {
      mk::ops::silu_forward<double>(pre.data(), y_ref.data(), n);
      mk::ops::silu_backward<double>(dy.data(), pre.data(), g.data(), n);
    } else {
      y_ref = pre;
      g = dy;
    }
    mk::ops::conv1d_causal_backward<double>(s, g.data(), x.data(), w.data(), dx_ref.data(),
                                            dw_ref.data(), db_ref.data());
    auto x_d = upload<T>(x), dy_d = upload<T>(dy);
    auto w_d = upload<float>(w), b_d = upload<float>(bias);
    auto dw_d = upload<float>(dw0), db_d = upload<float>(db0);
    auto y_d = poisoned<T>(n), dx_d = poisoned<T>(n);
    if (kSilu) {
      cu::conv1d_causal_silu_forward<T>(s, x_d.data(), w_d.data(), b_d.data(), y_d.data());
      cu::conv1d_causal_silu_backward<T>(s, dy_d.data(), x_d.data(), w_d.data(), b_d.data(),
                                         dx_d.data(), dw_d.data(), db_d.data());
    } else {
      cu::conv1d_causal_forward<T>(s, x_d.data(), w_d.data(), b_d.data(), y_d.data());
      cu::conv1d_causal_backward<T>(s, dy_d.data(), x_d.data(), w_d.data(), dx_d.data(),
                                    dw_d.data(), db_d.data());
    }
    c.compare("y", download(y_d), y_ref);
    c.compare("dx", download(dx_d), dx_ref);
    c.compare("dw", download(dw_d), dw_ref, tol_for<T>(1e-5, 1e-4));
    c.compare("dbias", download(db_d), db_ref, tol_for<T>(1e-5, 1e-4));

    // The recurrent step from a random state.
    const size_t bd = size_t(s.B) * s.D;
    const Vec st0 = rounded<T>(randn(rng, bd * s.K)), xt = rounded<T>(randn(rng, bd));
    Vec st_ref = st0, yt_ref(bd);
    mk::ops::conv1d_causal_step<double>(s.B, s.D, s.K, xt.data(), st_ref.data(), w.data(),
                                        bias.data(), yt_ref.data());
    if (kSilu) mk::ops::silu_forward<double>(yt_ref.data(), yt_ref.data(), bd);
    auto st_d = upload<T>(st0), xt_d = upload<T>(xt);
    auto yt_d = poisoned<T>(bd);
    cu::conv1d_causal_step<T>(s.B, s.D, s.K, xt_d.data(), st_d.data(), w_d.data(), b_d.data(),
                              yt_d.data(), kSilu);
    c.compare("step_y", download(yt_d), yt_ref);
    c.compare("step_state", download(st_d), st_ref);
  }
}

template <typename T>
void test_activations(std::mt19937& rng, Checker& c) {
  c.tol = tol_for<T>(1e-6);
  for (size_t n : {size_t(1), size_t(1000), size_t(100003), size_t(randint(rng, 1, 5000))}) {
    c.shape = "n" + std::to_string(n);
    Vec x = randn(rng, n, 8.0);
    x[0] = 25.0;  // past softplus's threshold
    x = rounded<T>(x);
    const Vec dy = rounded<T>(randn(rng, n));
    Vec ref(n);
    auto x_d = upload<T>(x), dy_d = upload<T>(dy);
    auto out_d = poisoned<T>(n);
    mk::ops::silu_forward<double>(x.data(), ref.data(), n);
    cu::silu_forward<T>(x_d.data(), out_d.data(), n);
    c.compare("silu", download(out_d), ref);
    mk::ops::silu_backward<double>(dy.data(), x.data(), ref.data(), n);
    out_d.fill_bytes(0xFF);
    cu::silu_backward<T>(dy_d.data(), x_d.data(), out_d.data(), n);
    c.compare("dsilu", download(out_d), ref);
    mk::ops::softplus_forward<double>(x.data(), ref.data(), n);
    out_d.fill_bytes(0xFF);
    cu::softplus_forward<T>(x_d.data(), out_d.data(), n);
    c.compare("softplus", download(out_d), ref);
    mk::ops::softplus_backward<double>(dy.data(), x.data(), ref.data(), n);
    out_d.fill_bytes(0xFF);
    cu::softplus_backward<T>(dy_d.data(), x_d.data(), out_d.data(), n);
    c.compare("dsoftplus", download(out_d), ref);
    // The same gradient from the output y = softplus(x) (the linear layer
    // fused with its softplus keeps y, not x).
    Vec y(n);
    mk::ops::softplus_forward<double>(x.data(), y.data(), n);
    y = rounded<T>(y);
    for (size_t i = 0; i < n; ++i) ref[i] = dy[i] * (y[i] > 20 ? 1.0 : -std::expm1(-y[i]));
    auto y_d = upload<T>(y);
    out_d.fill_bytes(0xFF);
    cu::softplus_backward_from_output<T>(dy_d.data(), y_d.data(), out_d.data(), n);
    c.compare("dsoftplus from y", download(out_d), ref);
  }
  if constexpr (std::is_same_v<T, bf16>) {  // the casts, both ways
    const Vec x = randn(rng, 1001);
    auto xf = upload<float>(x);
    auto xb = poisoned<bf16>(x.size());
    auto back = poisoned<float>(x.size());
    cu::cast(xf.data(), xb.data(), x.size());
    cu::cast(xb.data(), back.data(), x.size());
    const Vec want = rounded<bf16>(x);
    Vec got = download(xb);
    for (size_t i = 0; i < x.size(); ++i)
      ASSERT_EQ(got[i], want[i]) << "cast to bf16 at " << i << " of " << x[i];
    c.compare("cast", download(back), want, 1e-12);
  }
}

template <typename T>
void test_gemm(std::mt19937& rng, Checker& c) {
  c.tol = tol_for<T>(1e-5);
  for (int it = 0; it < 10; ++it) {
    const int M = pick(rng, {1, 7, 33, 64, 130}), N = pick(rng, {1, 5, 32, 96, 129}),
              K = pick(rng, {1, 3, 64, 100, 257});
    const bool ta = it & 1, tb = it & 2;
    const int lda = (ta ? M : K) + randint(rng, 0, 3), ldb = (tb ? K : N) + randint(rng, 0, 3),
              ldc = N + randint(rng, 0, 3);
    c.shape = "M" + std::to_string(M) + " N" + std::to_string(N) + " K" + std::to_string(K) +
              (ta ? " At" : "") + (tb ? " Bt" : "");
    const double alpha = uniform(rng, 1, 0.5, 2)[0], beta = it % 3 == 0 ? 0.0 : 0.7;
    const Vec A = rounded<T>(randn(rng, size_t(ta ? K : M) * lda));
    const Vec B = rounded<T>(randn(rng, size_t(tb ? N : K) * ldb));
    const Vec C0 = rounded<T>(randn(rng, size_t(M) * ldc));
    Vec ref = C0;
    mk::ops::gemm<double>(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, ref.data(),
                          ldc);
    auto A_d = upload<T>(A), B_d = upload<T>(B), C_d = upload<T>(C0);
    cu::gemm<T>(ta, tb, M, N, K, float(alpha), A_d.data(), lda, B_d.data(), ldb, float(beta),
                C_d.data(), ldc);
    c.compare("C", download(C_d), ref);
  }
}

template <typename T>
void test_linear(std::mt19937& rng, Checker& c) {
  c.tol = tol_for<T>(1e-5);
  struct S { int rows, in, out; bool bias; };
  std::vector<S> shapes = {{1, 1, 1, true}, {5, 17, 33, true}, {64, 64, 96, false},
                           {130, 48, 7, true}};
  shapes.push_back({randint(rng, 1, 200), randint(rng, 1, 200), randint(rng, 1, 200), true});
  for (const S& s : shapes) {
    c.shape = "rows" + std::to_string(s.rows) + " in" + std::to_string(s.in) + " out" +
              std::to_string(s.out) + (s.bias ? " bias" : "");
    const Vec x = rounded<T>(randn(rng, size_t(s.rows) * s.in));
    const Vec W = rounded<T>(randn(rng, size_t(s.out) * s.in, 0.3));
    const Vec b = rounded<T>(randn(rng, s.out));
    const Vec dy = rounded<T>(randn(rng, size_t(s.rows) * s.out));
    const Vec dW0 = randn(rng, W.size()), db0 = randn(rng, s.out);
    Vec y_ref(size_t(s.rows) * s.out), dx_ref(x.size()), dW_ref = dW0, db_ref = db0;
    mk::ops::linear_forward<double>(x.data(), W.data(), s.bias ? b.data() : nullptr, y_ref.data(),
                                    s.rows, s.in, s.out);
    mk::ops::linear_backward<double>(dy.data(), x.data(), W.data(), dx_ref.data(), dW_ref.data(),
                                     db_ref.data(), s.rows, s.in, s.out);
    auto x_d = upload<T>(x), W_d = upload<T>(W), b_d = upload<T>(b), dy_d = upload<T>(dy);
    auto dW_d = upload<float>(dW0), db_d = upload<float>(db0);
    auto y_d = poisoned<T>(y_ref.size()), dx_d = poisoned<T>(x.size());
    cu::linear_forward<T>(x_d.data(), W_d.data(), s.bias ? b_d.data() : nullptr, y_d.data(),
                          s.rows, s.in, s.out);
    cu::linear_backward<T>(dy_d.data(), x_d.data(), W_d.data(), dx_d.data(), dW_d.data(),
                           db_d.data(), s.rows, s.in, s.out);
    c.compare("y", download(y_d), y_ref);
    c.compare("dx", download(dx_d), dx_ref);
    c.compare("dW", download(dW_d), dW_ref, tol_for<T>(1e-5, 1e-4));
    c.compare("db", download(db_d), db_ref, tol_for<T>(1e-5, 1e-4));
  }
}

// train.precision bf16: fp32 data whose operands the kernels round to bf16
// (fp32 accumulation). The reference is the double product of the rounded
// operands; the bias gradient sums the unrounded fp32 dy.
void test_bf16_operand_matmuls(std::mt19937& rng, Checker& c) {
  c.tol = 1e-5;
  for (int it = 0; it < 6; ++it) {
    const int M = pick(rng, {1, 7, 33, 130}), N = pick(rng, {1, 5, 96, 129}), K = pick(rng, {1, 64, 257});
    const bool ta = it & 1, tb = it & 2;
    const int lda = ta ? M : K, ldb = tb ? K : N, ldc = N;
    c.shape = "gemm M" + std::to_string(M) + " N" + std::to_string(N) + " K" + std::to_string(K);
    const Vec A = randn(rng, size_t(ta ? K : M) * lda), B = randn(rng, size_t(tb ? N : K) * ldb);
    const Vec C0 = randn(rng, size_t(M) * ldc);
    Vec ref = C0;
    const Vec Ar = rounded<bf16>(A), Br = rounded<bf16>(B);
    mk::ops::gemm<double>(ta, tb, M, N, K, 1.5, Ar.data(), lda, Br.data(), ldb, 0.5, ref.data(), ldc);
    auto A_d = upload<float>(A), B_d = upload<float>(B), C_d = upload<float>(C0);
    cu::gemm_bf16(ta, tb, M, N, K, 1.5f, A_d.data(), lda, B_d.data(), ldb, 0.5f, C_d.data(), ldc);
    c.compare("gemm C", download(C_d), ref);
  }
  struct S { int rows, in, out; };
  for (const S& s : {S{1, 1, 1}, S{5, 17, 33}, S{130, 48, 7}, S{64, 200, 96}}) {
    c.shape = "linear rows" + std::to_string(s.rows) + " in" + std::to_string(s.in) + " out" +
              std::to_string(s.out);
    const Vec x = randn(rng, size_t(s.rows) * s.in), W = randn(rng, size_t(s.out) * s.in, 0.3);
    const Vec b = randn(rng, s.out), dy = randn(rng, size_t(s.rows) * s.out);
    const Vec dW0 = randn(rng, W.size()), db0 = randn(rng, s.out);
    const Vec xr = rounded<bf16>(x), Wr = rounded<bf16>(W), dyr = rounded<bf16>(dy);
    Vec y_ref(size_t(s.rows) * s.out), dx_ref(x.size()), dW_ref = dW0, db_ref = db0, unused(W.size());
    mk::ops::linear_forward<double>(xr.data(), Wr.data(), b.data(), y_ref.data(), s.rows, s.in, s.out);
    mk::ops::linear_backward<double>(dyr.data(), xr.data(), Wr.data(), dx_ref.data(), dW_ref.data(),
                                     nullptr, s.rows, s.in, s.out);
    mk::ops::linear_backward<double>(dy.data(), x.data(), W.data(), nullptr, unused.data(), db_ref.data(),
                                     s.rows, s.in, s.out);
    auto x_d = upload<float>(x), W_d = upload<float>(W), b_d = upload<float>(b), dy_d = upload<float>(dy);
    auto dW_d = upload<float>(dW0), db_d = upload<float>(db0);
    auto y_d = poisoned<float>(y_ref.size()), dx_d = poisoned<float>(x.size());
    cu::linear_forward_bf16(x_d.data(), W_d.data(), b_d.data(), y_d.data(), s.rows, s.in, s.out);
    cu::linear_backward_bf16(dy_d.data(), x_d.data(), W_d.data(), dx_d.data(), dW_d.data(), db_d.data(),
                             s.rows, s.in, s.out);
    c.compare("y", download(y_d), y_ref);
    c.compare("dx", download(dx_d), dx_ref);
    c.compare("dW", download(dW_d), dW_ref);
    c.compare("db", download(db_d), db_ref);
  }
}

template <typename T>
void test_softmax_xent(std::mt19937& rng, Checker& c) {
  c.tol = tol_for<T>(1e-5);
  struct S { int rows, V; };
  std::vector<S> shapes = {{1, 1}, {5, 2}, {64, 256}, {3, 1000}, {2, 50280}};
  shapes.push_back({randint(rng, 1, 100), randint(rng, 1, 3000)});
  for (const S& s : shapes) {
    c.shape = "rows" + std::to_string(s.rows) + " V" + std::to_string(s.V);
    const size_t n = size_t(s.rows) * s.V;
    const Vec logits = rounded<T>(randn(rng, n, 3.0));
    std::vector<int32_t> tgt(s.rows);
    for (int r = 0; r < s.rows; ++r) tgt[r] = r % 4 == 3 ? -1 : randint(rng, 0, s.V - 1);
    const double scale = 1.0 / s.rows;
    Vec loss_ref(s.rows), g_ref(n), lsm_ref(n);
    const double total_ref = mk::ops::softmax_xent<double>(logits.data(), tgt.data(),
                                                           loss_ref.data(), g_ref.data(), s.rows,
                                                           s.V, scale);
    mk::ops::log_softmax<double>(logits.data(), lsm_ref.data(), s.rows, s.V);
    g_ref = rounded<T>(g_ref);  // the GPU writes T: compare with what T can hold
    DeviceBuffer<int32_t> tgt_d(tgt.size());
    tgt_d.upload(tgt.data());
    auto x_d = upload<T>(logits);
    auto loss_d = poisoned<float>(s.rows);
    auto g_d = poisoned<T>(n), lsm_d = poisoned<T>(n);
    const double total = cu::softmax_xent<T>(x_d.data(), tgt_d.data(), loss_d.data(), g_d.data(),
                                             s.rows, s.V, float(scale));
    cu::log_softmax<T>(x_d.data(), lsm_d.data(), s.rows, s.V);
    c.compare("loss", download(loss_d), loss_ref, 1e-5);
    c.compare("total", Vec{total}, Vec{total_ref}, 1e-5);
    c.compare("dlogits", download(g_d), g_ref);
    c.compare("log_softmax", download(lsm_d), lsm_ref);
    // In place: the gradient overwrites the logits.
    cu::softmax_xent<T>(x_d.data(), tgt_d.data(), loss_d.data(), x_d.data(), s.rows, s.V,
                        float(scale));
    c.compare("dlogits_inplace", download(x_d), g_ref);
    // A target past the vocabulary is refused.
    tgt[0] = s.V;
    tgt_d.upload(tgt.data());
    EXPECT_THROW(cu::softmax_xent<T>(x_d.data(), tgt_d.data(), loss_d.data(), nullptr, s.rows,
                                     s.V, 1.f),
                 mk::Error);
  }
}

void test_optim(std::mt19937& rng, Checker& c) {
  c.tol = 1e-5;
  for (size_t n : {size_t(1), size_t(1000), size_t(100003)}) {
    for (long step : {1L, 10L}) {
      for (bool decay : {true, false}) {
        c.shape = "n" + std::to_string(n) + " step" + std::to_string(step) +
                  (decay ? " decay" : "");
        mk::ops::AdamWHyper h;
        h.lr = 3e-3;
        h.weight_decay = 0.1;
        const Vec p0 = rounded<float>(randn(rng, n)), g = rounded<float>(randn(rng, n, 0.1));
        const Vec m0 = rounded<float>(randn(rng, n, 0.01));
        const Vec v0 = rounded<float>(uniform(rng, n, 0.0, 1e-3));
        Vec p = p0, m = m0, v = v0;
        mk::ops::adamw_update<double>(p.data(), g.data(), m.data(), v.data(), n, h, step, decay);
        auto p_d = upload<float>(p0), g_d = upload<float>(g), m_d = upload<float>(m0),
             v_d = upload<float>(v0);
        cu::adamw_update(p_d.data(), g_d.data(), m_d.data(), v_d.data(), n, h, step, decay);
        c.compare("p", download(p_d), p);
        c.compare("m", download(m_d), m);
        c.compare("v", download(v_d), v);
      }
    }
    c.shape = "n" + std::to_string(n);
    Vec g = rounded<float>(randn(rng, n));
    const double norm_ref = mk::ops::global_norm<double>(g.data(), n);
    auto g_d = upload<float>(g);
    c.compare("global_norm", Vec{cu::global_norm(g_d.data(), n)}, Vec{norm_ref}, 1e-12);
    const double max_norm = norm_ref / 3;
    mk::ops::clip_grad_norm<double>(g.data(), n, max_norm);
    const double before = cu::clip_grad_norm(g_d.data(), n, max_norm);
    c.compare("clip_norm", Vec{before}, Vec{norm_ref}, 1e-12);
    c.compare("clipped", download(g_d), g, 1e-6);
  }
}

// ---------------------------------------------------------------------------
// Selective scan: CPU layout (B, L, D) / (B, L, N), GPU (B, D, L) / (B, N, L).
// ---------------------------------------------------------------------------

// (B, L, R) -> (B, R, L) and back.
Vec blr_to_brl(const Vec& v, int B, int L, int R) {
  Vec o(v.size());
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < L; ++t)
      for (int r = 0; r < R; ++r)
        o[(size_t(b) * R + r) * L + t] = v[(size_t(b) * L + t) * R + r];
  return o;
}
Vec brl_to_blr(const Vec& v, int B, int L, int R) {
  Vec o(v.size());
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < L; ++t)
      for (int r = 0; r < R; ++r)
        o[(size_t(b) * L + t) * R + r] = v[(size_t(b) * R + r) * L + t];
  return o;
}

struct ScanShape {
  int B, L, D, N;
  bool z, Dskip, softplus, bias, xz_view;  // xz_view: u, z halves of one (B, 2D, L) buffer
};

std::string scan_name(const ScanShape& s) {
  return "B" + std::to_string(s.B) + " L" + std::to_string(s.L) + " D" + std::to_string(s.D) +
         " N" + std::to_string(s.N) + (s.z ? " z" : "") + (s.Dskip ? " Dskip" : "") +
         (s.softplus ? " softplus" : "") + (s.bias ? " bias" : "") + (s.xz_view ? " xz" : "");
}

// Awkward shapes: L not a multiple of the chunk (and several chunks: L >
// 1024), L = 1, batch 1, d_state 1/4/16/64/256, D not a multiple of 32.
std::vector<ScanShape> scan_shapes(std::mt19937& rng, bool fused) {
  std::vector<ScanShape> v = {
      {2, 130, 37, 16, true, true, false, false, false},
      {1, 1, 5, 4, false, true, false, false, false},
      {1, 64, 16, 1, true, false, false, false, false},
      {2, 200, 33, 64, true, true, false, false, false},
      {3, 65, 48, 16, false, false, false, false, false},
      {1, 256, 7, 16, true, true, false, false, false},
      {1, 257, 5, 16, true, true, false, false, false},
      {2, 777, 3, 16, true, true, false, false, true},
      {1, 2100, 4, 16, true, true, fused, fused, false},
      {2, 1500, 3, 5, true, true, fused, false, false},
      {1, 600, 2, 256, true, false, false, false, false},
  };
  v.push_back({randint(rng, 1, 3), randint(rng, 1, 1200), randint(rng, 1, 40),
               pick(rng, {1, 2, 8, 16, 16, 32}), true, true, fused, fused, false});
  return v;
}

struct ScanProblem {
  ScanShape s;
  Vec u, delta_raw, delta, A, Bm, Cm, Dskip, z, bias, dout;  // CPU layouts
};

template <typename T>
ScanProblem make_scan_problem(std::mt19937& rng, const ScanShape& s) {
  ScanProblem p;
  p.s = s;
  const size_t bld = size_t(s.B) * s.L * s.D, bln = size_t(s.B) * s.L * s.N;
  p.u = rounded<T>(randn(rng, bld));
  p.A = rounded<float>(uniform(rng, size_t(s.D) * s.N, -3.0, -0.05));
  p.A[0] = -300.0;  // exp(delta*A) underflows to 0
  p.Bm = rounded<T>(randn(rng, bln));
  p.Cm = rounded<T>(randn(rng, bln));
  p.Dskip = rounded<float>(randn(rng, s.D));
  p.z = rounded<T>(randn(rng, bld));
  p.bias = rounded<float>(uniform(rng, s.D, -1.0, 0.5));
  p.dout = rounded<T>(randn(rng, bld));
  if (s.softplus) {
    // Raw delta around softplus's useful range, one past its threshold.
    p.delta_raw = rounded<T>(uniform(rng, bld, -5.0, 1.0));
    p.delta_raw[bld / 2] = rounded<T>(Vec{21.0})[0];
    p.delta = p.delta_raw;
    for (size_t i = 0; i < bld; ++i) {
      const double x = p.delta_raw[i] + (s.bias ? p.bias[i % s.D] : 0.0);
      p.delta[i] = mk::ops::softplus<double>(x);
    }
  } else {
    p.delta = rounded<T>(uniform(rng, bld, 0.005, 1.0));
    p.delta_raw = p.delta;
  }
  return p;
}

mk::ops::SelectiveScanParams<double> cpu_params(const ScanProblem& p) {
  mk::ops::SelectiveScanParams<double> q;
  q.batch = p.s.B;
  q.len = p.s.L;
  q.dim = p.s.D;
  q.dstate = p.s.N;
  q.u = p.u.data();
  q.delta = p.delta.data();
  q.A = p.A.data();
  q.Bm = p.Bm.data();
  q.Cm = p.Cm.data();
  q.Dskip = p.s.Dskip ? p.Dskip.data() : nullptr;
  q.z = p.s.z ? p.z.data() : nullptr;
  return q;
}

// Device copies of a problem in the GPU layout.
template <typename T>
struct ScanDevice {
  DeviceBuffer<T> u, delta, Bm, Cm, z, xz, dout;
  DeviceBuffer<float> A, Dskip, bias;
  cu::SelectiveScanParams<T> params;

  ScanDevice(const ScanProblem& p) {
    const ScanShape& s = p.s;
    const Vec u_t = blr_to_brl(p.u, s.B, s.L, s.D), z_t = blr_to_brl(p.z, s.B, s.L, s.D);
    if (s.xz_view) {  // (B, 2D, L): x then z per batch row
      Vec host(size_t(s.B) * 2 * s.D * s.L);
      const size_t dl = size_t(s.D) * s.L;
      for (int b = 0; b < s.B; ++b) {
        std::copy(u_t.begin() + b * dl, u_t.begin() + (b + 1) * dl, host.begin() + 2 * b * dl);
        std::copy(z_t.begin() + b * dl, z_t.begin() + (b + 1) * dl,
                  host.begin() + (2 * b + 1) * dl);
      }
      xz = upload<T>(host);
    } else {
      u = upload<T>(u_t);
      z = upload<T>(z_t);
    }
    delta = upload<T>(blr_to_brl(s.softplus ? p.delta_raw : p.delta, s.B, s.L, s.D));
    Bm = upload<T>(blr_to_brl(p.Bm, s.B, s.L, s.N));
    Cm = upload<T>(blr_to_brl(p.Cm, s.B, s.L, s.N));
    dout = upload<T>(blr_to_brl(p.dout, s.B, s.L, s.D));
    A = upload<float>(p.A);
    Dskip = upload<float>(p.Dskip);
    bias = upload<float>(p.bias);
    auto& q = params;
    q.batch = s.B;
    q.len = s.L;
    q.dim = s.D;
    q.dstate = s.N;
    if (s.xz_view) {
      const int64_t dl = int64_t(s.D) * s.L;
      q.u = xz.data();
      q.z = s.z ? xz.data() + dl : nullptr;
      q.u_stride = q.z_stride = cu::SeqStride{2 * dl, s.L};
    } else {
      q.u = u.data();
      q.z = s.z ? z.data() : nullptr;
    }
    q.delta = delta.data();
    q.A = A.data();
    q.Bm = Bm.data();
    q.Cm = Cm.data();
    q.Dskip = s.Dskip ? Dskip.data() : nullptr;
    q.delta_softplus = s.softplus;
    q.delta_bias = s.bias ? bias.data() : nullptr;
  }
};

// CPU reference gradients with respect to the raw delta and the bias when
// softplus is fused: d/draw = d/ddelta * sigmoid(raw + bias).
void fold_softplus(const ScanProblem& p, Vec& ddelta, Vec& dbias) {
  const ScanShape& s = p.s;
  if (!s.softplus) return;
  for (size_t i = 0; i < ddelta.size(); ++i) {
    const double x = p.delta_raw[i] + (s.bias ? p.bias[i % s.D] : 0.0);
    ddelta[i] *= x > 20 ? 1.0 : mk::ops::sigmoid<double>(x);
    if (s.bias) dbias[i % s.D] += ddelta[i];
  }
}

template <typename T>
void test_selective_scan(std::mt19937& rng, Checker& c) {
  c.tol = tol_for<T>(1e-4);
  for (const ScanShape& s : scan_shapes(rng, true)) {
    c.shape = scan_name(s);
    const ScanProblem p = make_scan_problem<T>(rng, s);
    const size_t bld = size_t(s.B) * s.L * s.D, bln = size_t(s.B) * s.L * s.N;
    const size_t dn = size_t(s.D) * s.N;
    // CPU reference (naive: every state kept, so chunk boundaries can be read off).
    const auto q = cpu_params(p);
    Vec out_ref(bld), states(bld * s.N);
    mk::ops::selective_scan_naive_forward<double>(q, out_ref.data(), states.data());
    const Vec dA0 = randn(rng, dn), dD0 = randn(rng, s.D), dbias0 = randn(rng, s.D);
    Vec du(bld), ddelta(bld), dA = dA0, dB(bln), dC(bln), dD = dD0, dz(bld), dbias = dbias0;
    mk::ops::SelectiveScanGrads<double> g{du.data(),   ddelta.data(), dA.data(), dB.data(),
                                          dC.data(),   dD.data(),     dz.data()};
    mk::ops::selective_scan_naive_backward<double>(q, states.data(), p.dout.data(), g);
    fold_softplus(p, ddelta, dbias);

    // GPU.
    ScanDevice<T> dev(p);
    const size_t n_states = cu::selective_scan_states_size(s.B, s.L, s.D, s.N);
    const int chunk = cu::selective_scan_chunk_len(s.L);
    const int n_chunks = (s.L + chunk - 1) / chunk;
    ASSERT_EQ(n_states, size_t(s.B) * s.D * n_chunks * s.N);
    auto out_d = poisoned<T>(bld);
    auto cs_d = poisoned<float>(n_states), fs_d = poisoned<float>(size_t(s.B) * s.D * s.N);
    cu::selective_scan_forward<T>(dev.params, out_d.data(), cs_d.data(), fs_d.data());
    c.compare("out", brl_to_blr(download(out_d), s.B, s.L, s.D), out_ref);
    // Saved states: (B, D, n_chunks, N) = h before each chunk's first step.
    Vec cs_ref(n_states, 0.0), fs_ref(size_t(s.B) * s.D * s.N);
    for (int b = 0; b < s.B; ++b)
      for (int d = 0; d < s.D; ++d)
        for (int n = 0; n < s.N; ++n) {
          for (int k = 1; k < n_chunks; ++k)
            cs_ref[((size_t(b) * s.D + d) * n_chunks + k) * s.N + n] =
                states[((size_t(b) * s.L + k * chunk - 1) * s.D + d) * s.N + n];
          fs_ref[(size_t(b) * s.D + d) * s.N + n] =
              states[((size_t(b) * s.L + s.L - 1) * s.D + d) * s.N + n];
        }
    c.compare("chunk_states", download(cs_d), cs_ref);
    c.compare("final_state", download(fs_d), fs_ref);

    auto du_d = poisoned<T>(bld), ddelta_d = poisoned<T>(bld), dz_d = poisoned<T>(bld);
    auto dB_d = poisoned<float>(bln), dC_d = poisoned<float>(bln);
    auto dA_d = upload<float>(dA0), dD_d = upload<float>(dD0), dbias_d = upload<float>(dbias0);
    cu::SelectiveScanGrads<T> gd;
    gd.du = du_d.data();
    gd.ddelta = ddelta_d.data();
    gd.dA = dA_d.data();
    gd.dB = dB_d.data();
    gd.dC = dC_d.data();
    gd.dD = dD_d.data();
    gd.dz = dz_d.data();
    gd.ddelta_bias = dbias_d.data();
    cu::selective_scan_backward<T>(dev.params, cs_d.data(), dev.dout.data(), gd);
    c.compare("du", brl_to_blr(download(du_d), s.B, s.L, s.D), du);
    c.compare("ddelta", brl_to_blr(download(ddelta_d), s.B, s.L, s.D), ddelta);
    if (s.z) c.compare("dz", brl_to_blr(download(dz_d), s.B, s.L, s.D), dz);
    c.compare("dB", brl_to_blr(download(dB_d), s.B, s.L, s.N), dB);
    c.compare("dC", brl_to_blr(download(dC_d), s.B, s.L, s.N), dC);
    c.compare("dA", download(dA_d), dA);
    if (s.Dskip) c.compare("dD", download(dD_d), dD);
    if (s.bias) c.compare("ddelta_bias", download(dbias_d), dbias);
  }
}

// The naive GPU baseline (fp32, states materialised) against the same CPU
// reference, and the recurrent step.
void test_selective_scan_naive_and_step(std::mt19937& rng, Checker& c) {
  c.tol = 1e-4;
  for (const ScanShape& s : scan_shapes(rng, false)) {
    if (size_t(s.B) * s.L * s.D * s.N > (size_t(1) << 22)) continue;
    c.shape = scan_name(s);
    const ScanProblem p = make_scan_problem<float>(rng, s);
    const size_t bld = size_t(s.B) * s.L * s.D, bln = size_t(s.B) * s.L * s.N;
    const auto q = cpu_params(p);
    Vec out_ref(bld), states(bld * s.N);
    mk::ops::selective_scan_naive_forward<double>(q, out_ref.data(), states.data());
    const Vec dA0 = randn(rng, size_t(s.D) * s.N), dD0 = randn(rng, s.D);
    Vec du(bld), ddelta(bld), dA = dA0, dB(bln), dC(bln), dD = dD0, dz(bld);
    mk::ops::SelectiveScanGrads<double> g{du.data(), ddelta.data(), dA.data(), dB.data(),
                                          dC.data(), dD.data(),     dz.data()};
    mk::ops::selective_scan_naive_backward<double>(q, states.data(), p.dout.data(), g);

    ScanDevice<float> dev(p);
    auto out_d = poisoned<float>(bld), st_d = poisoned<float>(bld * s.N);
    cu::selective_scan_naive_forward(dev.params, out_d.data(), st_d.data());
    c.compare("naive_out", brl_to_blr(download(out_d), s.B, s.L, s.D), out_ref);
    auto du_d = poisoned<float>(bld), ddelta_d = poisoned<float>(bld), dz_d = poisoned<float>(bld);
    auto dB_d = poisoned<float>(bln), dC_d = poisoned<float>(bln);
    auto dA_d = upload<float>(dA0), dD_d = upload<float>(dD0);
    cu::SelectiveScanGrads<float> gd;
    gd.du = du_d.data();
    gd.ddelta = ddelta_d.data();
    gd.dA = dA_d.data();
    gd.dB = dB_d.data();
    gd.dC = dC_d.data();
    gd.dD = dD_d.data();
    gd.dz = dz_d.data();
    cu::selective_scan_naive_backward(dev.params, st_d.data(), dev.dout.data(), gd);
    c.compare("naive_du", brl_to_blr(download(du_d), s.B, s.L, s.D), du);
    c.compare("naive_ddelta", brl_to_blr(download(ddelta_d), s.B, s.L, s.D), ddelta);
    if (s.z) c.compare("naive_dz", brl_to_blr(download(dz_d), s.B, s.L, s.D), dz);
    c.compare("naive_dB", brl_to_blr(download(dB_d), s.B, s.L, s.N), dB);
    c.compare("naive_dC", brl_to_blr(download(dC_d), s.B, s.L, s.N), dC);
    c.compare("naive_dA", download(dA_d), dA);
    if (s.Dskip) c.compare("naive_dD", download(dD_d), dD);

    // One recurrent step from a random state, (B, D) / (B, N) layouts.
    const size_t bd = size_t(s.B) * s.D, bdn = bd * s.N, bn = size_t(s.B) * s.N;
    const Vec st0 = randn(rng, bdn), ut = randn(rng, bd), dlt = uniform(rng, bd, 0.01, 1.0);
    const Vec Bt = randn(rng, bn), Ct = randn(rng, bn), zt = randn(rng, bd);
    Vec st = st0, yt(bd);
    mk::ops::selective_scan_step<double>(s.B, s.D, s.N, ut.data(), dlt.data(), p.A.data(),
                                         Bt.data(), Ct.data(), p.Dskip.data(), zt.data(),
                                         st.data(), yt.data());
    auto st0_d = upload<float>(st0), ut_d = upload<float>(ut), dlt_d = upload<float>(dlt),
         Bt_d = upload<float>(Bt), Ct_d = upload<float>(Ct), zt_d = upload<float>(zt);
    auto yt_d = poisoned<float>(bd);
    cu::selective_scan_step<float>(s.B, s.D, s.N, ut_d.data(), dlt_d.data(), dev.A.data(),
                                   Bt_d.data(), Ct_d.data(), dev.Dskip.data(), zt_d.data(),
                                   st0_d.data(), yt_d.data());
    c.compare("step_y", download(yt_d), yt, 1e-5);
    c.compare("step_state", download(st0_d), st, 1e-5);
  }
}

// ---------------------------------------------------------------------------
// The table.
// ---------------------------------------------------------------------------

const std::vector<OpCase>& op_table() {
  static const std::vector<OpCase> ops = {
      {"embedding_f32", test_embedding<float>},
      {"embedding_bf16", test_embedding<bf16>},
      {"rmsnorm_f32", test_rmsnorm<float>},
      {"rmsnorm_bf16", test_rmsnorm<bf16>},
      {"conv1d_f32", test_conv1d<float, false>},
      {"conv1d_bf16", test_conv1d<bf16, false>},
      {"conv1d_silu_f32", test_conv1d<float, true>},
      {"conv1d_silu_bf16", test_conv1d<bf16, true>},
      {"activations_f32", test_activations<float>},
      {"activations_bf16", test_activations<bf16>},
      {"gemm_f32", test_gemm<float>},
      {"gemm_bf16", test_gemm<bf16>},
      {"linear_f32", test_linear<float>},
      {"linear_bf16", test_linear<bf16>},
      {"bf16_operand_matmuls", test_bf16_operand_matmuls},
      {"softmax_xent_f32", test_softmax_xent<float>},
      {"softmax_xent_bf16", test_softmax_xent<bf16>},
      {"adamw_norm_clip_f32", test_optim},
      {"selective_scan_f32", test_selective_scan<float>},
      {"selective_scan_bf16", test_selective_scan<bf16>},
      {"scan_naive_step_f32", test_selective_scan_naive_and_step},
  };
  return ops;
}

class CudaBackend : public ::testing::TestWithParam<OpCase> {};

TEST_P(CudaBackend, MatchesCpuReference) { run_op_case(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Ops, CudaBackend, ::testing::ValuesIn(op_table()),
                         [](const ::testing::TestParamInfo<OpCase>& info) {
                           return std::string(info.param.name);
                         });

// ---------------------------------------------------------------------------
// Host-side behaviour, checked with or without a device.
// ---------------------------------------------------------------------------

TEST(CudaBackendHost, DeviceQueryAnswersWithoutCrashing) {
  const bool ok = mk::cuda::device_available();
  EXPECT_EQ(ok, mk::cuda::device_available());  // cached, stable
  if (ok) {
    EXPECT_EQ(mk::cuda::device_unavailable_reason(), "");
    std::printf("device: %s\n", mk::cuda::device_description().c_str());
  } else {
    EXPECT_NE(mk::cuda::device_unavailable_reason(), "");
    std::printf("no device: %s\n", mk::cuda::device_unavailable_reason().c_str());
    // Ops refuse with an error naming the reason instead of crashing.
    try {
      mk::cuda::DeviceBuffer<float> b(16);
      ADD_FAILURE() << "allocated device memory without a device";
    } catch (const mk::Error& e) {
      EXPECT_NE(std::string(e.what()).find("no CUDA device"), std::string::npos) << e.what();
    }
    float dummy = 0;
    EXPECT_THROW(cu::silu_forward<float>(&dummy, &dummy, 1), mk::Error);
  }
}

TEST(CudaBackendHost, ScanRefusesUnsupportedShapes) {
  float f = 0;
  cu::SelectiveScanParams<float> p;
  p.batch = 1;
  p.len = 10;
  p.dim = 4;
  p.dstate = 16;
  p.u = p.delta = p.Bm = p.Cm = &f;
  p.A = &f;
  EXPECT_NO_THROW(cu::selective_scan_check(p));
  auto refused = [&](cu::SelectiveScanParams<float> q, const char* why) {
    try {
      cu::selective_scan_check(q);
      ADD_FAILURE() << "accepted: " << why;
    } catch (const mk::Error& e) {
      std::printf("refused (%s): %s\n", why, e.what());
    }
  };
  auto q = p;
  q.dstate = 257;
  refused(q, "dstate 257");
  q = p;
  q.u_stride = cu::SeqStride{40, 4};  // CPU (L, D) strides passed by mistake
  refused(q, "time not contiguous");
  q = p;
  q.Cm = nullptr;
  refused(q, "C missing");
  q = p;
  q.len = 0;
  refused(q, "len 0");
}

}  // namespace

#endif  // MAMBAKIT_HAVE_CUDA
