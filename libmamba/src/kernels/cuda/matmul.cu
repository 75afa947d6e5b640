// Matrix products on CUDA through cuBLAS. cuBLAS is column-major; a
// row-major (r x c) matrix with leading dim ld is the column-major (c x r)
// matrix of its transpose with the same ld, so the row-major product
// C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T:
// operands swapped, transposition flags kept, dimensions (N, M, K).
#include <cublas_v2.h>

#include <mutex>
#include <unordered_map>

#include "common.cuh"
#include "mambakit/ops/cuda/activations.h"
#include "mambakit/ops/cuda/matmul.h"

namespace mk::ops::cuda {

using mk::cuda::bf16;
using namespace mk::cuda::detail;

namespace {

constexpr int kThreads = 256;

const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "cuBLAS error";
  }
}

void cublas_check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw Error(std::string(what) + ": " + cublas_status_name(s) + " (" + std::to_string(int(s)) +
                ")");
}

// One handle per host thread and device, created on first use and kept for
// the life of the process (creation is expensive; handles are not
// thread-safe to share).
cublasHandle_t handle_for(stream_t stream) {
  thread_local std::unordered_map<int, cublasHandle_t> handles;
  int dev = 0;
  MK_CUDA_CHECK(cudaGetDevice(&dev));
  auto it = handles.find(dev);
  if (it == handles.end()) {
    cublasHandle_t h = nullptr;
    cublas_check(cublasCreate(&h), "cublasCreate");
    // Full fp32 unless asked otherwise: the tests compare with the CPU
    // reference, and TF32 would lose 13 mantissa bits.
    cublas_check(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
    it = handles.emplace(dev, h).first;
  }
  cublas_check(cublasSetStream(it->second, stream), "cublasSetStream");
  return it->second;
}

template <typename T> constexpr cudaDataType_t data_type();
template <> constexpr cudaDataType_t data_type<float>() { return CUDA_R_32F; }
template <> constexpr cudaDataType_t data_type<bf16>() { return CUDA_R_16BF; }

// Row-major C (M,N) = alpha op(A) op(B) + beta C with A, B of type Tab and
// C of type Tc, accumulated in fp32.
template <typename Tab, typename Tc>
void gemm_ex(const char* what, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
             const Tab* A, int lda, const Tab* B, int ldb, float beta, Tc* C, int ldc,
             stream_t stream) {
  MK_CHECK(M >= 0 && N >= 0 && K >= 0, std::string(what) + ": negative size");
  if (M == 0 || N == 0) return;
  // Leading dims of the row-major operands: at least their column count.
  MK_CHECK(lda >= (trans_a ? M : K) && ldb >= (trans_b ? K : N) && ldc >= N,
           std::string(what) + ": leading dimension too small (lda " + std::to_string(lda) +
               ", ldb " + std::to_string(ldb) + ", ldc " + std::to_string(ldc) + ")");
  require_device(what);
  cublasHandle_t h = handle_for(stream);
  cublas_check(cublasGemmEx(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                            trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B,
                            data_type<Tab>(), ldb, A, data_type<Tab>(), lda, &beta, C,
                            data_type<Tc>(), ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               what);
}

// y[r, o] = b[o]
template <typename T>
__global__ void broadcast_rows_kernel(const T* b, T* y, int rows, int out) {
  const size_t total = size_t(rows) * out;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total;
       i += size_t(gridDim.x) * blockDim.x)
    y[i] = b[i % out];
}

// ws[chunk, o] = sum over the chunk's rows of dy[r, o].
template <typename T>
__global__ void colsum_partial_kernel(const T* dy, int rows, int out, float* ws) {
  const int o = blockIdx.x * blockDim.x + threadIdx.x, chunk = blockIdx.y;
  if (o >= out) return;
  const int r0 = chunk * kRowsPerChunk, r1 = min(rows, r0 + kRowsPerChunk);
  float s = 0.f;
  for (int r = r0; r < r1; ++r) s += to_float(dy[size_t(r) * out + o]);
  ws[size_t(chunk) * out + o] = s;
}

// db (out) += sum over rows of dy (rows, out): per-chunk partial sums, then
// one fixed-order pass over them (deterministic, no atomics).
template <typename T>
void bias_grad(const T* dy, int rows, int out, float* db, stream_t stream) {
    const int n_chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
    MK_CHECK(n_chunks <= 65535, "cuda::linear_backward: " + std::to_string(rows) +
                                    " rows exceed the db reduction's grid");
    mk::cuda::DeviceBuffer<float> ws(size_t(n_chunks) * out, stream);
    const dim3 grid(unsigned((out + kThreads - 1) / kThreads), unsigned(n_chunks));
    colsum_partial_kernel<T><<<grid, kThreads, 0, stream>>>(dy, rows, out, ws.data());
    MK_CUDA_LAUNCH_CHECK("cuda::linear_backward (db partials)");
    add_chunk_sums_kernel<><<<grid_for(out, kThreads), kThreads, 0, stream>>>(
        ws.data(), n_chunks, size_t(out), db);
    MK_CUDA_LAUNCH_CHECK("cuda::linear_backward (db)");
}

}  // namespace

template <typename T>
void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const T* A, int lda,
          const T* B, int ldb, float beta, T* C, int ldc, stream_t stream) {
  gemm_ex<T, T>("cuda::gemm", trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                stream);
}

template <typename T>
void linear_forward(const T* x, const T* W, const T* b, T* y, int rows, int in, int out,
                    stream_t stream) {
  MK_CHECK(rows >= 0 && in > 0 && out > 0, "cuda::linear_forward: bad sizes rows=" +
                                               std::to_string(rows) + " in=" +
                                               std::to_string(in) + " out=" + std::to_string(out));
  if (rows == 0) return;
  require_device("cuda::linear_forward");
  if (b) {
    broadcast_rows_kernel<T><<<grid_for(size_t(rows) * out, kThreads), kThreads, 0, stream>>>(
        b, y, rows, out);
    MK_CUDA_LAUNCH_CHECK("cuda::linear_forward (bias)");
  }
  // y (rows, out) = x (rows, in) . W^T, W stored (out, in).
  gemm_ex<T, T>("cuda::linear_forward", false, true, rows, out, in, 1.f, x, in, W, in,
                b ? 1.f : 0.f, y, out, stream);
}

template <typename T>
void linear_backward(const T* dy, const T* x, const T* W, T* dx, float* dW, float* db, int rows,
                     int in, int out, stream_t stream) {
  MK_CHECK(rows >= 0 && in > 0 && out > 0 && dW, "cuda::linear_backward: bad sizes or null dW");
  if (rows == 0) return;
  require_device("cuda::linear_backward");
  if (dx)  // dx (rows, in) = dy (rows, out) . W (out, in)
    gemm_ex<T, T>("cuda::linear_backward (dx)", false, false, rows, in, out, 1.f, dy, out, W, in,
                  0.f, dx, in, stream);
  // dW (out, in) += dy^T (out, rows) . x (rows, in), into the fp32 buffer.
  gemm_ex<T, float>("cuda::linear_backward (dW)", true, false, out, in, rows, 1.f, dy, out, x, in,
                    1.f, dW, in, stream);
  if (db) bias_grad(dy, rows, out, db, stream);
}

// --- bf16 operands, fp32 data (train.precision: bf16) ------------------------

namespace {

// A bf16 copy of n fp32 values, from the caching allocator.
mk::cuda::DeviceBuffer<bf16> to_bf16(const float* x, size_t n, stream_t stream) {
  mk::cuda::DeviceBuffer<bf16> b(n, stream);
  if (n) cast(x, b.data(), n, stream);
  return b;
}

}  // namespace

void gemm_bf16(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
               const float* B, int ldb, float beta, float* C, int ldc, stream_t stream) {
  if (M == 0 || N == 0) return;
  const auto a = to_bf16(A, size_t(trans_a ? K : M) * lda, stream);
  const auto b = to_bf16(B, size_t(trans_b ? N : K) * ldb, stream);
  gemm_ex<bf16, float>("cuda::gemm_bf16", trans_a, trans_b, M, N, K, alpha, a.data(), lda, b.data(),
                       ldb, beta, C, ldc, stream);
}

void linear_forward_bf16(const float* x, const float* W, const float* b, float* y, int rows, int in,
                         int out, stream_t stream) {
  MK_CHECK(rows >= 0 && in > 0 && out > 0, "cuda::linear_forward_bf16: bad sizes");
  if (rows == 0) return;
  require_device("cuda::linear_forward_bf16");
  if (b) {
    broadcast_rows_kernel<float><<<grid_for(size_t(rows) * out, kThreads), kThreads, 0, stream>>>(
        b, y, rows, out);
    MK_CUDA_LAUNCH_CHECK("cuda::linear_forward_bf16 (bias)");
  }
  const auto xb = to_bf16(x, size_t(rows) * in, stream);
  const auto wb = to_bf16(W, size_t(out) * in, stream);
  gemm_ex<bf16, float>("cuda::linear_forward_bf16", false, true, rows, out, in, 1.f, xb.data(), in,
                       wb.data(), in, b ? 1.f : 0.f, y, out, stream);
}

void linear_backward_bf16(const float* dy, const float* x, const float* W, float* dx, float* dW,
                          float* db, int rows, int in, int out, stream_t stream) {
  MK_CHECK(rows >= 0 && in > 0 && out > 0 && dW, "cuda::linear_backward_bf16: bad sizes or null dW");
  if (rows == 0) return;
  require_device("cuda::linear_backward_bf16");
  const auto dyb = to_bf16(dy, size_t(rows) * out, stream);
  if (dx) {
    const auto wb = to_bf16(W, size_t(out) * in, stream);
    gemm_ex<bf16, float>("cuda::linear_backward_bf16 (dx)", false, false, rows, in, out, 1.f,
                         dyb.data(), out, wb.data(), in, 0.f, dx, in, stream);
  }
  const auto xb = to_bf16(x, size_t(rows) * in, stream);
  gemm_ex<bf16, float>("cuda::linear_backward_bf16 (dW)", true, false, out, in, rows, 1.f, dyb.data(),
                       out, xb.data(), in, 1.f, dW, in, stream);
  // The bias gradient from the fp32 dy (the fp32 path's fixed-order sum).
  if (db) bias_grad(dy, rows, out, db, stream);
}

#define MK_INSTANTIATE(T)                                                                      \
  template void gemm<T>(bool, bool, int, int, int, float, const T*, int, const T*, int, float, \
                        T*, int, stream_t);                                                    \
  template void linear_forward<T>(const T*, const T*, const T*, T*, int, int, int, stream_t);  \
  template void linear_backward<T>(const T*, const T*, const T*, T*, float*, float*, int, int, \
                                   int, stream_t);
MK_INSTANTIATE(float)
MK_INSTANTIATE(bf16)
#undef MK_INSTANTIATE

}  // namespace mk::ops::cuda
