// Matrix products on CUDA through cuBLAS (cublasGemmEx), row-major as
// mambakit/ops/matmul.h. T = float (full fp32: CUBLAS_COMPUTE_32F, no TF32)
// or bf16 (bf16 operands, fp32 accumulation, bf16 result). Weight gradients
// are fp32 whatever T (fp32 master weights); for bf16 they are accumulated
// by cuBLAS directly into the fp32 buffer (bf16 x bf16 -> fp32 GEMM).
#pragma once

#include "mambakit/cuda/device.h"

namespace mk::ops::cuda {

using mk::cuda::stream_t;

// C (M,N) = alpha * op(A) * op(B) + beta * C, row-major with leading dims.
// op(A) is (M,K): A is (M,K) or, if trans_a, (K,M). op(B) is (K,N) likewise.
template <typename T>
void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const T* A, int lda,
          const T* B, int ldb, float beta, T* C, int ldc, stream_t stream = nullptr);

// y (rows, out) = x (rows, in) W^T + b;  W (out, in); b (out) or null.
template <typename T>
void linear_forward(const T* x, const T* W, const T* b, T* y, int rows, int in, int out,
                    stream_t stream = nullptr);

// dx (rows, in) = dy W        (written; skipped if dx is null)
// dW (out, in) += dy^T x      (accumulated, fp32)
// db (out) += sum_rows dy     (accumulated, fp32; skipped if db is null;
//                              fixed-order reduction: deterministic)
template <typename T>
void linear_backward(const T* dy, const T* x, const T* W, T* dx, float* dW, float* db, int rows,
                     int in, int out, stream_t stream = nullptr);

// bf16 operands, fp32 data (train.precision: bf16): the same products with
// fp32 inputs and outputs, whose operands are rounded to bf16 for the tensor
// cores (accumulation in fp32; dW and db accumulated in fp32 as above).
void gemm_bf16(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
               const float* B, int ldb, float beta, float* C, int ldc, stream_t stream = nullptr);
void linear_forward_bf16(const float* x, const float* W, const float* b, float* y, int rows, int in,
                         int out, stream_t stream = nullptr);
void linear_backward_bf16(const float* dy, const float* x, const float* W, float* dx, float* dW,
                          float* db, int rows, int in, int out, stream_t stream = nullptr);

}  // namespace mk::ops::cuda
