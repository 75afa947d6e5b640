// Causal depthwise 1-D convolution (Mamba's short conv, kernel 4 by default).
// y[b,t,d] = bias[d] + sum_{k<K} w[d,k] * x[b, t-(K-1)+k, d]  (x = 0 for t<0)
// This is PyTorch's Conv1d(groups=D, padding=K-1) truncated to the first L
// outputs, with weight (D,1,K) stored as (D,K).
#pragma once

namespace mk::ops {

struct Conv1dShape {
  int B, L, D, K;  // x, y: (B, L, D); w: (D, K); bias: (D)
};

template <typename T>
void conv1d_causal_forward(const Conv1dShape& s, const T* x, const T* w, const T* bias, T* y);

// dx written; dw, dbias accumulated (dbias may be null).
template <typename T>
void conv1d_causal_backward(const Conv1dShape& s, const T* dy, const T* x, const T* w, T* dx,
                            T* dw, T* dbias);

// The Mamba block's conv and activation in one: y = silu(conv(x) + bias).
// The backward takes dy of the activated output and recomputes the
// pre-activation from x (so it needs the bias, which may be null); dx
// written, dw and dbias accumulated (dbias may be null). Nothing else is
// saved between them: the pre-activation never exists as a tensor. float
// runs the per-ISA fused kernels for K <= 4 (conv1d_silu_kernels.cpp); other
// K and double run the conv and the SiLU one after the other, the reference
// the fused kernels are tested against.
template <typename T>
void conv1d_silu_forward(const Conv1dShape& s, const T* x, const T* w, const T* bias, T* y);
template <typename T>
void conv1d_silu_backward(const Conv1dShape& s, const T* dy, const T* x, const T* w,
                          const T* bias, T* dx, T* dw, T* dbias);

// One recurrent step. state (B, D, K) holds the last K inputs per channel,
// oldest first; it is shifted left and x_t (B, D) appended, then
// y_t (B, D) = bias + sum_k w[d,k] * state[b,d,k].
template <typename T>
void conv1d_causal_step(int B, int D, int K, const T* x_t, T* state, const T* w, const T* bias,
                        T* y_t);

}  // namespace mk::ops
