// RMSNorm on CUDA: one block per row for the statistics and dx; dw as
// per-chunk column partial sums added in a fixed order.
#include <algorithm>

#include "common.cuh"
#include "mambakit/ops/cuda/rmsnorm.h"

namespace mk::ops::cuda {

using mk::cuda::bf16;
using namespace mk::cuda::detail;

namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kThreads) rmsnorm_fwd_kernel(const T* x, const float* w, T* y,
                                                               float* rstd, int rows, int dim,
                                                               float eps) {
  __shared__ float red[32];
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + size_t(r) * dim;
    T* yr = y + size_t(r) * dim;
    float ss = 0.f;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) {
      const float v = to_float(xr[j]);
      ss = fmaf(v, v, ss);
    }
    ss = block_sum(ss, red);
    const float rs = rsqrtf(ss / float(dim) + eps);
    if (threadIdx.x == 0) rstd[r] = rs;
    for (int j = threadIdx.x; j < dim; j += blockDim.x)
      yr[j] = from_float<T>(to_float(xr[j]) * rs * w[j]);
  }
}

// dx_j = r w_j dy_j - r^3 x_j c / dim,  c = sum_i dy_i w_i x_i.
template <typename T>
__global__ void __launch_bounds__(kThreads) rmsnorm_dx_kernel(const T* dy, const T* x,
                                                              const float* w, const float* rstd,
                                                              T* dx, int rows, int dim) {
  __shared__ float red[32];
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + size_t(r) * dim;
    const T* dyr = dy + size_t(r) * dim;
    T* dxr = dx + size_t(r) * dim;
    float c = 0.f;
    for (int j = threadIdx.x; j < dim; j += blockDim.x)
      c = fmaf(to_float(dyr[j]) * w[j], to_float(xr[j]), c);
    c = block_sum(c, red);
    const float rs = rstd[r], k = rs * rs * rs * c / float(dim);
    for (int j = threadIdx.x; j < dim; j += blockDim.x)
      dxr[j] = from_float<T>(rs * w[j] * to_float(dyr[j]) - k * to_float(xr[j]));
  }
}

// ws[chunk, j] = sum over the chunk's rows of dy * x * rstd.
template <typename T>
__global__ void rmsnorm_dw_partial_kernel(const T* dy, const T* x, const float* rstd, int rows,
                                          int dim, float* ws) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x, chunk = blockIdx.y;
  if (j >= dim) return;
  const int r0 = chunk * kRowsPerChunk, r1 = min(rows, r0 + kRowsPerChunk);
  float s = 0.f;
  for (int r = r0; r < r1; ++r)
    s = fmaf(to_float(dy[size_t(r) * dim + j]) * to_float(x[size_t(r) * dim + j]), rstd[r], s);
  ws[size_t(chunk) * dim + j] = s;
}

void check_sizes(const char* where, int rows, int dim) {
  MK_CHECK(rows >= 0 && dim > 0, std::string(where) + ": bad sizes rows=" +
                                     std::to_string(rows) + " dim=" + std::to_string(dim));
  require_device(where);
}

unsigned row_blocks(int rows) { return unsigned(std::min(rows, 65535 * 4)); }

}  // namespace

template <typename T>
void rmsnorm_forward(const T* x, const float* w, T* y, float* rstd, int rows, int dim, float eps,
                     stream_t stream) {
  check_sizes("cuda::rmsnorm_forward", rows, dim);
  if (rows == 0) return;
  rmsnorm_fwd_kernel<T><<<row_blocks(rows), kThreads, 0, stream>>>(x, w, y, rstd, rows, dim, eps);
  MK_CUDA_LAUNCH_CHECK("cuda::rmsnorm_forward");
}

template <typename T>
void rmsnorm_backward(const T* dy, const T* x, const float* w, const float* rstd, T* dx,
                      float* dw, int rows, int dim, stream_t stream) {
  check_sizes("cuda::rmsnorm_backward", rows, dim);
  if (rows == 0) return;
  rmsnorm_dx_kernel<T><<<row_blocks(rows), kThreads, 0, stream>>>(dy, x, w, rstd, dx, rows, dim);
  MK_CUDA_LAUNCH_CHECK("cuda::rmsnorm_backward (dx)");
  const int n_chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
  MK_CHECK(n_chunks <= 65535, "cuda::rmsnorm_backward: " + std::to_string(rows) +
                                  " rows exceed the dw reduction's grid");
  mk::cuda::DeviceBuffer<float> ws(size_t(n_chunks) * dim, stream);
  const dim3 grid(unsigned((dim + kThreads - 1) / kThreads), unsigned(n_chunks));
  rmsnorm_dw_partial_kernel<T><<<grid, kThreads, 0, stream>>>(dy, x, rstd, rows, dim, ws.data());
  MK_CUDA_LAUNCH_CHECK("cuda::rmsnorm_backward (dw partials)");
  add_chunk_sums_kernel<><<<grid_for(dim, kThreads), kThreads, 0, stream>>>(ws.data(), n_chunks,
                                                                           size_t(dim), dw);
  MK_CUDA_LAUNCH_CHECK("cuda::rmsnorm_backward (dw)");
}

#define MK_INSTANTIATE(T)                                                                      \
  template void rmsnorm_forward<T>(const T*, const float*, T*, float*, int, int, float,        \
                                   stream_t);                                                 \
  template void rmsnorm_backward<T>(const T*, const T*, const float*, const float*, T*, float*, \
                                    int, int, stream_t);
MK_INSTANTIATE(float)
MK_INSTANTIATE(bf16)
#undef MK_INSTANTIATE

}  // namespace mk::ops::cuda
