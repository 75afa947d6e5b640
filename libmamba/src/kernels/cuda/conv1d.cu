// Causal depthwise conv1d on CUDA over (B, L, D): one thread per output
// element, channels fastest (coalesced); optional fused SiLU. The backward
// forms the gradient of the pre-activation g (a buffer only when SiLU is
// fused), then dx by a transposed conv, and dw, dbias as per-chunk column
// sums over (B, L) rows added in a fixed order.
#include <algorithm>

#include "common.cuh"
#include "mambakit/ops/cuda/conv1d.h"

namespace mk::ops::cuda {

using mk::cuda::bf16;
using namespace mk::cuda::detail;

namespace {

constexpr int kThreads = 256;
constexpr int kChanThreads = 128;  // channels per block in the dw reduction

// pre[b,t,d] = bias[d] + sum_k w[d,k] x[b, t-(K-1)+k, d]  (zero padding).
template <typename T>
__device__ __forceinline__ float conv_at(const T* x, const float* w, const float* bias, int L,
                                         int D, int K, size_t row, int t, int d) {
  float acc = bias ? bias[d] : 0.f;
  for (int k = max(0, K - 1 - t); k < K; ++k)
    acc = fmaf(w[size_t(d) * K + k], to_float(x[(row - (K - 1) + k) * D + d]), acc);
  return acc;
}

template <typename T, bool kSilu>
__global__ void conv_fwd_kernel(Conv1dShape s, const T* x, const float* w, const float* bias,
                                T* y) {
  const size_t total = size_t(s.B) * s.L * s.D;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total;
       i += size_t(gridDim.x) * blockDim.x) {
    const size_t row = i / s.D;
    const int d = int(i % s.D), t = int(row % s.L);
    float v = conv_at(x, w, bias, s.L, s.D, s.K, row, t, d);
    if constexpr (kSilu) v *= sigmoidf_(v);
    y[i] = from_float<T>(v);
  }
}

// g = dy * silu'(pre), pre recomputed.
template <typename T>
__global__ void conv_silu_grad_kernel(Conv1dShape s, const T* dy, const T* x, const float* w,
                                      const float* bias, float* g) {
  const size_t total = size_t(s.B) * s.L * s.D;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total;
       i += size_t(gridDim.x) * blockDim.x) {
    const size_t row = i / s.D;
    const int d = int(i % s.D), t = int(row % s.L);
    const float v = conv_at(x, w, bias, s.L, s.D, s.K, row, t, d);
    const float sg = sigmoidf_(v);
    g[i] = to_float(dy[i]) * sg * (1.f + v * (1.f - sg));
  }
}

// dx[b,u,d] = sum_k w[d,k] g[b, u+(K-1)-k, d] over outputs inside [0, L).
template <typename Tg, typename T>
__global__ void conv_dx_kernel(Conv1dShape s, const Tg* g, const float* w, T* dx) {
  const size_t total = size_t(s.B) * s.L * s.D;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total;
       i += size_t(gridDim.x) * blockDim.x) {
    const size_t row = i / s.D;
    const int d = int(i % s.D), u = int(row % s.L), K = s.K;
    float acc = 0.f;
    for (int k = max(0, u + K - s.L); k < K; ++k)
      acc = fmaf(w[size_t(d) * K + k], to_float(g[(row + (K - 1) - k) * s.D + d]), acc);
    dx[i] = from_float<T>(acc);
  }
}

// Per chunk of (B*L) rows and channel d: sum g x_shifted (per tap) and sum g.
template <typename Tg, typename T>
__global__ void conv_dw_partial_kernel(Conv1dShape s, const Tg* g, const T* x, float* ws_w,
                                       float* ws_b) {
  const int d = blockIdx.x * blockDim.x + threadIdx.x, chunk = blockIdx.y;
  if (d >= s.D) return;
  const int K = s.K;
  const size_t rows = size_t(s.B) * s.L;
  const size_t r0 = size_t(chunk) * kRowsPerChunk;
  const size_t r1 = r0 + kRowsPerChunk < rows ? r0 + kRowsPerChunk : rows;
  float acc[kConvMaxK], accb = 0.f;
#pragma unroll
  for (int k = 0; k < kConvMaxK; ++k) acc[k] = 0.f;
  for (size_t row = r0; row < r1; ++row) {
    const int t = int(row % s.L);
    const float gv = to_float(g[row * s.D + d]);
    accb += gv;
#pragma unroll
    for (int k = 0; k < kConvMaxK; ++k)
      if (k < K && t - (K - 1) + k >= 0)
        acc[k] = fmaf(gv, to_float(x[(row - (K - 1) + k) * s.D + d]), acc[k]);
  }
#pragma unroll
  for (int k = 0; k < kConvMaxK; ++k)
    if (k < K) ws_w[size_t(chunk) * s.D * K + size_t(d) * K + k] = acc[k];
  ws_b[size_t(chunk) * s.D + d] = accb;
}

template <typename T>
__global__ void conv_step_kernel(int B, int D, int K, const T* x_t, T* state, const float* w,
                                 const float* bias, T* y_t, bool silu) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < size_t(B) * D;
       i += size_t(gridDim.x) * blockDim.x) {
    const int d = int(i % D);
    T* st = state + i * K;
    for (int k = 0; k + 1 < K; ++k) st[k] = st[k + 1];
    st[K - 1] = x_t[i];
    float acc = bias ? bias[d] : 0.f;
    for (int k = 0; k < K; ++k) acc = fmaf(w[size_t(d) * K + k], to_float(st[k]), acc);
    if (silu) acc *= sigmoidf_(acc);
    y_t[i] = from_float<T>(acc);
  }
}

void check_shape(const char* where, const Conv1dShape& s) {
  MK_CHECK(s.B >= 0 && s.L >= 0 && s.D >= 0 && s.K >= 1 && s.K <= kConvMaxK,
           std::string(where) + ": unsupported shape B=" + std::to_string(s.B) + " L=" +
               std::to_string(s.L) + " D=" + std::to_string(s.D) + " K=" + std::to_string(s.K) +
               " (the CUDA conv takes 1 <= K <= " + std::to_string(kConvMaxK) + ")");
  require_device(where);
}

template <typename T, bool kSilu>
void forward(const char* where, const Conv1dShape& s, const T* x, const float* w,
             const float* bias, T* y, stream_t stream) {
  check_shape(where, s);
  const size_t total = size_t(s.B) * s.L * s.D;
  if (total == 0) return;
  conv_fwd_kernel<T, kSilu><<<grid_for(total, kThreads), kThreads, 0, stream>>>(s, x, w, bias, y);
  MK_CUDA_LAUNCH_CHECK(where);
}

template <typename Tg, typename T>
void backward_from_g(const char* where, const Conv1dShape& s, const Tg* g, const T* x,
                     const float* w, T* dx, float* dw, float* dbias, stream_t stream) {
  const size_t total = size_t(s.B) * s.L * s.D;
  conv_dx_kernel<Tg, T><<<grid_for(total, kThreads), kThreads, 0, stream>>>(s, g, w, dx);
  MK_CUDA_LAUNCH_CHECK(where);
  const size_t rows = size_t(s.B) * s.L;
  const size_t n_chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
  MK_CHECK(n_chunks <= 65535, std::string(where) + ": " + std::to_string(rows) +
                                  " rows exceed the dw reduction's grid");
  mk::cuda::DeviceBuffer<float> ws_w(n_chunks * s.D * s.K, stream), ws_b(n_chunks * s.D, stream);
  const dim3 grid(unsigned((s.D + kChanThreads - 1) / kChanThreads), unsigned(n_chunks));
  conv_dw_partial_kernel<Tg, T><<<grid, kChanThreads, 0, stream>>>(s, g, x, ws_w.data(),
                                                                   ws_b.data());
  MK_CUDA_LAUNCH_CHECK(where);
  add_chunk_sums_kernel<><<<grid_for(size_t(s.D) * s.K, kThreads), kThreads, 0, stream>>>(
      ws_w.data(), int(n_chunks), size_t(s.D) * s.K, dw);
  MK_CUDA_LAUNCH_CHECK(where);
  if (dbias) {
    add_chunk_sums_kernel<><<<grid_for(s.D, kThreads), kThreads, 0, stream>>>(
        ws_b.data(), int(n_chunks), size_t(s.D), dbias);
    MK_CUDA_LAUNCH_CHECK(where);
  }
}

}  // namespace

template <typename T>
void conv1d_causal_forward(const Conv1dShape& s, const T* x, const float* w, const float* bias,
                           T* y, stream_t stream) {
  forward<T, false>("cuda::conv1d_causal_forward", s, x, w, bias, y, stream);
}

template <typename T>
void conv1d_causal_silu_forward(const Conv1dShape& s, const T* x, const float* w,
                                const float* bias, T* y, stream_t stream) {
  forward<T, true>("cuda::conv1d_causal_silu_forward", s, x, w, bias, y, stream);
}

template <typename T>
void conv1d_causal_backward(const Conv1dShape& s, const T* dy, const T* x, const float* w, T* dx,
                            float* dw, float* dbias, stream_t stream) {
  const char* where = "cuda::conv1d_causal_backward";
  check_shape(where, s);
  if (size_t(s.B) * s.L * s.D == 0) return;
  backward_from_g<T, T>(where, s, dy, x, w, dx, dw, dbias, stream);
}

template <typename T>
void conv1d_causal_silu_backward(const Conv1dShape& s, const T* dy, const T* x, const float* w,
                                 const float* bias, T* dx, float* dw, float* dbias,
                                 stream_t stream) {
  const char* where = "cuda::conv1d_causal_silu_backward";
  check_shape(where, s);
  const size_t total = size_t(s.B) * s.L * s.D;
  if (total == 0) return;
  mk::cuda::DeviceBuffer<float> g(total, stream);
  conv_silu_grad_kernel<T><<<grid_for(total, kThreads), kThreads, 0, stream>>>(s, dy, x, w, bias,
                                                                               g.data());
  MK_CUDA_LAUNCH_CHECK(where);
  backward_from_g<float, T>(where, s, g.data(), x, w, dx, dw, dbias, stream);
}

template <typename T>
void conv1d_causal_step(int B, int D, int K, const T* x_t, T* state, const float* w,
                        const float* bias, T* y_t, bool silu, stream_t stream) {
  check_shape("cuda::conv1d_causal_step", Conv1dShape{B, 1, D, K});
  if (size_t(B) * D == 0) return;
  conv_step_kernel<T><<<grid_for(size_t(B) * D, kThreads), kThreads, 0, stream>>>(
      B, D, K, x_t, state, w, bias, y_t, silu);
  MK_CUDA_LAUNCH_CHECK("cuda::conv1d_causal_step");
}

#define MK_INSTANTIATE(T)                                                                       \
  template void conv1d_causal_forward<T>(const Conv1dShape&, const T*, const float*,            \
                                         const float*, T*, stream_t);                           \
  template void conv1d_causal_silu_forward<T>(const Conv1dShape&, const T*, const float*,       \
                                              const float*, T*, stream_t);                      \
  template void conv1d_causal_backward<T>(const Conv1dShape&, const T*, const T*, const float*, \
                                          T*, float*, float*, stream_t);                        \
  template void conv1d_causal_silu_backward<T>(const Conv1dShape&, const T*, const T*,          \
                                               const float*, const float*, T*, float*, float*,  \
                                               stream_t);                                       \
  template void conv1d_causal_step<T>(int, int, int, const T*, T*, const float*, const float*,  \
                                      T*, bool, stream_t);
MK_INSTANTIATE(float)
MK_INSTANTIATE(bf16)
#undef MK_INSTANTIATE

}  // namespace mk::ops::cuda
