// gemm against a triple loop for every transpose combination and padded
// leading dims; linear layer forward against a loop, backward by finite
// differences; the narrow-output kernels on every ISA.
#include "mambakit/ops/matmul.h"

#include <cblas.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <string>

#include "mambakit/cpu_isa.h"
#include "mambakit/error.h"
#include "mambakit/ops/amx_matmul.h"
#include "test_util.h"

using namespace mk;
using namespace mk::test;

namespace {

// C = alpha op(A) op(B) + beta C, straight from the definition, in double.
template <typename T>
std::vector<double> gemm_ref(bool ta, bool tb, int M, int N, int K, double alpha,
                             const std::vector<T>& A, int lda, const std::vector<T>& B, int ldb,
                             double beta, const std::vector<T>& C, int ldc) {
  std::vector<double> out(C.begin(), C.end());
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double s = 0;
      for (int k = 0; k < K; ++k) {
        double a = ta ? A[size_t(k) * lda + i] : A[size_t(i) * lda + k];
        double b = tb ? B[size_t(j) * ldb + k] : B[size_t(k) * ldb + j];
        s += a * b;
      }
      out[size_t(i) * ldc + j] = alpha * s + beta * double(C[size_t(i) * ldc + j]);
    }
  return out;
}

template <typename T>
void check_gemm_all_transposes(double tol) {
  const int M = 7, N = 5, K = 9;
  unsigned seed = 1;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      // Stored rows are longer than needed (padding 3) to exercise the leading dims.
      const int a_rows = ta ? K : M, a_cols = ta ? M : K;
      const int b_rows = tb ? N : K, b_cols = tb ? K : N;
      const int lda = a_cols + 3, ldb = b_cols + 2, ldc = N + 4;
      auto A = randn<T>(size_t(a_rows) * lda, seed++);
      auto B = randn<T>(size_t(b_rows) * ldb, seed++);
      auto C = randn<T>(size_t(M) * ldc, seed++);
      auto want = gemm_ref(ta, tb, M, N, K, 0.7, A, lda, B, ldb, -0.3, C, ldc);
      ops::gemm<T>(ta, tb, M, N, K, T(0.7), A.data(), lda, B.data(), ldb, T(-0.3), C.data(), ldc);
      EXPECT_TRUE(all_close(C, want, tol, tol)) << "trans_a=" << ta << " trans_b=" << tb;
    }
}

// Products large enough to be split over threads (by rows of C when it is
// taller, by columns when it is wider), odd sizes so the blocks are uneven,
// every transpose, padded leading dims, beta 0 over garbage and beta != 0,
// run with 1, 2 and 3 OpenMP threads. One-row products (a matrix-vector
// product inside) go through the same checks.
template <typename T>
void check_gemm_split_over_threads(double tol) {
  struct Dims { int M, N, K; };
  const int saved = omp_get_max_threads();
  unsigned seed = 100;
  for (const Dims d : {Dims{301, 37, 29}, Dims{29, 301, 37}, Dims{97, 89, 41}, Dims{1, 301, 37},
                      Dims{1, 1030, 300}})
    for (int threads : {1, 2, 3})
      for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb)
          for (double beta : {0.0, 0.5}) {
            omp_set_num_threads(threads);
            const int a_rows = ta ? d.K : d.M, a_cols = ta ? d.M : d.K;
            const int b_rows = tb ? d.N : d.K, b_cols = tb ? d.K : d.N;
            const int lda = a_cols + 1, ldb = b_cols + 3, ldc = d.N + 2;
            auto A = randn<T>(size_t(a_rows) * lda, seed++);
            auto B = randn<T>(size_t(b_rows) * ldb, seed++);
            auto C = randn<T>(size_t(d.M) * ldc, seed++);
            if (beta == 0.0) C.assign(C.size(), std::numeric_limits<T>::quiet_NaN());
            // The padding of C past column N must stay as it was.
            for (int i = 0; i < d.M; ++i)
              for (int j = d.N; j < ldc; ++j) C[size_t(i) * ldc + j] = T(42);
            auto want = gemm_ref(ta, tb, d.M, d.N, d.K, 1.3, A, lda, B, ldb, beta, C, ldc);
            if (beta == 0.0)  // the reference's 0 * NaN: beta 0 overwrites
              for (int i = 0; i < d.M; ++i)
                for (int j = 0; j < d.N; ++j) {
                  double sum = 0;
                  for (int k = 0; k < d.K; ++k)
                    sum += double(ta ? A[size_t(k) * lda + i] : A[size_t(i) * lda + k]) *
                           double(tb ? B[size_t(j) * ldb + k] : B[size_t(k) * ldb + j]);
                  want[size_t(i) * ldc + j] = 1.3 * sum;
                }
            ops::gemm<T>(ta, tb, d.M, d.N, d.K, T(1.3), A.data(), lda, B.data(), ldb, T(beta),
                         C.data(), ldc);
            EXPECT_TRUE(all_close(C, want, tol * d.K, tol * d.K))
                << "M=" << d.M << " N=" << d.N << " K=" << d.K << " threads=" << threads
                << " trans_a=" << ta << " trans_b=" << tb << " beta=" << beta;
          }
  omp_set_num_threads(saved);
}

}  // namespace

TEST(Gemm, SplitOverThreadsDouble) { check_gemm_split_over_threads<double>(1e-13); }
TEST(Gemm, SplitOverThreadsFloat) { check_gemm_split_over_threads<float>(1e-6); }

TEST(Gemm, AllTransposesAndLeadingDimsDouble) { check_gemm_all_transposes<double>(1e-12); }
TEST(Gemm, AllTransposesAndLeadingDimsFloat) { check_gemm_all_transposes<float>(1e-5); }

TEST(Gemm, BetaZeroOverwritesGarbage) {
  const int M = 3, N = 4, K = 2;
  auto A = randn<double>(M * K, 11), B = randn<double>(K * N, 12);
  std::vector<double> C(M * N, NAN);
  ops::gemm<double>(false, false, M, N, K, 1.0, A.data(), K, B.data(), N, 0.0, C.data(), N);
  auto want = gemm_ref(false, false, M, N, K, 1.0, A, K, B, N, 0.0,
                       std::vector<double>(M * N, 0.0), N);
  EXPECT_TRUE(all_close(C, want, 1e-12));
}

TEST(Gemm, KZeroScalesC) {
  std::vector<double> C = {1, 2, 3, 4};
  double dummy = 0;
  ops::gemm<double>(false, false, 2, 2, 0, 1.0, &dummy, 1, &dummy, 2, 0.5, C.data(), 2);
  EXPECT_TRUE(all_close(C, std::vector<double>{0.5, 1, 1.5, 2}, 0));
}

TEST(Gemm, RejectsTooSmallLeadingDim) {
  std::vector<double> A(12), B(12), C(16);
  EXPECT_THROW(ops::gemm<double>(false, false, 4, 4, 3, 1.0, A.data(), 2, B.data(), 4, 0.0,
                                 C.data(), 4),
               mk::Error);
  EXPECT_THROW(ops::gemm<double>(false, false, 4, 4, 3, 1.0, A.data(), 3, B.data(), 4, 0.0,
                                 C.data(), 3),
               mk::Error);
}

// --- products on AMX tiles (amx_matmul.h) ---------------------------------

namespace {

#define MK_SKIP_WITHOUT_AMX()                                                              \
  if (!mk::cpu_has_amx())                                                                  \
  GTEST_SKIP() << "this CPU or kernel has no AMX with bfloat16 (AMX-TILE, AMX-BF16, "      \
                  "AVX512-BF16 and the kernel's leave to use tiles): the AMX products do " \
                  "not run here"

// The largest error of C against the double reference, each element's
// relative to the sum of the magnitudes it was formed from (sum_k |a b|,
// plus |C| where it was added): the measure a float dot product's rounding
// bounds (K * 2^-24 at worst, far less in practice).
double scaled_error(bool ta, bool tb, int M, int N, int K, const std::vector<float>& A, int lda,
                    const std::vector<float>& B, int ldb, bool accumulate,
                    const std::vector<float>& C0, const std::vector<float>& C, int ldc) {
  double worst = 0;
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double sum = 0, mag = 0;
      for (int k = 0; k < K; ++k) {
        const double a = ta ? A[size_t(k) * lda + i] : A[size_t(i) * lda + k];
        const double b = tb ? B[size_t(j) * ldb + k] : B[size_t(k) * ldb + j];
        sum += a * b;
        mag += std::fabs(a * b);
      }
      if (accumulate) {
        sum += C0[size_t(i) * ldc + j];
        mag += std::fabs(C0[size_t(i) * ldc + j]);
      }
      const double err = std::fabs(double(C[size_t(i) * ldc + j]) - sum);
      worst = std::max(worst, mag > 0 ? err / mag : err);
    }
  return worst;
}

}  // namespace

// Every transpose, sizes on and off the 32 x 32 blocks, the 256-deep
// panels (K = 300, 513 take two and three) and the 1024-column passes
// (N = 1100 takes two), padded leading dims, C
// overwritten (over NaN) or added to; the error against double no more
// than 4x OpenBLAS's on the same inputs, and within float's reach (a
// bfloat16 product would be off by about 2^-9).
TEST(AmxGemm, AsAccurateAsFloatBlasOnEveryShapeAndTranspose) {
  MK_SKIP_WITHOUT_AMX();
  struct Dims { int M, N, K; };
  unsigned seed = 500;
  for (const Dims d : {Dims{1, 1, 1}, Dims{7, 5, 9}, Dims{32, 32, 32}, Dims{33, 47, 65},
                       Dims{64, 16, 300}, Dims{100, 48, 513}, Dims{17, 130, 16},
                       Dims{96, 64, 256}, Dims{40, 1100, 70}})
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (bool accumulate : {false, true}) {
          const int a_rows = ta ? d.K : d.M, a_cols = ta ? d.M : d.K;
          const int b_rows = tb ? d.N : d.K, b_cols = tb ? d.K : d.N;
          const int lda = a_cols + 3, ldb = b_cols + 1, ldc = d.N + 5;
          const auto A = randn<float>(size_t(a_rows) * lda, seed++);
          const auto B = randn<float>(size_t(b_rows) * ldb, seed++, 0.1);
          auto C0 = randn<float>(size_t(d.M) * ldc, seed++);
          if (!accumulate)
            for (int i = 0; i < d.M; ++i)
              for (int j = 0; j < d.N; ++j) C0[size_t(i) * ldc + j] = NAN;
          auto C = C0, Cblas = C0;
          ASSERT_TRUE(ops::amx_sgemm(ta, tb, d.M, d.N, d.K, A.data(), lda, B.data(), ldb,
                                     accumulate, C.data(), ldc));
          cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                      d.M, d.N, d.K, 1.f, A.data(), lda, B.data(), ldb, accumulate ? 1.f : 0.f,
                      Cblas.data(), ldc);
          const std::string where = "M=" + std::to_string(d.M) + " N=" + std::to_string(d.N) +
                                    " K=" + std::to_string(d.K) + " trans_a=" +
                                    std::to_string(ta) + " trans_b=" + std::to_string(tb) +
                                    " accumulate=" + std::to_string(accumulate);
          const double amx = scaled_error(ta, tb, d.M, d.N, d.K, A, lda, B, ldb, accumulate, C0,
                                          C, ldc);
          const double blas = scaled_error(ta, tb, d.M, d.N, d.K, A, lda, B, ldb, accumulate, C0,
                                           Cblas, ldc);
          EXPECT_LE(amx, 4 * std::max(blas, std::ldexp(1.0, -24))) << where << " OpenBLAS " << blas;
          EXPECT_LE(amx, 1e-6) << where;
          // The padding of C past column N is left alone.
          for (int i = 0; i < d.M; ++i)
            for (int j = d.N; j < ldc; ++j)
              ASSERT_EQ(C[size_t(i) * ldc + j], C0[size_t(i) * ldc + j]) << where;
        }
}

// Values over float's whole exponent range (the three parts of a large or
// small value keep its exponent's scale), and a NaN in op(A) reaches its
// row of C and no other.
TEST(AmxGemm, WideExponentsAndNaN) {
  MK_SKIP_WITHOUT_AMX();
  const int M = 40, N = 36, K = 70;
  auto A = randn<float>(size_t(M) * K, 7), B = randn<float>(size_t(K) * N, 8);
  for (int i = 0; i < M; ++i)  // row i scaled by 2^(-60 .. +60)
    for (int k = 0; k < K; ++k) A[size_t(i) * K + k] = std::ldexp(A[size_t(i) * K + k], 3 * i - 60);
  std::vector<float> C(size_t(M) * N);
  ASSERT_TRUE(ops::amx_sgemm(false, false, M, N, K, A.data(), K, B.data(), N, false, C.data(), N));
  EXPECT_LE(scaled_error(false, false, M, N, K, A, K, B, N, false, C, C, N), 1e-6);

  A[size_t(5) * K + 3] = NAN;
  ASSERT_TRUE(ops::amx_sgemm(false, false, M, N, K, A.data(), K, B.data(), N, false, C.data(), N));
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j)
      ASSERT_EQ(std::isnan(C[size_t(i) * N + j]), i == 5) << "i=" << i << " j=" << j;
}

// gemm<float> sends alpha 1, beta 0 or 1 products to the tiles when they
// are on, on any thread count, and they agree with BLAS's to float
// accuracy; MAMBAKIT_ISA below avx512 turns them off.
TEST(AmxGemm, GemmUsesTilesOnEveryThreadCount) {
  MK_SKIP_WITHOUT_AMX();
  ScopedIsa avx512(Isa::avx512);  // as the suite runs under any MAMBAKIT_ISA
  const bool saved_amx = mk::amx_products_active();
  const int saved_threads = omp_get_max_threads();
  const int M = 301, N = 97, K = 129;
  const auto A = randn<float>(size_t(M) * K, 21), B = randn<float>(size_t(N) * K, 22);
  std::vector<float> on(size_t(M) * N), off(on.size());
  mk::set_amx_products_for_testing(false);
  ops::gemm<float>(false, true, M, N, K, 1.f, A.data(), K, B.data(), K, 0.f, off.data(), N);
  mk::set_amx_products_for_testing(true);
  EXPECT_TRUE(mk::amx_products_active());
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    for (float beta : {0.f, 1.f}) {
      std::vector<float> c(on.size(), beta == 0.f ? NAN : 1.f);
      ops::gemm<float>(false, true, M, N, K, 1.f, A.data(), K, B.data(), K, beta, c.data(), N);
      for (size_t i = 0; i < c.size(); ++i) c[i] -= beta;
      EXPECT_TRUE(all_close(c, off, 1e-4, 1e-5)) << "threads=" << threads << " beta=" << beta;
      if (beta == 0.f) on = c;
    }
  }
  EXPECT_NE(on, off) << "the tiles' sums should differ from OpenBLAS's in some last bits";
  {
    ScopedIsa avx2(Isa::avx2);
    EXPECT_FALSE(mk::amx_products_active());
  }
  EXPECT_TRUE(mk::amx_products_active());
  omp_set_num_threads(saved_threads);
  mk::set_amx_products_for_testing(saved_amx);
}

// Whether a product runs on the tiles is decided for the whole product, not
// per thread's block: 100 rows split over 2 or 3 threads (blocks under the
// 64 rows a product needs to go to the tiles) give the same bits as on one.
TEST(AmxGemm, SameBitsOnAnyThreadCount) {
  MK_SKIP_WITHOUT_AMX();
  ScopedIsa avx512(Isa::avx512);
  const bool saved_amx = mk::amx_products_active();
  const int saved_threads = omp_get_max_threads();
  mk::set_amx_products_for_testing(true);
  const int M = 100, N = 96, K = 200;
  const auto A = randn<float>(size_t(K) * M, 31), B = randn<float>(size_t(K) * N, 32);
  std::vector<float> one;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    std::vector<float> c(size_t(M) * N);
    ops::gemm<float>(true, false, M, N, K, 1.f, A.data(), M, B.data(), N, 0.f, c.data(), N);
    if (threads == 1)
      one = c;
    else
      EXPECT_EQ(c, one) << "threads=" << threads;
  }
  omp_set_num_threads(saved_threads);
  mk::set_amx_products_for_testing(saved_amx);
}

TEST(AmxGemm, RefusedWhereTheCpuLacksIt) {
  if (mk::cpu_has_amx()) GTEST_SKIP() << "this CPU has AMX: nothing to refuse";
  EXPECT_FALSE(mk::amx_products_active());
  EXPECT_THROW(mk::set_amx_products_for_testing(true), mk::Error);
}

TEST(Linear, ForwardMatchesLoop) {
  const int rows = 6, in = 5, out = 4;
  auto x = randn<double>(rows * in, 21), W = randn<double>(out * in, 22), b = randn<double>(out, 23);
  for (bool with_bias : {true, false}) {
    std::vector<double> y(rows * out, NAN), want(rows * out);
    for (int r = 0; r < rows; ++r)
      for (int o = 0; o < out; ++o) {
        double s = with_bias ? b[o] : 0.0;
        for (int i = 0; i < in; ++i) s += x[r * in + i] * W[o * in + i];
        want[r * out + o] = s;
      }
    ops::linear_forward<double>(x.data(), W.data(), with_bias ? b.data() : nullptr, y.data(), rows,
                                in, out);
    EXPECT_TRUE(all_close(y, want, 1e-12)) << "bias=" << with_bias;
  }
}

TEST(Linear, BackwardFiniteDifferences) {
  const int rows = 5, in = 4, out = 3;
  auto x = randn<double>(rows * in, 31), W = randn<double>(out * in, 32), b = randn<double>(out, 33);
  auto r = randn<double>(rows * out, 34);  // loss = sum(y * r), so dy = r
  auto loss = [&]() {
    std::vector<double> y(rows * out);
    ops::linear_forward<double>(x.data(), W.data(), b.data(), y.data(), rows, in, out);
    double s = 0;
    for (size_t i = 0; i < y.size(); ++i) s += y[i] * r[i];
    return s;
  };
  std::vector<double> dx(rows * in, NAN), dW(out * in, 0.0), db(out, 0.0);
  ops::linear_backward<double>(r.data(), x.data(), W.data(), dx.data(), dW.data(), db.data(), rows,
                               in, out);
  EXPECT_TRUE(grad_check("dx", x, dx, loss));
  EXPECT_TRUE(grad_check("dW", W, dW, loss));
  EXPECT_TRUE(grad_check("db", b, db, loss));
}

TEST(Linear, BackwardAccumulatesParamGradsAndSkipsNulls) {
  const int rows = 4, in = 3, out = 2;
  auto x = randn<double>(rows * in, 41), W = randn<double>(out * in, 42);
  auto dy = randn<double>(rows * out, 43);
  std::vector<double> dW1(out * in, 0.0), db1(out, 0.0);
  ops::linear_backward<double>(dy.data(), x.data(), W.data(), nullptr, dW1.data(), db1.data(),
                               rows, in, out);
  // A second call adds the same amount again.
  std::vector<double> dW2 = dW1, db2 = db1;
  ops::linear_backward<double>(dy.data(), x.data(), W.data(), nullptr, dW2.data(), db2.data(),
                               rows, in, out);
  for (size_t i = 0; i < dW1.size(); ++i) EXPECT_NEAR(dW2[i], 2 * dW1[i], 1e-12);
  for (size_t i = 0; i < db1.size(); ++i) EXPECT_NEAR(db2[i], 2 * db1[i], 1e-12);
  // dx is still written (not accumulated) when given.
  std::vector<double> dx(rows * in, 123.0), dx2(rows * in, -7.0);
  ops::linear_backward<double>(dy.data(), x.data(), W.data(), dx.data(), dW1.data(), nullptr,
                               rows, in, out);
  ops::linear_backward<double>(dy.data(), x.data(), W.data(), dx2.data(), dW1.data(), nullptr,
                               rows, in, out);
  EXPECT_TRUE(all_close(dx, dx2, 1e-12));
}

// Big enough for the threaded bias copy and bias-gradient sum, the columns
// (131) not a multiple of a thread's run: each db[j] is the in-order sum over
// the rows whatever the thread count (the same bits as a plain loop), and
// the forward's bias is there on every row.
TEST(Linear, BiasPathsSameOnAnyThreadCount) {
  const int rows = 700, in = 3, out = 131;
  const auto x = randn<float>(size_t(rows) * in, 51), W = randn<float>(size_t(out) * in, 52),
             b = randn<float>(out, 53), dy = randn<float>(size_t(rows) * out, 54),
             db0 = randn<float>(out, 55);
  std::vector<double> want_db(db0.begin(), db0.end());  // db accumulates onto db0
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < out; ++j) want_db[j] += dy[size_t(r) * out + j];
  const int saved = omp_get_max_threads();
  std::vector<float> db_one_thread;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    std::vector<float> db = db0, dW(size_t(out) * in, 0.f), y(size_t(rows) * out, NAN);
    ops::linear_backward<float>(dy.data(), x.data(), W.data(), nullptr, dW.data(), db.data(), rows,
                                in, out);
    EXPECT_TRUE(all_close(db, want_db, 1e-3, 1e-5)) << "threads=" << threads;
    if (threads == 1) db_one_thread = db;
    EXPECT_TRUE(all_close(db, db_one_thread, 0)) << "threads=" << threads;
    ops::linear_forward<float>(x.data(), W.data(), b.data(), y.data(), rows, in, out);
    for (int r = 0; r < rows; r += 97)
      for (int j = 0; j < out; ++j) {
        double s = b[j];
        for (int i = 0; i < in; ++i) s += double(x[size_t(r) * in + i]) * W[size_t(j) * in + i];
        ASSERT_NEAR(y[size_t(r) * out + j], s, 1e-5) << "threads=" << threads;
      }
  }
  omp_set_num_threads(saved);
}

namespace {

// y = x W^T + b in double from the definition.
std::vector<double> linear_ref(const std::vector<float>& x, const std::vector<float>& W,
                               const std::vector<float>* b, int rows, int in, int out) {
  std::vector<double> y(size_t(rows) * out);
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < out; ++j) {
      double s = b ? (*b)[j] : 0.0;
      for (int k = 0; k < in; ++k) s += double(x[size_t(r) * in + k]) * W[size_t(j) * in + k];
      y[size_t(r) * out + j] = s;
    }
  return y;
}

struct LinearShape {
  int rows, in, out;
};

// Shapes of the narrow kernel (out <= 64, rows >= 16): Mamba's x_proj at
// the transformers script's size; columns and rows off every vector and
// register block; one output; 64 outputs.
const LinearShape kNarrowShapes[] = {{300, 512, 48}, {16, 7, 1},    {37, 33, 5},
                                     {130, 64, 64},  {19, 100, 17}, {64, 3, 40}};

std::string where(const LinearShape& s) {
  return "rows=" + std::to_string(s.rows) + " in=" + std::to_string(s.in) +
         " out=" + std::to_string(s.out);
}

}  // namespace

// float linear layers with few outputs run their forward through a kernel
// of their own on the AVX2 and AVX-512 copies (the BLAS on the scalar
// one): on every ISA, with and without bias, against double.
TEST(Linear, NarrowOutputsMatchReferenceOnEveryIsa) {
  for (Isa isa : supported_isas()) {
    ScopedIsa scoped(isa);
    for (const LinearShape& s : kNarrowShapes) {
      const auto x = randn<float>(size_t(s.rows) * s.in, 61),
                 W = randn<float>(size_t(s.out) * s.in, 62, 1.0 / std::sqrt(double(s.in))),
                 b = randn<float>(s.out, 63);
      std::vector<float> y(size_t(s.rows) * s.out, NAN);
      ops::linear_forward<float>(x.data(), W.data(), b.data(), y.data(), s.rows, s.in, s.out);
      const std::string at = std::string(isa_name(isa)) + " " + where(s);
      EXPECT_TRUE(all_close(y, linear_ref(x, W, &b, s.rows, s.in, s.out), 1e-5, 1e-5)) << at;
      std::fill(y.begin(), y.end(), NAN);
      ops::linear_forward<float>(x.data(), W.data(), nullptr, y.data(), s.rows, s.in, s.out);
      EXPECT_TRUE(all_close(y, linear_ref(x, W, nullptr, s.rows, s.in, s.out), 1e-5, 1e-5))
          << "no bias, " << at;
    }
  }
}

// Each output of the narrow kernel is one chain of multiply-adds in k: the
// same bits on 1, 2 or 3 threads, and on the AVX2 and AVX-512 copies (both
// with FMA). The scalar copy is left out: it hands these products to the
// BLAS, whose sums may be ordered by thread count (OpenBLAS's Haswell
// kernels on a Zen 3 differ in the last bits between 1 and 2 threads).
TEST(Linear, NarrowOutputsSameBitsOnAnyThreadCountAndOnAvx2AndAvx512) {
  if (supported_isas().size() < 2)
    GTEST_SKIP() << "the narrow kernel runs on AVX2 and AVX-512; this CPU has neither";
  const int saved = omp_get_max_threads();
  for (const LinearShape& s : {LinearShape{300, 512, 48}, LinearShape{1000, 70, 33}}) {
    const auto x = randn<float>(size_t(s.rows) * s.in, 71),
               W = randn<float>(size_t(s.out) * s.in, 72), b = randn<float>(s.out, 73);
    std::vector<std::pair<Isa, std::vector<float>>> runs;  // one thread's y per ISA
    for (Isa isa : supported_isas()) {
      if (isa == Isa::scalar) continue;  // the BLAS's, see above
      ScopedIsa scoped(isa);
      std::vector<float> first;
      for (int threads : {1, 2, 3}) {
        omp_set_num_threads(threads);
        std::vector<float> y(size_t(s.rows) * s.out);
        ops::linear_forward<float>(x.data(), W.data(), b.data(), y.data(), s.rows, s.in, s.out);
        if (threads == 1) first = y;
        EXPECT_TRUE(all_close(y, first, 0))
            << isa_name(isa) << " threads=" << threads << " " << where(s);
      }
      runs.emplace_back(isa, first);
    }
    const std::vector<float>* avx2 = nullptr;
    const std::vector<float>* avx512 = nullptr;
    for (const auto& [isa, r] : runs) {
      if (isa == Isa::avx2) avx2 = &r;
      if (isa == Isa::avx512) avx512 = &r;
    }
    if (avx2 && avx512) {
      EXPECT_TRUE(all_close(*avx2, *avx512, 0)) << where(s);
    }
  }
  omp_set_num_threads(saved);
}
