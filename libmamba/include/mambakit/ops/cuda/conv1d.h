// Causal depthwise conv1d on CUDA, as mambakit/ops/conv1d.h: x, y (B, L, D)
// with channels contiguous (one thread per channel, coalesced), kernel w
// (D, K) and bias (D) fp32; activations T = float or bf16. K <= 8.
// The _silu forms fuse the Mamba block's activation, y = silu(conv(x)),
// saving a pass and a buffer; their backward takes dy of the activated
// output and recomputes the pre-activation (so it needs the bias).
#pragma once

#include "mambakit/cuda/device.h"
#include "mambakit/ops/conv1d.h"

namespace mk::ops::cuda {

using mk::cuda::stream_t;
using mk::ops::Conv1dShape;

constexpr int kConvMaxK = 8;

template <typename T>
void conv1d_causal_forward(const Conv1dShape& s, const T* x, const float* w, const float* bias,
                           T* y, stream_t stream = nullptr);

// dx written; dw, dbias accumulated (dbias may be null). dw and dbias are
// reduced over (B, L) in a fixed order: deterministic.
template <typename T>
void conv1d_causal_backward(const Conv1dShape& s, const T* dy, const T* x, const float* w, T* dx,
                            float* dw, float* dbias, stream_t stream = nullptr);

template <typename T>
void conv1d_causal_silu_forward(const Conv1dShape& s, const T* x, const float* w,
                                const float* bias, T* y, stream_t stream = nullptr);
template <typename T>
void conv1d_causal_silu_backward(const Conv1dShape& s, const T* dy, const T* x, const float* w,
                                 const float* bias, T* dx, float* dw, float* dbias,
                                 stream_t stream = nullptr);

// One recurrent step: state (B, D, K) holds the last K inputs, oldest first;
// shifted left, x_t (B, D) appended, y_t (B, D) = bias + w . state, then
// SiLU if silu.
template <typename T>
void conv1d_causal_step(int B, int D, int K, const T* x_t, T* state, const float* w,
                        const float* bias, T* y_t, bool silu = false, stream_t stream = nullptr);

}  // namespace mk::ops::cuda
