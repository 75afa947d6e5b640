// AdamW, global gradient norm and clipping over flat fp32 buffers on CUDA.
#include <algorithm>
#include <cmath>

#include "common.cuh"
#include "mambakit/ops/cuda/optim.h"

namespace mk::ops::cuda {

using namespace mk::cuda::detail;

namespace {

constexpr int kThreads = 256;
// The norm's first pass uses a grid fixed by n alone (not by the device), so
// the order of the double additions, and the result, never change.
constexpr size_t kNormBlocks = 1024;

struct AdamWConsts {
  float b1, b2, one_b1, one_b2, step_size, inv_sqrt_bc2, eps, keep;
};

// Same order as the CPU op (torch.optim.AdamW): decay, then the
// bias-corrected step p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps).
__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, size_t n,
                             AdamWConsts c) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    const float gi = g[i];
    const float mi = c.b1 * m[i] + c.one_b1 * gi;
    const float vi = c.b2 * v[i] + c.one_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * c.keep - c.step_size * mi / (sqrtf(vi) * c.inv_sqrt_bc2 + c.eps);
  }
}

__global__ void __launch_bounds__(kThreads) sumsq_partial_kernel(const float* g, size_t n,
                                                                 double* part) {
  __shared__ double red[32];
  double s = 0.0;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    s += double(g[i]) * double(g[i]);
  s = block_sum(s, red);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}

__global__ void __launch_bounds__(kThreads) sum_partials_kernel(const double* part, int n,
                                                                double* total) {
  __shared__ double red[32];
  double s = 0.0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) s += part[i];
  s = block_sum(s, red);
  if (threadIdx.x == 0) *total = s;
}

__global__ void scale_kernel(float* g, size_t n, float scale) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    g[i] *= scale;
}

}  // namespace

void adamw_update(float* p, const float* g, float* m, float* v, size_t n, const AdamWHyper& h,
                  long step, bool decay, stream_t stream) {
  MK_CHECK(step >= 1, "cuda::adamw_update: step " + std::to_string(step) + " must be >= 1 (1-based)");
  if (n == 0) return;
  require_device("cuda::adamw_update");
  const double bc1 = 1.0 - std::pow(h.beta1, double(step));
  const double bc2 = 1.0 - std::pow(h.beta2, double(step));
  const AdamWConsts c{float(h.beta1),
                      float(h.beta2),
                      float(1.0 - h.beta1),
                      float(1.0 - h.beta2),
                      float(h.lr / bc1),
                      float(1.0 / std::sqrt(bc2)),
                      float(h.eps),
                      decay ? float(1.0 - h.lr * h.weight_decay) : 1.f};
  adamw_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(p, g, m, v, n, c);
  MK_CUDA_LAUNCH_CHECK("cuda::adamw_update");
}

double global_norm(const float* g, size_t n, stream_t stream) {
  if (n == 0) return 0.0;
  require_device("cuda::global_norm");
  const int blocks = int(std::min(kNormBlocks, (n + kThreads - 1) / kThreads));
  mk::cuda::DeviceBuffer<double> part(size_t(blocks) + 1, stream);
  sumsq_partial_kernel<<<blocks, kThreads, 0, stream>>>(g, n, part.data());
  MK_CUDA_LAUNCH_CHECK("cuda::global_norm");
  sum_partials_kernel<<<1, kThreads, 0, stream>>>(part.data(), blocks, part.data() + blocks);
  MK_CUDA_LAUNCH_CHECK("cuda::global_norm (sum)");
  double total = 0;
  mk::cuda::copy_to_host(&total, part.data() + blocks, sizeof total, stream);
  return std::sqrt(total);
}

double clip_grad_norm(float* g, size_t n, double max_norm, stream_t stream) {
  const double norm = global_norm(g, n, stream);
  if (norm > max_norm && norm > 0) {
    scale_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(g, n, float(max_norm / norm));
    MK_CUDA_LAUNCH_CHECK("cuda::clip_grad_norm");
  }
  return norm;
}

}  // namespace mk::ops::cuda
