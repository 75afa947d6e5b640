// Matrix products through BLAS (OpenBLAS). Row-major throughout.
// Conventions for every op in mambakit/ops: input gradients are written (=),
// parameter gradients are accumulated (+=), so gradient accumulation over
// micro-batches needs no extra buffer.
#pragma once

namespace mk::ops {

// C (M,N) = alpha * op(A) * op(B) + beta * C, row-major with leading dims.
// op(A) is (M,K): A is (M,K) or, if trans_a, (K,M). op(B) is (K,N) likewise.
template <typename T>
void gemm(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, int lda,
          const T* B, int ldb, T beta, T* C, int ldc);

// Linear layer, PyTorch weight layout: y (rows, out) = x (rows, in) W^T + b.
// W is (out, in); b is (out) or null. In float with at most 64 outputs and
// 16 rows or more, on the AVX2 and AVX-512 paths, the forward runs a kernel
// of its own (each output one multiply-add chain in k) instead of the BLAS.
template <typename T>
void linear_forward(const T* x, const T* W, const T* b, T* y, int rows, int in, int out);

// dx (rows, in) = dy W        (written; skipped if dx is null)
// dW (out, in) += dy^T x      (accumulated)
// db (out) += sum_rows dy     (accumulated; skipped if db is null)
template <typename T>
void linear_backward(const T* dy, const T* x, const T* W, T* dx, T* dW, T* db, int rows, int in,
                     int out);

}  // namespace mk::ops
