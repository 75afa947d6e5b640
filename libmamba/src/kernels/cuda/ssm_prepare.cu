// S4D/S4 parameter preparation on CUDA (see ops/ssm_prepare.h and
// ops/cuda/ssm_conv.h): elementwise, one thread per channel or state.
#include <cuda_runtime.h>

#include <string>

#include "common.cuh"
#include "mambakit/ops/cuda/ssm_conv.h"

namespace mk::ops::cuda {

using namespace mk::cuda::detail;

namespace {

constexpr int kThreads = 256;

void check(int H, int N2, const char* where) {
  MK_CHECK(H > 0 && N2 > 0, std::string(where) + ": sizes must be positive (H=" +
                                std::to_string(H) + ", N/2=" + std::to_string(N2) + ")");
  require_device(where);
}

__global__ void prepare_kernel(int H, size_t n, const float* log_dt, const float* log_A_real,
                               const float* A_imag, float* dt, float* A) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    if (i < size_t(H)) dt[i] = expf(log_dt[i]);
    A[2 * i] = -expf(log_A_real[i]);
    A[2 * i + 1] = A_imag[i];
  }
}

__global__ void prepare_backward_kernel(int H, size_t n, const float* dt, const float* A,
                                        const float* ddt, const float* dA, float* g_log_dt,
                                        float* g_log_A_real, float* g_A_imag) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    if (i < size_t(H)) g_log_dt[i] += ddt[i] * dt[i];
    g_log_A_real[i] += dA[2 * i] * A[2 * i];
    g_A_imag[i] += dA[2 * i + 1];
  }
}

}  // namespace

void ssm_diag_prepare(int H, int N2, const float* log_dt, const float* log_A_real,
                      const float* A_imag, float* dt, float* A, stream_t stream) {
  check(H, N2, "cuda ssm_diag_prepare");
  const size_t n = size_t(H) * N2;  // >= H
  prepare_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(H, n, log_dt, log_A_real, A_imag,
                                                                 dt, A);
  MK_CUDA_LAUNCH_CHECK("cuda ssm_diag_prepare");
}

void ssm_diag_prepare_backward(int H, int N2, const float* dt, const float* A, const float* ddt,
                               const float* dA, float* g_log_dt, float* g_log_A_real,
                               float* g_A_imag, stream_t stream) {
  check(H, N2, "cuda ssm_diag_prepare_backward");
  const size_t n = size_t(H) * N2;
  prepare_backward_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(
      H, n, dt, A, ddt, dA, g_log_dt, g_log_A_real, g_A_imag);
  MK_CUDA_LAUNCH_CHECK("cuda ssm_diag_prepare_backward");
}

}  // namespace mk::ops::cuda
