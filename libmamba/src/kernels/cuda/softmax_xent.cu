// Fused softmax cross-entropy and log-softmax on CUDA: one block per row,
// max and sum of exponentials by block reductions, then one pass for the
// gradient. The loss total is summed on the device in a fixed order.
#include <algorithm>

#include "common.cuh"
#include "mambakit/ops/cuda/softmax_xent.h"

namespace mk::ops::cuda {

using mk::cuda::bf16;
using namespace mk::cuda::detail;

namespace {

constexpr int kThreads = 256;
constexpr int kNoBad = 0x7f7f7f7f;  // flag value after memset to bytes 0x7f

// logsumexp of row x: max subtracted so nothing overflows.
template <typename T>
__device__ __forceinline__ float row_logsumexp(const T* x, int V, float* red) {
  float m = -INFINITY;
  for (int j = threadIdx.x; j < V; j += blockDim.x) m = fmaxf(m, to_float(x[j]));
  m = block_max(m, red);
  float s = 0.f;
  for (int j = threadIdx.x; j < V; j += blockDim.x) s += expf(to_float(x[j]) - m);
  s = block_sum(s, red);
  return m + logf(s);
}

template <typename T>
__global__ void __launch_bounds__(kThreads) xent_kernel(const T* logits, const int32_t* targets,
                                                        float* losses, T* dlogits, int rows, int V,
                                                        float scale, double* row_loss, int* bad) {
  __shared__ float red[32];
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* x = logits + size_t(r) * V;
    T* g = dlogits ? dlogits + size_t(r) * V : nullptr;
    const int tgt = targets[r];
    if (tgt < 0 || tgt >= V) {  // ignored (or bad: reported by the host)
      if (tgt >= V && threadIdx.x == 0) atomicMin(bad, r);
      if (threadIdx.x == 0) {
        losses[r] = 0.f;
        row_loss[r] = 0.0;
      }
      if (g)
        for (int j = threadIdx.x; j < V; j += blockDim.x) g[j] = from_float<T>(0.f);
      continue;
    }
    // Read before the barriers inside the reductions: g may alias x.
    const float xt = to_float(x[tgt]);
    const float lse = row_logsumexp(x, V, red);
    if (threadIdx.x == 0) {
      losses[r] = lse - xt;
      row_loss[r] = double(lse) - double(xt);
    }
    if (g) {
      for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float p = expf(to_float(x[j]) - lse) * scale;
        if (j == tgt) p -= scale;
        g[j] = from_float<T>(p);
      }
    }
  }
}

// total = sum of row_loss, one block, fixed order.
__global__ void __launch_bounds__(kThreads) sum_kernel(const double* v, int n, double* total) {
  __shared__ double red[32];
  double s = 0.0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) s += v[i];
  s = block_sum(s, red);
  if (threadIdx.x == 0) *total = s;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) log_softmax_kernel(const T* in, T* out, int rows,
                                                               int V) {
  __shared__ float red[32];
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* x = in + size_t(r) * V;
    T* y = out + size_t(r) * V;
    const float lse = row_logsumexp(x, V, red);
    for (int j = threadIdx.x; j < V; j += blockDim.x) y[j] = from_float<T>(to_float(x[j]) - lse);
  }
}

unsigned row_blocks(int rows) { return unsigned(std::min(rows, 65535 * 4)); }

}  // namespace

template <typename T>
double softmax_xent(const T* logits, const int32_t* targets, float* losses, T* dlogits, int rows,
                    int V, float grad_scale, stream_t stream) {
  MK_CHECK(V > 0 && rows >= 0, "cuda::softmax_xent: vocabulary size " + std::to_string(V) +
                                   " must be positive (rows " + std::to_string(rows) + ")");
  if (rows == 0) return 0.0;
  MK_CHECK(logits && targets && losses, "cuda::softmax_xent: null pointer");
  require_device("cuda::softmax_xent");
  mk::cuda::DeviceBuffer<double> row_loss(size_t(rows) + 1, stream);  // rows, then the total
  mk::cuda::DeviceBuffer<int> bad(1, stream);
  bad.fill_bytes(0x7f, stream);
  xent_kernel<T><<<row_blocks(rows), kThreads, 0, stream>>>(logits, targets, losses, dlogits,
                                                            rows, V, grad_scale, row_loss.data(),
                                                            bad.data());
  MK_CUDA_LAUNCH_CHECK("cuda::softmax_xent");
  sum_kernel<<<1, kThreads, 0, stream>>>(row_loss.data(), rows, row_loss.data() + rows);
  MK_CUDA_LAUNCH_CHECK("cuda::softmax_xent (sum)");
  int bad_row = kNoBad;
  mk::cuda::copy_to_host(&bad_row, bad.data(), sizeof bad_row, stream);
  if (bad_row != kNoBad) {
    int32_t t = 0;
    mk::cuda::copy_to_host(&t, targets + bad_row, sizeof t, stream);
    throw Error("cuda::softmax_xent: target " + std::to_string(t) + " at row " +
                std::to_string(bad_row) + " is outside the vocabulary [0, " + std::to_string(V) +
                ")");
  }
  double total = 0;
  mk::cuda::copy_to_host(&total, row_loss.data() + rows, sizeof total, stream);
  return total;
}

template <typename T>
void log_softmax(const T* in, T* out, int rows, int V, stream_t stream) {
  MK_CHECK(V > 0 && rows >= 0, "cuda::log_softmax: vocabulary size " + std::to_string(V) +
                                   " must be positive");
  if (rows == 0) return;
  require_device("cuda::log_softmax");
  log_softmax_kernel<T><<<row_blocks(rows), kThreads, 0, stream>>>(in, out, rows, V);
  MK_CUDA_LAUNCH_CHECK("cuda::log_softmax");
}

#define MK_INSTANTIATE(T)                                                                     \
  template double softmax_xent<T>(const T*, const int32_t*, float*, T*, int, int, float,      \
                                  stream_t);                                                  \
  template void log_softmax<T>(const T*, T*, int, int, stream_t);
MK_INSTANTIATE(float)
MK_INSTANTIATE(bf16)
#undef MK_INSTANTIATE

}  // namespace mk::ops::cuda
