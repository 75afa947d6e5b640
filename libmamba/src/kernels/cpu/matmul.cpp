// Matrix products through OpenBLAS (cblas, row-major), and the linear layer
// built on them (whose float forward with few outputs runs a kernel of its
// own instead, narrow_matmul_kernels.cpp).
//
// One thread pool: OpenBLAS is kept at one thread and gemm splits C into
// blocks of rows (or columns) over the OpenMP threads itself, one cblas call
// per block. Debian's OpenBLAS runs its own pthread pool; with both pools
// awake on a 2-core machine every matmul followed by an OpenMP region (and
// the reverse) left one pool spinning on the cores the other needed
// (measured: a small Mamba trained slower on two threads than on one, 16% of
// the time in the scheduler).
#include "mambakit/ops/matmul.h"

#include "mambakit/ops/amx_matmul.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "activations_isa.h"
#include "transpose.h"
#include "mambakit/cpu_isa.h"
#include "mambakit/error.h"

// OpenBLAS's setter, weak so that another BLAS still links (then it is null).
extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace mk::ops {

namespace {

// Work (M*N*K multiply-adds) below which a product runs on one thread.
constexpr double kParallelMinMacs = 1 << 18;
// Fewest rows or columns a thread's block gets.
constexpr int kMinBlock = 16;
// Elements (rows x columns) below which the bias copy and sum run on one
// thread; and the rows per block of the bias sum.
constexpr size_t kParallelMinElems = size_t(1) << 16;
constexpr int kBiasRows = 64;

void keep_blas_single_threaded() {
  static const bool done = [] {
    if (openblas_set_num_threads) openblas_set_num_threads(1);
    return true;
  }();
  (void)done;
}

// Fewest columns of C and k a product on AMX tiles takes: its blocks are
// 32 x 32 over 32 k, and narrower products (dt_proj's, 16 in or 16 wide,
// 2048 rows) ran slower there than in OpenBLAS. Fewest rows of C: all of
// op(B) is split into its three parts per call, which few rows do not
// repay (x_proj's dW, 48 rows over K = 2048: 1.08 against 0.97 ms). One
// thread, a Xeon with AMX; bench/README.md.
constexpr int kAmxMinCols = 32, kAmxMinDepth = 32, kAmxMinRows = 64;

// Whether a float product goes to AMX tiles (amx_matmul.h): they run here
// and the call is one they take: alpha 1, beta 0 or 1 (every product of
// the models), at least the sizes above. Decided once for the whole
// product, before gemm splits it over threads, so that every block is
// summed the same way: the same bits on any thread count.
inline bool on_tiles(int M, int N, int K, float alpha, float beta) {
  return alpha == 1.f && (beta == 0.f || beta == 1.f) && M >= kAmxMinRows && N >= kAmxMinCols &&
         K >= kAmxMinDepth && amx_products_active();
}
inline bool on_tiles(int, int, int, double, double) { return false; }

inline void blas_gemm(bool tiles, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K,
                      float alpha, const float* A, int lda, const float* B, int ldb, float beta,
                      float* C, int ldc) {
  // amx_sgemm declines only where its packing buffers cannot be allocated;
  // BLAS, which needs less, takes the block then.
  if (tiles && amx_sgemm(ta == CblasTrans, tb == CblasTrans, M, N, K, A, lda, B, ldb,
                         beta == 1.f, C, ldc))
    return;
  cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
inline void blas_gemm(bool, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K,
                      double alpha, const double* A, int lda, const double* B, int ldb,
                      double beta, double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

inline void blas_gemv(CBLAS_TRANSPOSE t, int rows, int cols, float alpha, const float* A, int lda,
                      const float* x, int incx, float beta, float* y) {
  cblas_sgemv(CblasRowMajor, t, rows, cols, alpha, A, lda, x, incx, beta, y, 1);
}
inline void blas_gemv(CBLAS_TRANSPOSE t, int rows, int cols, double alpha, const double* A,
                      int lda, const double* x, int incx, double beta, double* y) {
  cblas_dgemv(CblasRowMajor, t, rows, cols, alpha, A, lda, x, incx, beta, y, 1);
}

// C (1 x N) = alpha op(A) op(B) + beta C as one matrix-vector product. A
// gemm call with one row still packs all of op(B) into OpenBLAS's buffers
// first: for recurrent generation (one token, batch 1) that copy of every
// weight matrix at every step cost more than the product.
template <typename T>
void row_times_matrix(bool trans_a, bool trans_b, int N, int K, T alpha, const T* A, int lda,
                      const T* B, int ldb, T beta, T* C) {
  // beta == 0 must overwrite C even where it holds NaN, as gemm does.
  if (beta == T(0)) std::fill(C, C + N, T(0));
  const int inc_a = trans_a ? lda : 1;  // op(A)'s one row: a column of A if transposed
  if (trans_b)  // B is (N, K): C = B a
    blas_gemv(CblasNoTrans, N, K, alpha, B, ldb, A, inc_a, beta, C);
  else          // B is (K, N): C = B^T a
    blas_gemv(CblasTrans, K, N, alpha, B, ldb, A, inc_a, beta, C);
}

std::string dims(int M, int N, int K) {
  return "M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K);
}

}  // namespace

template <typename T>
void gemm(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, int lda,
          const T* B, int ldb, T beta, T* C, int ldc) {
  MK_CHECK(M >= 0 && N >= 0 && K >= 0, "gemm: negative size " + dims(M, N, K));
  // Row-major: the leading dim is the length of a stored row.
  const int a_cols = trans_a ? M : K, b_cols = trans_b ? K : N;
  MK_CHECK(lda >= std::max(1, a_cols), "gemm: lda=" + std::to_string(lda) + " too small for " +
                                           dims(M, N, K) + (trans_a ? " (A transposed)" : ""));
  MK_CHECK(ldb >= std::max(1, b_cols), "gemm: ldb=" + std::to_string(ldb) + " too small for " +
                                           dims(M, N, K) + (trans_b ? " (B transposed)" : ""));
  MK_CHECK(ldc >= std::max(1, N), "gemm: ldc=" + std::to_string(ldc) + " too small for " +
                                      dims(M, N, K));
  if (M == 0 || N == 0) return;
  if (K == 0) {  // op(A) op(B) is empty: C = beta * C (beta 0 overwrites, even NaN)
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) C[size_t(i) * ldc + j] = beta == T(0) ? T(0) : beta * C[size_t(i) * ldc + j];
    return;
  }
  keep_blas_single_threaded();
  if (M == 1) {  // on one thread: a matrix-vector product is memory-bound
    row_times_matrix(trans_a, trans_b, N, K, alpha, A, lda, B, ldb, beta, C);
    return;
  }
  const bool tiles = on_tiles(M, N, K, alpha, beta);
  const CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
  const int max_threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const bool split_rows = M >= N;  // the longer side of C is split
  const int side = split_rows ? M : N;
  const int n_blocks = std::min(max_threads, side / kMinBlock);
  if (n_blocks < 2 || double(M) * N * K < kParallelMinMacs) {
    blas_gemm(tiles, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // Block i covers rows (or columns) [side*i/n, side*(i+1)/n) of C: the same
  // rows of op(A) (or columns of op(B)), each element summed over all of K by
  // one call, as in the single-threaded product.
#pragma omp parallel for schedule(static) num_threads(n_blocks)
  for (int i = 0; i < n_blocks; ++i) {
    const int b0 = int(int64_t(side) * i / n_blocks), b1 = int(int64_t(side) * (i + 1) / n_blocks);
    if (split_rows) {
      const T* Ai = trans_a ? A + b0 : A + size_t(b0) * lda;
      blas_gemm(tiles, ta, tb, b1 - b0, N, K, alpha, Ai, lda, B, ldb, beta, C + size_t(b0) * ldc,
                ldc);
    } else {
      const T* Bj = trans_b ? B + size_t(b0) * ldb : B + b0;
      blas_gemm(tiles, ta, tb, M, b1 - b0, K, alpha, A, lda, Bj, ldb, beta, C + b0, ldc);
    }
  }
}

// Whether a float linear layer's forward of this shape runs the narrow
// kernel (narrow_matmul_kernels.cpp): few outputs, enough rows (one row
// stays a matrix-vector product), and a copy with FMA (the baseline copy
// was 3x slower than the BLAS here; bench/README.md).
static bool narrow_forward(int rows, int in, int out) {
  return out <= kNarrowMaxOut && rows >= kNarrowMinRows && in > 0 && active_isa() != Isa::scalar;
}

template <typename T>
void linear_forward(const T* x, const T* W, const T* b, T* y, int rows, int in, int out) {
  if (rows == 0 || out == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    if (narrow_forward(rows, in, out)) {
      const std::vector<float> wt = transposed(W, out, in);  // (in, out)
      active_activation_kernels().narrow_linear_forward(x, wt.data(), b, y, rows, in, out);
      return;
    }
  }
  // Seed y with the bias and let the gemm accumulate onto it (beta = 1).
  if (b) {
#pragma omp parallel for schedule(static) if (size_t(rows) * out > kParallelMinElems)
    for (int r = 0; r < rows; ++r) std::copy(b, b + out, y + size_t(r) * out);
  }
  gemm<T>(false, true, rows, out, in, T(1), x, in, W, in, b ? T(1) : T(0), y, out);
}

template <typename T>
void linear_backward(const T* dy, const T* x, const T* W, T* dx, T* dW, T* db, int rows, int in,
                     int out) {
  if (dx) gemm<T>(false, false, rows, in, out, T(1), dy, out, W, in, T(0), dx, in);
  if (dW) gemm<T>(true, false, out, in, rows, T(1), dy, out, x, in, T(1), dW, in);
  // db[j] += sum over rows of dy[r, j]: summed per block of kBiasRows rows,
  // then over the blocks in order. One pass over dy (threads that each took
  // a run of columns over every row read dy once per run, from L3 at
  // training sizes), and sums that do not depend on the thread count.
  if (db) {
    const int n_blocks = (rows + kBiasRows - 1) / kBiasRows;
    std::vector<T> part(size_t(n_blocks) * out);
#pragma omp parallel for schedule(static) if (size_t(rows) * out > kParallelMinElems)
    for (int blk = 0; blk < n_blocks; ++blk) {
      T* pb = part.data() + size_t(blk) * out;
      for (int r = blk * kBiasRows; r < std::min(rows, (blk + 1) * kBiasRows); ++r) {
        const T* row = dy + size_t(r) * out;
        for (int j = 0; j < out; ++j) pb[j] += row[j];
      }
    }
    std::vector<T> total(out, T(0));
    for (int blk = 0; blk < n_blocks; ++blk)
      for (int j = 0; j < out; ++j) total[j] += part[size_t(blk) * out + j];
    for (int j = 0; j < out; ++j) db[j] += total[j];
  }
}

#define MK_INSTANTIATE(T)                                                                    \
  template void gemm<T>(bool, bool, int, int, int, T, const T*, int, const T*, int, T, T*,   \
                        int);                                                                \
  template void linear_forward<T>(const T*, const T*, const T*, T*, int, int, int);          \
  template void linear_backward<T>(const T*, const T*, const T*, T*, T*, T*, int, int, int);
MK_INSTANTIATE(float)
MK_INSTANTIATE(double)
#undef MK_INSTANTIATE

}  // namespace mk::ops
